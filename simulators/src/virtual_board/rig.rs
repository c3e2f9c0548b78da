//! The boards' test rig: a firmware [`Device`] over a virtual board, stepped in simulated
//! time with no network; every frame it publishes is opened and decoded as the gateway
//! does, and acked with a sealed ack, so the outbox never fills.
//!
//! Owns only the stepping and the gateway's side of the wire in tests; does not own the
//! boards or the device logic.

use linli_firmware::app::{Application, Device};
use linli_firmware::node::{Cadence, Downlinked, FrameBuf, Node};
use linli_firmware::outbox::Priority;
use linli_protocol::codec::{decode_uplink, encode_downlink};
use linli_protocol::seal::{open, seal};
use linli_protocol::topic::{write_downlink, DownChannel};
use linli_protocol::{DeviceKey, Downlink, FrameClass, Report};

pub const SEC: u64 = 1_000;
pub const MIN: u64 = 60 * SEC;
const KEY: [u8; 32] = [0x5A; 32];

/// One report the gateway got.
#[derive(Debug, Clone, Copy)]
pub struct Got {
    /// When it was published, device ms.
    pub t_ms: u64,
    /// What the device queued it as: a detector's alarm or change, or periodic.
    pub priority: Priority,
    /// The report.
    pub report: Report,
}

/// The reports a detector decided on (not heartbeats or telemetry).
pub fn changes(got: &[Got]) -> impl Iterator<Item = &Got> {
    got.iter().filter(|g| g.priority != Priority::Periodic)
}

/// A device running `A`, stepped every `step_ms`; telemetry every minute (every 10 s
/// during an alarm condition).
pub struct Rig<A: Application> {
    pub dev: Device<'static, A, 16, 4>,
    pub now_ms: u64,
    step_ms: u64,
    buf: FrameBuf,
    pub got: Vec<Got>,
}

impl<A: Application> Rig<A> {
    pub fn new(app: A, step_ms: u64) -> Self {
        let cadence = Cadence {
            heartbeat_s: 300,
            report_s: 60,
            alarm_report_s: 10,
            resend_ms: 10_000,
        };
        let node = Node::new(A::KIND.as_str(), DeviceKey::new(&KEY), 0, 0, cadence, 0, 3);
        Rig {
            dev: Device::new(node, app),
            now_ms: 0,
            step_ms,
            buf: FrameBuf::default(),
            got: Vec::new(),
        }
    }

    /// Steps the device on `board` until (not including) `until_ms`; what the gateway got
    /// meanwhile.
    pub fn run_until(&mut self, board: &mut A::Sensors, until_ms: u64) -> Vec<Got> {
        let from = self.got.len();
        while self.now_ms < until_ms {
            self.dev.step(self.now_ms, 0, board);
            self.deliver(board);
            self.now_ms += self.step_ms;
        }
        self.got[from..].to_vec()
    }

    /// Publishes what is due; the gateway opens, decodes and acks every frame.
    fn deliver(&mut self, board: &mut A::Sensors) {
        let id = A::KIND.as_str();
        let key = DeviceKey::new(&KEY);
        self.dev.node.save_counter(|_| true);
        while let Some(frame) = self.dev.node.next_frame(self.now_ms, &mut self.buf) {
            let (counter, mut bytes) = (frame.counter, frame.payload.to_vec());
            let priority = self
                .dev
                .node
                .outbox()
                .entries()
                .iter()
                .find(|e| e.counter == counter)
                .expect("a frame sent is in the outbox")
                .priority;
            let (header, body) = open(&key, FrameClass::Uplink, id, &mut bytes).expect("opens");
            assert_eq!(header.counter, counter);
            let report = decode_uplink(body).expect("decodes").report;
            assert!(report.allowed_for(A::KIND), "{report:?} from {id}");
            self.got.push(Got {
                t_ms: self.now_ms,
                priority,
                report,
            });
            let mut body = [0u8; 16];
            let body = encode_downlink(&Downlink::Ack { counter }, &mut body).expect("encodes");
            let mut ack = [0u8; 64];
            let n = seal(&key, 0, FrameClass::Ack, id, counter, body, &mut ack).expect("seals");
            let mut topic = String::new();
            write_downlink(&mut topic, id, DownChannel::Ack).expect("topic");
            let acked = self.dev.downlink(0, &topic, &mut ack[..n], board);
            assert_eq!(acked, Ok(Downlinked::Acked(counter)));
        }
    }
}
