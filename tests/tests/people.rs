//! Sign-in, roles and zones over the real HTTP API of an in-process gateway: nothing under
//! `/api/` answers without a session or the API token; the session cookie is HttpOnly,
//! Secure and SameSite=Strict and ends on sign-out; each role sees only its zones and,
//! for crews, nothing about residents; refused calls and every action are audited; bad
//! sign-in bodies get clear errors; repeated wrong passwords slow sign-in down.

use std::time::Duration;

use anyhow::{Context, Result};
use linli_gateway::people::Role;
use linli_gateway::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use linli_protocol::report::{Hazard, HazardKind, Pendant, Report};
use linli_protocol::DeviceKind;
use linli_sim::device::SimDevice;
use linli_system_tests::*;
use serde_json::{json, Value};

/// Adds a person to the gateway's people.
fn add(
    gw: &TestGateway,
    name: &str,
    display: &str,
    role: Role,
    zones: &[&str],
    pw: &str,
) -> Result<()> {
    let zones: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
    Ok(gw
        .gw
        .shared
        .people
        .add(name, display, role, &zones, pw, 0)?)
}

/// An HTTP answer: status, `Set-Cookie`, parsed body.
struct Answer {
    status: u16,
    cookie: Option<String>,
    body: Value,
}

/// One request with an optional session cookie or bearer token.
fn call(method: &str, url: &str, auth: Auth<'_>, body: Option<&str>) -> Result<Answer> {
    let mut r = ureq::request(method, url).timeout(Duration::from_secs(10));
    match auth {
        Auth::None => {}
        Auth::Cookie(c) => r = r.set("cookie", &format!("__Host-linli_session={c}")),
        Auth::Bearer(t) => r = r.set("authorization", &format!("Bearer {t}")),
    }
    let res = match body {
        Some(b) => r.set("content-type", "application/json").send_string(b),
        None => r.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.into()),
    };
    let status = resp.status();
    let cookie = resp.header("set-cookie").map(str::to_owned);
    let text = resp.into_string()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        cookie,
        body,
    })
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Cookie(&'a str),
    Bearer(&'a str),
}

/// Signs in; the session token from the cookie.
fn sign_in(http: &str, name: &str, password: &str) -> Result<String> {
    let a = call(
        "POST",
        &format!("{http}/api/session"),
        Auth::None,
        Some(&json!({"name": name, "password": password}).to_string()),
    )?;
    anyhow::ensure!(
        a.status == 200,
        "sign-in of {name}: {} {}",
        a.status,
        a.body
    );
    let c = a.cookie.context("a session cookie")?;
    Ok(c.trim_start_matches("__Host-linli_session=")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned())
}

fn device(
    reg: &Registry,
    id: &str,
    kind: DeviceKind,
    zone: &str,
    subject: (SubjectKind, &str),
) -> Result<SimDevice> {
    let c = reg.provision(&DeviceProfile {
        id: id.into(),
        kind,
        site: "site-1".into(),
        zone: zone.into(),
        subject: Some((subject.0, subject.1.into())),
        heartbeat_s: Some(600),
        trust: Trust::Sealed,
    })?;
    let key: [u8; 32] = hex::decode(&c.key_hex)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("key"))?;
    Ok(SimDevice::new(&c.device_id, &c.password, c.key_id, &key))
}

async fn send(gw: &TestGateway, dev: &mut SimDevice, r: Report) -> Result<()> {
    let mut m = connect_device(gw.gw.mqtt_v4, dev).await?;
    let (_, f) = dev.seal_next(0, r);
    m.publish(&dev.topic_for(&r), f).await?;
    anyhow::ensure!(
        m.acks(dev, 1, Duration::from_secs(10)).await.len() == 1,
        "{} not acked",
        dev.id
    );
    Ok(())
}

/// A street kiosk's smoke detector in alarm.
const SMOKE: Report = Report::Hazard(Hazard {
    hazard: HazardKind::Smoke,
    alarm: true,
    level: 200,
});

