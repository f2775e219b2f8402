//! The real `leakguard run` in a client namespace guarding its egress toward a recording
//! server: lifecycle (SIGKILL, restart, status with the daemon stopped, detach), reloads,
//! an interface that appears after start, and no identity value in any output.

use std::{net::SocketAddr, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use leakguard_tests::{
    daemon::{wait_for, Daemon, Launch},
    http::{find, MSISDN, VALUES},
    netns::veth,
    server::HttpServer,
    topo::{curl, link_v4, topo, CLI_IF, SRV_V4},
};

fn policy(action: &str) -> String {
    format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"{action}\"\n"
    )
}

fn send(t: &leakguard_tests::topo::Topo, n: usize) {
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/{n}"),
        &[format!("X-MSISDN: {MSISDN}")],
        10,
    );
    assert!(st.success(), "request {n}: curl {st}");
}

/// The last head the server received carries the value in clear (true) or redacted.
fn last_leaked(server: &HttpServer) -> bool {
    let heads = server.heads();
    find(heads.last().expect("a request arrived"), MSISDN.as_bytes()).is_some()
}

#[track_caller]
fn assert_no_values(what: &str, text: &str) {
    for v in VALUES {
        assert!(!text.contains(v), "{what} contains an identity value");
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn guard_survives_sigkill_restart_and_only_detach_removes_it() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy("redact")).unwrap();
    d.start().unwrap();
    send(&t, 1);
    assert!(!last_leaked(&server), "redacted while running");
    for sub in [
        "maps/RULES_0",
        "progs/leakguard_tc_egress",
        &format!("links/{CLI_IF}@tc-egress"),
    ] {
        assert!(d.pin_path.join(sub).exists(), "{sub} is pinned");
    }

    // Daemon dead: the pinned link keeps enforcing.
    d.kill();
    send(&t, 2);
    assert!(!last_leaked(&server), "redacted while the daemon is dead");

    // status from the pins alone.
    let report = d.cli_ok("status").unwrap();
    assert!(
        report.contains(&format!("{CLI_IF:<16} tc-egress")),
        "{report}"
    );
    let line = report
        .lines()
        .find(|l| l.starts_with("x-msisdn"))
        .expect("x-msisdn row");
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        counts,
        vec![0, 2, 0, 0],
        "count, redact, drop, allow: {line}"
    );
    assert_no_values("status", &report);
    // The same as JSON, for config management and fleet tools.
    let mut c = std::process::Command::new(leakguard_tests::daemon::leakguard_bin().unwrap());
    c.args(["status", "--format", "json", "--config"])
        .arg(&d.config);
    let json: serde_json::Value =
        serde_json::from_slice(&leakguard_tests::cmd::checked(&mut c).unwrap().stdout).unwrap();
    assert_eq!(json["attachments"][0]["interface"], CLI_IF, "{json}");
    assert_eq!(json["attachments"][0]["hook"], "tc-egress", "{json}");
    let row = json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["header"] == "x-msisdn")
        .expect("x-msisdn row");
    assert_eq!(row["redact"], 2, "{json}");
    assert_eq!(json["counters"]["redacted_packets"], 2, "{json}");
    assert_eq!(json["policy_digest"].as_str().unwrap().len(), 16, "{json}");
    assert_no_values("status json", &json.to_string());

    // Restart: adopts the pinned link, keeps counting where it was.
    d.start().unwrap();
    assert!(d.logs().contains("adopted the pinned link"), "{}", d.logs());
    send(&t, 3);
    assert!(!last_leaked(&server));
    wait_for("the match to be logged", Duration::from_secs(5), || {
        d.logs().matches("\"identity header\"").count() >= 2
    })
    .unwrap();

    // A clean stop leaves the guard too.
    assert!(d.stop().unwrap().success());
    send(&t, 4);
    assert!(!last_leaked(&server), "redacted after SIGTERM");

    // Pins of a layout too old to hand over from (1, before the contract on the flow
    // table; newer ones are handed over: handover.rs): the start is refused, naming the
    // way out, and the pinned guard goes on enforcing.
    let pin = d
        .pin_path
        .join("maps")
        .join(leakguard::kernel::maps::MAP_LAYOUT);
    let layout = |v: u64| {
        let data = aya::maps::MapData::from_pin(&pin).unwrap();
        let mut a: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap();
        a.set(0, v, 0).unwrap();
    };
    layout(1);
    let st = d.run_to_exit(Duration::from_secs(20)).unwrap();
    assert!(!st.success(), "a start over another layout is refused");
    assert!(d.logs().contains("leakguard detach"), "{}", d.logs());
    send(&t, 40);
    assert!(!last_leaked(&server), "redacted while a start is refused");
    layout(leakguard_common::MAP_LAYOUT_VERSION);

    // detach is the only way to remove it.
    let removed = d.cli_ok("detach").unwrap();
    assert!(
        removed.contains(&format!("detached tc-egress from {CLI_IF}")),
        "{removed}"
    );
    send(&t, 5);
    assert!(last_leaked(&server), "after detach the guard is gone");
    assert!(
        !d.cli("status").unwrap().status.success(),
        "status: nothing pinned"
    );
    assert_no_values("daemon logs", &d.logs());
}

