//! No leak window under faults: continuous requests carrying identity headers through the
//! real daemon's guard (TCX egress, `redact`) while the test, in turn, SIGKILLs and
//! restarts the daemon, reloads it 60 times (50 valid policies, alternating, and 10 broken
//! files), upgrades the kernel program in place to a different build and back, and deletes
//! and re-creates the guarded interface. The server records every request it receives;
//! none may carry a value, and the kernel's counters must equal the server's tally.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use leakguard_tests::{
    daemon::{leakguard_bin, wait_for, Daemon, Launch},
    http::{every_third_cut, find, MSISDN, UIDH, VALUES},
    load::Load,
    server::HttpServer,
    topo::{link_v4, topo, CLI_IF, SRV_V4},
};

/// Requests the run must reach, at least.
const MIN_REQUESTS: u64 = 20_000;
/// Client threads: while one waits out a SYN lost to a fault, the others keep knocking.
const CLIENTS: u64 = 4;
/// A bound on everything: the client stops by itself after this long.
const LIFETIME: Duration = Duration::from_secs(540);
/// How long any one step may take to see its share of traffic.
const STEP: Duration = Duration::from_secs(60);

/// The two valid policies the reloads alternate: both redact both headers, with rules in
/// a different order, another rule and another head cap, so each reload really changes
/// the maps.
fn policy(n: usize, netns: &str) -> String {
    let attach = format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\nnetns = \"{netns}\"\n\n"
    );
    if n.is_multiple_of(2) {
        format!("{attach}[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n")
    } else {
        format!("{attach}[scan]\nmax_head_bytes = 16384\n\n[[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-ACR\"\naction = \"count\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n")
    }
}

/// Broken policy files (each after a valid `[[attach]]`, but the last): a reload of any
/// of them must leave the running policy in place.
const BROKEN: [&str; 10] = [
    "[[rule]\nheader = \"X-MSISDN\"\n",
    "[[rule]]\nheader = \"X-MSISDN\"\naction = \"erase\"\n",
    "[[rule]]\nheader = 7\naction = \"redact\"\n",
    "[[rule]]\nheader = \"X MSISDN\"\naction = \"redact\"\n",
    "[scan]\nmax_head_bytes = 0\n",
    "[[attach]]\ninterface = \"lgc1\"\nhook = \"sideways\"\n",
    "[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\nallow = [\"300.1.2.3/8\"]\n",
    "[scan]\nports = [0]\n",
    "[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\nheader = \"X-UIDH\"\n",
    "[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n[[rule]]\nheader = \"x_msisdn\"\naction = \"count\"\n",
];

fn broken(i: usize, netns: &str) -> String {
    format!(
        "[[attach]]\ninterface = \"{CLI_IF}\"\nhook = \"tc-egress\"\nnetns = \"{netns}\"\n\n{}",
        BROKEN[i]
    )
}

/// Request `n`, its head cut every third time (`every_third_cut`): flows in the middle
/// of a head cross the faults too.
fn request(n: u64) -> Vec<Vec<u8>> {
    let head = format!(
        "GET /r/{n} HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: leakguard-faults\r\nX-MSISDN: {MSISDN}\r\nX-UIDH: {UIDH}\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes();
    every_third_cut(n, head)
}

/// The kernel program of the other build (`cargo xtask test` builds it).
fn upgrade_object() -> PathBuf {
    let bin = leakguard_bin().unwrap();
    // target/<profile>/leakguard → target/ebpf-upgrade/…
    let target = bin.parent().unwrap().parent().unwrap();
    let p = target.join("ebpf-upgrade/bpfel-unknown-none/release/leakguard-ebpf");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds it",
        p.display()
    );
    p
}

/// `leakguard status`, checked to succeed and to carry no identity value.
fn status(d: &Daemon) -> String {
    let text = d.cli_ok("status").unwrap();
    for v in VALUES {
        assert!(!text.contains(v), "status output carries an identity value");
    }
    text
}

