//! Project commands: `cargo xtask setup | test | matrix | lint | package | demo | bench |
//! profile | fuzz`.
//!
//! `setup` installs what a fresh machine lacks to build and test leakguard, and costs a
//! few process spawns when everything is already there. `test` runs it, then every test.

use std::{
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

mod image;
mod imports;
mod k8s_tools;
mod matrix;

#[derive(Parser)]
#[command(about = "leakguard's project commands")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install build and test dependencies (apt packages, rust-src, bpf-linker); idempotent.
    Setup,
    /// The demo: a subscriber, a gateway running leakguard, and web servers, in network
    /// namespaces; shows what the servers receive without and with the guard (as root).
    Demo,
    /// Run setup if needed, then every test: unit, kernel-program and end-to-end (as root),
    /// then the kernel matrix (see `matrix`).
    Test {
        /// This machine's kernel only: skip the kernel matrix.
        #[arg(long)]
        host_only: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter), after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The kernel matrix alone: the verifier budgets, the kernel test-run tests and a
    /// daemon smoke on Debian 12's 6.1 and 6.12 kernels, each booted under qemu (software
    /// emulation, ~5 minutes a kernel; as root). Results in target/kernel-matrix/.
    Matrix {
        /// Only these kernels (6.1, 6.12); all without it.
        #[arg(long = "kernel", value_name = "VERSION")]
        kernels: Vec<String>,
        /// Instead of the tests, the verifier instructions of these leakguard objects on
        /// each kernel (compare variants of a change in one run; see tests/src/bin/vcount.rs).
        #[arg(long = "object", value_name = "PATH")]
        objects: Vec<std::path::PathBuf>,
    },
    /// `cargo fmt --check` (also of the fuzz targets), `cargo clippy -D warnings`,
    /// `cargo machete` (no unused dependency in any manifest), and the kernel crate's
    /// modules importing one way (no circle, nothing upward).
    Lint,
    /// Build the Debian package (cargo-deb): binary, systemd unit, default policy
    /// (conffile), man pages, completions, dashboard and alert rules. Prints its path.
    Package,
    /// Build the OCI image from what `package` builds (the binary, the shared libraries it
    /// loads, the default policy), offline with buildah (`from scratch`): into the local
    /// containers storage as localhost/leakguard:VERSION and :latest, and as an OCI archive
    /// in target/image/ (as root). Prints the archive's path and the image's size.
    Image,
    /// Fuzz the kernel programs against the reference model with generated and mutated
    /// packets through BPF_PROG_TEST_RUN (as root): a million by default, bounded in time;
    /// `LEAKGUARD_SEED=N` replays a run. Then the cargo-fuzz targets of the user-space
    /// parsers (policy file, capture reader, reference model), each for a bounded time.
    Fuzz {
        /// Packets to run.
        #[arg(long, default_value_t = 1_000_000)]
        packets: u64,
        /// Stop (and fail) after this many seconds.
        #[arg(long, default_value_t = 1_800)]
        seconds: u64,
        /// Seconds of libFuzzer per parser target (0: skip them).
        #[arg(long, default_value_t = 60)]
        parser_seconds: u64,
    },
    /// Per-packet cost of the programs against the empty program (as root).
    Bench(BenchOpts),
    /// Where one of the benchmark's kernel cases spends its time, by source line of the
    /// kernel programs: `perf record` samples the CPU running the case in a test-run loop,
    /// and the programs' line info maps the JIT-ed code back to source (as root; installs
    /// Debian's linux-perf if perf is missing). Says where to look; `bench` says how much a
    /// change saves.
    Profile {
        /// The case's number (`--list` shows them; without it, the 600 B request).
        #[arg(long)]
        case: Option<usize>,
        /// The hook whose program runs the case.
        #[arg(long, default_value = "xdp", value_parser = ["xdp", "tc"])]
        hook: String,
        /// Seconds to sample (1-120).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rows of the source tables.
        #[arg(long, default_value_t = 30)]
        top: usize,
        /// List the cases and exit.
        #[arg(long)]
        list: bool,
    },
}

