//! The `linli` command line as a newcomer meets it: help, config template and check,
//! provisioning errors.

use std::process::Command;

use linli_system_tests::linli_bin;

fn linli(args: &[&str], dir: &std::path::Path) -> anyhow::Result<(bool, String)> {
    let out = Command::new(linli_bin()?)
        .args(args)
        .current_dir(dir)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[test]
fn template_checks_clean_and_a_bad_config_names_every_bad_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ok, template) = linli(&["config", "template"], dir.path())?;
    assert!(ok);
    std::fs::write(dir.path().join("linli.toml"), &template)?;
    let (ok, out) = linli(&["config", "check"], dir.path())?;
    assert!(ok, "the template is a valid config: {out}");

    let bad = "[broker]\nmemory_budget_mib = 1\n[ingest]\nfsync = \"batch\"\nsegment_mib = 0\n";
    std::fs::write(dir.path().join("bad.toml"), bad)?;
    let (ok, out) = linli(&["config", "check", "--config", "bad.toml"], dir.path())?;
    assert!(!ok);
    for key in [
        "broker.memory_budget_mib",
        "ingest.segment_mib",
        "ingest.segment_mib: must be",
    ] {
        assert!(out.contains(key), "{key} missing from:\n{out}");
    }
    std::fs::write(
        dir.path().join("typo.toml"),
        "[broker]\nlisten = \"127.0.0.1:1\"\n",
    )?;
    let (ok, out) = linli(&["config", "check", "--config", "typo.toml"], dir.path())?;
    assert!(!ok && out.contains("listen"), "unknown key named:\n{out}");
    Ok(())
}

#[test]
fn provisioning_prints_secrets_once_and_explains_mistakes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let args = [
        "provision",
        "--id",
        "pendant-1",
        "--kind",
        "pendant",
        "--site",
        "home",
        "--zone",
        "room",
    ];
    let (ok, out) = linli(&args, dir.path())?;
    assert!(ok, "{out}");
    assert!(
        out.contains("mqtt password") && out.contains("sealing key (hex)"),
        "{out}"
    );
    let (ok, out) = linli(&args, dir.path())?;
    assert!(!ok && out.contains("already provisioned"), "{out}");
    let (ok, out) = linli(
        &[
            "provision",
            "--id",
            "x",
            "--kind",
            "toaster",
            "--site",
            "s",
            "--zone",
            "z",
        ],
        dir.path(),
    )?;
    assert!(
        !ok && out.contains("street_light"),
        "lists the valid kinds:\n{out}"
    );
    let (ok, out) = linli(&["devices"], dir.path())?;
    assert!(ok && out.contains("pendant-1\tpendant\thome/room"), "{out}");
    let (ok, out) = linli(&["--help"], dir.path())?;
    assert!(
        ok && out.contains("provision") && out.contains("run"),
        "{out}"
    );
    Ok(())
}

#[test]
fn check_rules_validates_the_built_in_rules_and_names_every_bad_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ok, out) = linli(&["check-rules"], dir.path())?;
    assert!(ok, "{out}");
    assert!(
        out.contains("built-in rules: ok") && out.contains("P1 fall (life-safety)"),
        "{out}"
    );
    let (ok, defaults) = linli(&["default-rules"], dir.path())?;
    assert!(ok);
    std::fs::write(dir.path().join("mine.toml"), &defaults)?;
    let (ok, out) = linli(&["check-rules", "mine.toml"], dir.path())?;
    assert!(
        ok && out.contains("mine.toml: ok"),
        "the printed defaults are a valid file: {out}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "timezone = \"Mars/Base\"\n[[rule]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"pulse\"\nabove = 1\n\
         [[rule]]\nname = \"a\"\nkind = \"not_back\"\ntrigger = \"bed_exit\"\nwithin_s = 60\n\
         [[override]]\nrule = \"nope\"\nsubject = \"R-1\"\n",
    )?;
    let (ok, out) = linli(&["check-rules", "bad.toml"], dir.path())?;
    assert!(!ok);
    for key in [
        "timezone",
        "rule[0].metric",
        "rule[1].name",
        "rule[1].back",
        "override[0].rule",
    ] {
        assert!(out.contains(key), "{key} missing from:\n{out}");
    }
    Ok(())
}

