//! Stopping the peer processes the benches start (gateways, brokers, time-series
//! servers): politely first, by force after a grace period.
//!
//! Owns only that; starting them is each bench's business.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends SIGINT (as Ctrl-C would), waits up to `grace` for `child` to exit, then kills it.
pub fn interrupt_then_kill(child: &mut Child, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