#[test]
fn reload_applies_a_good_file_and_rejects_a_bad_one() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy("count")).unwrap();
    d.start().unwrap();
    send(&t, 1);
    assert!(last_leaked(&server), "count leaves the request alone");

    d.write_policy(&policy("redact")).unwrap();
    d.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        d.logs().contains("policy reloaded")
    })
    .unwrap();
    send(&t, 2);
    assert!(!last_leaked(&server), "redact after the reload");

    d.write_policy("[[attach]]\ninterface = \"lgc0\"\nhook = \"sideways\"\n")
        .unwrap();
    d.signal(libc::SIGHUP);
    wait_for("the rejection", Duration::from_secs(5), || {
        d.logs().contains("reload rejected")
    })
    .unwrap();
    assert!(
        d.logs().contains("attach.hook"),
        "the log says what is wrong"
    );
    send(&t, 3);
    assert!(
        !last_leaked(&server),
        "the running policy stays after a bad reload"
    );

    // The interface taken out of the file stays guarded, and the log says so.
    let elsewhere = policy("redact").replace(CLI_IF, "lgnone0");
    d.write_policy(&elsewhere).unwrap();
    d.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        d.logs().matches("policy reloaded").count() == 2
    })
    .unwrap();
    assert!(
        d.logs()
            .lines()
            .any(|l| l.contains("not in [[attach]] but still guarded") && l.contains(CLI_IF)),
        "the log names the unlisted interface"
    );
    send(&t, 4);
    assert!(
        !last_leaked(&server),
        "still redacted on the unlisted interface"
    );
    assert_no_values("daemon logs", &d.logs());
}

fn configmap_write(dir: &std::path::Path, n: u32, text: &str) -> std::path::PathBuf {
    leakguard_tests::configmap::write(dir, n, text).unwrap()
}

/// The policy from a ConfigMap mount, changed the way Kubernetes changes it: each swap
/// reaches the daemon without a signal. A new policy applies, a bad one is rejected
/// with the running policy kept, the same text again is no reload.
#[test]
fn a_configmap_swap_reloads_the_policy_without_a_signal() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy("count"))
        .unwrap()
        .watching()
        .unwrap();
    // The kubelet's mount: 1777, root's.
    let mount = d.dir.join("configmap");
    std::fs::create_dir_all(&mount).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&mount, std::fs::Permissions::from_mode(0o1777)).unwrap();
    d.config = configmap_write(&mount, 1, &d.policy_text(&policy("count")));
    d.start().unwrap();
    send(&t, 1);
    assert!(last_leaked(&server), "count leaves the request alone");

    let reloads = |d: &Daemon| d.logs().matches("policy reloaded").count();
    configmap_write(&mount, 2, &d.policy_text(&policy("redact")));
    wait_for("the reload", Duration::from_secs(10), || reloads(&d) == 1).unwrap();
    assert!(d.logs().contains("the policy file changed"), "{}", d.logs());
    send(&t, 2);
    assert!(!last_leaked(&server), "redact after the swap");

    configmap_write(
        &mount,
        3,
        "[[attach]]\ninterface = \"lgc0\"\nhook = \"sideways\"\n",
    );
    wait_for("the rejection", Duration::from_secs(10), || {
        d.logs().contains("reload rejected")
    })
    .unwrap();
    send(&t, 3);
    assert!(!last_leaked(&server), "the running policy stays");

    // The good text back, then the same text again: a reload, then none.
    configmap_write(&mount, 4, &d.policy_text(&policy("redact")));
    wait_for(
        "the reload of the good text",
        Duration::from_secs(10),
        || reloads(&d) == 2,
    )
    .unwrap();
    configmap_write(&mount, 5, &d.policy_text(&policy("redact")));
    wait_for("the unchanged text seen", Duration::from_secs(10), || {
        d.logs().contains("its text is unchanged")
    })
    .unwrap();
    assert_eq!(reloads(&d), 2, "the same text is no reload");
    assert_no_values("daemon logs", &d.logs());
}

