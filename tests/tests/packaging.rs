//! What operations teams install beside the binary (`packaging/`): the systemd unit
//! verifies and meets its exposure budget; the Prometheus alert rules check and pass
//! their unit tests; the dashboard and the rules name only metrics the daemon exports.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use leakguard::metrics::{render, Inputs};
use leakguard_common::{hook, MatchKey, Stats, MSISDN_RULE_ID};
use leakguard_tests::{
    cmd::run,
    daemon::{leakguard_bin, Daemon},
    http::{find, MSISDN},
    server::HttpServer,
    topo::{curl, topo, CLI_IF, SRV_V4},
};

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// `systemd-analyze verify` is clean and `systemd-analyze security` rates the unit's
/// exposure at most 3.0 (both offline: the unit is checked as a file, with the binary it
/// names taken from this build), alone and with the example drop-in for an uplink in a
/// network namespace. The unit starts before the network, as a firewall does.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(packaging().join("leakguard.service")).unwrap();
    assert!(
        unit.contains("Type=notify")
            && unit.contains("ExecReload=")
            && unit.contains("WatchdogSec=")
    );
    for key in [
        "Before=network-pre.target",
        "Wants=network-pre.target",
        "DefaultDependencies=no",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(key)),
            "the unit has {key}"
        );
    }
    unit_checks(&unit, None);
    let dropin = std::fs::read_to_string(packaging().join("leakguard-netns.conf")).unwrap();
    assert!(dropin.contains("CAP_SYS_ADMIN") && dropin.contains("RestrictNamespaces=net"));
    unit_checks(&unit, Some(&dropin));
}

fn unit_checks(unit: &str, dropin: Option<&str>) {
    let dir = std::env::temp_dir().join(format!(
        "leakguard-unit-{}-{}",
        std::process::id(),
        dropin.is_some()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(d) = dropin {
        std::fs::create_dir_all(dir.join("leakguard.service.d")).unwrap();
        std::fs::write(dir.join("leakguard.service.d/netns.conf"), d).unwrap();
    }
    let path = dir.join("leakguard.service");
    let bin = leakguard_bin().unwrap();
    std::fs::write(
        &path,
        unit.replace("/usr/bin/leakguard", &bin.display().to_string()),
    )
    .unwrap();
    // --man=no: the man page is the Debian package's, not on this machine.
    run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path));
    let report = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path));
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for leakguard.service:")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure in:\n{report}"));
    println!("systemd-analyze security: exposure {exposure}");
    assert!(
        exposure <= 3.0,
        "exposure {exposure} (budget 3.0):\n{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_alert_rules_check_and_pass_their_tests() {
    let dir = packaging().join("prometheus");
    run(Command::new("promtool").current_dir(&dir).args([
        "check",
        "rules",
        "leakguard-alerts.yml",
    ]));
    let out = run(Command::new("promtool").current_dir(&dir).args([
        "test",
        "rules",
        "leakguard-alerts.test.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has at least one test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("leakguard-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("leakguard-alerts.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let fires = tests
            .split("alertname: ")
            .skip(1)
            .any(|t| t.starts_with(name) && t.lines().nth(1).is_some_and(|l| !l.contains("[]")));
        assert!(fires, "alert {name} is never tested firing");
    }
}

/// Metric names the daemon exports (from its own renderer, every family present).
fn exported() -> BTreeSet<String> {
    let s = Stats::default();
    let key = |rule_id| MatchKey {
        ifindex: 1,
        rule_id,
        hook: hook::TC_EGRESS,
        outcome: 0,
        place: 0,
        _pad: [0; 5],
    };
    let header = |_: u32| "X-MSISDN".to_owned();
    let text = render(&Inputs {
        packets: vec![("eth1".into(), hook::TC_EGRESS, s)],
        matches: vec![
            ("eth1".into(), key(0), 1),
            ("eth1".into(), key(MSISDN_RULE_ID), 1),
        ],
        header: &header,
        attached: vec![("eth1".into(), "tc-egress", true)],
        unguarded: vec![("eth1".into(), "tc-egress", 0)],
        reloads_ok: 0,
        reloads_rejected: 0,
        selftest_ok: true,
        tracked_flows: 0,
        fleet: &leakguard::metrics::Fleet {
            program: "0".into(),
            policy_digest: 0,
            last_reload_ok: 0.0,
            last_reload_successful: true,
            kernel: ("6.1.0".into(), "tcx"),
        },
    })
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `leakguard_*` names in a text.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("leakguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_and_the_rules_name_exported_metrics() {
    let have = exported();
    let dash =
        std::fs::read_to_string(packaging().join("grafana/leakguard-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dash).expect("the dashboard is JSON");
    let exprs: Vec<&str> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 8);
    let rules =
        std::fs::read_to_string(packaging().join("prometheus/leakguard-alerts.yml")).unwrap();
    for (what, text) in [("dashboard", exprs.join("\n")), ("alert rules", rules)] {
        let used = names_in(&text);
        let missing: Vec<_> = used.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "{what} uses metrics the daemon does not export: {missing:?}"
        );
    }
    // The panels the issue asks for.
    for needed in [
        "leakguard_header_matches_total",
        "leakguard_packets_total",
        "leakguard_attached",
        "leakguard_selftest_ok",
        "leakguard_policy_reloads_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no panel for {needed}"
        );
    }
}

/// The daemon works with exactly the capabilities the unit grants (and no others): started
/// through `setpriv` with the unit's CapabilityBoundingSet as its whole bounding, inheritable
/// and ambient set, it attaches, passes its self-test and redacts.
#[test]
fn the_daemon_runs_with_only_the_units_capabilities() {
    let unit = std::fs::read_to_string(packaging().join("leakguard.service")).unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap()
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    assert_eq!(caps.len(), 3, "{caps:?}");
    let set = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let t = topo();
    let server = HttpServer::start(
        &t.srv,
        std::net::SocketAddr::new(SRV_V4.parse().unwrap(), 80),
    )
    .unwrap();
    let mut d = Daemon::new(
        &t.cli,
        &format!("[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n"),
    )
    .unwrap();
    d.wrapper = vec![
        "setpriv".into(),
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
    ];
    d.start().unwrap_or_else(|e| panic!("{e:#}"));
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/"),
        &[format!("X-MSISDN: {MSISDN}")],
        10,
    );
    assert!(st.success());
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert!(find(&heads[0], MSISDN.as_bytes()).is_none(), "redacted");
    let logs = d.logs();
    assert!(
        !logs.contains("self-test failed") && !logs.contains("ERROR"),
        "{logs}"
    );
    d.stop().unwrap();
    let _ = d.cli("detach");
}
