//! Part `rules`: the 600 B request against 1, 30 and 1,000 rules.

use anyhow::Result;
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
    timing::{pair, HOOKS},
    Cfg,
};

/// The 600 B request against 1, 30 and 1,000 rules: the cost must stay flat.
pub fn rules(cfg: &Cfg) -> Result<Value> {
    let clean = Frame::http_v4(&browser_get(600)).build();
    let id = Frame::http_v4(&with_msisdn(&browser_get(574))).build();
    println!("\n## Rules: the 600 B request against 1, 30 and 1,000 rules\n");
    println!("| rules | request | hook | empty ns | leakguard ns | ratio | vs 1 rule |");
    println!("|---:|---|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (req_name, frame) in [("no identity header", &clean), ("X-MSISDN, redact", &id)] {
        for (hook, base, prog, tc) in HOOKS {
            let mut first = None;
            for n in [1usize, 30, 1000] {
                // Names like real identity headers: X-<word>-<n> and a few catalog ones.
                let mut rs = vec![rule("X-MSISDN", Action::Redact, &[])];
                rs.extend(
                    (1..n).map(|i| rule(&format!("X-Subscriber-Id-{i}"), Action::Count, &[])),
                );
                let mut g = Guard::load_bench_with_slot(&policy(rs))?;
                let (b, p) = pair(&mut g, cfg, base, prog, tc, frame)?;
                let vs = p / *first.get_or_insert(p);
                println!(
                    "| {n} | {req_name} | {hook} | {b:.0} | {p:.0} | {:.1}x | {:+.0}% |",
                    p / b,
                    (vs - 1.0) * 100.0
                );
                rows.push(
                    json!({"rules": n, "request": req_name, "hook": hook, "empty_ns": b,
                    "leakguard_ns": p, "ratio": p / b, "vs_one_rule": vs}),
                );
            }
        }
    }
    Ok(Value::Array(rows))
}
