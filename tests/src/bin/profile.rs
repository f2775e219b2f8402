//! `cargo xtask profile [--case N] [--hook xdp|tc] [--seconds S] [--top N] [--list]`:
//! where one of the benchmark's kernel cases spends its time, by source line of the
//! kernel programs.
//!
//! The case runs in a `BPF_PROG_TEST_RUN` loop on CPU 0 while `perf record` samples that
//! CPU's instruction pointer (the software clock: these machines have no hardware
//! counters). Samples inside the JIT-ed programs are attributed to functions and source
//! lines through the programs' BTF line info (`leakguard_tests::jit`); the rest of the
//! CPU's samples (helpers, the test-run loop) are listed by kernel symbol. A profile says
//! where time goes; how much a change saves is still measured by `cargo xtask bench`.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use aya::programs::{SchedClassifier, Xdp};
use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_XDP};
use leakguard_tests::{
    bpfstats,
    cases::{kernel_cases, PROFILE_DEFAULT},
    cmd::checked,
    cpu,
    guard::Guard,
    jit::JitMap,
};

struct Args {
    case: usize,
    tc: bool,
    seconds: u64,
    top: usize,
    list: bool,
}

const USAGE: &str = "profile [--case N] [--hook xdp|tc] [--seconds S] [--top N] [--list]";

fn args() -> Result<Args> {
    let mut a = Args {
        case: PROFILE_DEFAULT,
        tc: false,
        seconds: 10,
        top: 30,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value: {USAGE}"))
        };
        match flag.as_str() {
            "--case" => a.case = value()?.parse().context("--case: a number (see --list)")?,
            "--hook" => {
                a.tc = match value()?.as_str() {
                    "xdp" => false,
                    "tc" => true,
                    h => bail!("--hook {h}: xdp or tc"),
                }
            }
            "--seconds" => a.seconds = value()?.parse().context("--seconds: a number")?,
            "--top" => a.top = value()?.parse().context("--top: a number")?,
            "--list" => a.list = true,
            f => bail!("unknown argument {f}: {USAGE}"),
        }
    }
    if !(1..=120).contains(&a.seconds) {
        bail!("--seconds: 1 to 120");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let cases = kernel_cases();
    if a.list {
        for (i, c) in cases.iter().enumerate() {
            let hooks = if c.tc { "xdp, tc" } else { "xdp" };
            println!("{i}: {} ({hooks})", c.name);
        }
        return Ok(());
    }
    let case = cases
        .get(a.case)
        .with_context(|| format!("no case {} (0 to {}; see --list)", a.case, cases.len() - 1))?;
    if a.tc && !case.tc {
        bail!(
            "case {} runs on XDP only (a TC test run takes ~3.7 KB)",
            a.case
        );
    }
    cpu::pin(0)?;
    // The ns per run it prints are test-run timings.
    let _accounting = bpfstats::off_for_timing("profile")?;
    let g = Guard::load_bench_with_slot(&case.policy)?;
    let prog = if a.tc { PROG_TC_EGRESS } else { PROG_XDP };
    let map = {
        let p = g.ebpf.program(prog).context("program")?;
        if a.tc {
            JitMap::of(<&SchedClassifier>::try_from(p)?.fd()?)?
        } else {
            JitMap::of(<&Xdp>::try_from(p)?.fd()?)?
        }
    };
    let ns = g
        .time_program(prog, a.tc, &case.frame, 100_000)?
        .2
        .as_nanos();

    let data = std::env::temp_dir().join(format!("leakguard-profile-{}.data", std::process::id()));
    let _cleanup = RemoveOnDrop(data.clone());
    let mut perf = Command::new("perf")
        .args(["record", "-C", "0", "-e", "cpu-clock", "-F", "10000", "-o"])
        .arg(&data)
        .args(["--", "sleep", &a.seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running perf (Debian's linux-perf; `cargo xtask profile` installs it)")?;
    // The loop runs until perf is done; the deadline only guards against a perf that
    // never exits.
    let deadline = Instant::now() + Duration::from_secs(a.seconds + 30);
    let status = loop {
        if let Some(s) = perf.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = perf.kill();
            bail!("perf record did not finish within {} s", a.seconds + 30);
        }
        g.time_program(prog, a.tc, &case.frame, 100_000)?;
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = perf.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err)?;
        }
        bail!("perf record failed ({status}): {}", err.trim());
    }
    let out = checked(
        Command::new("perf")
            .args(["script", "-F", "ip,sym", "-i"])
            .arg(&data)
            .stderr(Stdio::null()),
    )?;
    let samples: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let ip = u64::from_str_radix(it.next()?, 16).ok()?;
            Some((ip, it.next().unwrap_or("[unknown]").to_owned()))
        })
        .collect();
    report(&a, case.name, ns, &map, &samples);
    Ok(())
}