#[test]
fn check_routing_validates_against_the_configs_channels_and_names_every_bad_key(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ok, out) = linli(&["check-routing"], dir.path())?;
    assert!(ok, "{out}");
    assert!(
        out.contains("built-in routing: ok (0 people")
            && out.contains("team caregivers (role caregiver)"),
        "{out}"
    );
    let (ok, defaults) = linli(&["default-routing"], dir.path())?;
    assert!(ok);
    std::fs::write(dir.path().join("mine.toml"), &defaults)?;
    let (ok, out) = linli(&["check-routing", "mine.toml"], dir.path())?;
    assert!(ok && out.contains("mine.toml: ok"), "{out}");

    // A caregiver on days only: life-safety pages would find nobody at night.
    std::fs::write(
        dir.path().join("c.toml"),
        "[[delivery.webhook]]\nname = \"sms\"\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"s\"\n",
    )?;
    std::fs::write(
        dir.path().join("days.toml"),
        "[[person]]\nid = \"anna\"\ncontact = [\"webhook:sms\"]\n\
         [[team]]\nid = \"care\"\nrole = \"caregiver\"\n\
         [[team.shift]]\nperson = \"anna\"\nwindow = \"07:00-19:00\"\n\
         [[policy]]\npriority = 1\n[[policy.step]]\nafter_s = 0\nnotify = [\"caregiver\"]\n\
         [[policy]]\npriority = 2\n[[policy]]\npriority = 3\n[[policy]]\npriority = 4\n",
    )?;
    let (ok, out) = linli(
        &["check-routing", "days.toml", "--config", "c.toml"],
        dir.path(),
    )?;
    assert!(ok, "{out}");
    let warning = out
        .lines()
        .find(|l| l.contains("warning: team care (role caregiver, paged for life-safety alarms)"))
        .unwrap_or_else(|| panic!("no gap reported:\n{out}"));
    assert!(
        warning.contains("T19:00:00 – ") && warning.contains("T07:00:00"),
        "the nights: {warning}"
    );
    assert!(!warning.contains("T12:00"), "days are covered: {warning}");

    // Contacts must name channels the gateway config has.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[person]]\nid = \"anna\"\ncontact = [\"webhook:sms\", \"email\"]\n\
         [[team]]\nid = \"c\"\nrole = \"caregiver\"\nmembers = [\"bo\"]\n\
         [[team.shift]]\nperson = \"anna\"\nwindow = \"7-19\"\n\
         [[policy]]\npriority = 1\n",
    )?;
    let (ok, out) = linli(&["check-routing", "bad.toml"], dir.path())?;
    assert!(!ok);
    for key in [
        "person[0].contact",
        "team[0].members",
        "team[0].shift[0].window",
        "policy[0].step",
        "no policy for priority 2",
    ] {
        assert!(out.contains(key), "{key} missing from:\n{out}");
    }
    assert!(out.contains("no [[delivery.webhook]] named `sms`"), "{out}");
    Ok(())
}