/// Debian packages: LLVM 22 to build bpf-linker; iproute2, curl and ethtool for the
/// end-to-end tests; nftables to lose segments on purpose (real retransmissions);
/// prometheus for `promtool check metrics`; bpftool to inspect programs; nginx, wrk and
/// HAProxy for the end-to-end benchmark; HAProxy, Squid, nginx and wget for the
/// enrichment-proxy tests; systemd for `systemd-analyze` on the unit file; openssl for the
/// metrics listener's TLS tests (certificates made in the test); lintian for
/// the package; buildah to build the image and podman to run it, with runc (crun 1.8
/// refuses a cgroup v1/v2 hybrid whose v2 hierarchy has a controller, as these machines
/// have). Root needs no fuse-overlayfs (the kernel's overlayfs) nor slirp4netns, and the
/// tests' containers join the tests' network namespaces: no netavark or CNI plugins.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "iproute2",
    "curl",
    "ethtool",
    "nftables",
    "prometheus",
    "bpftool",
    "systemd",
    "nginx-light",
    "wrk",
    "haproxy",
    "squid",
    "wget",
    "openssl",
    "lintian",
    "buildah",
    "podman",
    "runc",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::Test { host_only, args } => setup()
            .and_then(|()| package())
            .and_then(|deb| image::build(&root_dir(), &deb).map(drop))
            .and_then(|()| test(&args))
            .and_then(|()| {
                if host_only {
                    Ok(())
                } else {
                    matrix::run_matrix(&[])
                }
            }),
        Cmd::Matrix { kernels, objects } => setup().and_then(|()| {
            if !is_root() {
                bail!("the kernel matrix boots VMs that load BPF programs: run it as root");
            }
            if !objects.is_empty() {
                return matrix::count_objects(&kernels, &objects);
            }
            cargo(&["build", "-p", "leakguard", "--bin", "leakguard"])?;
            matrix::run_matrix(&kernels)
        }),
        Cmd::Package => setup()
            .and_then(|()| package())
            .map(|deb| println!("{}", deb.display())),
        Cmd::Image => setup()
            .and_then(|()| package())
            .and_then(|deb| image::build(&root_dir(), &deb))
            .map(|built| {
                println!("{}", built.archive.display());
                println!("{} ({} bytes)", built.name, built.size);
            }),
        Cmd::Lint => lint(),
        Cmd::Demo => setup().and_then(|()| demo()),
        Cmd::Bench(opts) => setup().and_then(|()| bench(&opts)),
        Cmd::Profile {
            case,
            hook,
            seconds,
            top,
            list,
        } => setup().and_then(|()| profile(case, &hook, seconds, top, list)),
        Cmd::Fuzz {
            packets,
            seconds,
            parser_seconds,
        } => setup()
            .and_then(|()| fuzz(packets, seconds))
            .and_then(|()| fuzz_parsers(parser_seconds)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `cargo ARGS…` in the workspace root.
fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new("cargo").current_dir(root_dir()).args(args))
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn setup() -> Result<()> {
    apt()?;
    rust_src()?;
    bpf_linker()?;
    matrix::setup()?;
    k8s_tools::setup(&root_dir())?;
    Ok(())
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// True when Debian package `p` is installed.
fn installed(p: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "missing Debian packages {packages:?}; run `cargo xtask setup` as root, or install them"
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// rust-src for the toolchain that builds the host code: `build.rs` builds the eBPF
/// crate with that same toolchain (`-Z build-std=core` under `RUSTC_BOOTSTRAP=1`).
fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"]))
        .context("rustup is needed to add rust-src")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn bpf_linker() -> Result<()> {
    if let Some(v) = output(Command::new("bpf-linker").arg("--version")) {
        if v.split_whitespace()
            .nth(1)
            .is_some_and(|v| v.starts_with(&format!("{BPF_LINKER_VERSION}.")))
        {
            return Ok(());
        }
    }
    // Both variables matter: llvm-sys finds LLVM 22 through the second, and bpf-linker's
    // build script links -lLLVM from the first (the image's llvm-config is an older LLVM).
    run(Command::new("cargo")
        .args(["install", "--locked", "bpf-linker"])
        .args(["--version", &format!("^{BPF_LINKER_VERSION}")])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX))
}

/// cargo-deb, at this version, installed once (like bpf-linker).
const CARGO_DEB_VERSION: &str = "3";

fn cargo_deb() -> Result<()> {
    install_once(
        "cargo-deb",
        CARGO_DEB_VERSION,
        Command::new("cargo").args(["deb", "--version"]),
    )
}

/// `cargo install`s `krate` at `version` unless `probe` (its `--version`) answers with
/// that version already.
fn install_once(krate: &str, version: &str, probe: &mut Command) -> Result<()> {
    if output(probe).is_some_and(|v| {
        v.split_whitespace()
            .any(|w| w.starts_with(&format!("{version}.")))
    }) {
        return Ok(());
    }
    run(Command::new("cargo")
        .args(["install", "--locked", krate])
        .args(["--version", &format!("^{version}")]))
}

/// cargo-machete, at this version, installed once (like cargo-deb).
const CARGO_MACHETE_VERSION: &str = "0.9";

/// `cargo machete`. It takes itself for a cargo subcommand only when `CARGO_PKG_NAME` is
/// unset, and `cargo run` of xtask sets it: otherwise it reads "machete" as a path.
fn machete() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("machete").env_remove("CARGO_PKG_NAME");
    cmd
}

