//! Part `mix`: a gateway's traffic, not only request heads. The per-packet cost of each
//! class of a stated mix (mostly TLS, some QUIC, bodies and ACKs of plaintext HTTP, a
//! tenth request heads with an identity header) beside the empty program, weighted into
//! one figure per hook: packets per second per core and the share of a core that
//! 10 Gbit/s of the mix costs. Then the same classes on both cores at once (threads
//! pinned to CPU 0 and 1, one guard, so one flow table and one set of maps): does the
//! cost per packet hold when every core runs the guard?
//!
//! Test runs time the program alone, as the kernel part does: the driver, the stack and
//! the copy into the test-run buffer are the same with and without leakguard.

use anyhow::{ensure, Result};
use leakguard::policy::Action;
use leakguard_tests::{
    cases::{body_segment, policy, with_msisdn},
    cpu,
    guard::Guard,
    http::{browser_get, browser_get_lines},
    kernel::rule,
    packet::Frame,
};
use serde_json::{json, Value};

use crate::{
    timing::{median, HOOKS},
    Cfg,
};

/// One class of the mix: its share of packets (per mille) and a frame.
struct Class {
    name: &'static str,
    per_mille: u32,
    frame: Vec<u8>,
}

/// The mix: 60% TLS on TCP 443, 15% QUIC on UDP 443, 15% plaintext HTTP that is not a
/// head (10% body segments, 5% pure ACKs), 10% request heads of 200 to 3,600 bytes, each
/// with an X-MSISDN the policy redacts. The 3,600-byte head is timed as one skb on TC
/// (the GSO skb a proxy on the gateway hands over) and, on XDP, as one frame (on an MTU
/// of 1,500 it arrives as three; the `segments` part times heads across segments).
fn classes() -> Vec<Class> {
    // A head of `len` bytes with its X-MSISDN line (`with_msisdn` adds 24 bytes).
    let head = |len: usize| {
        let req = if len < 500 {
            let mut r = String::from(
                "GET /img/logo.png HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: image/*\r\nCookie: sid=",
            );
            while r.len() + 4 + 24 < len {
                r.push('a');
            }
            r.push_str("\r\n\r\n");
            r.into_bytes()
        } else {
            browser_get_lines(len - 24, 20)
        };
        Frame::http_v4(&with_msisdn(&req)).build()
    };
    let class = |name, per_mille, frame| Class {
        name,
        per_mille,
        frame,
    };
    vec![
        class(
            "TLS, TCP to 443, 1,400 B",
            600,
            Frame::http_v4(&[0x17; 1400]).dport(443).build(),
        ),
        class(
            "QUIC, UDP to 443, 1,200 B",
            150,
            Frame::http_v4(&[0x40; 1200]).udp().dport(443).build(),
        ),
        class(
            "HTTP body segment, TCP to 80, 1,400 B",
            100,
            Frame::http_v4(&body_segment()).build(),
        ),
        class(
            "ACK, TCP to 80, no payload",
            50,
            Frame::http_v4(&[]).build(),
        ),
        class("request head 200 B + X-MSISDN, redact", 25, head(200)),
        class(
            "request head 600 B + X-MSISDN, redact",
            25,
            Frame::http_v4(&with_msisdn(&browser_get(574))).build(),
        ),
        class("request head 1,400 B + X-MSISDN, redact", 25, head(1400)),
        class("request head 3,600 B + X-MSISDN, redact", 25, head(3600)),
    ]
}

