//! `leakguard run`: load, apply the policy, attach (or adopt), then serve: match events to
//! logs, SIGHUP reloads, interfaces attached when they appear. Stopping or crashing leaves
//! the guard attached and enforcing (everything is pinned).
//!
//! The lifecycle is here (start, the select loop, stop); the rest by job: `interfaces`
//! keeps every `[[attach]]` entry attached as interfaces come and go, `slots` gives each
//! guarded interface its counters, `events` turns match events into log lines,
//! `snapshot` renders the metrics, `reload` applies a new policy file on SIGHUP.

mod events;
mod interfaces;
mod reload;
mod slots;
mod snapshot;
mod watch;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::{
    maps::{MapData, RingBuf},
    Ebpf,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use sd_notify::NotifyState;

use crate::{
    config::{self, Attach, Config, Hook, NetNs},
    http,
    kernel::{
        apply, compile, features, load,
        maps::MAP_EVENTS,
        object::{self, EBPF_OBJECT},
        pins::Pins,
        selftest,
    },
};
use interfaces::LinkMessage;

/// How often missing interfaces are looked for and events are drained and logged.
const TICK: Duration = Duration::from_secs(1);

/// How long a changed policy file is left to settle before it is read.
const SETTLE: Duration = Duration::from_millis(200);

struct Daemon {
    config_path: PathBuf,
    config: Config,
    pins: Pins,
    ebpf: Ebpf,
    /// Attach entries whose interface (or network namespace) does not exist (yet, or
    /// any more).
    missing: Vec<Attach>,
    /// The interface index each attachment was made on: a different one means the
    /// interface was deleted and re-created, and its old link is defunct.
    attached_at: HashMap<Attach, u32>,
    /// Interface lookups that failed (not "no such device"), for a rate-limited log.
    lookup_errors: interfaces::LookupErrors,
    /// Counter slot of each guarded interface, by `Attach::label` (rebuilt from the
    /// pinned `IFSLOT` on start).
    slots: BTreeMap<String, u32>,
    /// Header name of each rule id this process has known (metrics labels).
    names: HashMap<u32, String>,
    reloads_ok: u64,
    reloads_rejected: u64,
    /// Fingerprint of the policy text last read (`watch::fingerprint`).
    policy_text: u64,
    /// When a policy was last applied, and whether the last reload was.
    last_applied: std::time::SystemTime,
    last_reload_successful: bool,
    /// `kernel::object::digest` of the object loaded.
    program: String,
    /// Packets interfaces passed between appearing and being guarded (see `appeared`).
    unguarded: BTreeMap<Attach, u64>,
    /// Network namespaces whose link events this process listens to (`None`: its own).
    link_sockets: HashSet<Option<NetNs>>,
    link_tx: mpsc::UnboundedSender<LinkMessage>,
    /// What the HTTP listener serves: metrics and readiness.
    http: Arc<http::State>,
    /// Result of the last self-test (None before the first).
    selftest_ok: Option<bool>,
    last_selftest: std::time::Instant,
    /// The tracked-flows gauge and when it was counted: counting walks the flow table's
    /// keys (about 40 ms when it is full), so it is refreshed every `FLOW_COUNT_EVERY`.
    flows: std::cell::Cell<(u64, Option<std::time::Instant>)>,
}

pub async fn run(config_path: &Path, ebpf_object: Option<&Path>) -> Result<()> {
    let text = config::read(config_path).map_err(anyhow::Error::from)?;
    let policy_text = watch::fingerprint(&text);
    let config = config::parse(config_path, &text).map_err(anyhow::Error::from)?;
    crate::privileges::require(config.attach.iter().any(|a| a.netns.is_some()))?;
    features::check()?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Read before anything is touched: a missing object must not cost the guard.
    let object = match ebpf_object {
        Some(p) => Some(
            std::fs::read(p).with_context(|| format!("reading the eBPF object {}", p.display()))?,
        ),
        None => None,
    };
    let pins = Pins::new(&config.pin_path);
    pins.prepare()?;
    let adopting = !pins.links()?.is_empty();
    let load::Loaded {
        mut ebpf,
        mut handover,
    } = load::load_with_handover(&pins, object.as_deref().unwrap_or(EBPF_OBJECT))?;
    // The policy goes in before any link points at these programs.
    let ids = apply::apply(&mut ebpf, &config.kernel)
        .context("writing the policy into the kernel maps")?;
    if let Some(h) = handover.as_mut() {
        h.prepare(&mut ebpf)
            .context("carrying the flow table over to the new maps")?;
    }
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("metrics.listen = {}: cannot listen", config.metrics_listen))?;
    let web = http::Web::build(config.metrics_web.as_ref())
        .map_err(|e| anyhow::anyhow!("metrics.web_config: {e}"))?;
    let (link_tx, mut link_rx) = mpsc::unbounded_channel::<LinkMessage>();
    let mut d = Daemon {
        config_path: config_path.to_owned(),
        names: HashMap::new(),
        slots: BTreeMap::new(),
        config,
        pins,
        ebpf,
        missing: Vec::new(),
        attached_at: HashMap::new(),
        lookup_errors: interfaces::LookupErrors::default(),
        reloads_ok: 0,
        reloads_rejected: 0,
        policy_text,
        last_applied: std::time::SystemTime::now(),
        last_reload_successful: true,
        program: object::digest(object.as_deref().unwrap_or(EBPF_OBJECT)),
        unguarded: BTreeMap::new(),
        link_sockets: HashSet::new(),
        link_tx,
        http: http::State::new(web),
        selftest_ok: None,
        last_selftest: std::time::Instant::now(),
        flows: std::cell::Cell::new((0, None)),
    };
    d.learn_names(&ids);
    d.load_slots()?;
    d.attach_all()?;
    load::pin_programs(&mut d.ebpf, &d.pins)?;
    if let Some(h) = handover {
        d.switch_unlisted()?;
        h.finish(&mut d.ebpf, &d.pins)
            .context("finishing the handover to the new maps")?;
    }
    tokio::spawn(http::serve(listener, d.http.clone()));
    // systemd hears READY only once the guard is attached and has proven itself.
    if d.selftest() {
        d.notify(&[NotifyState::Ready]);
    } else {
        tracing::error!("the first self-test failed: not telling systemd the service is ready");
    }
    d.refresh_metrics();
    let watchdog = sd_notify::watchdog_enabled();
    tracing::info!(
        rules = d.config.kernel.rules.len(),
        digest = %format!("{:016x}", compile::digest(&d.config.kernel)),
        adopted = adopting,
        tc = match features::tc_mode() {
            features::TcMode::Tcx => "tcx",
            features::TcMode::Netlink => "cls_bpf (no TCX in this kernel)",
        },
        kernel = %features::release(),
        "leakguard running"
    );