/// Resident R-A's pendant in wing A and kiosk KIOSK-1's smoke detector on Elm Street.
fn pendant_and_smoke(gw: &TestGateway) -> Result<(SimDevice, SimDevice)> {
    let reg = Registry::open(gw.dir.path())?;
    let pendant = device(
        &reg,
        "pendant-a",
        DeviceKind::Pendant,
        "wing-a",
        (SubjectKind::Resident, "R-A"),
    )?;
    let smoke = device(
        &reg,
        "smoke-e",
        DeviceKind::Hazard,
        "elm-street",
        (SubjectKind::Asset, "KIOSK-1"),
    )?;
    Ok((pendant, smoke))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answers_without_a_caller_and_a_session_lives_until_sign_out() -> Result<()> {
    let gw = TestGateway::start(|_| {}).await?;
    let http = gw.http();
    add(
        &gw,
        "zhang",
        "Zhang Min",
        Role::Caregiver,
        &["wing-a"],
        "night-shift-1",
    )?;

    // No caller, a wrong token, a wrong cookie: 401 with what to do.
    for auth in [
        Auth::None,
        Auth::Bearer("not-the-token"),
        Auth::Cookie("forged"),
    ] {
        let a = call("GET", &format!("{http}/api/alarms"), auth, None)?;
        assert_eq!(a.status, 401, "{}", a.body);
        assert_eq!(a.body["error"]["code"], "unauthenticated");
        assert!(a.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sign in"));
    }
    let a = call(
        "POST",
        &format!("{http}/api/alarms/1/ack"),
        Auth::None,
        Some("{}"),
    )?;
    assert_eq!(a.status, 401);
    // Health and metrics stay open for probes; the page itself loads without a session.
    assert_eq!(
        call("GET", &format!("{http}/healthz"), Auth::None, None)?.status,
        200
    );
    let page = ureq::get(&format!("{http}/")).call()?;
    assert_eq!(page.content_type(), "text/html");
    let csp = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(page.into_string()?.contains("/js/app.js"));
    assert_eq!(
        call("GET", &format!("{http}/js/nope.js"), Auth::None, None)?.status,
        404
    );
    // The token opens the API; an unknown API route is still 404.
    assert_eq!(
        call(
            "GET",
            &format!("{http}/api/alarms"),
            Auth::Bearer(API_TOKEN),
            None
        )?
        .status,
        200
    );
    assert_eq!(
        call(
            "GET",
            &format!("{http}/api/nope"),
            Auth::Bearer(API_TOKEN),
            None
        )?
        .status,
        404
    );

    // Bad sign-in bodies: clear 400s; a wrong password: 401.
    for body in [
        "not json",
        "{\"name\": \"zhang\"}",
        "{\"name\": \"zhang\", \"password\": \"x\", \"role\": \"admin\"}",
    ] {
        let a = call(
            "POST",
            &format!("{http}/api/session"),
            Auth::None,
            Some(body),
        )?;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "bad_request");
    }
    let a = call(
        "POST",
        &format!("{http}/api/session"),
        Auth::None,
        Some(r#"{"name": "zhang", "password": "wrong-one-here"}"#),
    )?;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );

    // Sign in: the cookie's attributes, who am I, then sign out.
    let a = call(
        "POST",
        &format!("{http}/api/session"),
        Auth::None,
        Some(r#"{"name": "zhang", "password": "night-shift-1"}"#),
    )?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["user"]["role"], "caregiver");
    assert_eq!(a.body["user"]["can"]["residents"], true);
    assert_eq!(a.body["user"]["can"]["street"], false);
    let cookie = a.cookie.clone().context("cookie")?;
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let token = sign_in(&http, "zhang", "night-shift-1")?;
    let me = call(
        "GET",
        &format!("{http}/api/session"),
        Auth::Cookie(&token),
        None,
    )?;
    assert_eq!(me.body["user"]["display_name"], "Zhang Min");
    assert_eq!(
        call(
            "GET",
            &format!("{http}/api/alarms"),
            Auth::Cookie(&token),
            None
        )?
        .status,
        200
    );
    let out = call(
        "DELETE",
        &format!("{http}/api/session"),
        Auth::Cookie(&token),
        None,
    )?;
    assert!(out.cookie.unwrap_or_default().contains("Max-Age=0"));
    assert_eq!(
        call(
            "GET",
            &format!("{http}/api/alarms"),
            Auth::Cookie(&token),
            None
        )?
        .status,
        401
    );

    // Five wrong passwords, then even the right one must wait, with Retry-After.
    for i in 0..5 {
        let a = call(
            "POST",
            &format!("{http}/api/session"),
            Auth::None,
            Some(&json!({"name": "zhang", "password": format!("guess-{i}")}).to_string()),
        )?;
        assert_eq!(a.status, 401);
    }
    let r = ureq::post(&format!("{http}/api/session"))
        .send_json(json!({"name": "zhang", "password": "night-shift-1"}));
    let Err(ureq::Error::Status(429, resp)) = r else {
        panic!("the sixth attempt was not slowed down: {r:?}");
    };
    let wait: u64 = resp.header("retry-after").unwrap_or("0").parse()?;
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.into_json()?;
    assert_eq!(body["error"]["code"], "slowed_down");
    assert_eq!(body["retry_after_s"], wait);
    let audit = get_json(&format!("{http}/api/audit?target=session")).await?;
    let failed = audit["audit"].as_array().map_or(0, |a| {
        a.iter().filter(|r| r["action"] == "sign_in_failed").count()
    });
    assert_eq!(
        failed, 6,
        "five guesses and the first wrong password: {audit}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_its_zones_and_crews_never_see_residents() -> Result<()> {
    let gw = TestGateway::start(|_| {}).await?;
    let http = gw.http();
    add(
        &gw,
        "zhang",
        "Zhang Min",
        Role::Caregiver,
        &["wing-a"],
        "night-shift-1",
    )?;
    add(
        &gw,
        "wang",
        "Wang Fang",
        Role::Caregiver,
        &["wing-b"],
        "night-shift-2",
    )?;
    add(
        &gw,
        "li",
        "Li Wei",
        Role::Crew,
        &["wing-a", "elm-street"],
        "lamps-and-drains",
    )?;
    add(
        &gw,
        "chen",
        "Chen Jing",
        Role::Supervisor,
        &["*"],
        "supervisor-1",
    )?;
    let (mut a, mut smoke) = pendant_and_smoke(&gw)?;
    let reg = Registry::open(gw.dir.path())?;
    let mut b = device(
        &reg,
        "pendant-b",
        DeviceKind::Pendant,
        "wing-b",
        (SubjectKind::Resident, "R-B"),
    )?;
    send(&gw, &mut a, Report::Pendant(Pendant::Sos)).await?;
    send(&gw, &mut b, Report::Pendant(Pendant::Sos)).await?;
    send(&gw, &mut smoke, SMOKE).await?;
    let all = eventually(Duration::from_secs(20), || async {
        get_json(&format!("{http}/api/alarms?open=true"))
            .await
            .is_ok_and(|v| v["alarms"].as_array().map_or(0, Vec::len) == 3)
    })
    .await;
    assert!(all, "three alarms raised");

    let zhang = sign_in(&http, "zhang", "night-shift-1")?;
    let wang = sign_in(&http, "wang", "night-shift-2")?;
    let li = sign_in(&http, "li", "lamps-and-drains")?;
    let chen = sign_in(&http, "chen", "supervisor-1")?;
    let alarms = |who: &str| -> Result<Vec<(u64, String)>> {
        let a = call(
            "GET",
            &format!("{http}/api/alarms?open=true"),
            Auth::Cookie(who),
            None,
        )?;
        let mut v: Vec<(u64, String)> = a.body["alarms"]
            .as_array()
            .context("alarms")?
            .iter()
            .map(|x| {
                (
                    x["id"].as_u64().unwrap_or(0),
                    x["source"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        v.sort();
        Ok(v)
    };
    let sources = |v: &[(u64, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>();
    assert_eq!(sources(&alarms(&zhang)?), ["resident:R-A"]);
    assert_eq!(sources(&alarms(&wang)?), ["resident:R-B"]);
    let crew_sees = alarms(&li)?;
    assert!(
        crew_sees.iter().all(|(_, s)| !s.starts_with("resident:")) && crew_sees.len() == 1,
        "the crew (zones wing-a, elm-street) sees the smoke only: {crew_sees:?}"
    );
    assert_eq!(alarms(&chen)?.len(), 3);
    let b_alarm = alarms(&wang)?[0].0;

    // Out of scope is not found (ids cannot be probed), and cannot be acted on.
    let one = call(
        "GET",
        &format!("{http}/api/alarms/{b_alarm}"),
        Auth::Cookie(&zhang),
        None,
    )?;
    assert_eq!(one.status, 404, "{}", one.body);
    let ack = call(
        "POST",
        &format!("{http}/api/alarms/{b_alarm}/ack"),
        Auth::Cookie(&zhang),
        Some("{}"),
    )?;
    assert_eq!(ack.status, 404, "{}", ack.body);
    // In scope: acted on under the signed-in name, whatever `by` the body claims.
    let ack = call(
        "POST",
        &format!("{http}/api/alarms/{b_alarm}/ack"),
        Auth::Cookie(&wang),
        Some(r#"{"by": "someone-else"}"#),
    )?;
    assert_eq!(ack.status, 200, "{}", ack.body);
    let one = call(
        "GET",
        &format!("{http}/api/alarms/{b_alarm}"),
        Auth::Cookie(&wang),
        None,
    )?;
    assert_eq!(one.body["acked_by"], "wang");
    assert_eq!(one.body["acked_by_display"], "Wang Fang");
    // Caregivers cannot shelve or command; crews cannot reach residents or their devices.
    let shelve = call(
        "POST",
        &format!("{http}/api/alarms/{b_alarm}/shelve"),
        Auth::Cookie(&wang),
        Some(r#"{"seconds": 60, "reason": "x"}"#),
    )?;
    assert_eq!(shelve.status, 403, "{}", shelve.body);
    assert!(shelve.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("supervisors"));
    for (who, method, path, want) in [
        (&li, "GET", "/api/residents", 403),
        (&li, "GET", "/api/residents/R-A", 403),
        (&li, "GET", "/api/devices/pendant-a", 403),
        (&li, "GET", "/api/devices/pendant-a/readings", 403),
        (&li, "GET", "/api/devices/pendant-a/latest", 403),
        (&li, "GET", "/api/series/list?device=pendant-a", 403),
        (&li, "GET", "/api/devices/smoke-e", 200),
        (&li, "GET", "/api/map", 200),
        (&li, "GET", "/api/ops", 403),
        (&zhang, "GET", "/api/residents/R-A", 200),
        (&zhang, "GET", "/api/residents/R-B", 404),
        (&zhang, "GET", "/api/devices/pendant-b", 404),
        (&zhang, "GET", "/api/series/list?device=pendant-b", 404),
        (&zhang, "GET", "/api/work-orders", 403),
        (&zhang, "POST", "/api/devices/pendant-a/command", 403),
        (&chen, "GET", "/api/ops", 200),
        (&chen, "GET", "/api/audit", 200),
        (&wang, "GET", "/api/kpis", 403),
        (&wang, "GET", "/api/notes", 403),
        (&chen, "POST", "/api/rules/reload", 403),
    ] {
        let body = (method == "POST").then_some(r#"{"command": "identify"}"#);
        let a = call(method, &format!("{http}{path}"), Auth::Cookie(who), body)?;
        assert_eq!(a.status, want, "{method} {path}: {}", a.body);
    }
    // Acting on another zone's resident or source: not found for them.
    let away = call(
        "POST",
        &format!("{http}/api/residents/R-B/away"),
        Auth::Cookie(&zhang),
        Some(r#"{"on": true}"#),
    )?;
    assert_eq!(away.status, 404, "{}", away.body);
    let away = call(
        "POST",
        &format!("{http}/api/residents/R-A/away"),
        Auth::Cookie(&zhang),
        Some(r#"{"on": false}"#),
    )?;
    assert_eq!(away.status, 200, "{}", away.body);
    // A supervisor of one zone may not take another zone out of service.
    add(
        &gw,
        "sun",
        "Sun Li",
        Role::Supervisor,
        &["wing-b"],
        "supervisor-2",
    )?;
    let sun = sign_in(&http, "sun", "supervisor-2")?;
    for (source, want) in [
        ("zone:wing-a", 404),
        ("pendant-a", 404),
        ("zone:wing-b", 200),
    ] {
        let oos = call(
            "POST",
            &format!("{http}/api/out-of-service"),
            Auth::Cookie(&sun),
            Some(&json!({"source": source, "on": false}).to_string()),
        )?;
        assert_eq!(oos.status, want, "{source}: {}", oos.body);
    }
    // A supervisor of some zones sees operations but not gateway-wide records.
    for (path, want) in [
        ("/api/ops", 200),
        ("/api/audit", 403),
        ("/api/deliveries", 403),
    ] {
        let a = call("GET", &format!("{http}{path}"), Auth::Cookie(&sun), None)?;
        assert_eq!(a.status, want, "{path}: {}", a.body);
    }
    // A form on another site cannot make a signed-in browser act.
    let r = ureq::post(&format!("{http}/api/alarms/{b_alarm}/comment"))
        .set("cookie", &format!("__Host-linli_session={wang}"))
        .set("sec-fetch-site", "cross-site")
        .send_json(json!({"text": "from elsewhere"}));
    assert!(matches!(r, Err(ureq::Error::Status(403, _))), "{r:?}");

    // Lists are cut to scope too.
    let devices = call(
        "GET",
        &format!("{http}/api/devices"),
        Auth::Cookie(&li),
        None,
    )?;
    let ids: Vec<&str> = devices
        .body
        .as_array()
        .context("devices")?
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["smoke-e"]);
    let res = call(
        "GET",
        &format!("{http}/api/residents"),
        Auth::Cookie(&zhang),
        None,
    )?;
    assert_eq!(res.body["residents"].as_array().map(Vec::len), Some(1));
    assert_eq!(res.body["residents"][0]["id"], "R-A");
    assert_eq!(res.body["residents"][0]["open_alarms"], 1);

    // The audit log: the look at R-A, the ack, and the crew's refused calls.
    let audit = get_json(&format!("{http}/api/audit?limit=500")).await?;
    let rows = audit["audit"].as_array().context("audit")?;
    let has = |name: &str, action: &str, target: &str| {
        rows.iter()
            .any(|r| r["name"] == name && r["action"] == action && r["target"] == target)
    };
    assert!(has("zhang", "view", "resident:R-A"), "{audit}");
    // Lists naming residents are recorded once per person and route, not per poll.
    let lists = rows
        .iter()
        .filter(|r| {
            r["name"] == "zhang" && r["action"] == "view_list" && r["target"] == "/api/alarms"
        })
        .count();
    assert_eq!(lists, 1, "{audit}");
    assert!(rows
        .iter()
        .any(|r| r["name"] == "zhang" && r["action"] == "view_list" && r["detail"] == "R-A"));
    assert!(
        has("wang", "ack", &format!("/api/alarms/{b_alarm}/ack")),
        "{audit}"
    );
    assert!(has("li", "denied", "/api/residents/R-A"), "{audit}");
    assert!(
        !rows
            .iter()
            .any(|r| r["name"] == "li" && r["action"] == "view"),
        "{audit}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_only_those_who_may_see_them() -> Result<()> {
    let gw = TestGateway::start(|_| {}).await?;
    let http = gw.http();
    add(
        &gw,
        "zhang",
        "Zhang Min",
        Role::Caregiver,
        &["wing-a"],
        "night-shift-1",
    )?;
    add(
        &gw,
        "li",
        "Li Wei",
        Role::Crew,
        &["wing-a", "elm-street"],
        "lamps-and-drains",
    )?;
    let (mut pendant, mut smoke) = pendant_and_smoke(&gw)?;
    let cookie = |t: String| format!("__Host-linli_session={t}");
    let carer = sse(
        &http,
        ("cookie", &cookie(sign_in(&http, "zhang", "night-shift-1")?)),
    );
    let crew = sse(
        &http,
        ("cookie", &cookie(sign_in(&http, "li", "lamps-and-drains")?)),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The resident's SOS first, then the street's smoke: events go out in that order, so
    // a crew stream whose first alarm event is the smoke was never sent the SOS.
    send(&gw, &mut pendant, Report::Pendant(Pendant::Sos)).await?;
    send(&gw, &mut smoke, SMOKE).await?;
    let first_alarm = |rx: &std::sync::mpsc::Receiver<Value>| -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(v) if v.get("alarm").is_some() => return Some(v),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    let to_crew =
        tokio::task::block_in_place(|| first_alarm(&crew)).context("an event for the crew")?;
    assert_eq!(to_crew["alarm"]["device"], "smoke-e", "{to_crew}");
    let to_carer = tokio::task::block_in_place(|| first_alarm(&carer))
        .context("an event for the caregiver")?;
    assert_eq!(to_carer["alarm"]["source"], "resident:R-A", "{to_carer}");
    // Nothing about the resident ever reached the crew's stream.
    let rest: Vec<Value> = crew.try_iter().collect();
    assert!(
        !rest.iter().any(|v| v.to_string().contains("R-A")),
        "{rest:?}"
    );
    Ok(())
}
