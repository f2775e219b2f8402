//! Part `length`: request length from 200 B to 4 KiB, and ns per byte.

use anyhow::Result;
use leakguard::policy::Action;
use leakguard_tests::{
    cases::policy, guard::Guard, http::browser_get, kernel::rule, packet::Frame,
};
use serde_json::{json, Value};

use crate::{
    timing::{pair, HOOKS},
    Cfg,
};

/// Request length 200 B to 4 KiB: ns per byte (least-squares slope).
pub fn length(cfg: &Cfg) -> Result<Value> {
    let mut g = Guard::load_bench_with_slot(&policy(vec![rule("X-MSISDN", Action::Redact, &[])]))?;
    println!("\n## Request length (12 headers, the cookie grows)\n");
    println!("| bytes | hook | empty ns | leakguard ns | ratio |");
    println!("|---:|---|---:|---:|---:|");
    let mut rows = Vec::new();
    let mut slopes = serde_json::Map::new();
    for (hook, base, prog, tc) in HOOKS {
        let mut pts = Vec::new();
        for len in [200usize, 400, 800, 1600, 3200, 4096] {
            // A TC test run takes at most ~3.7 KB of packet.
            if tc && len > 3200 {
                continue;
            }
            let frame = Frame::http_v4(&browser_get(len)).build();
            let (b, p) = pair(&mut g, cfg, base, prog, tc, &frame)?;
            println!("| {len} | {hook} | {b:.0} | {p:.0} | {:.1}x |", p / b);
            rows.push(json!({"bytes": len, "hook": hook, "empty_ns": b, "leakguard_ns": p, "ratio": p / b}));
            pts.push((len as f64, p));
        }
        let n = pts.len() as f64;
        let (sx, sy) = pts.iter().fold((0.0, 0.0), |a, (x, y)| (a.0 + x, a.1 + y));
        let (mx, my) = (sx / n, sy / n);
        let slope = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
            / pts.iter().map(|(x, _)| (x - mx).powi(2)).sum::<f64>();
        println!("| slope | {hook} | | {slope:.2} ns/byte | |");
        slopes.insert(hook.into(), json!(slope));
    }
    Ok(json!({"rows": rows, "ns_per_byte": slopes}))
}
