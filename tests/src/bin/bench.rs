//! `cargo xtask bench [--quick] [--only PARTS]`: what leakguard costs, as ratios within one
//! run (these machines are shared; absolute times alone mean little). Prints markdown
//! tables and writes `target/bench/results.json`.
//!
//! 1. Kernel cost per packet by `BPF_PROG_TEST_RUN` with repeat, each row beside the empty
//!    program of the same hook; rounds alternate the two so drift hits both alike; medians.
//!    Scaling with the number of rules and with request length; a head across segments.
//!    The test-run interface has a counter slot, as a guarded interface has. A 16 KiB
//!    request as one GSO skb on TC (`gso`), by the kernel's accounting on real traffic:
//!    a TC test run takes ~3.7 KB at most.
//! 2. End to end (`e2e`): client → gateway → server namespaces, Debian's nginx as the
//!    server and wrk as the load (a Lua script adds identity headers): no filter; the empty
//!    TC and XDP programs where leakguard attaches (the floor of any filter there); the
//!    `leakguard run` daemon on the gateway's TC egress (count, redact) and client-side XDP
//!    (count); TC redact again with skbs arriving as from a NIC (see `Setup::Leakguard`);
//!    HAProxy in the gateway deleting the same headers. Rounds of every setup in turn;
//!    each run is compared with the same round's no-filter run; medians.
//! 3. During the end-to-end runs: the kernel's own accounting (`kernel.bpf_stats_enabled`)
//!    of ns per real packet, the maps' memory, the daemon's peak RSS and CPU.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use leakguard::{
    kernel::object::{PROG_TC_EGRESS, PROG_XDP},
    policy::Action,
};
use leakguard_common::EVENT_HEAD_BYTES;
use leakguard_tests::{
    cases::{deep_request, kernel_cases, policy, rule, with_msisdn, Case},
    cmd::sh,
    daemon::{wait_for, Daemon},
    gateway::{Gateway, GW_CLI, GW_CLI_IF, GW_UP_IF, SRV},
    guard::{
        Guard, PROG_BASELINE_TC, PROG_BASELINE_XDP, PROG_FLOOR_TC, PROG_FLOOR_XDP, TEST_RUN_IFINDEX,
    },
    http::{browser_get, ACR, MSISDN, UIDH},
    netns::Netns,
    packet::Frame,
};
use serde_json::{json, Value};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Cfg {
    /// `--against OBJECT`: another build of the kernel programs, timed in the kernel part
    /// beside this one, round for round (A/B within one run).
    against: Option<Vec<u8>>,
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
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args().collect();
    let against = match args.iter().position(|a| a == "--against") {
        Some(i) => {
            let path = args.get(i + 1).context("--against needs an object file")?;
            Some(std::fs::read(path).with_context(|| format!("reading {path}"))?)
        }
        None => None,
    };
    let cfg = if quick {
        Cfg {
            against,
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
            audit_packets: 1_000_000,
            rounds: 7,
            repeat: 200_000,
            samples: 3000,
            e2e_secs: 10,
            e2e_rounds: 5,
            gso_requests: 3000,
        }
    };
    let only = only_parts()?;
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
    ("kernel", kernel),
    ("rules", rules),
    ("length", length),
    ("segments", segments),
    ("audit", audit),
    ("gso", gso),
    ("e2e", e2e),
];

/// `--only a,b`: the parts to run (all without it).
fn only_parts() -> Result<Option<Vec<String>>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--only") else {
        return Ok(None);
    };
    let list = args.get(i + 1).context("--only needs a list of parts")?;
    let parts: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
    for p in &parts {
        if !PARTS.iter().any(|(name, _)| name == p) {
            let names: Vec<&str> = PARTS.iter().map(|(n, _)| *n).collect();
            bail!("unknown part {p:?}: the parts are {}", names.join(", "));
        }
    }
    Ok(Some(parts))
}

const HOOKS: [(&str, &str, &str, bool); 2] = [
    ("xdp", PROG_BASELINE_XDP, PROG_XDP, false),
    ("tc", PROG_BASELINE_TC, PROG_TC_EGRESS, true),
];

