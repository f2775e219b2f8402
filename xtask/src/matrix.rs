//! The kernel matrix: the kernel-program tests, the verifier budgets and a daemon smoke,
//! run again on the kernels gateways run: Debian 12's stock 6.1 and its 6.12, each booted
//! with this machine's root filesystem by virtme-ng under qemu's software emulation (TCG;
//! KVM does not work on these machines). The test binaries are built here and run there;
//! results come back through a shared directory under `target/kernel-matrix/`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{apt_install, output, root_dir, run};

/// The kernels: a name, the Debian package that installs it (a metapackage, so a newer
/// point release replaces an older one), and the prefix of its `/boot/vmlinuz-*`.
pub const KERNELS: [(&str, &str, &str); 2] = [
    ("6.1", "linux-image-amd64", "6.1."),
    ("6.12", "linux-image-6.12-amd64", "6.12."),
];

/// Debian packages the matrix needs besides the kernels.
const PACKAGES: [&str; 2] = ["qemu-system-x86", "busybox-static"];

/// virtme-ng from PyPI (`vng`): boots a kernel with the host's root filesystem.
const VIRTME_NG: &str = "virtme-ng>=1.40,<2";

/// The test files run on each kernel: the verifier budgets first (a program that does not
/// load fails everything after it), then the daemon (and a handover to maps of another
/// layout: on kernels without TCX it replaces cls_bpf filters), then the reset that lets
/// the kernel tables share loaded guards, then every kernel test-run table.
const TESTS: [&str; 14] = [
    "verifier",
    "smoke",
    "handover",
    "kernel_pool",
    "kernel_handover",
    "kernel_parse",
    "kernel_scan",
    "kernel_redact",
    "kernel_policy",
    "kernel_counters",
    "kernel_target",
    "kernel_cookie",
    "kernel_hex",
    "kernel_base64",
];

/// How much slower than this machine the emulated one runs (measured about 6-13x):
/// every wait in the tests is stretched by it (`LEAKGUARD_TIMEOUT_SCALE`).
const TIMEOUT_SCALE: u32 = 15;

/// Longest a kernel's run may take before the stage fails. Its emulated verifier is most
/// of the time of every program load: 6.1's run took 15 minutes on one machine once the
/// kernel tables shared loaded guards, and loading one guard per test ran past 35 on
/// another of the same kind.
const VM_TIMEOUT: Duration = Duration::from_secs(35 * 60);

/// Installs qemu, the kernels and virtme-ng when missing (a few process spawns when not).
pub fn setup() -> Result<()> {
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .chain(KERNELS.iter().map(|k| k.1))
        .filter(|p| !crate::installed(p))
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        // The VMs boot without an initramfs: skip building one per kernel.
        std::env::set_var("INITRD", "No");
        apt_install(&missing)?;
    }
    if vng().is_none() {
        run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            VIRTME_NG,
        ]))?;
    }
    vng().context("virtme-ng installed, but its vng script is not found")?;
    Ok(())
}

/// The `vng` script of the Python that pip installs into.
fn vng() -> Option<PathBuf> {
    let scripts = output(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_path('scripts'))",
    ]))?;
    let p = Path::new(scripts.trim()).join("vng");
    output(Command::new(&p).arg("--version")).map(|_| p)
}

/// The newest `/boot/vmlinuz-PREFIX*` (by version order).
fn kernel_image(prefix: &str) -> Result<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/boot")
        .context("listing /boot")?
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let ver = name.strip_prefix("vmlinuz-")?;
            ver.starts_with(prefix).then(|| {
                let key = ver
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse().ok())
                    .collect();
                (key, PathBuf::from("/boot").join(&name))
            })
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .with_context(|| format!("no /boot/vmlinuz-{prefix}* (cargo xtask setup installs it)"))
}

/// Test binaries of `leakguard-tests`, built for the host: (name, path).
fn build_tests() -> Result<Vec<(String, PathBuf)>> {
    let mut args = vec!["test", "--no-run"];
    for t in TESTS {
        args.extend(["--test", t]);
    }
    build(&args, &TESTS)
}

