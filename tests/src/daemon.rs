//! The real `leakguard` binary as a daemon in a test network namespace, as an RAII guard:
//! dropped, it is killed and its pinned state removed with `leakguard detach`.
//!
//! The daemon enters only the network namespace (`nsenter --net`), like a service on a
//! host: `ip netns exec` would also give it a private mount namespace with its own bpffs,
//! whose pins vanish with the process.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd::checked, netns::Netns};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `leakguard` binary cargo built beside this executable: in `target/<profile>/` for
/// a binary, one level up from `target/<profile>/deps/` for a test.
pub fn leakguard_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("executable path")?;
    let dir = exe.parent().context("executable directory")?;
    [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join("leakguard"))
        .find(|b| b.exists())
        .context("the leakguard binary is missing: use `cargo xtask test` or `cargo xtask demo`")
}

/// `LEAKGUARD_TIMEOUT_SCALE` (default 1): how much longer to wait for anything. The
/// kernel matrix runs the tests in an emulated machine (qemu TCG), several times slower.
#[must_use]
pub fn timeout_scale() -> u32 {
    std::env::var("LEAKGUARD_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Polls `cond` every 20 ms until it holds or `timeout` (times [`timeout_scale`]) passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let timeout = timeout * timeout_scale();
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// How `leakguard run` is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// In the test namespace's network namespace only (`nsenter --net`), as a service on
    /// a host whose interfaces live there: the default.
    Nsenter,
    /// In this process's namespaces (the host's), the policy naming the interfaces'
    /// network namespace (`[[attach]] netns`).
    Host,
    /// `ip netns exec`, which also gives it a private mount namespace: refused.
    IpNetnsExec,
}

pub struct Daemon {
    pub ns_path: PathBuf,
    /// The test namespace's name (for `netns = ...` in policies).
    pub ns_name: String,
    pub launch: Launch,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pin_path: PathBuf,
    child: Option<Child>,
    /// The running daemon's pid (0: none), for [`Daemon::cleanup_on_signal`].
    running: Arc<AtomicU32>,
    starts: u32,
    /// Extra environment for `leakguard run` (e.g. NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// A command `leakguard run` is started through, inside the namespace (e.g. `setpriv`
    /// with a capability set).
    pub wrapper: Vec<String>,
    /// Extra arguments of `leakguard run` (e.g. `--ebpf-object`).
    pub args: Vec<String>,
    /// `metrics.listen` inside the daemon's namespace (port 0 by default: any).
    metrics: String,
    /// `daemon.watch_policy` in the files [`Daemon::write_policy`] writes: off, so a
    /// test's SIGHUP is the one reload of each write (`Daemon::watching` turns it on).
    watch_policy: bool,
    /// `metrics.web_config`, when set.
    web_config: Option<PathBuf>,
    body: String,
}

/// Where the test daemons pin, and the start of each one's pin directory (then the owning
/// process's pid and `-`).
pub(crate) const PIN_DIR: &str = "/sys/fs/bpf";
pub(crate) const PIN_PREFIX: &str = "leakguard-test-";

impl Daemon {
    /// A daemon for `ns` whose policy file is `body` (`[daemon] pin_path` is added).
    pub fn new(ns: &Netns, body: &str) -> Result<Self> {
        crate::stale::sweep_once();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("leakguard-daemon-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let pin_path = PathBuf::from(format!("{PIN_DIR}/{PIN_PREFIX}{tag}"));
        let d = Self {
            ns_path: PathBuf::from(format!("/run/netns/{}", ns.name)),
            ns_name: ns.name.clone(),
            launch: Launch::Nsenter,
            config: dir.join("leakguard.toml"),
            dir,
            pin_path,
            child: None,
            running: Arc::default(),
            starts: 0,
            env: Vec::new(),
            wrapper: Vec::new(),
            args: Vec::new(),
            metrics: "127.0.0.1:0".into(),
            watch_policy: false,
            web_config: None,
            body: body.to_owned(),
        };
        d.write_policy(body)?;
        Ok(d)
    }

    /// A daemon for `ns` whose whole policy file is `make(pin_path)` (no section added):
    /// for tests that run an operator's file, such as the shipped default.
    pub fn with_file(ns: &Netns, make: impl FnOnce(&std::path::Path) -> String) -> Result<Self> {
        let d = Self::new(ns, "")?;
        std::fs::write(&d.config, make(&d.pin_path)).context("writing the policy file")?;
        Ok(d)
    }

    /// Serves metrics on `addr` (inside the daemon's network namespace).
    pub fn with_metrics(mut self, addr: &str) -> Result<Self> {
        self.metrics = addr.to_owned();
        let body = self.body.clone();
        self.write_policy(&body)?;
        Ok(self)
    }

    /// Reloads when the policy file changes (`daemon.watch_policy`, the default outside
    /// the tests).
    pub fn watching(mut self) -> Result<Self> {
        self.watch_policy = true;
        let body = self.body.clone();
        self.write_policy(&body)?;
        Ok(self)
    }

    /// TLS and authentication of the metrics listener from the web-config file `path`.
    pub fn with_web_config(mut self, path: &Path) -> Result<Self> {
        self.web_config = Some(path.to_owned());
        let body = self.body.clone();
        self.write_policy(&body)?;
        Ok(self)
    }

    /// The policy file's text for `body` (`[daemon]` and `[metrics]` added).
    #[must_use]
    pub fn policy_text(&self, body: &str) -> String {
        let web = self
            .web_config
            .as_ref()
            .map(|p| format!("web_config = \"{}\"\n", p.display()))
            .unwrap_or_default();
        format!(
            "[daemon]\npin_path = \"{}\"\nwatch_policy = {}\n\n[metrics]\nlisten = \"{}\"\n{web}\n{body}",
            self.pin_path.display(),
            self.watch_policy,
            self.metrics
        )
    }

    /// Replaces the policy file (for reload tests).
    pub fn write_policy(&self, body: &str) -> Result<()> {
        std::fs::write(&self.config, self.policy_text(body)).context("writing the policy file")
    }

    /// The log file of start number `n` (1-based).
    #[must_use]
    pub fn log_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("run-{n}.log"))
    }

    /// Every log written so far.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect()
    }

    /// Starts `leakguard run`; returns once its log says it is running.
    pub fn start(&mut self) -> Result<()> {
        let child = self.spawn()?;
        self.running.store(child.id(), Ordering::Relaxed);
        self.child = Some(child);
        let n = self.starts;
        let path = self.log_path(n);
        wait_for("the daemon to run", Duration::from_secs(20), || {
            std::fs::read_to_string(&path).is_ok_and(|l| l.contains("leakguard running"))
        })
        .with_context(|| format!("daemon log:\n{}", self.logs()))
    }

    /// Runs `leakguard run` where it is expected to refuse to start: its exit status.
    pub fn run_to_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut c = self.spawn()?;
        exit_within(&mut c, timeout)?
            .with_context(|| format!("leakguard run did not exit; log:\n{}", self.logs()))
    }

    /// Spawns `leakguard run` in the namespace, its stderr to the next log file.
    fn spawn(&mut self) -> Result<Child> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts))?;
        let mut cmd = match self.launch {
            Launch::Nsenter => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", self.ns_path.display()));
                c
            }
            Launch::IpNetnsExec => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns_name]);
                c
            }
            Launch::Host => Command::new("env"),
        };
        cmd.args(&self.wrapper)
            .arg(leakguard_bin()?)
            .args(["run", "--log-format", "json", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning leakguard run")
    }

    /// The process id of the running daemon.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.running.store(0, Ordering::Relaxed);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.running.store(0, Ordering::Relaxed);
        let mut c = self.child.take().context("not running")?;
        exit_within(&mut c, Duration::from_secs(10))?.context("daemon did not stop on SIGTERM")
    }

    /// A `leakguard` subcommand with this daemon's `--config`, in its network namespace.
    pub fn cli_in_netns(&self, sub: &str) -> Result<Output> {
        Command::new("nsenter")
            .arg(format!("--net={}", self.ns_path.display()))
            .arg(leakguard_bin()?)
            .args([sub, "--config"])
            .arg(&self.config)
            .output()
            .with_context(|| format!("running leakguard {sub}"))
    }

    /// A `leakguard` subcommand with this daemon's `--config`.
    pub fn cli(&self, sub: &str) -> Result<Output> {
        self.cli_command(sub)?
            .output()
            .with_context(|| format!("running leakguard {sub}"))
    }

    /// A `leakguard` subcommand that must succeed: its stdout.
    pub fn cli_ok(&self, sub: &str) -> Result<String> {
        let out = checked(&mut self.cli_command(sub)?)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn cli_command(&self, sub: &str) -> Result<Command> {
        let mut c = Command::new(leakguard_bin()?);
        c.args([sub, "--config"]).arg(&self.config);
        Ok(c)
    }

    /// `GET /metrics` from `metrics.listen` where the daemon listens: in its network
    /// namespace unless it runs in this one. The body; empty if curl fails.
    pub fn scrape(&self) -> Result<String> {
        let mut c = if self.launch == Launch::Host {
            Command::new("curl")
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.ns_name, "curl"]);
            c
        };
        let out = c
            .args([
                "-sS",
                "-m",
                "10",
                &format!("http://{}/metrics", self.metrics),
            ])
            .output()
            .context("running curl")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Waits for `c` to exit for `timeout` (times [`timeout_scale`]); past it, kills and
