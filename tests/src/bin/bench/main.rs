//! `cargo xtask bench [--quick] [--only PARTS]`: what leakguard costs, as ratios within one
//! run (these machines are shared; absolute times alone mean little). Prints markdown
//! tables and writes `target/bench/results.json`.
//!
//! 1. Kernel cost per packet by `BPF_PROG_TEST_RUN` with repeat, each row beside the empty
//!    program of the same hook; rounds alternate the two so drift hits both alike; medians.
//!    Scaling with the number of rules and with request length; a head across segments.
//!    The test-run interface has a counter slot, as a guarded interface has. A gateway's
//!    traffic mix weighted into one figure per hook, on one core and on two at once (`mix`).
//!    A redacted head's flow entry on new and keep-alive flows (`flows`). A 16 KiB
//!    request as one GSO skb on TC (`gso`), by the kernel's accounting on real traffic:
//!    a TC test run takes ~3.7 KB at most.
//! 2. End to end (`e2e`): client → gateway → server namespaces, Debian's nginx as the
//!    server and wrk as the load (a Lua script adds identity headers): no filter; the empty
//!    TC and XDP programs where leakguard attaches (the floor of any filter there); the
//!    `leakguard run` daemon on the gateway's TC egress (count, redact) and client-side XDP
//!    (count); TC redact again with skbs arriving as from a NIC (see `Setup::Leakguard`);
//!    HAProxy in the gateway deleting the same headers. wrk and nginx pinned to CPUs
//!    apart. Rounds of every setup in turn; each run is compared with the same round's
//!    no-filter run; medians with a distribution-free confidence interval.
//! 3. During the end-to-end runs: the kernel's own accounting (`kernel.bpf_stats_enabled`)
//!    of ns per real packet and the share of a CPU, the maps' memory, the daemon's peak
//!    RSS and CPU.

mod accounting;
mod audit;
mod e2e;
mod flows;
mod gso;
mod kernel;
mod length;
mod mix;
mod net;
mod rules;
mod segments;
mod timing;

use std::{path::Path, time::Instant};

use anyhow::{bail, Context as _, Result};
use leakguard_tests::bpfstats;
use serde_json::{json, Value};

struct Cfg {
    /// `--against OBJECT`: another build of the kernel programs, timed in the kernel part
    /// beside this one, round for round (A/B within one run).
    against: Option<Vec<u8>>,
    /// `--cases A,B`: only the kernel cases whose names contain one of these.
    cases: Option<Vec<String>>,
    audit_packets: usize,
    rounds: usize,
    repeat: u32,
    samples: usize,
    e2e_secs: u64,
    e2e_rounds: usize,
    /// Requests per setup in the `gso` part.
    gso_requests: u32,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let against = match arg(&args, "--against", "an object file", |p| Some(p.to_owned()))? {
        Some(p) => Some(std::fs::read(&p).with_context(|| format!("reading {p}"))?),
        None => None,
    };
    let cases = arg(&args, "--cases", "a comma-separated list", |l| {
        Some(l.split(',').map(|c| c.trim().to_owned()).collect())
    })?;
    let rounds = arg(&args, "--rounds", "a number from 1 to 100", |r| {
        r.parse().ok().filter(|r| (1..=100).contains(r))
    })?;
    let e2e_rounds = arg(&args, "--e2e-rounds", "a number from 1 to 50", |r| {
        r.parse().ok().filter(|r| (1..=50).contains(r))
    })?;
    let e2e_secs = arg(&args, "--e2e-secs", "seconds, 1 to 120", |r| {
        r.parse().ok().filter(|r| (1..=120).contains(r))
    })?;
    let mut cfg = if quick {
        Cfg {
            against,
            cases,
            audit_packets: 100_000,
            rounds: 3,
            repeat: 50_000,
            samples: 300,
            e2e_secs: 3,
            e2e_rounds: 1,
            gso_requests: 300,
        }
    } else {
        Cfg {
            against,
            cases,
            audit_packets: 1_000_000,
            rounds: 7,
            repeat: 200_000,
            samples: 3000,
            e2e_secs: 8,
            e2e_rounds: 9,
            gso_requests: 3000,
        }
    };
    cfg.rounds = rounds.unwrap_or(cfg.rounds);
    cfg.e2e_rounds = e2e_rounds.unwrap_or(cfg.e2e_rounds);
    cfg.e2e_secs = e2e_secs.unwrap_or(cfg.e2e_secs);
    let only = only_parts(&args)?;
    // Off while test runs are timed; the parts that read the kernel's accounting turn it
    // on for themselves. Restored on the way out, however the run ends short of a signal.
    let _accounting = bpfstats::off_for_timing("bench")?;
    let started = Instant::now();
    let mut results = json!({ "quick": quick });
    for (part, run) in PARTS {
        if only.as_ref().is_none_or(|o| o.iter().any(|p| p == part)) {
            results[*part] = run(&cfg)?;
        }
    }
    results["seconds"] = json!(started.elapsed().as_secs_f64());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    println!(
        "\nresults: {} ({:.0} s)",
        path.canonicalize().unwrap_or(path).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The benchmark's parts, in the order they run.
type Part = fn(&Cfg) -> Result<Value>;

const PARTS: &[(&str, Part)] = &[
    ("kernel", kernel::kernel),
    ("mix", mix::mix),
    ("flows", flows::flows),
    ("rules", rules::rules),
    ("length", length::length),
    ("segments", segments::segments),
    ("audit", audit::audit),
    ("gso", gso::gso),
    ("e2e", e2e::e2e),
];

/// The value after `flag`, read by `read` (None: not given; an error names what it needs
/// when the value is missing or `read` refuses it).
fn arg<T>(
    args: &[String],
    flag: &str,
    needs: &str,
    read: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>> {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    args.get(i + 1)
        .and_then(|v| read(v))
        .map(Some)
        .with_context(|| format!("{flag} needs {needs}"))
}

/// `--only a,b`: the parts to run (all without it).
fn only_parts(args: &[String]) -> Result<Option<Vec<String>>> {
    let Some(parts) = arg(args, "--only", "a list of parts", |l| {
        Some(
            l.split(',')
                .map(|p| p.trim().to_owned())
                .collect::<Vec<_>>(),
        )
    })?
    else {
        return Ok(None);
    };
    for p in &parts {
        if !PARTS.iter().any(|(name, _)| name == p) {
            let names: Vec<&str> = PARTS.iter().map(|(n, _)| *n).collect();
            bail!("unknown part {p:?}: the parts are {}", names.join(", "));
        }
    }
    Ok(Some(parts))
}