fn cargo_machete() -> Result<()> {
    install_once(
        "cargo-machete",
        CARGO_MACHETE_VERSION,
        machete().arg("--version"),
    )
}

/// The release binary, its generated man pages and completions, then the .deb.
fn package() -> Result<std::path::PathBuf> {
    cargo_deb()?;
    let root = root_dir();
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "leakguard",
        "--bin",
        "leakguard",
    ]))?;
    let assets = root.join("target/assets");
    let _ = std::fs::remove_dir_all(&assets);
    run(Command::new(root.join("target/release/leakguard"))
        .arg("generate-assets")
        .arg(&assets))?;
    let out = output(Command::new("cargo").current_dir(&root).args([
        "deb",
        "-p",
        "leakguard",
        "--no-build",
        "--quiet",
    ]))
    .context("cargo deb failed (run it by hand to see why)")?;
    let deb = out.lines().last().unwrap_or_default().trim();
    if !deb.ends_with(".deb") {
        bail!("cargo deb printed no package path: {out}");
    }
    Ok(std::path::PathBuf::from(deb))
}

fn test(args: &[String]) -> Result<()> {
    if !is_root() {
        bail!("the tests load BPF programs and create network namespaces: run them as root");
    }
    // The daemon tests run the `leakguard` binary itself: build it first, so a test run
    // never exercises a stale one.
    run(Command::new("cargo").current_dir(root_dir()).args([
        "build",
        "-p",
        "leakguard",
        "--bin",
        "leakguard",
    ]))?;
    build_upgrade_object()?;
    run(Command::new("cargo")
        .current_dir(root_dir())
        .args(["test", "--workspace", "--exclude", "leakguard-ebpf"])
        .args(args))
}

/// The build id of the second kernel object (see `leakguard_common::build_id`).
const UPGRADE_BUILD: &str = "2";

/// A second build of the kernel programs, with another build id compiled in, for the test
/// that upgrades a running guard in place (`tests/tests/faults.rs`): the same recipe as the
/// embedded one (`leakguard/ebpf_build.rs`), into `target/ebpf-upgrade/`.
fn build_upgrade_object() -> Result<()> {
    let root = root_dir();
    let dir = root.join("target/ebpf-upgrade");
    run(ebpf_cargo(
        std::path::Path::new("cargo"),
        &root,
        &dir,
        std::env::consts::ARCH,
    )
    .env("LEAKGUARD_EBPF_BUILD", UPGRADE_BUILD))?;
    let obj = ebpf_object(&dir);
    if !obj.is_file() {
        bail!("the upgrade build left no object at {}", obj.display());
    }
    Ok(())
}

include!("../../leakguard/ebpf_build.rs");

fn demo() -> Result<()> {
    if !is_root() {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "leakguard",
        "--bin",
        "leakguard",
    ])?;
    run_tests_bin("demo", &[])
}

/// `cargo run --release` of one of the test crate's binaries (demo, bench, fuzz), with
/// its own arguments.
fn run_tests_bin(bin: &str, args: &[&str]) -> Result<()> {
    let mut all = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "leakguard-tests",
        "--bin",
        bin,
    ];
    if !args.is_empty() {
        all.push("--");
        all.extend_from_slice(args);
    }
    cargo(&all)
}

fn fuzz(packets: u64, seconds: u64) -> Result<()> {
    if !is_root() {
        bail!("the fuzzer loads BPF programs: run it as root");
    }
    let (packets, seconds) = (packets.to_string(), seconds.to_string());
    run_tests_bin("fuzz", &["--packets", &packets, "--seconds", &seconds])
}

const CARGO_FUZZ_VERSION: &str = "0.13";
/// The cargo-fuzz targets in `tests/fuzz`.
const FUZZ_TARGETS: [&str; 3] = ["policy", "capture", "model"];