pub fn mix(cfg: &Cfg) -> Result<Value> {
    let classes = classes();
    ensure!(
        classes.iter().map(|c| c.per_mille).sum::<u32>() == 1000,
        "the mix's shares add up to 100%"
    );
    let redact = policy(vec![
        rule("X-MSISDN", Action::Redact, &[]),
        rule("X-UIDH", Action::Redact, &[]),
    ]);
    let g = Guard::load_bench_with_slot(&redact)?;
    println!(
        "\n## A gateway's mix (BPF_PROG_TEST_RUN, {} rounds × {} repeats, medians)\n",
        cfg.rounds, cfg.repeat
    );
    println!("| class | share | frame bytes | hook | empty ns | leakguard ns |");
    println!("|---|---:|---:|---|---:|---:|");
    let mut rows = Vec::new();
    // ns per packet of the mix on each hook and in each round: (empty, leakguard). Rounds
    // alternate the two programs, as `pair` does; the spread of the rounds' mixes says
    // how sure the median is.
    let mut rounds = vec![[(0.0f64, 0.0f64); 2]; cfg.rounds];
    for c in &classes {
        let w = f64::from(c.per_mille) / 1000.0;
        for (h, (hook, base, prog, tc)) in HOOKS.into_iter().enumerate() {
            let (mut bs, mut ps) = (Vec::new(), Vec::new());
            for r in &mut rounds {
                let b = g.time_program(base, tc, &c.frame, cfg.repeat)?.2.as_nanos() as f64;
                let p = g.time_program(prog, tc, &c.frame, cfg.repeat)?.2.as_nanos() as f64;
                r[h].0 += w * b;
                r[h].1 += w * p;
                bs.push(b);
                ps.push(p);
            }
            let (b, p) = (median(bs), median(ps));
            println!(
                "| {} | {:.1}% | {} | {hook} | {b:.0} | {p:.0} |",
                c.name,
                f64::from(c.per_mille) / 10.0,
                c.frame.len()
            );
            rows.push(json!({
                "class": c.name, "per_mille": c.per_mille, "frame_bytes": c.frame.len(),
                "hook": hook, "empty_ns": b, "leakguard_ns": p,
            }));
        }
    }
    // Bytes per packet of the mix on the wire (frame plus preamble, FCS and gap: 24 B).
    let wire_bytes: f64 = classes
        .iter()
        .map(|c| f64::from(c.per_mille) / 1000.0 * (c.frame.len() as f64 + 24.0))
        .sum();
    let pps_10g = 10e9 / 8.0 / wire_bytes;
    println!(
        "\nThe mix: {wire_bytes:.0} B a packet on the wire; 10 Gbit/s of it is {:.2} Mpps.\n",
        pps_10g / 1e6
    );
    println!("| hook | empty ns | leakguard ns (rounds: min-max) | ratio | Mpps per core (program alone) | share of a core per 10 Gbit/s | added by leakguard |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for (h, (hook, ..)) in HOOKS.into_iter().enumerate() {
        let b = median(rounds.iter().map(|r| r[h].0).collect());
        let ps: Vec<f64> = rounds.iter().map(|r| r[h].1).collect();
        let (lo, hi) = (
            ps.iter().copied().fold(f64::INFINITY, f64::min),
            ps.iter().copied().fold(0.0, f64::max),
        );
        let p = median(ps);
        println!(
            "| {hook} | {b:.1} | {p:.1} ({lo:.1}-{hi:.1}) | {:.2} | {:.1} | {:.1}% | {:.1}% |",
            p / b,
            1e3 / p,
            p * pps_10g / 1e7,
            (p - b) * pps_10g / 1e7
        );
        summary.push(json!({
            "hook": hook, "empty_ns": b, "leakguard_ns": p, "leakguard_ns_rounds": [lo, hi],
            "core_share_per_10g": p * pps_10g / 1e9,
            "added_core_share_per_10g": (p - b) * pps_10g / 1e9,
        }));
    }
    let cores = two_cores(cfg, &g, &classes)?;
    Ok(json!({
        "classes": rows, "wire_bytes": wire_bytes, "mix": summary, "two_cores": cores,
    }))
}

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: `set` is a plain bitmask the call fills in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    ensure!(
        r == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The mix's leakguard cost per packet on each hook, measured on the first two allowed
/// CPUs: each alone, then both at once (a barrier starts each class's run on both).
fn two_cores(cfg: &Cfg, g: &Guard, classes: &[Class]) -> Result<Value> {
    let cpus = allowed_cpus()?;
    if cpus.len() < 2 {
        println!("\nOne CPU allowed: the two-core run needs two.");
        return Ok(Value::Null);
    }
    let (c0, c1) = (cpus[0], cpus[1]);
    // ns per packet of the mix on `cpu`, for each hook; with a barrier, in step with
    // the other thread.
    let measure = |cpu: usize, barrier: Option<&std::sync::Barrier>| -> Result<[f64; 2]> {
        cpu::pin(cpu)?;
        let mut mixed = [0.0; 2];
        for c in classes {
            for (h, (_, _, prog, tc)) in HOOKS.into_iter().enumerate() {
                let mut v = Vec::new();
                for _ in 0..cfg.rounds {
                    if let Some(b) = barrier {
                        b.wait();
                    }
                    v.push(g.time_program(prog, tc, &c.frame, cfg.repeat)?.2.as_nanos() as f64);
                }
                mixed[h] += f64::from(c.per_mille) / 1000.0 * median(v);
            }
        }
        Ok(mixed)
    };
    let alone = std::thread::scope(|s| -> Result<Vec<[f64; 2]>> {
        let mut r = Vec::new();
        for cpu in [c0, c1] {
            r.push(
                s.spawn(move || measure(cpu, None))
                    .join()
                    .expect("a bench thread")?,
            );
        }
        Ok(r)
    })?;
    let barrier = std::sync::Barrier::new(2);
    let together = std::thread::scope(|s| -> Result<Vec<[f64; 2]>> {
        let a = s.spawn(|| measure(c0, Some(&barrier)));
        let b = s.spawn(|| measure(c1, Some(&barrier)));
        Ok(vec![
            a.join().expect("a bench thread")?,
            b.join().expect("a bench thread")?,
        ])
    })?;
    println!("\n### The mix on CPU {c0} and CPU {c1}: each alone, then both at once (one guard, shared maps)\n");
    println!("| hook | CPU {c0} alone ns | CPU {c1} alone ns | CPU {c0} together ns | CPU {c1} together ns | throughput of two cores / one |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (h, (hook, ..)) in HOOKS.into_iter().enumerate() {
        let (a0, a1, t0, t1) = (alone[0][h], alone[1][h], together[0][h], together[1][h]);
        // Packets per ns of both cores at once, against the faster core alone.
        let scale = (1.0 / t0 + 1.0 / t1) / (1.0 / a0.min(a1));
        println!("| {hook} | {a0:.1} | {a1:.1} | {t0:.1} | {t1:.1} | {scale:.2} |");
        rows.push(json!({
            "hook": hook, "alone_ns": [a0, a1], "together_ns": [t0, t1], "scale": scale,
        }));
    }
    Ok(json!({ "cpus": [c0, c1], "rows": rows }))
}