fn report(a: &Args, name: &str, ns: u128, map: &JitMap, samples: &[(u64, String)]) {
    let hook = if a.tc { "tc" } else { "xdp" };
    let mut funcs: HashMap<&str, u64> = HashMap::new();
    // Keyed by JIT-ed function too: inlined helpers (a map lookup) appear in several.
    let mut lines: HashMap<(&str, u32, &str), u64> = HashMap::new();
    let mut outside: HashMap<&str, u64> = HashMap::new();
    let mut ours = 0u64;
    for (ip, sym) in samples {
        match map.locate(*ip) {
            Some((f, line)) => {
                ours += 1;
                *funcs.entry(&f.name).or_default() += 1;
                let key = line.map_or(("?", 0, f.name.as_str()), |l| {
                    (l.file.as_str(), l.line, f.name.as_str())
                });
                *lines.entry(key).or_default() += 1;
            }
            None => *outside.entry(sym.as_str()).or_default() += 1,
        }
    }
    let total = samples.len() as u64;
    let pct = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
    println!(
        "## Profile: {name}, {hook}, {} s on CPU 0\n\n{total} samples; {ours} ({:.1}%) in \
         leakguard's program; {ns} ns per run (test run, 100,000 repeats). Shares below are of \
         the program's samples, except the last table.\n",
        a.seconds,
        pct(ours, total)
    );
    println!("### JIT-ed functions\n\n| function | share |\n|---|---:|");
    for (f, n) in sorted(funcs) {
        println!("| {f} | {:.1}% |", pct(n, ours));
    }
    let mut sources = Sources::default();
    let mut by_fn: HashMap<(String, String), u64> = HashMap::new();
    for (&(file, line, _), &n) in &lines {
        let f = sources.enclosing_fn(file, line);
        *by_fn.entry((short_file(file).to_owned(), f)).or_default() += n;
    }
    println!("\n### Source functions (inlined code counts where it was written)\n\n| file | function | share |\n|---|---|---:|");
    for ((file, f), n) in sorted(by_fn).into_iter().take(a.top) {
        println!("| {file} | {f} | {:.1}% |", pct(n, ours));
    }
    println!("\n### Source lines\n\n| share | line | in | source |\n|---:|---|---|---|");
    for ((file, line, func), n) in sorted(lines).into_iter().take(a.top) {
        let text = sources.line(file, line).replace('|', "\\|");
        println!(
            "| {:.1}% | {}:{line} | {func} | `{}` |",
            pct(n, ours),
            short_file(file),
            text.trim()
        );
    }
    println!("\n### Outside the program (helpers, test-run loop, idle), of all samples\n\n| kernel symbol | share |\n|---|---:|");
    for (s, n) in sorted(outside).into_iter().take(12) {
        println!("| {s} | {:.1}% |", pct(n, total));
    }
}

fn sorted<K: Ord>(m: HashMap<K, u64>) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// `…/leakguard-ebpf/src/scan/skip.rs` -> `leakguard-ebpf/src/scan/skip.rs`; library paths to
/// their last two parts.
fn short_file(path: &str) -> &str {
    if let Some(i) = path.find("leakguard-") {
        return &path[i..];
    }
    let mut cut = path.len();
    for _ in 0..2 {
        cut = path[..cut].rfind('/').unwrap_or(0);
    }
    path[cut..].trim_start_matches('/')
}

/// Source files as the line info names them, read once.
#[derive(Default)]
struct Sources(HashMap<String, Option<Vec<String>>>);

impl Sources {
    fn lines(&mut self, file: &str) -> Option<&Vec<String>> {
        self.0
            .entry(file.to_owned())
            .or_insert_with(|| {
                std::fs::read_to_string(file)
                    .ok()
                    .map(|t| t.lines().map(str::to_owned).collect())
            })
            .as_ref()
    }

    fn line(&mut self, file: &str, line: u32) -> String {
        self.lines(file)
            .and_then(|l| l.get((line as usize).checked_sub(1)?))
            .cloned()
            .unwrap_or_default()
    }

    /// The name of the last `fn` declared at or before `line`.
    fn enclosing_fn(&mut self, file: &str, line: u32) -> String {
        let Some(lines) = self.lines(file) else {
            return "?".into();
        };
        lines
            .iter()
            .take(line as usize)
            .rev()
            .find_map(|l| fn_name(l))
            .unwrap_or_else(|| "?".into())
    }
}

/// `pub extern "C" fn advance(…` -> `advance`.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let i = t.find("fn ")?;
    let quals = [
        "pub",
        "pub(crate)",
        "const",
        "unsafe",
        "extern",
        "\"C\"",
        "async",
    ];
    if !t[..i].split_whitespace().all(|w| quals.contains(&w)) {
        return None;
    }
    let name: String = t[i + 3..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