/// Builds targets of `leakguard-tests` for the host (`cargo ARGS -p leakguard-tests`)
/// and returns the executables of `names`, in that order: (name, path).
fn build(args: &[&str], names: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root_dir())
        .args(args)
        .args(["--message-format=json", "-p", "leakguard-tests"]);
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.output().context("building the test binaries")?;
    if !out.status.success() {
        bail!(
            "building the test binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(m) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if m["reason"] == "compiler-artifact" {
            if let (Some(name), Some(exe)) =
                (m["target"]["name"].as_str(), m["executable"].as_str())
            {
                exes.push((name.to_owned(), PathBuf::from(exe)));
            }
        }
    }
    names
        .iter()
        .map(|t| {
            exes.iter()
                .find(|(n, _)| n == t)
                .cloned()
                .with_context(|| format!("cargo built no binary {t}"))
        })
        .collect()
}

/// One test file's result on one kernel.
struct Outcome {
    test: String,
    code: Option<i32>,
    secs: u64,
    log: String,
}

/// Runs the matrix (every kernel, or those named in `only`); fails if a test fails on
/// any of them.
pub fn run_matrix(only: &[String]) -> Result<()> {
    setup()?;
    let started = Instant::now();
    let base = root_dir().join("target/kernel-matrix");
    // The binaries run from a copy: a build while the VMs run must not swap them.
    let bin = base.join("bin");
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin)?;
    let mut tests = Vec::new();
    for (name, exe) in build_tests()? {
        let copy = bin.join(&name);
        std::fs::copy(&exe, &copy).with_context(|| format!("copying {}", exe.display()))?;
        tests.push(Run {
            name,
            exe: copy,
            args: vec!["--nocapture".into()],
        });
    }
    // The daemon the smoke test runs, found beside the test binaries.
    let daemon = root_dir().join("target/debug/leakguard");
    std::fs::copy(&daemon, bin.join("leakguard"))
        .with_context(|| format!("copying {} (cargo xtask test builds it)", daemon.display()))?;
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    for (name, image, release) in kernels(only)? {
        let dir = base.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let t0 = Instant::now();
        let results = boot_and_test(&image, &dir, &tests)?;
        let wall = t0.elapsed().as_secs();
        for r in &results {
            let ok = r.code == Some(0);
            summary.push(format!(
                "{release:<28} {:<9} {:<5} {:>4} s",
                r.test,
                if ok { "ok" } else { "FAIL" },
                r.secs
            ));
            // The verifier test prints each program's count: keep them in the summary.
            summary.extend(
                r.log
                    .lines()
                    .filter(|l| l.contains("instructions verified"))
                    .map(|l| format!("    {l}")),
            );
            if !ok {
                let tail: Vec<&str> = r.log.lines().rev().take(60).collect();
                eprintln!(
                    "--- {} on {release} (exit {:?}); last lines of {}:",
                    r.test,
                    r.code,
                    dir.join(format!("{}.log", r.test)).display()
                );
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
                failed.push(format!("{} on {release}", r.test));
            }
        }
        summary.push(format!("{release:<28} booted and tested in {wall} s"));
    }
    println!("kernel matrix ({} s):", started.elapsed().as_secs());
    for l in &summary {
        println!("  {l}");
    }
    if !failed.is_empty() {
        bail!("kernel matrix: failed {}", failed.join(", "));
    }
    Ok(())
}

/// A binary to run in the virtual machine, with its arguments.
struct Run {
    name: String,
    exe: PathBuf,
    args: Vec<String>,
}

/// The kernels to run on (every kernel, or those named in `only`): name, image, release.
fn kernels(only: &[String]) -> Result<Vec<(&'static str, PathBuf, String)>> {
    if let Some(o) = only
        .iter()
        .find(|o| !KERNELS.iter().any(|(name, ..)| name == o))
    {
        bail!("no kernel {o} in the matrix (it has 6.1 and 6.12)");
    }
    let mut found = Vec::new();
    for (name, _, prefix) in KERNELS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let image = kernel_image(prefix)?;
        let release = image
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            .unwrap_or(name)
            .to_owned();
        found.push((name, image, release));
    }
    Ok(found)
}

