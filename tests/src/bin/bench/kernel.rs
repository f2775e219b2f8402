//! Part `kernel`: the cost per packet of each of the benchmark's kernel cases
//! (`leakguard_tests::cases`) beside the empty program of its hook; the floor of a scan;
//! a match event delivered and dropped. With `--against`, this build beside another.

use anyhow::Result;
use leakguard::{kernel::object::PROG_TC_EGRESS, policy::Action};
use leakguard_common::EVENT_HEAD_BYTES;
use leakguard_tests::{
    cases::{kernel_cases, policy, with_msisdn, Case},
    guard::{Guard, TEST_RUN_IFINDEX},
    http::browser_get,
    kernel::rule,
    packet::Frame,
};
use serde_json::{json, Value};

use crate::{
    timing::{median, pair, quartiles, FLOORS, HOOKS},
    Cfg,
};

pub fn kernel(cfg: &Cfg) -> Result<Value> {
    let count = policy(vec![rule("X-MSISDN", Action::Count, &[])]);
    let clean = browser_get(600);
    let cases: Vec<Case> = kernel_cases()
        .into_iter()
        .filter(|c| {
            cfg.cases
                .as_ref()
                .is_none_or(|want| want.iter().any(|w| c.name.contains(w.as_str())))
        })
        .collect();
    if cases.is_empty() {
        anyhow::bail!("--cases matched none of the kernel cases");
    }
    println!(
        "## Kernel cost per packet (BPF_PROG_TEST_RUN, {} rounds × {} repeats, medians)\n",
        cfg.rounds, cfg.repeat
    );
    if let Some(object) = &cfg.against {
        return against(cfg, object, &cases);
    }
    println!("| case | frame bytes | hook | empty program ns | leakguard ns | ratio |");
    println!("|---|---:|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for Case {
        name,
        policy: pol,
        frame,
        tc: tc_too,
    } in &cases
    {
        let mut g = Guard::load_bench_with_slot(pol)?;
        for (hook, base, prog, tc) in HOOKS {
            if tc && !tc_too {
                continue;
            }
            let (b, p) = pair(&mut g, cfg, base, prog, tc, frame)?;
            rows.push(kernel_row(name, frame.len(), hook, b, p));
        }
    }
    // The floor: the 600 B request copied into the scratch window and every word of it
    // tested for an LF, nothing else (`baseline_*_lf`): what reading the bytes costs
    // before any parsing, beside the same empty program.
    let floor_name = "floor: the 600 B request copied, every word tested for an LF, no parsing";
    let clean_frame = Frame::http_v4(&clean).build();
    let mut g = Guard::load_bench(&count)?;
    for (hook, base, prog, tc) in FLOORS {
        let (b, p) = pair(&mut g, cfg, base, prog, tc, &clean_frame)?;
        rows.push(kernel_row(floor_name, clean_frame.len(), hook, b, p));
    }
    // The rows above run with the event ring full (nothing drains it during a test-run
    // loop): their matches time a dropped event. A delivered one, on TC (XDP's test loop
    // adds per-call work that short loops show): 1,000 runs per sample from a drained
    // ring, beside the request without the header at the same repeat.
    let frame = Frame::http_v4(&with_msisdn(&browser_get(574))).build();
    let mut g = Guard::load_bench_with_slot(&count)?;
    let (mut d, mut f, mut z) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.rounds * 15 {
        g.events()?;
        d.push(
            g.time_program(PROG_TC_EGRESS, true, &frame, 1000)?
                .2
                .as_nanos() as f64,
        );
        // The ring now holds 1,000 events: fill it, then time matches it cannot take.
        let capacity = leakguard_common::EVENT_RING_BYTES / (8 + EVENT_HEAD_BYTES as u32);
        g.time_program(PROG_TC_EGRESS, true, &frame, capacity)?;
        f.push(
            g.time_program(PROG_TC_EGRESS, true, &frame, 1000)?
                .2
                .as_nanos() as f64,
        );
        z.push(
            g.time_program(PROG_TC_EGRESS, true, &clean_frame, 1000)?
                .2
                .as_nanos() as f64,
        );
    }
    let (d, f, z) = (median(d), median(f), median(z));
    println!(
        "\nThe match event (TC, X-MSISDN under count, 1,000 runs per sample): {z:.0} ns without the header; {d:.0} ns with it and its event delivered (+{:.0}); {f:.0} ns with the ring full, the event dropped (+{:.0}).",
        d - z,
        f - z
    );
    rows.push(json!({"case": "match event, TC", "without_header_ns": z,
        "event_delivered_ns": d, "event_dropped_ns": f}));
    Ok(Value::Array(rows))
}

/// `--against OBJECT`: every kernel case through this build (A) and the other one (B),
/// alternating within each round (A first in even samples, B first in odd ones), beside
/// the empty program: what a change saves, with the machine's drift between runs taken
/// out. Besides the ratio of the medians, the median of the samples' paired ratios
/// (A and B timed back to back) and their quartiles: how sure the difference is.
fn against(cfg: &Cfg, object: &[u8], cases: &[Case]) -> Result<Value> {
    println!(
        "| case | hook | empty ns | this build (A) ns | --against (B) ns | A/B | paired A/B (quartiles) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for Case {
        name,
        policy: pol,
        frame,
        tc: tc_too,
    } in cases
    {
        let mut a = Guard::load_bench_with_slot(pol)?;
        let mut b = Guard::load_object(object, pol)?;
        b.give_slot(TEST_RUN_IFINDEX, 1)?;
        for (hook, base, prog, tc) in HOOKS {
            if tc && !tc_too {
                continue;
            }
            let (mut e, mut ta, mut tb, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for k in 0..cfg.rounds * 3 {
                let ns = |g: &mut Guard, p: &str| -> Result<f64> {
                    Ok(g.time_program(p, tc, frame, cfg.repeat / 3)?.2.as_nanos() as f64)
                };
                e.push(ns(&mut a, base)?);
                let (x, y) = if k % 2 == 0 {
                    let x = ns(&mut a, prog)?;
                    (x, ns(&mut b, prog)?)
                } else {
                    let y = ns(&mut b, prog)?;
                    (ns(&mut a, prog)?, y)
                };
                ta.push(x);
                tb.push(y);
                r.push(x / y);
            }
            let (q1, rm, q3) = quartiles(r);
            let (e, ta, tb) = (median(e), median(ta), median(tb));
            println!(
                "| {name} | {hook} | {e:.0} | {ta:.0} | {tb:.0} | {:.3} | {rm:.3} ({q1:.3}–{q3:.3}) |",
                ta / tb
            );
            rows.push(
                json!({"case": name, "hook": hook, "empty_ns": e, "a_ns": ta, "b_ns": tb,
                "paired_ratio": rm, "paired_q1": q1, "paired_q3": q3}),
            );
        }
    }
    Ok(Value::Array(rows))
}

/// Prints a row of the kernel table and returns it for `results.json`.
fn kernel_row(case: &str, frame_bytes: usize, hook: &str, b: f64, p: f64) -> Value {
    println!(
        "| {case} | {frame_bytes} | {hook} | {b:.0} | {p:.0} | {:.1}x |",
        p / b
    );
    json!({"case": case, "frame_bytes": frame_bytes, "hook": hook,
        "empty_ns": b, "leakguard_ns": p, "ratio": p / b})
}
