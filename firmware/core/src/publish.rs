//! The publisher: where sealed frames leave the device. [`Publisher`] is the seam between
//! the pure node and a transport — the MQTT client on a board (`crate::mqtt` with the
//! `mqtt` feature), an in-memory broker in on-target tests, a channel in simulators.
//!
//! Owns handing due frames over in order, and a busy-polling [`block_on`] for boards
//! and tests without an executor; does not own connecting or sealing.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::node::{FrameBuf, Node};

/// Something that delivers a frame to the gateway's broker.
// Device firmware runs single-threaded executors: no `Send` bound is wanted on the future.
#[allow(async_fn_in_trait)]
pub trait Publisher {
    /// Why a publish failed (the connection is then assumed gone).
    type Error: core::fmt::Debug;

    /// Publishes `payload` on `topic`.
    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error>;
}

/// Hands every frame due at `now_ms` to `publisher`, alarms first. Returns how many went
/// out; on an error the connection is to be dropped and, once back,
/// [`Node::connected`] makes every unacked frame due again.
pub async fn flush<P: Publisher, const N: usize, const A: usize>(
    node: &mut Node<'_, N, A>,
    now_ms: u64,
    buf: &mut FrameBuf,
    publisher: &mut P,
) -> Result<usize, P::Error> {
    let mut sent = 0;
    while let Some(frame) = node.next_frame(now_ms, buf) {
        publisher.publish(frame.topic, frame.payload).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Runs `f` to completion, polling it in a loop with a waker that does nothing: a
/// busy-polling executor, enough for futures that are ready whenever polled again (an
/// in-memory broker, a polled UART). No executor crate, no allocation.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
