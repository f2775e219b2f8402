//! Per-packet cost of the programs by `BPF_PROG_TEST_RUN` with repeat, each row beside the
//! empty program of the same hook measured in the same run. `cargo xtask bench`.
//!
//! Rounds alternate baseline and program so drift on a shared machine hits both alike;
//! the table shows medians over rounds.

use anyhow::Result;
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
    Ok(())
}
