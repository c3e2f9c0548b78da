//! Router behaviour at simulated time: deadlines against later transitions, keys that
//! repeat exactly when the same transitions are routed again, empty steps, and work
//! orders following their alarm.

use std::sync::Arc;

use super::*;
use crate::alarms::{ActionError, AlarmState};
use crate::notify::routing::Routing;
use crate::rules::localtime::LocalTime;

const ROUTING: &str = r#"
[[person]]
id = "anna"
contact = ["webhook:sms"]
[[person]]
id = "sup"
contact = ["webhook:sms"]
[[person]]
id = "wei"
contact = ["webhook:sms"]
[[team]]
id = "care"
role = "caregiver"
members = ["anna"]
[[team]]
id = "sups"
role = "supervisor"
members = ["sup"]
[[team]]
id = "nobody"
role = "night"
[[team]]
id = "lights"
role = "crew"
members = ["wei"]
[[policy]]
priority = 1
[[policy.step]]
after_s = 0
notify = ["caregiver"]
[[policy.step]]
after_s = 120
notify = ["supervisor"]
[[policy]]
priority = 2
[[policy.step]]
after_s = 0
notify = ["night"]
[[policy.step]]
after_s = 600
notify = ["supervisor"]
[[policy]]
priority = 3
work_order = { role = "crew", grade = "red" }
[[policy]]
priority = 4
"#;

fn router() -> Router {
    let local = LocalTime::named("UTC").expect("utc");
    let r = Routing::parse(ROUTING, &local, &["sms".into()], false).expect("routing");
    Router::new(Arc::new(r), Vec::new(), Vec::new(), Vec::new(), 1)
}

fn alarm(id: u64, prio: u8, state: AlarmState, condition: bool) -> Alarm {
    let mut a = Alarm::opened(
        id,
        format!("k{prio}"),
        format!("device:d{id}"),
        ("s".into(), "z".into()),
        prio,
        0,
        String::new(),
    );
    a.state = state;
    a.condition = condition;
    a
}

fn tr(id: u64, at: u64, action: &str, to: AlarmState, who: &str) -> Transition {
    Transition {
        alarm: id,
        at_ms: at,
        action: action.into(),
        from: AlarmState::ActiveUnacked,
        to,
        who: who.into(),
        note: String::new(),
    }
}

fn keys(out: &Routed) -> Vec<String> {
    out.notifications.iter().map(|n| n.key.clone()).collect()
}

