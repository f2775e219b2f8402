//! Part `gso`: a 16 KiB request as one GSO skb on the gateway's TC egress, by the
//! kernel's accounting.

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, Result};
use leakguard::kernel::object::PROG_TC_EGRESS;
use leakguard_tests::{
    bpfstats,
    cases::deep_request,
    daemon::Daemon,
    gateway::{GW_UP_IF, SRV},
    guard::PROG_BASELINE_TC,
    http::MSISDN,
};
use serde_json::{json, Value};

use crate::{
    accounting::prog_stats,
    net::{attach_empty, topology},
    Cfg,
};

/// A 16 KiB request (X-MSISDN at byte 6,000) as one GSO skb on the gateway's TC egress,
/// which a test run cannot take (~3.7 KB at most). One connection from the client to a
/// sink on the server; each request is written whole and its one-byte answer awaited,
/// so each leaves the client as one skb, which veth and the gateway forward as it is.
/// The kernel's accounting gives ns per request for the empty TC program and for
/// leakguard (redact, 16 KiB scan limit); the sink checks every request arrived redacted.
pub fn gso(cfg: &Cfg) -> Result<Value> {
    use std::io::{Read as _, Write as _};
    let t = topology()?;
    let req = deep_request();
    let digits = MSISDN.as_bytes()[2..].to_vec();
    let addr: SocketAddr = format!("{SRV}:80").parse()?;
    // Sockets keep the namespace they were made in.
    let listener = t.net.srv.enter(|| std::net::TcpListener::bind(addr))??;
    let len = req.len();
    let sink = std::thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        // Bounded: a stalled client (between its setups a daemon starts) ends the sink.
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = vec![0u8; len];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let leaked = buf.windows(digits.len()).any(|w| w == digits.as_slice());
            s.write_all(if leaked { b"1" } else { b"0" })?;
        }
    });
    let mut c = t.net.cli.enter(|| std::net::TcpStream::connect(addr))??;
    c.set_nodelay(true)?;
    // Bounded: a request that gets no answer fails the part instead of hanging it.
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Requests sent, and how many arrived with the number.
    let mut send = |n: u32| -> Result<u32> {
        let mut leaked = 0;
        for _ in 0..n {
            c.write_all(&req)?;
            let mut a = [0u8; 1];
            c.read_exact(&mut a)?;
            leaked += u32::from(a[0] == b'1');
        }
        Ok(leaked)
    };
    // Warm-up: the congestion window grows past one request.
    send(200)?;
    let accounting = bpfstats::Setting::new(true)?;
    let n = cfg.gso_requests;
    let measure =
        |prog: &str, send: &mut dyn FnMut(u32) -> Result<u32>| -> Result<(f64, f64, u32)> {
            let before = prog_stats(prog)?;
            let leaked = send(n)?;
            let after = prog_stats(prog)?;
            let runs = (after.1 - before.1).max(1);
            Ok((
                (after.0 - before.0) as f64 / f64::from(n),
                runs as f64 / f64::from(n),
                leaked,
            ))
        };
    let ebpf = attach_empty(&t, false, GW_UP_IF)?;
    let empty = measure(PROG_BASELINE_TC, &mut send)?;
    drop(ebpf);
    let mut runs = Vec::new();
    for action in ["count", "redact"] {
        let body = format!(
            "[[attach]]\ninterface = \"{GW_UP_IF}\"\nhook = \"tc-egress\"\n\n[scan]\nbuiltin_catalog = \"off\"\n\n[[rule]]\nheader = \"X-MSISDN\"\naction = \"{action}\"\n"
        );
        let mut d = Daemon::new(&t.net.gw, &body)?;
        d.start()?;
        runs.push((action, measure(PROG_TC_EGRESS, &mut send)?));
        d.stop()?;
        let _ = d.cli("detach");
    }
    drop(accounting);
    drop(c);
    sink.join()
        .map_err(|_| anyhow::anyhow!("the sink panicked"))??;
    let _ = std::fs::remove_dir_all(&t.dir);
    // The number arrives through the empty program and under count, never under redact.
    for (what, leaked, want) in [
        ("the empty program", empty.2, n),
        ("count", runs[0].1 .2, n),
        ("redact", runs[1].1 .2, 0),
    ] {
        if leaked != want {
            bail!(
                "{leaked} of {n} requests arrived with the number through {what} (expected {want})"
            );
        }
    }
    println!(
        "\n## A 16 KiB request (X-MSISDN at byte 6,000) as a GSO skb on TC egress ({n} requests on one connection, each awaited; kernel accounting)\n"
    );
    println!("| program | ns per request | packets per request | vs empty program |");
    println!("|---|---:|---:|---:|");
    println!(
        "| empty TC program | {:.0} | {:.2} | 1.0x |",
        empty.0, empty.1
    );
    let mut rows =
        vec![json!({"run": "empty", "ns_per_request": empty.0, "packets_per_request": empty.1})];
    for (action, (ns, pkts, _)) in &runs {
        println!(
            "| leakguard, {action} | {ns:.0} | {pkts:.2} | {:.1}x |",
            ns / empty.0
        );
        rows.push(json!({"run": action, "ns_per_request": ns, "packets_per_request": pkts}));
    }
    Ok(json!({"requests": n, "request_bytes": len, "rows": rows}))
}