#[test]
fn check_modbus_lists_equipment_and_schedules_and_names_a_bad_profile() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ok, shipped) = linli(&["modbus-profiles"], dir.path())?;
    assert!(ok);
    assert!(
        linli_gateway::ingest::modbus::profile::parse(&shipped).is_ok_and(|p| p.len() == 3),
        "the printed profiles are a valid profiles file"
    );
    // A site's own profile beside the shipped ones.
    std::fs::write(
        dir.path().join("mine.toml"),
        shipped
            .replace("name = \"street-light\"", "name = \"acme-lamp\"")
            .replace("name = \"eastron-sdm\"", "name = \"acme-meter\"")
            .replace("name = \"pump-station\"", "name = \"acme-pump\""),
    )?;
    let config = "[modbus]\nprofiles = \"mine.toml\"\nlatitude = 31.23\nlongitude = 121.47\n\
         [[modbus.device]]\nid = \"lamp-1\"\nprofile = \"acme-lamp\"\ntcp = \"127.0.0.1:1502\"\n\
         site = \"city\"\nzone = \"main-street\"\n\
         [[modbus.device]]\nid = \"meter-1\"\nprofile = \"eastron-sdm\"\ntcp = \"127.0.0.1:1502\"\n\
         unit = 2\nsite = \"city\"\nzone = \"main-street\"\n\
         [[modbus.schedule]]\nname = \"night\"\nzones = [\"main-street\"]\n\
         on = \"sunset+10m\"\noff = \"sunrise-15m\"\n";
    std::fs::write(dir.path().join("linli.toml"), config)?;
    let (ok, out) = linli(&["check-modbus"], dir.path())?;
    assert!(ok, "{out}");
    assert!(
        out.contains("linli.toml: ok (2 Modbus device(s), 1 schedule(s))"),
        "{out}"
    );
    assert!(
        out.contains("lamp-1 acme-lamp (street_light) tcp 127.0.0.1:1502"),
        "{out}"
    );
    assert!(out.contains("schedule night: 1 lamp(s); now: "), "{out}");

    std::fs::write(
        dir.path().join("linli.toml"),
        config.replace("eastron-sdm", "eastron"),
    )?;
    let (ok, out) = linli(&["check-modbus"], dir.path())?;
    assert!(!ok);
    assert!(
        out.contains("modbus.device[1].profile: no profile `eastron`; known: acme-lamp"),
        "{out}"
    );
    Ok(())
}

#[test]
fn people_are_added_listed_given_new_passwords_and_removed_with_clear_errors() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    // Without --password-stdin a password is made and shown once.
    let (ok, out) = linli(
        &[
            "user",
            "add",
            "zhang.min",
            "--role",
            "caregiver",
            "--zones",
            "wing-a, wing-b",
            "--display-name",
            "Zhang Min",
        ],
        dir.path(),
    )?;
    assert!(ok, "{out}");
    assert!(
        out.contains("zhang.min added (caregiver, zones wing-a,wing-b)"),
        "{out}"
    );
    let pw = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password (shown once): "))
        .map(str::to_owned);
    assert!(pw.as_ref().is_some_and(|p| p.len() >= 10), "{out}");
    let (ok, out) = linli(&["user", "list"], dir.path())?;
    assert!(ok);
    assert!(
        out.contains("zhang.min\tcaregiver\twing-a,wing-b\tZhang Min"),
        "{out}"
    );
    // Mistakes are explained.
    for (args, says) in [
        (
            vec!["user", "add", "x", "--role", "root", "--zones", "a"],
            "unknown role \"root\"; one of: caregiver, supervisor, crew, admin",
        ),
        (
            vec!["user", "add", "zhang.min", "--role", "crew", "--zones", "a"],
            "already exists",
        ),
        (
            vec!["user", "add", "a b", "--role", "crew", "--zones", "a"],
            "use 1-64 letters",
        ),
        (
            vec!["user", "add", "li", "--role", "crew", "--zones", " , "],
            "name at least one zone",
        ),
        (
            vec!["user", "passwd", "nobody"],
            "no person named \"nobody\"",
        ),
        (
            vec!["user", "remove", "nobody"],
            "no person named \"nobody\"",
        ),
    ] {
        let (ok, out) = linli(&args, dir.path())?;
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    let (ok, out) = linli(&["user", "passwd", "zhang.min"], dir.path())?;
    assert!(ok && out.contains("password (shown once)"), "{out}");
    let (ok, out) = linli(&["user", "remove", "zhang.min"], dir.path())?;
    assert!(ok, "{out}");
    let (_, out) = linli(&["user", "list"], dir.path())?;
    assert!(!out.contains("zhang.min"), "{out}");
    Ok(())
}