/// The floor programs beside the same empty programs.
const FLOORS: [(&str, &str, &str, bool); 2] = [
    ("xdp", PROG_BASELINE_XDP, PROG_FLOOR_XDP, false),
    ("tc", PROG_BASELINE_TC, PROG_FLOOR_TC, true),
];

/// Median ns per run of the empty program and of leakguard on `frame`, alternating, as
/// the kernel times them (whole ns per run; its XDP test loop also does per-run work it
/// leaves out of the timing, about 300 ns here, so a wall clock would mislead).
fn pair(
    g: &mut Guard,
    cfg: &Cfg,
    base: &str,
    prog: &str,
    tc: bool,
    frame: &[u8],
) -> Result<(f64, f64)> {
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        b.push(g.time_program(base, tc, frame, cfg.repeat)?.2.as_nanos() as f64);
        p.push(g.time_program(prog, tc, frame, cfg.repeat)?.2.as_nanos() as f64);
    }
    Ok((median(b), median(p)))
}

fn kernel(cfg: &Cfg) -> Result<Value> {
    let count = policy(vec![rule("X-MSISDN", Action::Count)]);
    let clean = browser_get(600);
    let cases = kernel_cases();
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
        let mut g = Guard::load_bench(pol)?;
        g.give_slot(TEST_RUN_IFINDEX, 1)?;
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
    let mut g = Guard::load_bench(&count)?;
    g.give_slot(TEST_RUN_IFINDEX, 1)?;
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
/// alternating within each round, beside the empty program: what a change saves, with
/// the machine's drift between runs taken out.
fn against(cfg: &Cfg, object: &[u8], cases: &[Case]) -> Result<Value> {
    println!("| case | hook | empty ns | this build (A) ns | --against (B) ns | A/B |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for Case {
        name,
        policy: pol,
        frame,
        tc: tc_too,
    } in cases
    {
        let mut a = Guard::load_bench(pol)?;
        a.give_slot(TEST_RUN_IFINDEX, 1)?;
        let mut b = Guard::load_object(object, pol)?;
        b.give_slot(TEST_RUN_IFINDEX, 1)?;
        for (hook, base, prog, tc) in HOOKS {
            if tc && !tc_too {
                continue;
            }
            let (mut e, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..cfg.rounds * 3 {
                let ns = |g: &mut Guard, p: &str| -> Result<f64> {
                    Ok(g.time_program(p, tc, frame, cfg.repeat / 3)?.2.as_nanos() as f64)
                };
                e.push(ns(&mut a, base)?);
                ta.push(ns(&mut a, prog)?);
                tb.push(ns(&mut b, prog)?);
            }
            let (e, ta, tb) = (median(e), median(ta), median(tb));
            println!(
                "| {name} | {hook} | {e:.0} | {ta:.0} | {tb:.0} | {:.3} |",
                ta / tb
            );
            rows.push(json!({"case": name, "hook": hook, "empty_ns": e, "a_ns": ta, "b_ns": tb}));
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

/// The 600 B request against 1, 30 and 1,000 rules: the cost must stay flat.
fn rules(cfg: &Cfg) -> Result<Value> {
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
                let mut rs = vec![rule("X-MSISDN", Action::Redact)];
                rs.extend((1..n).map(|i| rule(&format!("X-Subscriber-Id-{i}"), Action::Count)));
                let mut g = Guard::load_bench(&policy(rs))?;
                g.give_slot(TEST_RUN_IFINDEX, 1)?;
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

/// Request length 200 B to 4 KiB: ns per byte (least-squares slope).
fn length(cfg: &Cfg) -> Result<Value> {
    let mut g = Guard::load_bench(&policy(vec![rule("X-MSISDN", Action::Redact)]))?;
    g.give_slot(TEST_RUN_IFINDEX, 1)?;
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

/// A head across two segments: first segment (creates the flow entry) and continuation
/// (consumes it) against the same request in one segment. A continuation needs the entry
/// its own run consumes, so every sample is one run (`repeat` = 1, the kernel's timing).
fn segments(cfg: &Cfg) -> Result<Value> {
    let mut req = browser_get(574);
    req = with_msisdn(&req);
    let cut = req.len() / 2;
    let mut g = Guard::load_bench(&policy(vec![rule("X-MSISDN", Action::Redact)]))?;
    g.give_slot(TEST_RUN_IFINDEX, 1)?;
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

fn fdinfo_memlock(fd: i32) -> Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .context("memlock in fdinfo")
}

/// `leakguard audit` on a capture of `cfg.audit_packets` packets: a third requests (some
/// with identity headers, some heads split in two segments), the rest ACKs and body
/// segments, many flows.
fn audit(cfg: &Cfg) -> Result<Value> {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.pcap");
    let req = with_msisdn(&browser_get(400));
    let clean = browser_get(420);
    let cut = req.len() / 2;
    let body = vec![0x1f; 1200];
    {
        let mut w = PcapWriter::new(std::io::BufWriter::new(std::fs::File::create(&path)?))?;
        let mut t = Duration::from_secs(1_764_000_000);
        let mut i = 0usize;
        while i < cfg.audit_packets {
            // Ports come round again after 60,000 flows: sequence numbers keep growing, as
            // a reused port's next connection's would (no false retransmissions).
            let g = (i / 6) as u32;
            let sport = 1024 + (g % 60_000) as u16;
            let base = 100u32.wrapping_add(g.wrapping_mul(20_000));
            let flow = Frame::http_v4(b"")
                .sport(sport)
                .dst_v4([203, 0, 113, (g % 200) as u8]);
            let mut frames = Vec::new();
            let mut f = flow.clone().seq(base);
            match g % 3 {
                0 => f.payload = clean.clone(),
                1 => f.payload = req.clone(),
                _ => {
                    f.payload = req[..cut].to_vec();
                    let mut second = flow.clone().seq(base + cut as u32);
                    second.payload = req[cut..].to_vec();
                    frames.push(f.build());
                    f = second;
                }
            }
            frames.push(f.build());
            let mut ack = flow.clone().seq(base + 5_000);
            ack.payload = Vec::new();
            let mut seg = flow.clone().seq(base + 6_000);
            seg.payload = body.clone();
            while frames.len() < 6 {
                frames.push(if frames.len() % 2 == 0 {
                    ack.build()
                } else {
                    seg.build()
                });
            }
            for fr in frames {
                t += Duration::from_micros(10);
                w.write_packet(&PcapPacket::new(t, fr.len() as u32, &fr))?;
                i += 1;
            }
        }
    }
    let policy = policy(vec![rule("X-MSISDN", Action::Redact)]);
    let report = leakguard::audit::replay(&policy, &path)?;
    let pps = report.packets as f64 / report.seconds;
    println!(
        "\n## leakguard audit\n\n{} packets ({} MB capture) in {:.1} s: {:.0} packets/s, {} findings, {} continuations",
        report.packets,
        std::fs::metadata(&path)?.len() / 1_000_000,
        report.seconds,
        pps,
        report.findings.len(),
        report.continuations
    );
    let _ = std::fs::remove_file(&path);
    Ok(
        json!({"packets": report.packets, "seconds": report.seconds, "packets_per_second": pps,
        "findings": report.findings.len()}),
    )
}

// ---------------------------------------------------------------------------------------
// End to end.

/// The gateway path (client ── gateway ── server) and a directory for the files of
/// nginx, HAProxy and wrk.
struct Topo {
    net: Gateway,
    dir: PathBuf,
}

fn topology() -> Result<Topo> {
    let net = Gateway::new()?;
    let dir = std::env::temp_dir().join(format!("leakguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Topo { net, dir })
}

/// A background process in a process group of its own, killed with the whole group on
/// drop (nginx's workers outlive a killed master otherwise).
struct Bg(Child);

impl Bg {
    fn spawn(cmd: &mut std::process::Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0).spawn().map(Self)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this child leads.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn wait_port(ns: &Netns, to: SocketAddr) -> Result<()> {
    wait_for(&format!("{to} to accept"), Duration::from_secs(10), || {
        ns.enter(|| std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok())
            .unwrap_or(false)
    })
}

fn nginx(t: &Topo) -> Result<Bg> {
    let conf = t.dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 1000000;\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
               uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen {SRV}:80; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
            d = t.dir.display()
        ),
    )?;
    let bg = Bg::spawn(
        t.net
            .srv
            .command("nginx")
            .args(["-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("nginx (Debian's nginx-light, installed by `cargo xtask setup`)")?;
    wait_port(&t.net.srv, SocketAddr::new(SRV.parse()?, 80))?;
    Ok(bg)
}

fn haproxy(t: &Topo) -> Result<Bg> {
    let conf = t.dir.join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n  maxconn 8192\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend fe\n  bind {GW_CLI}:80\n  http-request del-header X-MSISDN\n  http-request del-header X-UIDH\n  http-request del-header X-ACR\n  default_backend be\n\
             backend be\n  http-reuse always\n  server s1 {SRV}:80\n"
        ),
    )?;
    let bg = Bg::spawn(
        t.net
            .gw
            .command("haproxy")
            .args(["-db", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("haproxy (Debian's haproxy, installed by `cargo xtask setup`)")?;
    wait_port(&t.net.cli, SocketAddr::new(GW_CLI.parse()?, 80))?;
    Ok(bg)
}

/// wrk's figures: requests per second and latency percentiles in ms.
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

fn wrk(t: &Topo, url: &str, secs: u64) -> Result<Load> {
    let lua = t.dir.join("headers.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.headers[\"X-MSISDN\"] = \"{MSISDN}\"\nwrk.headers[\"X-UIDH\"] = \"{UIDH}\"\nwrk.headers[\"X-ACR\"] = \"{ACR}\"\n"
        ),
    )?;
    let out = t
        .net
        .cli
        .command("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&lua)
        .arg(url)
        .output()
        .context("wrk (Debian's wrk, installed by `cargo xtask setup`)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk against {url} failed or saw errors:\n{text}");
    }
    let ms = |s: &str| -> Option<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => v / 1000.0,
            "ms" => v,
            "s" => v * 1000.0,
            _ => return None,
        })
    };
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p).and_then(|r| ms(r.trim())))
    };
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    let requests = text
        .lines()
        .find_map(|l| {
            l.split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten();
    match (rps, pct("50%"), pct("99%"), requests) {
        (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(Load {
            rps,
            p50_ms,
            p99_ms,
            requests,
        }),
        _ => bail!("cannot read wrk's output:\n{text}"),
    }
}

/// The kernel keeps 15 bytes of a program's name.
fn kernel_name(p: &aya::programs::ProgramInfo, name: &str) -> bool {
    p.name_as_str()
        .is_some_and(|n| !n.is_empty() && name.starts_with(n) && n.len() >= name.len().min(15))
}

/// The kernel's accounting (`bpf_stats_enabled`) of a loaded program: (run ns, runs).
fn prog_stats(name: &str) -> Result<(u64, u64)> {
    let mut total = (0, 0);
    for p in aya::programs::loaded_programs().flatten() {
        if kernel_name(&p, name) {
            total.0 += p.run_time().as_nanos() as u64;
            total.1 += p.run_count();
        }
    }
    Ok(total)
}

/// Memory the kernel charges for the maps a loaded program uses.
fn prog_map_bytes(name: &str) -> Result<u64> {
    let mut bytes = 0;
    for p in aya::programs::loaded_programs().flatten() {
        if !kernel_name(&p, name) {
            continue;
        }
        for id in p.map_ids()?.unwrap_or_default() {
            let m = aya::maps::MapInfo::from_id(id)?;
            let fd = m.fd()?;
            use std::os::fd::{AsFd as _, AsRawFd as _};
            bytes += fdinfo_memlock(fd.as_fd().as_raw_fd())?;
        }
        break;
    }
    Ok(bytes)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime: fields 14 and 15 of proc(5), 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

const DAEMON_RULES: &str = "[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-ACR\"\naction = \"count\"\n";

/// One end-to-end configuration.
#[derive(Clone, Copy)]
enum Setup {
    Direct,
    /// The empty program of a hook attached where leakguard would be: the floor of any
    /// filter on that hook.
    Empty {
        xdp: bool,
        iface: &'static str,
    },
    Leakguard {
        hook: &'static str,
        iface: &'static str,
        prog: &'static str,
        action: &'static str,
        /// With the empty XDP program on the gateway's client side: veth then copies every
        /// skb it receives into a page of its own, as a NIC driver builds them, where
        /// otherwise the gateway forwards the client's own skb, a clone that TCP keeps for
        /// retransmission (which a write into its payload must first copy).
        nic_like: bool,
    },
    Haproxy,
}

const NIC_LIKE_REDACT: &str =
    "leakguard TC egress (gateway → server), redact, skbs received as from a NIC";
const EMPTY_XDP_CLIENT: &str = "empty XDP program (gateway's client side)";

const SETUPS: [(&str, Setup); 8] = [
    ("no filter", Setup::Direct),
    (
        "empty TC egress program (gateway → server)",
        Setup::Empty {
            xdp: false,
            iface: GW_UP_IF,
        },
    ),
    (
        "leakguard TC egress (gateway → server), count",
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "count",
            nic_like: false,
        },
    ),
    (
        "leakguard TC egress (gateway → server), redact",
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "redact",
            nic_like: false,
        },
    ),
    (
        NIC_LIKE_REDACT,
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "redact",
            nic_like: true,
        },
    ),
    (
        "leakguard XDP (gateway's client side), count",
        Setup::Leakguard {
            hook: "xdp",
            iface: GW_CLI_IF,
            prog: PROG_XDP,
            action: "count",
            nic_like: false,
        },
    ),
    (
        EMPTY_XDP_CLIENT,
        Setup::Empty {
            xdp: true,
            iface: GW_CLI_IF,
        },
    ),
    ("HAProxy in the gateway, del-header", Setup::Haproxy),
];

/// Attaches the empty program of a hook to `iface` in the gateway; detached on drop.
fn attach_empty(t: &Topo, xdp: bool, iface: &str) -> Result<aya::Ebpf> {
    use aya::programs::{
        links::LinkOrder, tc::TcAttachOptions, SchedClassifier, TcAttachType, Xdp, XdpMode,
    };
    let mut ebpf = aya::Ebpf::load(leakguard_tests::guard::BENCH_OBJECT)?;
    t.net.gw.enter(|| -> Result<()> {
        if xdp {
            let p: &mut Xdp = ebpf
                .program_mut(PROG_BASELINE_XDP)
                .context("baseline")?
                .try_into()?;
            p.load()?;
            p.attach(iface, XdpMode::Driver)?;
        } else {
            let p: &mut SchedClassifier = ebpf
                .program_mut(PROG_BASELINE_TC)
                .context("baseline")?
                .try_into()?;
            p.load()?;
            p.attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )?;
        }
        Ok(())
    })??;
    Ok(ebpf)
}

/// One wrk run through `setup`, with the kernel's and the daemon's figures for leakguard.
fn e2e_run(t: &Topo, cfg: &Cfg, setup: Setup) -> Result<(Load, Value)> {
    let direct = format!("http://{SRV}/");
    match setup {
        Setup::Direct => Ok((wrk(t, &direct, cfg.e2e_secs)?, json!({}))),
        Setup::Empty { xdp, iface } => {
            let prog = if xdp {
                PROG_BASELINE_XDP
            } else {
                PROG_BASELINE_TC
            };
            let ebpf = attach_empty(t, xdp, iface)?;
            let before = prog_stats(prog)?;
            let load = wrk(t, &direct, cfg.e2e_secs)?;
            let after = prog_stats(prog)?;
            drop(ebpf);
            let runs_n = after.1 - before.1;
            let ns = (after.0 - before.0) as f64 / runs_n.max(1) as f64;
            Ok((
                load,
                json!({"kernel_ns_per_packet": ns, "kernel_packets": runs_n}),
            ))
        }
        Setup::Haproxy => {
            let _hap = haproxy(t)?;
            let url = format!("http://{GW_CLI}/");
            // Warm up: HAProxy's first connections to the server.
            let _ = wrk(t, &url, 1)?;
            Ok((wrk(t, &url, cfg.e2e_secs)?, json!({})))
        }
        Setup::Leakguard {
            hook,
            iface,
            prog,
            action,
            nic_like,
        } => {
            let _nic = if nic_like {
                Some(attach_empty(t, true, GW_CLI_IF)?)
            } else {
                None
            };
            let rules = DAEMON_RULES.replace("\"redact\"", &format!("\"{action}\""));
            let body = format!("[[attach]]\ninterface = \"{iface}\"\nhook = \"{hook}\"\n\n[scan]\nbuiltin_catalog = \"off\"\n\n{rules}");
            let mut d = Daemon::new(&t.net.gw, &body)?;
            d.start()?;
            let cpu_before = d.pid().and_then(cpu_secs);
            let before = prog_stats(prog)?;
            let load = wrk(t, &direct, cfg.e2e_secs)?;
            let after = prog_stats(prog)?;
            let cpu_after = d.pid().and_then(cpu_secs);
            let daemon_cpu = match (cpu_before, cpu_after) {
                (Some(a), Some(b)) => Some(100.0 * (b - a) / cfg.e2e_secs as f64),
                _ => None,
            };
            let runs_n = after.1 - before.1;
            let ns = if runs_n > 0 {
                (after.0 - before.0) as f64 / runs_n as f64
            } else {
                0.0
            };
            let maps = prog_map_bytes(prog)?;
            let rss = d.pid().and_then(vm_hwm_kib).unwrap_or(0);
            d.stop()?;
            let _ = d.cli("detach");
            Ok((
                load,
                json!({"kernel_ns_per_packet": ns, "kernel_packets": runs_n,
                       "map_bytes": maps, "daemon_peak_rss_kib": rss,
                       "daemon_cpu_percent": daemon_cpu}),
            ))
        }
    }
}

/// A 16 KiB request (X-MSISDN at byte 6,000) as one GSO skb on the gateway's TC egress,
/// which a test run cannot take (~3.7 KB at most). One connection from the client to a
/// sink on the server; each request is written whole and its one-byte answer awaited,
/// so each leaves the client as one skb, which veth and the gateway forward as it is.
/// The kernel's accounting gives ns per request for the empty TC program and for
/// leakguard (redact, 16 KiB scan limit); the sink checks every request arrived redacted.
fn gso(cfg: &Cfg) -> Result<Value> {
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
    sh(&["sysctl", "-qw", "kernel.bpf_stats_enabled=1"])?;
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
    sh(&["sysctl", "-qw", "kernel.bpf_stats_enabled=0"])?;
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

/// Median of a field over rounds (None when no round has it).
fn median_of(vals: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = vals.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

fn e2e(cfg: &Cfg) -> Result<Value> {
    let t = topology()?;
    let _nginx = nginx(&t)?;
    sh(&["sysctl", "-qw", "kernel.bpf_stats_enabled=1"])?;
    // Warm up (ARP, nginx, and the machine after the parts before).
    let _ = wrk(&t, &format!("http://{SRV}/"), 3)?;
    // Rounds of every setup in turn, each round starting one setup later, so that drift
    // in the machine's speed falls on all of them alike; each run is compared with the
    // no-filter run of its own round.
    let mut runs: Vec<Vec<(Load, Value)>> = SETUPS.iter().map(|_| Vec::new()).collect();
    for round in 0..cfg.e2e_rounds {
        for k in 0..SETUPS.len() {
            let i = (k + round) % SETUPS.len();
            runs[i].push(e2e_run(&t, cfg, SETUPS[i].1)?);
            // The per-packet figures need the kernel's accounting on throughout.
            if std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")?.trim() != "1" {
                bail!(
                    "kernel.bpf_stats_enabled was turned off during the run (by another process?)"
                );
            }
        }
    }
    sh(&["sysctl", "-qw", "kernel.bpf_stats_enabled=0"])?;

    println!(
        "\n## End to end: wrk (2 threads, 32 connections, {} s each, identity headers by Lua) → nginx, through the gateway; medians of {} alternating rounds\n",
        cfg.e2e_secs, cfg.e2e_rounds
    );
    println!("| run | requests/s | vs no filter (rounds: min–max) | p50 ms | p99 ms | p99 vs no filter | kernel ns/packet | maps MiB | daemon peak RSS MiB | daemon CPU % |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base = &runs[0];
    let mut rows = Vec::new();
    for ((name, _), rs) in SETUPS.iter().zip(&runs) {
        let ratio = |f: fn(&Load) -> f64| -> Vec<f64> {
            rs.iter()
                .zip(base)
                .map(|(r, b)| f(&r.0) / f(&b.0))
                .collect()
        };
        let rps_ratios = ratio(|l| l.rps);
        let p50_ratios = ratio(|l| l.p50_ms);
        let p99_ratios = ratio(|l| l.p99_ms);
        let extra = |k: &str| median_of(rs.iter().map(|r| r.1.get(k).and_then(Value::as_f64)));
        let cell = |v: Option<f64>, scale: f64, digits: usize| {
            v.map_or("–".to_owned(), |x| format!("{:.*}", digits, x / scale))
        };
        let rps = median(rs.iter().map(|r| r.0.rps).collect());
        let p50 = median(rs.iter().map(|r| r.0.p50_ms).collect());
        let p99 = median(rs.iter().map(|r| r.0.p99_ms).collect());
        let lo = rps_ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rps_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {name} | {rps:.0} | {:.1}% ({:.1}–{:.1}%) | {p50:.2} | {p99:.2} | {:+.1}% | {} | {} | {} | {} |",
            100.0 * median(rps_ratios.clone()),
            100.0 * lo,
            100.0 * hi,
            100.0 * (median(p99_ratios.clone()) - 1.0),
            cell(extra("kernel_ns_per_packet"), 1.0, 0),
            cell(extra("map_bytes"), 1024.0 * 1024.0, 1),
            cell(extra("daemon_peak_rss_kib"), 1024.0, 1),
            cell(extra("daemon_cpu_percent"), 1.0, 1),
        );
        let rounds: Vec<Value> = rs
            .iter()
            .map(|(l, e)| {
                let mut r = json!({"requests_per_s": l.rps, "requests": l.requests,
                    "p50_ms": l.p50_ms, "p99_ms": l.p99_ms});
                if let (Value::Object(r), Value::Object(e)) = (&mut r, e) {
                    r.extend(e.clone());
                }
                r
            })
            .collect();
        rows.push(
            json!({"run": name, "requests_per_s": rps, "p50_ms": p50, "p99_ms": p99,
            "rps_vs_no_filter": median(rps_ratios), "p50_vs_no_filter": median(p50_ratios),
            "p99_vs_no_filter": median(p99_ratios),
            "kernel_ns_per_packet": extra("kernel_ns_per_packet"),
            "map_bytes": extra("map_bytes"), "daemon_peak_rss_kib": extra("daemon_peak_rss_kib"),
            "daemon_cpu_percent": extra("daemon_cpu_percent"), "rounds": rounds}),
        );
    }
    // The NIC-like redact run against the same receive path without a filter (the empty
    // XDP program alone), round by round.
    let at = |name: &str| SETUPS.iter().position(|(n, _)| *n == name);
    if let (Some(a), Some(b)) = (at(NIC_LIKE_REDACT), at(EMPTY_XDP_CLIENT)) {
        let r: Vec<f64> = runs[a]
            .iter()
            .zip(&runs[b])
            .map(|(x, y)| x.0.rps / y.0.rps)
            .collect();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let m = median(r);
        println!(
            "\nTC redact with skbs received as from a NIC, against the same receive path without a filter (the empty XDP program alone): {:.1}% ({:.1}–{:.1}%).",
            100.0 * m,
            100.0 * lo,
            100.0 * hi
        );
        rows.push(
            json!({"run": "nic-like TC redact vs the empty XDP program", "rps_vs_same_path": m}),
        );
    }
    let _ = std::fs::remove_dir_all(&t.dir);
    Ok(Value::Array(rows))
}
