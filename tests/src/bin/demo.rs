//! `cargo xtask demo`: leakguard on a gateway between a subscriber and two web servers,
//! one trusted (a partner on the allowlist) and one not. Shows, side by side, what the
//! servers receive without and with leakguard, then the kernel counters.
//!
//! Topology (`leakguard_tests::gateway`: network namespaces and veth pairs, documentation
//! addresses only):
//!   client 192.0.2.2 ── gateway ── servers 198.51.100.10, 198.51.100.20 (trusted)
//! The gateway runs `leakguard run` (the real daemon) with the TC program on its
//! server-facing egress (TCX); the counters come from `leakguard status`.

use std::{net::SocketAddr, process::Stdio, sync::OnceLock};

use anyhow::{bail, Context as _, Result};
use leakguard_tests::{
    daemon::Daemon,
    gateway::{Gateway, CLI, GW_UP_IF, PARTNER, SRV},
    http::{ACR, MSISDN, UIDH},
    netns::Netns,
    server::HttpServer,
};

/// The gateway path's partner, on the allowlist, and its origin server, not.
const TRUSTED: &str = PARTNER;
const UNTRUSTED: &str = SRV;
/// The identity headers the subscriber's requests carry; the last one is a name no rule or
/// catalog lists, caught by `[msisdn]` because its value is a subscriber number.
const HEADERS: [(&str, &str); 4] = [
    ("X-MSISDN", MSISDN),
    ("X-UIDH", UIDH),
    ("X-ACR", ACR),
    ("X-Subscriber-Number", concat!("+", "447700900123")),
];

/// Stops the daemon and removes its pins, for the Ctrl-C handler: pins outlive the
/// namespaces.
static DAEMON_CLEANUP: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// The demo policy, as an operator would write it.
fn policy() -> String {
    format!(
        r#"[[attach]]
interface = "{GW_UP_IF}"
hook = "tc-egress"

[scan]
builtin_catalog = "count"

[[rule]]
header = "X-MSISDN"
action = "redact"
allow = ["{TRUSTED}/32"]

[[rule]]
header = "X-UIDH"
action = "redact"
allow = ["{TRUSTED}/32"]

[msisdn]
action = "redact"
prefixes = ["44"]
allow = ["{TRUSTED}/32"]
"#
    )
}

/// One request per destination from the client; returns what the server saw of each
/// identity header, per destination.
fn requests(client: &Netns, server: &HttpServer) -> Result<Vec<Vec<String>>> {
    let before = server.heads().len();
    for dst in [UNTRUSTED, TRUSTED] {
        let mut c = client.command("curl");
        c.args([
            "-sS",
            "-o",
            "/dev/null",
            "-m",
            "10",
            &format!("http://{dst}/"),
        ]);
        for (h, v) in HEADERS {
            c.args(["-H", &format!("{h}: {v}")]);
        }
        let st = c.stdout(Stdio::null()).status().context("running curl")?;
        if !st.success() {
            bail!("curl to {dst} failed: {st}");
        }
    }
    let heads = server.heads();
    Ok(heads[before..]
        .iter()
        .map(|head| {
            let text = String::from_utf8_lossy(head);
            HEADERS
                .iter()
                .map(|(h, _)| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{h}: ")))
                        .unwrap_or("(absent)")
                        .to_owned()
                })
                .collect()
        })
        .collect())
}

fn main() -> Result<()> {
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: removing the demo's namespaces");
        // Destructors do not run on a signal.
        if let Some(daemon) = DAEMON_CLEANUP.get() {
            daemon();
        }
        leakguard_tests::netns::delete_own();
        std::process::exit(130);
    })?;

    let net = Gateway::new()?;
    let (client, gw, srv) = (&net.cli, &net.gw, &net.srv);
    let server = HttpServer::start(srv, SocketAddr::from(([0, 0, 0, 0], 80)))?;

    println!("leakguard demo");
    println!("  subscriber {CLI} -> gateway -> web servers {UNTRUSTED} (untrusted), {TRUSTED} (trusted partner)");
    println!("  policy: X-MSISDN redact, X-UIDH redact (both allowed to {TRUSTED}), X-ACR count,");
    println!("          [msisdn] redact numbers starting 44 under any other header name (allowed to {TRUSTED})\n");

    let without = requests(client, &server)?;

    let mut daemon = Daemon::new(gw, &policy())?.with_metrics("127.0.0.1:9717")?;
    let _ = DAEMON_CLEANUP.set(Box::new(daemon.cleanup_on_signal()));
    daemon.start()?;
    let with = requests(client, &server)?;

    for (i, dst) in [UNTRUSTED, TRUSTED].iter().enumerate() {
        let label = if *dst == TRUSTED {
            "trusted"
        } else {
            "untrusted"
        };
        println!("request to {dst} ({label}): what the server received");
        println!(
            "  {:<20} {:<30} {:<30}",
            "header", "without leakguard", "with leakguard"
        );
        for (j, (h, _)) in HEADERS.iter().enumerate() {
            println!("  {:<20} {:<30} {:<30}", h, without[i][j], with[i][j]);
        }
        println!();
    }
    let status = daemon.cli("status")?;
    println!("leakguard status (from the gateway's pinned maps):");
    for line in String::from_utf8_lossy(&status.stdout).lines() {
        // The catalog rows that saw nothing would fill the screen.
        let zero = line.split_whitespace().skip(2).all(|n| n == "0");
        if !zero
            || !line.starts_with(|c: char| c.is_ascii_lowercase())
            || line.starts_with("packets")
        {
            println!("  {line}");
        }
    }
    // The metrics as Prometheus scrapes them (the matches, and the interface's packets).
    let metrics =
        leakguard_tests::daemon::wait_for("the metrics", std::time::Duration::from_secs(5), || {
            daemon
                .scrape()
                .unwrap_or_default()
                .contains("leakguard_header_matches_total{")
        })
        .map(|()| daemon.scrape().unwrap_or_default())
        .unwrap_or_default();
    println!("\nmetrics (GET /metrics on the gateway, excerpt):");
    for line in metrics.lines().filter(|l| {
        l.starts_with("leakguard_header_matches_total{")
            || l.starts_with("leakguard_msisdn_values_total{")
            || (l.starts_with("leakguard_packets_total{") && l.contains("request_head"))
            || l.starts_with("leakguard_attached{")
            || l.starts_with("leakguard_selftest_ok")
    }) {
        println!("  {line}");
    }
    daemon.stop()?;
    if with[0][0].contains(MSISDN)
        || with[0][3].contains(MSISDN)
        || !with[1][0].contains(MSISDN)
        || !with[1][3].contains(MSISDN)
    {
        bail!("the guard did not behave as the policy says");
    }
    Ok(())
}