    let mut events: RingBuf<MapData> = RingBuf::try_from(
        d.ebpf
            .take_map(MAP_EVENTS)
            .context("the object has no EVENTS map")?,
    )?;
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<()>();
    if d.config.watch_policy {
        watch::spawn(config_path, changed_tx)?;
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    d.open_link_sockets();
    loop {
        tokio::select! {
            Some((ns, ev)) = link_rx.recv() => {
                match ev {
                    Ok(events) => d.on_link_events(ns.as_ref(), &events),
                    // Lost events (ENOBUFS): recheck everything.
                    Err(_) => d.recheck_interfaces(),
                }
            }
            _ = hup.recv() => d.reload_and_test(),
            Some(()) = changed.recv() => {
                // A writer's steps (truncate, write, rename) come as several events:
                // wait for them to settle, then look once.
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                if d.file_changed() {
                    d.reload_and_test();
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                d.log_events(&mut events);
                d.open_link_sockets();
                d.recheck_interfaces();
                if d.last_selftest.elapsed() >= d.config.selftest_interval {
                    d.selftest();
                }
                d.refresh_metrics();
                // WatchdogSec must exceed twice the tick (1 s).
                if watchdog.is_some() {
                    d.notify(&[NotifyState::Watchdog]);
                }
            }
        }
    }
    d.notify(&[NotifyState::Stopping]);
    d.log_events(&mut events);
    tracing::info!("stopping; the guard stays attached (`leakguard detach` removes it)");
    Ok(())
}

impl Daemon {
    /// A reload (SIGHUP or a changed file), told to systemd, then a self-test.
    fn reload_and_test(&mut self) {
        self.notify(&[NotifyState::Reloading]);
        self.reload();
        self.selftest();
        self.notify(&[NotifyState::Ready]);
    }

    /// Runs the canaries through the programs of every configured hook; logs and records
    /// the result. True when every canary behaved as the policy says.
    fn selftest(&mut self) -> bool {
        self.last_selftest = std::time::Instant::now();
        let mut hooks: Vec<Hook> = self.config.attach.iter().map(|a| a.hook).collect();
        hooks.sort();
        hooks.dedup();
        let ok = match selftest::run(&mut self.ebpf, &self.config.kernel, &hooks) {
            Ok(r) if r.ok() => {
                tracing::debug!(canaries = r.canaries, "self-test passed");
                true
            }
            Ok(r) => {
                for f in &r.failures {
                    tracing::error!(failure = %f, "self-test failed");
                }
                false
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "self-test could not run");
                false
            }
        };
        self.selftest_ok = Some(ok);
        ok
    }

    /// Tells systemd (when started by it) the state, with a one-line STATUS summary.
    fn notify(&self, states: &[NotifyState]) {
        let guarded = self.config.attach.len() - self.missing.len();
        let status = format!(
            "guarding {guarded} of {} interface(s) with {} rules; self-test {}",
            self.config.attach.len(),
            self.config.kernel.rules.len(),
            match self.selftest_ok {
                Some(true) => "ok",
                Some(false) => "FAILING",
                None => "pending",
            }
        );
        let mut all = states.to_vec();
        all.push(NotifyState::Status(&status));
        if let Err(e) = sd_notify::notify(&all) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}