/// The verifier instructions of each object's programs on each kernel (`vcount`),
/// printed; fails if a kernel refuses one.
pub fn count_objects(only: &[String], objects: &[PathBuf]) -> Result<()> {
    setup()?;
    let base = root_dir().join("target/kernel-matrix");
    // Copies, under names that say which argument each was: the builds that made them
    // may go on while the VMs run.
    let dir = base.join("objects");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut args = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let file = o.file_name().map(|f| f.to_string_lossy().into_owned());
        let copy = dir.join(format!("{}-{}", i + 1, file.unwrap_or_default()));
        std::fs::copy(o, &copy).with_context(|| format!("copying {}", o.display()))?;
        args.push(copy.display().to_string());
    }
    let (_, exe) = build(&["build", "--bin", "vcount"], &["vcount"])?.remove(0);
    let copy = dir.join("vcount");
    std::fs::copy(&exe, &copy).with_context(|| format!("copying {}", exe.display()))?;
    let run = [Run {
        name: "vcount".into(),
        exe: copy,
        args,
    }];
    let mut failed = Vec::new();
    for (name, image, release) in kernels(only)? {
        let dir = base.join(format!("{name}-objects"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for r in boot_and_test(&image, &dir, &run)? {
            print!("{}", r.log);
            if r.code != Some(0) {
                failed.push(release.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("refused or not run on {}", failed.join(", "));
    }
    Ok(())
}

/// Kills `pid` and every process below it. qemu is vng's grandchild: killing vng alone
/// left qemu running, and taking the CPUs, after the stage had failed. (A process group
/// of its own would do it in one call, but a Ctrl-C would then miss the VM.)
fn kill_tree(pid: u32) {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    for p in tree {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
}

/// Boots `image` and runs every binary in it; reads back each result.
fn boot_and_test(image: &Path, dir: &Path, tests: &[Run]) -> Result<Vec<Outcome>> {
    // /tmp is private inside; everything that must come back goes to `dir`.
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by `cargo xtask test`: runs inside the virtual machine, as root.\n\
         mount -t bpf bpf /sys/fs/bpf 2>/dev/null\n\
         ulimit -l unlimited\n",
    );
    script.push_str(&format!(
        "export LEAKGUARD_TIMEOUT_SCALE={TIMEOUT_SCALE} RUST_BACKTRACE=1\n\
         uname -r > '{d}/release'\n",
        d = dir.display()
    ));
    for Run { name, exe, args } in tests {
        let args: String = args.iter().map(|a| format!(" '{a}'")).collect();
        script.push_str(&format!(
            "s=$(date +%s)\n'{exe}'{args} > '{d}/{name}.log' 2>&1; echo $? > '{d}/{name}.rc'\n\
             echo $(( $(date +%s) - s )) > '{d}/{name}.secs'\n",
            exe = exe.display(),
            d = dir.display()
        ));
    }
    let path = dir.join("run.sh");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    let vng = vng().context("vng")?;
    let console = std::fs::File::create(dir.join("console.log"))?;
    let mut child = Command::new(vng)
        .arg("--run")
        .arg(image)
        .args(["--disable-kvm", "--memory", "2G", "--cpus", "2"])
        .arg(format!("--rwdir={}", dir.display()))
        .arg("--exec")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .spawn()
        .context("starting vng")?;
    eprintln!(
        "xtask: booting {} (log: {})",
        image.display(),
        dir.join("console.log").display()
    );
    let end = Instant::now() + VM_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > end {
            kill_tree(child.id());
            let _ = child.wait();
            bail!(
                "{} did not finish in {VM_TIMEOUT:?} (console: {})",
                image.display(),
                dir.join("console.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    if read("release").trim().is_empty() {
        bail!(
            "{} booted no test run (console: {})",
            image.display(),
            dir.join("console.log").display()
        );
    }
    Ok(tests
        .iter()
        .map(|Run { name, .. }| Outcome {
            test: name.clone(),
            code: read(&format!("{name}.rc")).trim().parse().ok(),
            secs: read(&format!("{name}.secs")).trim().parse().unwrap_or(0),
            log: read(&format!("{name}.log")),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::{
        process::Command,
        time::{Duration, Instant},
    };

    /// The processes whose parent is `pid`.
    fn children(pid: u32) -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    #[test]
    fn kill_tree_takes_the_grandchildren() {
        // sh → sh → sleep, as vng → … → qemu.
        let mut top = Command::new("sh")
            .args(["-c", "sh -c 'sleep 120; true' & wait"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            let g: Vec<u32> = children(top.id()).into_iter().flat_map(children).collect();
            if let Some(&g) = g.first() {
                break g;
            }
            assert!(Instant::now() < deadline, "the grandchild never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        super::kill_tree(top.id());
        top.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Gone, or a zombie its (killed) parent left to init.
        while std::fs::read_to_string(format!("/proc/{grandchild}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        }) {
            assert!(
                Instant::now() < deadline,
                "the grandchild {grandchild} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