/// Each cargo-fuzz target for `seconds`, from its seeds (`tests/fuzz/seeds/TARGET`) and
/// what earlier runs found (`tests/fuzz/corpus/TARGET`, not committed). libFuzzer needs
/// `-Z` flags: `RUSTC_BOOTSTRAP=1` gives them to the stable toolchain. No sanitizer:
/// the parsers are safe Rust, and a panic is what the targets look for.
fn fuzz_parsers(seconds: u64) -> Result<()> {
    if seconds == 0 {
        return Ok(());
    }
    if !output(Command::new("cargo").args(["fuzz", "--version"]))
        .is_some_and(|v| v.contains(&format!("cargo-fuzz {CARGO_FUZZ_VERSION}.")))
    {
        run(Command::new("cargo")
            .args(["install", "--locked", "cargo-fuzz"])
            .args(["--version", &format!("^{CARGO_FUZZ_VERSION}")]))?;
    }
    let dir = root_dir().join("tests/fuzz");
    for t in FUZZ_TARGETS {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        run(Command::new("cargo")
            .current_dir(&dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--sanitizer", "none", "--release", t])
            .arg(&corpus)
            .arg(dir.join("seeds").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

/// `cargo xtask bench` options.
#[derive(clap::Args)]
struct BenchOpts {
    /// Fewer rounds and repeats.
    #[arg(long)]
    quick: bool,
    /// Only these parts (comma-separated): kernel, mix, rules, length, segments, audit,
    /// gso, e2e.
    #[arg(long, value_name = "PARTS")]
    only: Option<String>,
    /// A/B: time the kernel cases through this build and through another build of
    /// the kernel programs (an object file, e.g. a copy of
    /// target/ebpf-upgrade/bpfel-unknown-none/release/leakguard-ebpf from another
    /// commit), alternating within each round.
    #[arg(long, value_name = "OBJECT")]
    against: Option<PathBuf>,
    /// Only the kernel cases whose names contain one of these (comma-separated), e.g.
    /// `--cases "600 B,msisdn"`.
    #[arg(long, value_name = "NAMES")]
    cases: Option<String>,
    /// Rounds of the kernel parts (7 by default, 3 with --quick): more rounds, a
    /// narrower spread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: Option<u32>,
    /// Rounds of the end-to-end part (9 by default, 1 with --quick): every setup once a
    /// round; more rounds, a narrower confidence interval.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    e2e_rounds: Option<u32>,
    /// Seconds of each end-to-end run (8 by default, 3 with --quick).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..=120))]
    e2e_secs: Option<u32>,
}

fn bench(o: &BenchOpts) -> Result<()> {
    if !is_root() {
        bail!("the benchmark loads BPF programs: run it as root");
    }
    // The end-to-end part runs the real daemon, found beside the bench binary.
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "leakguard",
        "--bin",
        "leakguard",
    ])?;
    let mut args = Vec::new();
    if o.quick {
        args.push("--quick");
    }
    if let Some(parts) = &o.only {
        args.extend(["--only", parts]);
    }
    let against = match &o.against {
        Some(p) => Some(
            p.canonicalize()
                .with_context(|| format!("--against {}", p.display()))?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    if let Some(p) = &against {
        args.extend(["--only", "kernel", "--against", p]);
    }
    if let Some(c) = &o.cases {
        args.extend(["--cases", c]);
    }
    let numbers = [
        ("--rounds", o.rounds),
        ("--e2e-rounds", o.e2e_rounds),
        ("--e2e-secs", o.e2e_secs),
    ]
    .map(|(flag, v)| (flag, v.map(|v| v.to_string())));
    for (flag, v) in &numbers {
        if let Some(v) = v {
            args.extend([*flag, v]);
        }
    }
    run_tests_bin("bench", &args)
}

fn profile(case: Option<usize>, hook: &str, seconds: u64, top: usize, list: bool) -> Result<()> {
    if list {
        return run_tests_bin("profile", &["--list"]);
    }
    if !is_root() {
        bail!("profiling loads BPF programs and samples the kernel: run it as root");
    }
    if output(Command::new("perf").arg("--version")).is_none() {
        apt_install(&["linux-perf"])?;
    }
    let (seconds, top) = (seconds.to_string(), top.to_string());
    let mut args = vec!["--hook", hook, "--seconds", &seconds, "--top", &top];
    let case = case.map(|c| c.to_string());
    if let Some(c) = &case {
        args.extend(["--case", c]);
    }
    run_tests_bin("profile", &args)
}

fn lint() -> Result<()> {
    cargo_machete()?;
    let root = root_dir();
    imports::check(&root.join("leakguard-ebpf/src")).context("the kernel crate's imports")?;
    eprintln!("xtask: the kernel crate's modules import one way, with no circle");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    // The cargo-fuzz targets are a workspace of their own.
    run(Command::new("cargo")
        .current_dir(root.join("tests/fuzz"))
        .args(["fmt", "--", "--check"]))?;
    run(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "--workspace",
        "--exclude",
        "leakguard-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Every manifest under the root, the fuzz workspace's too.
    run(machete().current_dir(&root))
}