#[test]
fn an_interface_created_after_start_is_guarded_when_it_appears() {
    let t = topo();
    let body = format!(
        "{}\n[[attach]]\ninterface = \"late0\"\nhook = \"tc-egress\"\n",
        policy("redact")
    );
    let mut d = Daemon::new(&t.cli, &body).unwrap();
    d.start().unwrap();
    assert!(
        d.logs().contains("it will be guarded when it appears"),
        "{}",
        d.logs()
    );

    veth(
        &t.cli,
        "late0",
        "198.51.100.1/24",
        &t.srv,
        "late1",
        "198.51.100.2/24",
    )
    .unwrap();
    let server = HttpServer::start(&t.srv, "198.51.100.2:80".parse().unwrap()).unwrap();
    let link = d.pin_path.join("links/late0@tc-egress");
    wait_for("late0 to be attached", Duration::from_secs(10), || {
        link.exists()
    })
    .unwrap();
    let st = curl(
        &t.cli,
        "http://198.51.100.2/",
        &[format!("X-MSISDN: {MSISDN}")],
        10,
    );
    assert!(st.success());
    assert!(!last_leaked(&server), "late0 is guarded");
}

#[test]
fn metrics_are_labelled_linted_and_free_of_values() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let body = format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\n\n[[attach]]\ninterface = \"absent9\"\nhook = \"xdp\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n\n[msisdn]\nprefixes = [\"44\"]\naction = \"redact\"\n"
    );
    // A fixed port inside the client namespace (nothing else listens there).
    let mut d = Daemon::new(&t.cli, &body)
        .unwrap()
        .with_metrics("127.0.0.1:9717")
        .unwrap();
    d.start().unwrap();
    for n in 0..3 {
        send(&t, n);
    }
    assert!(!last_leaked(&server));
    // The number under a header no rule names: found by [msisdn], redacted.
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/n"),
        &[format!("X-Subscriber-Number: +{MSISDN}")],
        10,
    );
    assert!(st.success());
    assert!(!last_leaked(&server), "the number under a new header name");
    // The number in hex form in a cookie: found (form "hex"), the stretch starred.
    let hex = leakguard_tests::corpus::hex_of(MSISDN);
    let st = curl(
        &t.cli,
        &format!("http://{SRV_V4}/h"),
        &[format!("Cookie: lg=1; uid={hex}")],
        10,
    );
    assert!(st.success());
    let heads = server.heads();
    let head = String::from_utf8_lossy(heads.last().unwrap()).into_owned();
    assert!(
        head.contains(&format!("Cookie: lg=1; uid={}\r\n", "*".repeat(hex.len()))),
        "the hex number in a cookie, redacted"
    );
    // The number in base64 form in a query value: found (form "base64"), exactly its
    // characters starred.
    let b64 = STANDARD.encode(MSISDN);
    let st = curl(&t.cli, &format!("http://{SRV_V4}/b?uid={b64}&x=1"), &[], 10);
    assert!(st.success());
    let heads = server.heads();
    let head = String::from_utf8_lossy(heads.last().unwrap()).into_owned();
    assert!(
        head.starts_with(&format!(
            "GET /b?uid={}&x=1 HTTP/1.1\r\n",
            "*".repeat(b64.len())
        )),
        "the base64 number in a query, redacted"
    );

    let scrape = || d.scrape().unwrap();
    let want = format!(
        "leakguard_header_matches_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",header=\"X-MSISDN\",action=\"redact\"}} 3"
    );
    wait_for(
        "the match counters in /metrics",
        Duration::from_secs(10),
        || scrape().contains(&want),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", scrape()));
    let m = scrape();
    for needle in [
        format!("leakguard_packets_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",class=\"request_head\"}} 6"),
        format!("leakguard_attached{{interface=\"{CLI_IF}\",hook=\"tc-egress\"}} 1"),
        "leakguard_attached{interface=\"absent9\",hook=\"xdp\"} 0".to_owned(),
        "leakguard_policy_reloads_total{result=\"ok\"} 0".to_owned(),
        "leakguard_scan_truncated_total 0".to_owned(),
        "leakguard_malformed_lines_total 0".to_owned(),
        format!(
            "leakguard_build_info{{version=\"{}\",revision=\"{}\",program=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            leakguard::REVISION,
            leakguard::kernel::object::digest(leakguard::kernel::object::EBPF_OBJECT)
        ),
        format!(
            "leakguard_policy_info{{digest=\"{}\"}} 1",
            d.cli_ok("status").unwrap().split("policy digest ").nth(1).unwrap()[..16].to_owned()
        ),
        format!(
            "leakguard_kernel_info{{release=\"{}\",tc_attach=\"tcx\"}} 1",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim()
        ),
        "leakguard_policy_last_reload_successful 1".to_owned(),
        "leakguard_selftest_ok 1".to_owned(),
        format!("leakguard_msisdn_values_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",action=\"redact\",place=\"header\",form=\"decimal\"}} 1"),
        format!("leakguard_msisdn_values_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",action=\"redact\",place=\"cookie\",form=\"hex\"}} 1"),
        format!("leakguard_msisdn_values_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",action=\"redact\",place=\"target\",form=\"base64\"}} 1"),
        "leakguard_tracked_flows 0".to_owned(),
        format!("leakguard_packets_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\",class=\"continuation\"}} 0"),
    ] {
        assert!(m.contains(&needle), "missing {needle:?} in:\n{m}");
    }
    let applied: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("leakguard_policy_last_reload_success_timestamp_seconds "))
        .expect("the last reload's time")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        applied > now - 600.0 && applied <= now,
        "{applied} vs now {now}"
    );
    assert_no_values("metrics", &m);
    // The log names the new header (folded), never the number.
    wait_for(
        "the identity-number log line",
        Duration::from_secs(5),
        || d.logs().contains("\"header\":\"x-subscriber-number\""),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    assert!(d.logs().contains("identity number"));
    assert_no_values("logs", &d.logs());
    // The hex one's line names the cookie and the form, and carries no hex either.
    wait_for("the hex number's log line", Duration::from_secs(5), || {
        d.logs()
            .lines()
            .any(|l| l.contains("\"cookie\":\"cookie:uid\"") && l.contains("\"form\":\"hex\""))
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    // The base64 one's names the query parameter and its form.
    wait_for(
        "the base64 number's log line",
        Duration::from_secs(5),
        || {
            d.logs().lines().any(|l| {
                l.contains("\"target\":\"query:uid\"") && l.contains("\"form\":\"base64\"")
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    for text in [&m, &d.logs()] {
        assert!(
            !text.contains(&hex[..18]),
            "a hex value in the metrics or the log"
        );
        assert!(
            !text.contains(&b64[..12]),
            "a base64 value in the metrics or the log"
        );
    }
    let status = d.cli_ok("status").unwrap();
    assert!(
        status.contains("identity numbers ([msisdn]) in the forms: decimal, hex, base64\n"),
        "{status}"
    );

    // Debian's promtool lints the exposition.
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by `cargo xtask setup`)");
    use std::io::Write as _;
    lint.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// systemd's notify protocol: READY after attach and a passing self-test, RELOADING then
/// READY around a reload, STOPPING at the end, each with a STATUS line.
#[test]
fn systemd_is_notified_through_the_lifecycle() {
    use std::os::unix::net::UnixDatagram;
    let t = topo();
    let mut d = Daemon::new(&t.cli, &policy("redact")).unwrap();
    let sock_path = d.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    d.env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    let mut messages = Vec::new();
    let next = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    d.start().unwrap();
    let ready = next();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains("STATUS=guarding 1 of 1 interface(s)") && ready.contains("self-test ok"),
        "{ready}"
    );
    d.signal(libc::SIGHUP);
    messages.push(next());
    messages.push(next());
    assert!(messages[0].contains("RELOADING=1"), "{messages:?}");
    assert!(messages[1].contains("READY=1"), "{messages:?}");
    assert!(d.stop().unwrap().success());
    let stopping = next();
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
}

/// A guarded interface deleted and re-created while the daemon runs is guarded again
/// (netlink tells the daemon; its old link went defunct with the old interface).
#[test]
fn an_interface_deleted_and_recreated_is_guarded_again() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy("redact")).unwrap();
    d.start().unwrap();
    send(&t, 1);
    assert!(!last_leaked(&server));

    t.cli.ip(&["link", "del", CLI_IF]).unwrap();
    wait_for("the daemon to notice", Duration::from_secs(5), || {
        d.logs().contains("interface disappeared")
    })
    .unwrap();
    link_v4(&t.cli, &t.srv).unwrap();
    wait_for("the re-attach", Duration::from_secs(5), || {
        d.logs().contains("interface appeared; attached")
    })
    .unwrap();
    send(&t, 2);
    assert!(!last_leaked(&server), "guarded again after re-creation");
    assert_no_values("daemon logs", &d.logs());
}

/// The window the daemon cannot close, made visible: an interface re-created and passing
/// traffic while the daemon cannot react (here: stopped with SIGSTOP) leaks until the
/// attach; the daemon then says how many packets passed unguarded, in its log and in
/// `leakguard_unguarded_packets_total`, and guards from then on.
#[test]
fn packets_before_the_attach_are_reported_not_silent() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let mut d = Daemon::new(&t.cli, &policy("redact"))
        .unwrap()
        .with_metrics("127.0.0.1:9718")
        .unwrap();
    d.start().unwrap();
    send(&t, 1);
    assert!(!last_leaked(&server));

    d.signal(libc::SIGSTOP);
    t.cli.ip(&["link", "del", CLI_IF]).unwrap();
    link_v4(&t.cli, &t.srv).unwrap();
    send(&t, 2);
    assert!(
        last_leaked(&server),
        "unguarded while the daemon could not act"
    );
    d.signal(libc::SIGCONT);
    wait_for("the report", Duration::from_secs(10), || {
        d.logs()
            .contains("passed packets before the guard was attached")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    send(&t, 3);
    assert!(!last_leaked(&server), "guarded after the attach");

    let scrape = || d.scrape().unwrap();
    let prefix =
        format!("leakguard_unguarded_packets_total{{interface=\"{CLI_IF}\",hook=\"tc-egress\"}} ");
    let mut n = 0u64;
    wait_for("the unguarded counter", Duration::from_secs(10), || {
        n = scrape()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        n > 0
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", scrape()));
    // The request's own segments are among them (a handshake and a request at least).
    assert!(n >= 3, "{n} packets");
    assert_no_values("daemon logs", &d.logs());
}

/// `ip netns exec NS leakguard run`, the usual way to start a daemon in a namespace, also
/// gives it a private mount namespace, whose BPF filesystem (if it mounted one) would
/// vanish with it, and the guard with it: refused with one line naming the ways that
/// work, nothing attached or pinned.
#[test]
fn ip_netns_exec_is_refused_before_anything_is_attached() {
    let t = topo();
    let mut d = Daemon::new(&t.cli, &policy("redact")).unwrap();
    d.launch = Launch::IpNetnsExec;
    let st = d.run_to_exit(Duration::from_secs(20)).unwrap();
    assert_eq!(st.code(), Some(1), "{}", d.logs());
    let logs = d.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("\"ERROR\"")).collect();
    assert_eq!(errors.len(), 1, "one line:\n{logs}");
    for want in [
        "private mount namespace",
        "netns = ",
        "nsenter --net=",
        "NetworkNamespacePath=",
    ] {
        assert!(errors[0].contains(want), "{want:?} in {}", errors[0]);
    }
    assert!(!d.pin_path.exists(), "nothing pinned");
    let link = t.cli.ip(&["-d", "link", "show", CLI_IF]).unwrap();
    assert!(!String::from_utf8_lossy(&link.stdout).contains("xdp"));
    let tcx = t
        .cli
        .enter(|| {
            aya::programs::SchedClassifier::query_tcx(CLI_IF, aya::programs::TcAttachType::Egress)
                .map(|(_, p)| p.len())
                .unwrap_or(0)
        })
        .unwrap();
    assert_eq!(tcx, 0, "no TC program attached");
}

/// The daemon in the host's namespaces guards an interface of another network namespace
/// named in the policy: requests redacted, `status` from the host shows the interface
/// (as NETNS:IFACE), a SIGKILL leaves the guard, a restart adopts it, an interface
/// deleted and re-created in that namespace is guarded again (its link events are
/// heard there), and `detach` from the host removes it.
#[test]
fn a_network_namespace_named_in_the_policy_is_guarded_from_the_host() {
    let t = topo();
    let server = HttpServer::start(&t.srv, SocketAddr::new(SRV_V4.parse().unwrap(), 80)).unwrap();
    let ns = t.cli.name.clone();
    let body = format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\nnetns = \"/run/netns/{ns}\"\n\n\
         [[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n"
    );
    let mut d = Daemon::new(&t.cli, &body).unwrap();
    d.launch = Launch::Host;
    d.start().unwrap();
    send(&t, 1);
    assert!(!last_leaked(&server), "redacted");
    let label = format!("{ns}:{CLI_IF}");
    assert!(
        d.pin_path.join(format!("links/{label}@tc-egress")).exists()
            || d.pin_path
                .join(format!("filters/{label}@tc-egress"))
                .exists(),
        "pinned on the host's bpffs under the namespaced name"
    );

    d.kill();
    send(&t, 2);
    assert!(!last_leaked(&server), "redacted with the daemon killed");
    let report = stdout(&d.cli("status").unwrap());
    let row = report
        .lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("no {label} row:\n{report}"));
    assert!(row.contains("tc-egress") && !row.contains("not "), "{row}");

    d.start().unwrap();
    assert!(d.logs().contains("adopted the"), "{}", d.logs());
    send(&t, 3);
    assert!(!last_leaked(&server));

    // The interface goes and comes back, in its namespace.
    let appeared = d.logs().matches("interface appeared; attached").count();
    t.cli.ip(&["link", "del", CLI_IF]).unwrap();
    wait_for("the daemon to notice", Duration::from_secs(10), || {
        d.logs().contains("interface disappeared")
    })
    .unwrap();
    link_v4(&t.cli, &t.srv).unwrap();
    wait_for("the re-attach", Duration::from_secs(10), || {
        d.logs().matches("interface appeared; attached").count() > appeared
    })
    .unwrap();
    send(&t, 4);
    assert!(
        !last_leaked(&server),
        "redacted after the interface came back"
    );
    assert_no_values("logs", &d.logs());

    d.kill();
    d.cli_ok("detach").unwrap();
    send(&t, 5);
    assert!(last_leaked(&server), "detached from the host");
}

/// An interface whose frames are not Ethernet (a tun device here; WireGuard, GRE, PPP and
/// raw-IP modems are alike) would be guarded in name only: the programs would see its
/// packets and read no request. The daemon refuses it in one line naming it and its link
/// type, and attaches nothing to it.
#[test]
fn an_interface_without_ethernet_frames_is_refused_in_one_line() {
    let ns = leakguard_tests::netns::Netns::new("tun").unwrap();
    ns.ip(&["tuntap", "add", "dev", "lgtun0", "mode", "tun"])
        .unwrap();
    ns.ip(&["link", "set", "lgtun0", "up"]).unwrap();
    let mut d = Daemon::new(
        &ns,
        "[[attach]]\ninterface = \"lgtun0\"\nhook = \"tc-egress\"\n",
    )
    .unwrap();
    let st = d.run_to_exit(Duration::from_secs(20)).unwrap();
    assert_eq!(st.code(), Some(1), "{}", d.logs());
    let logs = d.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("\"ERROR\"")).collect();
    assert_eq!(errors.len(), 1, "one line:\n{logs}");
    for want in ["lgtun0", "link type 65534", "Ethernet"] {
        assert!(errors[0].contains(want), "{want:?} in {}", errors[0]);
    }
    let tcx = ns
        .enter(|| {
            aya::programs::SchedClassifier::query_tcx("lgtun0", aya::programs::TcAttachType::Egress)
                .map(|(_, p)| p.len())
                .unwrap_or(0)
        })
        .unwrap();
    assert_eq!(tcx, 0, "no TC program attached");
}
