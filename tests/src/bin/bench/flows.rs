//! Part `flows`: what a redacted head's flow entry costs. A head redacted within one
//! segment keeps an entry (a resend of any part of it must be redacted again), so a
//! redacted request inserts one on a new flow and reads and writes it back as the next
//! request of a keep-alive flow; a counted one keeps none. Each frame is a distinct
//! segment (a new flow, or the next sequence number of one flow), so each is timed by a
//! test run of its own: one run per call, beside the empty program timed the same way on
//! the same frames. With `--against OBJECT`, the other build is timed alike, round for
//! round.

use anyhow::Result;
use leakguard::policy::{Action, KernelPolicy};
use leakguard_tests::{
    cases::{policy, with_msisdn},
    guard::{Guard, TEST_RUN_IFINDEX},
    http::browser_get,
    kernel::rule,
    packet::Frame,
};
use serde_json::{json, Value};

use crate::{
    timing::{median, HOOKS},
    Cfg,
};

/// Frames per kind in a round.
const FRAMES: u32 = 400;

/// The 600 B request with an X-MSISDN, as new flows and as one keep-alive flow's requests.
fn frames(round: usize, hook: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let req = with_msisdn(&browser_get(574));
    // A destination per round and hook: no frame meets an entry an earlier one left.
    let dst = [203, 0, 113, (2 * round + hook) as u8 % 250];
    let fresh = (0..FRAMES)
        .map(|i| {
            Frame::http_v4(&req)
                .dst_v4(dst)
                .sport(10_000 + i as u16)
                .build()
        })
        .collect();
    let flow = Frame::http_v4(&req).dst_v4(dst).sport(9_000);
    let keep = (0..FRAMES)
        .map(|i| flow.clone().seq(1_000 + i * req.len() as u32).build())
        .collect();
    (fresh, keep)
}

/// Median ns of one run per frame of `prog`.
fn each(g: &Guard, prog: &str, tc: bool, frames: &[Vec<u8>]) -> Result<f64> {
    let mut t = Vec::with_capacity(frames.len());
    for f in frames {
        t.push(g.time_program(prog, tc, f, 1)?.2.as_nanos() as f64);
    }
    Ok(median(t))
}

pub fn flows(cfg: &Cfg) -> Result<Value> {
    let act = |a: Action| -> KernelPolicy { policy(vec![rule("X-MSISDN", a, &[])]) };
    let rounds = cfg.rounds.max(3);
    println!(
        "\n## A redacted head's flow entry (BPF_PROG_TEST_RUN, one run per frame, {FRAMES} frames × {rounds} rounds, medians)\n"
    );
    println!("| policy | hook | build | empty ns | new flow ns | keep-alive flow ns |");
    println!("|---|---|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for (name, a) in [("count", Action::Count), ("redact", Action::Redact)] {
        let pol = act(a);
        // The empty programs are this build's bench object's.
        let mut builds = vec![("A", Guard::load_bench_with_slot(&pol)?)];
        if let Some(obj) = &cfg.against {
            let mut b = Guard::load_object(obj, &pol)?;
            b.give_slot(TEST_RUN_IFINDEX, 1)?;
            builds.push(("B", b));
        }
        for (h, (hook, base, prog, tc)) in HOOKS.into_iter().enumerate() {
            // Per build: (empty, new flow, keep-alive) per round.
            let mut t = vec![(Vec::new(), Vec::new(), Vec::new()); builds.len()];
            for round in 0..rounds {
                for (k, (_, g)) in builds.iter().enumerate() {
                    // Fresh frames for each build: each build's flow table is its own.
                    let (fresh, keep) = frames(round * builds.len() + k, h);
                    t[k].0.push(each(&builds[0].1, base, tc, &fresh)?);
                    t[k].1.push(each(g, prog, tc, &fresh)?);
                    t[k].2.push(each(g, prog, tc, &keep)?);
                }
            }
            for (k, (build, _)) in builds.iter().enumerate() {
                let (e, f, kp) = (
                    median(t[k].0.clone()),
                    median(t[k].1.clone()),
                    median(t[k].2.clone()),
                );
                println!("| {name} | {hook} | {build} | {e:.0} | {f:.0} | {kp:.0} |");
                rows.push(json!({"policy": name, "hook": hook, "build": build,
                    "empty_ns": e, "new_flow_ns": f, "keep_alive_ns": kp}));
            }
        }
    }
    Ok(Value::Array(rows))
}
