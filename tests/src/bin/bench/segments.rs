//! Part `segments`: a head across two segments, and the flow table's memory.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use leakguard::policy::Action;
use leakguard_tests::{
    cases::{policy, with_msisdn},
    guard::Guard,
    http::browser_get,
    kernel::rule,
    packet::Frame,
};
use serde_json::{json, Value};

use crate::{
    accounting::fdinfo_memlock,
    timing::{median, HOOKS},
    Cfg,
};

/// A head across two segments: first segment (creates the flow entry) and continuation
/// (consumes it) against the same request in one segment. A continuation needs the entry
/// its own run consumes, so every sample is one run (`repeat` = 1, the kernel's timing).
pub fn segments(cfg: &Cfg) -> Result<Value> {
    let mut req = browser_get(574);
    req = with_msisdn(&req);
    let cut = req.len() / 2;
    let g = Guard::load_bench_with_slot(&policy(vec![rule("X-MSISDN", Action::Redact, &[])]))?;
    println!(
        "\n## A head across segments ({} B request with X-MSISDN, redact, cut at byte {cut}; one run per sample, medians of {})\n",
        req.len(),
        cfg.samples
    );
    println!("| case | hook | ns | vs empty program |");
    println!("|---|---|---:|---:|");
    let mut rows = Vec::new();
    let template = Frame::http_v4(b"");
    for (hook, base, prog, tc) in HOOKS {
        let whole_frame = Frame::http_v4(&req).build();
        let (mut empty, mut whole, mut first, mut cont) = (vec![], vec![], vec![], vec![]);
        for i in 0..cfg.samples {
            let ns = |d: Duration| d.as_nanos() as f64;
            empty.push(ns(g.time_program(base, tc, &whole_frame, 1)?.2));
            whole.push(ns(g.time_program(prog, tc, &whole_frame, 1)?.2));
            // A new flow each sample: its first segment creates the entry, the second
            // consumes it (the head completes, the entry goes).
            let sport = 10_000 + (i % 50_000) as u16;
            let mut a = template.clone().sport(sport).seq(1_000);
            a.payload = req[..cut].to_vec();
            let mut b = template.clone().sport(sport).seq(1_000 + cut as u32);
            b.payload = req[cut..].to_vec();
            first.push(ns(g.time_program(prog, tc, &a.build(), 1)?.2));
            cont.push(ns(g.time_program(prog, tc, &b.build(), 1)?.2));
        }
        let e = median(empty);
        for (name, v) in [
            ("whole request in one segment (no flow entry)", whole),
            ("first segment (head open at its end: entry created)", first),
            ("continuation segment (resumes from the entry)", cont),
        ] {
            let m = median(v);
            println!("| {name} | {hook} | {m:.0} | {:.1}x |", m / e);
            rows.push(json!({"case": name, "hook": hook, "ns": m, "empty_ns": e, "ratio": m / e}));
        }
        println!("| empty program | {hook} | {e:.0} | 1.0x |");
    }
    let s = g.stats()?;
    if s.continuations < 2 * cfg.samples as u64 {
        bail!(
            "the continuation rows did not run as continuations ({})",
            s.continuations
        );
    }
    let memlock = map_memlock(&g, leakguard::kernel::maps::MAP_FLOWS)?;
    let hints = map_memlock(&g, leakguard::kernel::maps::MAP_FLOW_HINTS)?;
    println!(
        "\nFlow table: {} entries of {} B key + {} B value, preallocated; the kernel charges {:.1} MiB for it, and {:.1} MiB for its hint counters.",
        leakguard_common::FLOW_ENTRIES,
        size_of::<leakguard_common::FlowKey>(),
        size_of::<leakguard_common::FlowState>(),
        memlock as f64 / (1024.0 * 1024.0),
        hints as f64 / (1024.0 * 1024.0)
    );
    Ok(
        json!({"rows": rows, "flow_table_bytes": memlock, "flow_hint_bytes": hints,
        "flow_entries": leakguard_common::FLOW_ENTRIES}),
    )
}

/// The kernel's memory accounting of a map (`memlock` in its fdinfo).
fn map_memlock(g: &Guard, name: &str) -> Result<u64> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let m = g.ebpf.map(name).with_context(|| format!("map {name}"))?;
    let data = match m {
        aya::maps::Map::LruHashMap(d) | aya::maps::Map::HashMap(d) | aya::maps::Map::Array(d) => d,
        _ => bail!("map {name} is not a hash map or an array"),
    };
    fdinfo_memlock(data.fd().as_fd().as_raw_fd())
}