/// The redact count of `header`'s row in a status report.
fn redacted(report: &str, header: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(header))
        .unwrap_or_else(|| panic!("no {header} row in:\n{report}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// The number after `label` in a status report (its `segments:` or `packets` lines).
/// TCP segments the client's kernel sent again (`RetransSegs` of its namespace's
/// `/proc/net/snmp`): each passed the guard on the client's egress once more.
fn tcp_retransmitted(ns: &leakguard_tests::netns::Netns) -> u64 {
    let out = ns.command("cat").arg("/proc/net/snmp").output().unwrap();
    let snmp = String::from_utf8(out.stdout).unwrap();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

fn figure(report: &str, label: &str) -> u64 {
    let at = report
        .find(label)
        .unwrap_or_else(|| panic!("{label} in:\n{report}"))
        + label.len();
    report[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn count(logs: &str, what: &str) -> usize {
    logs.matches(what).count()
}

#[test]
fn no_request_leaks_through_kills_reloads_upgrades_and_interface_loss() {
    let object = upgrade_object();
    let t = topo();
    let srv = SocketAddr::new(SRV_V4.parse().unwrap(), 80);
    let server = HttpServer::start(&t.srv, srv).unwrap();
    // The daemon in the host's namespaces, the policy naming the client's network
    // namespace: how a gateway routing in a namespace runs it (see `Launch::Host`).
    let ns = t.cli.name.clone();
    let mut d = Daemon::new(&t.cli, &policy(0, &ns)).unwrap();
    d.launch = Launch::Host;
    d.start().unwrap();
    let mut load = Load::start(&t.cli, srv, CLIENTS, 400_000, LIFETIME, Arc::new(request)).unwrap();
    load.wait_more(500, STEP).unwrap();

    // 1. SIGKILL, traffic with no daemon at all, restart: three times.
    for _ in 0..3 {
        d.kill();
        load.wait_more(500, STEP).unwrap();
        d.start().unwrap();
        load.wait_more(500, STEP).unwrap();
    }

    // 2. 60 reloads: 50 valid ones alternating two policies, every sixth a broken file.
    let (mut valid, mut n_broken) = (0, 0);
    for i in 0..60 {
        let (ok_before, bad_before) = (
            count(&d.logs(), "policy reloaded"),
            count(&d.logs(), "reload rejected"),
        );
        if i % 6 == 5 {
            d.write_policy(&broken(n_broken, &ns)).unwrap();
            n_broken += 1;
        } else {
            valid += 1;
            d.write_policy(&policy(valid, &ns)).unwrap();
        }
        d.signal(libc::SIGHUP);
        wait_for("the reload to finish", STEP, || {
            let l = d.logs();
            count(&l, "policy reloaded") + count(&l, "reload rejected") > ok_before + bad_before
        })
        .unwrap();
        let l = d.logs();
        if i % 6 == 5 {
            assert_eq!(
                count(&l, "reload rejected"),
                bad_before + 1,
                "broken file {n_broken} rejected"
            );
        } else {
            assert_eq!(
                count(&l, "policy reloaded"),
                ok_before + 1,
                "valid policy {valid} applied"
            );
        }
        load.wait_more(100, STEP).unwrap();
    }
    assert_eq!((valid, n_broken), (50, 10));
    // The last file was broken: put a valid one back for the restarts that follow.
    d.write_policy(&policy(0, &ns)).unwrap();

    // 3. Upgrade in place to the other build (as a package upgrade restarts the service
    //    with a new binary), then back.
    d.stop().unwrap();
    d.args = vec!["--ebpf-object".into(), object.display().to_string()];
    d.start().unwrap();
    assert!(
        d.logs().contains("program replaced atomically"),
        "{}",
        d.logs()
    );
    load.wait_more(1_000, STEP).unwrap();
    wait_for("a match reported by the other build", STEP, || {
        d.logs().contains("\"program_build\":2")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", d.logs()));
    d.stop().unwrap();
    d.args.clear();
    let before = count(&d.logs(), "\"program_build\":0");
    d.start().unwrap();
    load.wait_more(1_000, STEP).unwrap();
    wait_for("a match reported by the embedded build again", STEP, || {
        count(&d.logs(), "\"program_build\":0") > before
    })
    .unwrap();

    // 4. The guarded interface deleted and re-created (its veth peer goes with it).
    let appeared = count(&d.logs(), "interface appeared; attached");
    let unsent_before = load.tally.unsent.load(Ordering::Relaxed);
    t.cli.ip(&["link", "del", CLI_IF]).unwrap();
    wait_for("the daemon to notice", STEP, || {
        d.logs().contains("interface disappeared")
    })
    .unwrap();
    // Requests in flight when the interface went are stuck until TCP retries them (about
    // a second); once the clients are failing fast for want of a route they will try the
    // very moment it is back.
    wait_for("the clients to be refused", STEP, || {
        load.tally.unsent.load(Ordering::Relaxed) >= unsent_before + 20
    })
    .unwrap();
    link_v4(&t.cli, &t.srv).unwrap();
    wait_for("the re-attach", STEP, || {
        count(&d.logs(), "interface appeared; attached") > appeared
    })
    .unwrap();
    load.wait_more(1_000, STEP).unwrap();
    let knocked = load.tally.unsent.load(Ordering::Relaxed) - unsent_before;

    // 5. Traffic until the run has its 20,000 requests, then a last self-check.
    let rest = MIN_REQUESTS.saturating_sub(load.ok());
    load.wait_more(rest, Duration::from_secs(300)).unwrap();
    load.stop().unwrap();
    let tally = &load.tally;
    let ok = tally.ok.load(Ordering::Relaxed);
    let in_doubt = tally.in_doubt.load(Ordering::Relaxed);
    let unsent = tally.unsent.load(Ordering::Relaxed);

    // What arrived.
    let heads = server.heads();
    let leaked = heads
        .iter()
        .filter(|h| VALUES.iter().any(|v| find(h, v.as_bytes()).is_some()))
        .count();
    let with_msisdn = heads
        .iter()
        .filter(|h| find(h, b"X-MSISDN: ").is_some())
        .count() as u64;
    let report = status(&d);
    let kernel = redacted(&report, "x-msisdn");
    let kernel_uidh = redacted(&report, "x-uidh");
    // Resent segments: those the guard followed with a flow entry, and every segment the
    // client's TCP sent again, most of them whole single-segment requests the guard
    // scans (and counts) afresh, with no entry to recognise them by.
    let resent = figure(&report, "retransmissions").max(tcp_retransmitted(&t.cli));
    let gap_drops = figure(&report, "dropped for a gap");
    println!(
        "client: {ok} answered, {in_doubt} in doubt, {unsent} not sent ({knocked} while the \
         interface was gone); server: {} heads, \
         {with_msisdn} with X-MSISDN, {leaked} with a value; kernel: {kernel} X-MSISDN and \
         {kernel_uidh} X-UIDH redactions, {resent} retransmitted segments, {gap_drops} dropped \
         for a gap",
        heads.len()
    );
    assert!(ok >= MIN_REQUESTS, "{ok} requests answered");
    assert_eq!(
        leaked, 0,
        "requests reached the server with an identity value"
    );
    assert_eq!(
        with_msisdn,
        heads.len() as u64,
        "every head carries the header"
    );
    // Nothing counted is lost: the kernel counted every request the server has, and more
    // only for requests the client cannot vouch for (sent, never answered) or segments the
    // network resent (each scanned, and counted, again).
    assert!(
        kernel >= with_msisdn && kernel <= with_msisdn + in_doubt + resent,
        "kernel {kernel} vs server {with_msisdn} (+{in_doubt} in doubt, +{resent} resent)"
    );
    assert_eq!(kernel_uidh, kernel, "both headers counted alike");

    // The daemon is healthy: running, self-test passing, nothing failed in its logs.
    assert!(d.pid().is_some());
    let logs = d.logs();
    assert!(!logs.contains("self-test failed"), "{logs}");
    assert_eq!(
        count(&logs, "\"level\":\"ERROR\""),
        count(&logs, "reload rejected"),
        "errors other than the rejected reloads:\n{logs}"
    );
    for v in VALUES {
        assert!(
            !logs.contains(v),
            "the daemon's logs carry an identity value"
        );
    }
    assert!(d.stop().unwrap().success());
}