/// reaps it: `None`.
fn exit_within(c: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let end = Instant::now() + timeout * timeout_scale();
    loop {
        if let Some(st) = c.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() > end {
            let _ = c.kill();
            let _ = c.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    /// What dropping the daemon does, for a signal handler (destructors do not run on a
    /// signal): the daemon killed if running then, its pins detached, its files removed.
    pub fn cleanup_on_signal(&self) -> impl Fn() + Send + Sync + 'static {
        let running = self.running.clone();
        let (ns_path, pin_path, dir) = (
            self.ns_path.clone(),
            self.pin_path.clone(),
            self.dir.clone(),
        );
        move || {
            let pid = running.load(Ordering::Relaxed);
            if pid != 0 {
                // SAFETY: kill(2) on the daemon's pid.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            detach(&ns_path, &pin_path);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// By pin path: the policy file may be the broken one of a reload test. In the daemon's
/// namespace, where its TC filters live on kernels without TCX; from here if that
/// namespace is gone (and its interfaces with it).
fn detach(ns_path: &Path, pin_path: &Path) {
    if let Ok(bin) = leakguard_bin() {
        let inside = Command::new("nsenter")
            .arg(format!("--net={}", ns_path.display()))
            .arg(&bin)
            .arg("detach")
            .arg("--pin-path")
            .arg(pin_path)
            .output();
        if !inside.is_ok_and(|o| o.status.success()) {
            let _ = Command::new(bin)
                .arg("detach")
                .arg("--pin-path")
                .arg(pin_path)
                .output();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        detach(&self.ns_path, &self.pin_path);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
