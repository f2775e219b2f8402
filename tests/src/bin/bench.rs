//! Per-packet cost of the programs by `BPF_PROG_TEST_RUN` with repeat, each row beside the
//! empty program of the same hook measured in the same run. `cargo xtask bench`.
//!
//! Rounds alternate baseline and program so drift on a shared machine hits both alike;
//! the table shows medians over rounds.

use anyhow::{Context as _, Result};
use leakguard::{
    object::{PROG_BASELINE_TC, PROG_BASELINE_XDP, PROG_TC_EGRESS, PROG_XDP},
    policy::{Action, KernelPolicy, Rule},
};
use leakguard_tests::{
    guard::Guard,
    http::{browser_get, MSISDN},
    packet::Frame,
};

const ROUNDS: usize = 7;
const REPEAT: u32 = 200_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, repeat) = if quick { (3, 50_000) } else { (ROUNDS, REPEAT) };
    let policy = |action| KernelPolicy {
        rules: vec![Rule {
            header: "X-MSISDN".into(),
            action,
            allow: vec![],
        }],
        ..KernelPolicy::default()
    };
    let clean = browser_get(600);
    let with_id = |r: &[u8]| {
        let mut v = r.to_vec();
        let at = v.len() - 2;
        v.splice(at..at, format!("X-MSISDN: {MSISDN}\r\n").bytes());
        v
    };
    let cases: Vec<(&str, Action, Vec<u8>)> = vec![
        (
            "UDP 80 B",
            Action::Count,
            Frame::http_v4(&[0; 38]).udp().build(),
        ),
        (
            "TCP to 443, 600 B",
            Action::Count,
            Frame::http_v4(&clean).dport(443).build(),
        ),
        (
            "HTTP GET 600 B, 12 headers, no identity header",
            Action::Count,
            Frame::http_v4(&clean).build(),
        ),
        (
            "same + X-MSISDN, count",
            Action::Count,
            Frame::http_v4(&with_id(&browser_get(574))).build(),
        ),
        (
            "same + X-MSISDN, redact",
            Action::Redact,
            Frame::http_v4(&with_id(&browser_get(574))).build(),
        ),
    ];
    println!("| case | frame bytes | hook | empty program ns | leakguard ns | ratio |");
    println!("|---|---:|---|---:|---:|---:|");
    for (name, act, frame) in &cases {
        let mut g = Guard::load(&policy(*act))?;
        for (hook, base, prog, tc) in [
            ("xdp", PROG_BASELINE_XDP, PROG_XDP, false),
            ("tc", PROG_BASELINE_TC, PROG_TC_EGRESS, true),
        ] {
            let (mut b, mut p) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                b.push(g.time_program(base, tc, frame, repeat)?.2.as_nanos() as f64);
                p.push(g.time_program(prog, tc, frame, repeat)?.2.as_nanos() as f64);
            }
            let (b, p) = (median(b), median(p));
            println!(
                "| {name} | {} | {hook} | {b:.0} | {p:.0} | {:.1}x |",
                frame.len(),
                p / b
            );
        }
    }
    segments(quick)?;
    Ok(())
}

/// The cost of a head that spans segments: a 600 B request whose first segment ends inside
/// the head (the flow entry is created) and whose second segment resumes from it, against
/// the same request in one segment. A continuation needs a flow entry that its own run
/// consumes, so every sample is one run (`repeat` = 1, the kernel's own timing) after the
/// first segment set the entry up; the other rows are timed the same way for a fair
/// comparison. Medians over the samples.
fn segments(quick: bool) -> Result<()> {
    let samples = if quick { 300 } else { 3000 };
    let policy = KernelPolicy {
        rules: vec![Rule {
            header: "X-MSISDN".into(),
            action: Action::Redact,
            allow: vec![],
        }],
        ..KernelPolicy::default()
    };
    let mut req = browser_get(574);
    let at = req.len() - 2;
    req.splice(at..at, format!("X-MSISDN: {MSISDN}\r\n").bytes());
    let cut = req.len() / 2;
    let mut g = Guard::load(&policy)?;
    println!();
    println!(
        "Segments of one flow: {} B request with X-MSISDN (redact), cut at byte {cut}; \
         one run per sample, medians of {samples}",
        req.len()
    );
    println!();
    println!("| case | hook | ns | vs empty program |");
    println!("|---|---|---:|---:|");
    for (hook, base, prog, tc) in [
        ("xdp", PROG_BASELINE_XDP, PROG_XDP, false),
        ("tc", PROG_BASELINE_TC, PROG_TC_EGRESS, true),
    ] {
        let whole_frame = Frame::http_v4(&req).build();
        let (mut empty, mut whole, mut first, mut cont) = (vec![], vec![], vec![], vec![]);
        for i in 0..samples {
            let ns = |d: std::time::Duration| d.as_nanos() as f64;
            empty.push(ns(g.time_program(base, tc, &whole_frame, 1)?.2));
            whole.push(ns(g.time_program(prog, tc, &whole_frame, 1)?.2));
            // A new flow each sample: its first segment creates the entry, the second
            // consumes it (the head completes, the entry is deleted).
            let sport = 10_000 + (i % 50_000) as u16;
            let a = Frame::http_v4(&req[..cut]).sport(sport).seq(1_000).build();
            let b = Frame::http_v4(&req[cut..])
                .sport(sport)
                .seq(1_000 + cut as u32)
                .build();
            first.push(ns(g.time_program(prog, tc, &a, 1)?.2));
            cont.push(ns(g.time_program(prog, tc, &b, 1)?.2));
        }
        let e = median(empty);
        for (name, v) in [
            ("whole request in one segment (no flow entry)", whole),
            ("first segment (head open at its end: entry created)", first),
            ("continuation segment (resumes from the entry)", cont),
        ] {
            let m = median(v);
            println!("| {name} | {hook} | {m:.0} | {:.1}x |", m / e);
        }
        println!("| empty program | {hook} | {e:.0} | 1.0x |");
    }
    let s = g.stats()?;
    anyhow::ensure!(
        s.continuations >= 2 * samples as u64,
        "the continuation rows did not run as continuations ({} of {})",
        s.continuations,
        2 * samples
    );
    println!();
    println!(
        "Flow table: {} entries of {} B key + {} B value, preallocated; the kernel charges {:.1} MiB for it.",
        leakguard_common::FLOW_ENTRIES,
        size_of::<leakguard_common::FlowKey>(),
        size_of::<leakguard_common::FlowState>(),
        map_memlock(&g, leakguard::maps::MAP_FLOWS)? as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The kernel's memory accounting of a map (`memlock` in its fdinfo).
fn map_memlock(g: &Guard, name: &str) -> Result<u64> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let m = g.ebpf.map(name).with_context(|| format!("map {name}"))?;
    let data = match m {
        aya::maps::Map::LruHashMap(d) | aya::maps::Map::HashMap(d) => d,
        _ => anyhow::bail!("map {name} is not a hash map"),
    };
    let fd = data.fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .context("memlock in fdinfo")
}