#[test]
fn a_step_due_after_the_acknowledgement_never_fires_even_when_both_are_routed_late() {
    // Raised at 0, acknowledged at 30 s; the gateway was down and routes both 6 min later.
    let mut r = router();
    let batch = vec![
        (
            1,
            tr(1, 0, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(1, 1, AlarmState::ActiveUnacked, true),
        ),
        (
            2,
            tr(1, 30_000, "acked", AlarmState::ActiveAcked, "anna"),
            alarm(1, 1, AlarmState::ActiveAcked, true),
        ),
    ];
    let mut out = Routed::default();
    r.route(&batch, 360_000, &mut out);
    assert_eq!(keys(&out), ["a1-t1-s0-anna"]);
    assert_eq!(out.notifications[0].created_ms, 0, "paged at its own time");
    assert_eq!(out.answers.len(), 1);
    assert!(out.answers[0].in_time());
    assert!(r.escalations.is_empty() && r.alarms.is_empty());

    // Unanswered, the steps fire at their own deadlines, once each.
    let mut r = router();
    let mut out = Routed::default();
    r.route(&batch[..1], 360_000, &mut out);
    assert_eq!(
        keys(&out),
        ["a1-t1-s0-anna", "a1-t1-s1-sup", "a1-t1-s1-anna"]
    );
    assert_eq!(out.notifications[1].created_ms, 120_000);
    let mut again = Routed::default();
    r.route(&[], 720_000, &mut again);
    assert!(again.notifications.is_empty());
}

#[test]
fn routing_the_same_transitions_again_yields_the_same_keys() {
    let batch = vec![
        (
            7,
            tr(3, 1_000, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(3, 1, AlarmState::ActiveUnacked, true),
        ),
        (
            9,
            tr(4, 2_000, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(4, 3, AlarmState::ActiveUnacked, true),
        ),
    ];
    let run = || {
        let mut r = router();
        let mut out = Routed::default();
        r.route(&batch, 200_000, &mut out);
        let mut k = keys(&out);
        k.extend(out.events.iter().map(|e| e.key.clone()));
        k
    };
    let first = run();
    assert_eq!(first, run());
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), first.len(), "no key twice: {first:?}");
}

#[test]
fn a_step_that_reaches_nobody_brings_the_next_step_forward() {
    let mut r = router();
    let mut out = Routed::default();
    let batch = vec![(
        1,
        tr(5, 1_000, "raised", AlarmState::ActiveUnacked, "rules"),
        alarm(5, 2, AlarmState::ActiveUnacked, true),
    )];
    r.route(&batch, 2_000, &mut out);
    assert_eq!(
        keys(&out),
        ["a5-t1-s1-sup"],
        "the night team is empty: the supervisor at once"
    );
    assert_eq!(out.unrouted.len(), 1);
    assert_eq!(out.notifications[0].created_ms, 1_000);
}

#[test]
fn a_work_order_gets_one_event_per_change_and_is_cancelled_when_its_alarm_closes() {
    let mut r = router();
    let mut out = Routed::default();
    let batch = vec![
        (
            1,
            tr(6, 0, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(6, 3, AlarmState::ActiveUnacked, true),
        ),
        // The fault clears before anyone came: no change to the order, no event.
        (
            2,
            tr(6, 10_000, "cleared", AlarmState::ReturnedUnacked, "rules"),
            alarm(6, 3, AlarmState::ReturnedUnacked, false),
        ),
        // Acknowledged, the alarm closes: the order is cancelled.
        (
            3,
            tr(6, 20_000, "acked", AlarmState::Normal, "amy"),
            alarm(6, 3, AlarmState::Normal, false),
        ),
    ];
    r.route(&batch, 30_000, &mut out);
    let wo: Vec<&str> = out
        .events
        .iter()
        .filter(|e| e.key.starts_with('w'))
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(wo, ["w1-0", "w1-1"]);
    let last = out.work_orders.last().expect("stored");
    assert_eq!(last.state.as_str(), "cancelled");
    assert!(r.work_orders.is_empty() && r.next_due().is_none());
    assert_eq!(
        keys(&out),
        ["w1-0-wei"],
        "the crew heard of the dispatch only"
    );
}

#[test]
fn a_verified_order_keeps_its_alarm_to_resolve_and_reopens_if_the_alarm_disagrees() {
    let mut r = router();
    let mut out = Routed::default();
    let batch = vec![
        (
            1,
            tr(8, 0, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(8, 3, AlarmState::ActiveUnacked, true),
        ),
        (
            2,
            tr(8, 5_000, "cleared", AlarmState::ReturnedUnacked, "rules"),
            alarm(8, 3, AlarmState::ReturnedUnacked, false),
        ),
    ];
    r.route(&batch, 6_000, &mut out);
    let w = r
        .work_action(1, "fixed", "wei", "new lamp", 7_000, &mut out)
        .expect("fixed");
    assert_eq!(w.state.as_str(), "verified");
    assert_eq!(
        r.pending_resolves(),
        [(8, 1)],
        "kept until the alarm is resolved"
    );
    // Meanwhile the lamp failed again and the desk refuses to resolve.
    r.resolved(1, Err(ActionError::StillActive(8)), 8_000, &mut out);
    let w = r.work_orders.get(&1).expect("reopened");
    assert_eq!((w.state.as_str(), w.reopened), ("dispatched", 1));
    assert!(r.pending_resolves().is_empty());
}

#[test]
fn a_press_after_the_acknowledgement_pages_again_and_only_earlier_pages_are_superseded() {
    let mut r = router();
    let mut out = Routed::default();
    let batch = vec![
        (
            1,
            tr(2, 0, "raised", AlarmState::ActiveUnacked, "rules"),
            alarm(2, 1, AlarmState::ActiveUnacked, true),
        ),
        (
            2,
            tr(2, 10_000, "acked", AlarmState::ActiveAcked, "anna"),
            alarm(2, 1, AlarmState::ActiveAcked, true),
        ),
        (
            3,
            tr(2, 20_000, "repeat", AlarmState::ActiveUnacked, "rules"),
            alarm(2, 1, AlarmState::ActiveUnacked, true),
        ),
    ];
    r.route(&batch, 30_000, &mut out);
    assert_eq!(keys(&out), ["a2-t1-s0-anna", "a2-t3-s0-anna"]);
    assert_eq!(out.superseded, [("a2-%".to_owned(), 10_000)]);
    // After a new key epoch, every key carries it.
    let mut r = router();
    r.set_epoch(2);
    let mut out = Routed::default();
    r.route(&batch[..1], 1_000, &mut out);
    assert_eq!(keys(&out), ["e2.a2-t1-s0-anna"]);
    assert_eq!(out.events[0].key, "e2.t1");
}

#[test]
fn an_unsuppressed_alarm_whose_fault_already_cleared_gets_no_work_order() {
    let mut r = router();
    let mut out = Routed::default();
    let batch = vec![(
        4,
        tr(9, 0, "unsuppressed", AlarmState::ReturnedUnacked, "system"),
        alarm(9, 3, AlarmState::ReturnedUnacked, false),
    )];
    r.route(&batch, 1_000, &mut out);
    assert!(out.work_orders.is_empty() && r.work_orders.is_empty());
}
