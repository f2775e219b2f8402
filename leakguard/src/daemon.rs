//! `leakguard run`: load, apply the policy, attach (or adopt), then serve: match events to
//! logs, SIGHUP reloads, interfaces attached when they appear. Stopping or crashing leaves
//! the guard attached and enforcing (everything is pinned).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::maps::{Array, Map};
use aya::{
    maps::{MapData, RingBuf},
    Ebpf,
};
use leakguard_common::{
    action, hook, Event, IfSlot, MatchKey, FAMILY_IPV4, IFSLOT_ENTRIES, INCOMPLETE_RULE_ID,
    MAX_SLOTS, MSISDN_RULE_ID,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use sd_notify::NotifyState;

use crate::{
    config::{self, Attach, Config, Hook, NetNs},
    kernel::{
        apply::{self, RuleIds},
        attach::{self, Outcome},
        compile, counters, features, link_events, load,
        maps::{MAP_EVENTS, MAP_FLOWS, MAP_IFSLOT, MAP_MATCHES, MAP_MATCH_COUNTS, MAP_STATS},
        netns,
        object::EBPF_OBJECT,
        pins::Pins,
        selftest, tc_filter,
    },
    metrics,
};

/// How often missing interfaces are looked for and events are drained and logged.
const TICK: Duration = Duration::from_secs(1);

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
    /// Counter slot of each guarded interface, by `Attach::label` (rebuilt from the
    /// pinned `IFSLOT` on start).
    slots: BTreeMap<String, u32>,
    /// Header name of each rule id this process has known (metrics labels).
    names: HashMap<u32, String>,
    reloads_ok: u64,
    reloads_rejected: u64,
    /// Packets interfaces passed between appearing and being guarded (see `appeared`).
    unguarded: BTreeMap<Attach, u64>,
    /// Network namespaces whose link events this process listens to (`None`: its own).
    link_sockets: HashSet<Option<NetNs>>,
    link_tx: mpsc::UnboundedSender<LinkMessage>,
    metrics: Arc<Mutex<String>>,
    /// Result of the last self-test (None before the first).
    selftest_ok: Option<bool>,
    last_selftest: std::time::Instant,
    /// The tracked-flows gauge and when it was counted: counting walks the flow table's
    /// keys (about 40 ms when it is full), so it is refreshed every `FLOW_COUNT_EVERY`.
    flows: std::cell::Cell<(u64, Option<std::time::Instant>)>,
}

/// Link events of one network namespace (`None`: the daemon's own), or the error that
/// lost some (then every interface is checked).
type LinkMessage = (Option<NetNs>, std::io::Result<Vec<link_events::LinkEvent>>);

/// How often the tracked-flows gauge is recounted.
const FLOW_COUNT_EVERY: Duration = Duration::from_secs(10);

pub async fn run(config_path: &Path, ebpf_object: Option<&Path>) -> Result<()> {
    let config = config::load(config_path).map_err(anyhow::Error::from)?;
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
    let mut ebpf = load::load(&pins, object.as_deref().unwrap_or(EBPF_OBJECT))?;
    // The policy goes in before any link points at these programs.
    let ids = apply::apply(&mut ebpf, &config.kernel)
        .context("writing the policy into the kernel maps")?;
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("metrics.listen = {}: cannot listen", config.metrics_listen))?;
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
        reloads_ok: 0,
        reloads_rejected: 0,
        unguarded: BTreeMap::new(),
        link_sockets: HashSet::new(),
        link_tx,
        metrics: Arc::new(Mutex::new(String::new())),
        selftest_ok: None,
        last_selftest: std::time::Instant::now(),
        flows: std::cell::Cell::new((0, None)),
    };
    d.learn_names(&ids);
    d.load_slots()?;
    d.attach_all()?;
    load::pin_programs(&mut d.ebpf, &d.pins)?;
    tokio::spawn(metrics::serve(listener, d.metrics.clone()));
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
            _ = hup.recv() => {
                d.notify(&[NotifyState::Reloading]);
                d.reload();
                d.selftest();
                d.notify(&[NotifyState::Ready]);
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

    /// Listens to the link events of every network namespace the policy names (and the
    /// daemon's own), where not yet: a namespace made after the start is picked up on
    /// a later call (every tick).
    fn open_link_sockets(&mut self) {
        let mut wanted: Vec<Option<NetNs>> = vec![None];
        wanted.extend(
            self.config
                .attach
                .iter()
                .filter_map(|a| a.netns.clone())
                .map(Some),
        );
        for ns in wanted {
            if self.link_sockets.contains(&ns) || !netns::exists(ns.as_ref()) {
                continue;
            }
            let opened = netns::run_in(ns.as_ref(), link_events::socket)
                .and_then(|r| r)
                .and_then(link_events::LinkEvents::from_fd);
            match opened {
                Ok(links) => {
                    let (tx, key) = (self.link_tx.clone(), ns.clone());
                    tokio::spawn(async move {
                        loop {
                            let ev = links.next().await;
                            if tx.send((key.clone(), ev)).is_err() {
                                break;
                            }
                        }
                    });
                    self.link_sockets.insert(ns);
                }
                Err(e) => {
                    tracing::warn!(netns = ns.as_ref().map_or("(own)", |n| n.name.as_str()), error = %e,
                        "no netlink link events; interfaces are checked once a second");
                    // Not retried every tick: the once-a-second check stands in.
                    self.link_sockets.insert(ns);
                }
            }
        }
    }

    fn on_link_events(&mut self, ns: Option<&NetNs>, events: &[link_events::LinkEvent]) {
        for e in events {
            match e {
                link_events::LinkEvent::Del { name, .. } => self.lost(ns, name),
                link_events::LinkEvent::New { name, index } => {
                    let stale = self
                        .attached_at
                        .iter()
                        .any(|(a, i)| a.netns.as_ref() == ns && a.interface == *name && i != index);
                    if stale {
                        self.lost(ns, name);
                    }
                }
            }
        }
        self.retry_missing();
    }

    /// A guarded interface went away: its links are defunct until it comes back.
    fn lost(&mut self, ns: Option<&NetNs>, name: &str) {
        for a in self.config.attach.clone() {
            if a.interface == name
                && a.netns.as_ref() == ns
                && self.attached_at.remove(&a).is_some()
            {
                tracing::warn!(interface = %a.label(), hook = a.hook.name(),
                    "interface disappeared; it will be guarded again when it reappears");
                self.missing.push(a);
            }
        }
    }

    /// Safety net for lost netlink messages: every attachment's interface still exists
    /// (in its namespace) with the index it was attached on; missing ones are retried.
    fn recheck_interfaces(&mut self) {
        let gone: Vec<Attach> = self
            .attached_at
            .iter()
            .filter(|(a, i)| match attach::entry_index(a) {
                Ok(found) => found != Some(**i),
                // A namespace that cannot be entered now is not proof of anything.
                Err(_) => false,
            })
            .map(|(a, _)| a.clone())
            .collect();
        for a in gone {
            self.lost(a.netns.as_ref(), &a.interface);
        }
        self.recheck_filters();
        self.retry_missing();
    }

    /// On kernels without TCX the guard is a cls_bpf filter, which anyone with
    /// CAP_NET_ADMIN can delete (`tc qdisc del dev IFACE clsact`): one found gone is
    /// said loudly and attached again.
    fn recheck_filters(&mut self) {
        if features::tc_mode() != features::TcMode::Netlink {
            return;
        }
        let gone: Vec<Attach> = self
            .attached_at
            .iter()
            .filter(|(a, _)| a.hook != Hook::Xdp)
            .filter(|(a, ifindex)| {
                let ty = if a.hook == Hook::TcIngress {
                    aya::programs::TcAttachType::Ingress
                } else {
                    aya::programs::TcAttachType::Egress
                };
                let i = **ifindex;
                matches!(
                    netns::run_in(a.netns.as_ref(), || tc_filter::ours(
                        i,
                        tc_filter::parent(ty)
                    )),
                    Ok(Ok(None))
                )
            })
            .map(|(a, _)| a.clone())
            .collect();
        for a in gone {
            tracing::error!(interface = %a.label(), hook = a.hook.name(),
                "leakguard's TC filter was removed from the interface by something else; attaching it again");
            self.attached_at.remove(&a);
            self.missing.push(a);
        }
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

    fn learn_names(&mut self, ids: &RuleIds) {
        for (r, id) in self.config.kernel.rules.iter().zip(&ids.by_rule) {
            self.names.insert(*id, r.header.clone());
        }
    }

    /// Rebuilds the slot of each configured interface from the pinned `IFSLOT`, so
    /// counters keep their interface across restarts: an entry holding the interface's
    /// index (in its namespace) is its slot.
    fn load_slots(&mut self) -> Result<()> {
        let a: Array<&aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map(MAP_IFSLOT).context("IFSLOT map")?)?;
        for entry in &self.config.attach {
            let Ok(Some(i)) = attach::entry_index(entry) else {
                continue;
            };
            let e = a.get(&(i % IFSLOT_ENTRIES), 0)?;
            if e.ifindex == i && e.slot != 0 {
                self.slots.insert(entry.label(), e.slot);
            }
        }
        Ok(())
    }

    /// Bookkeeping after a successful attach: the interface index and counter slot.
    fn attached(&mut self, a: &Attach) {
        if let Ok(Some(i)) = attach::entry_index(a) {
            self.attached_at.insert(a.clone(), i);
            self.assign_slot(a, i);
        }
    }

    /// Gives `a`'s interface (index `ifindex`) a counter slot and points its `IFSLOT`
    /// entry at it.
    fn assign_slot(&mut self, a: &Attach, ifindex: u32) {
        let label = a.label();
        let slot = if let Some(&s) = self.slots.get(&label) {
            s
        } else {
            let Some(free) = (1..MAX_SLOTS).find(|s| !self.slots.values().any(|v| v == s)) else {
                tracing::warn!(interface = %label, "no counter slot left; counted as interface=\"other\"");
                return;
            };
            // A slot new to this interface starts its match counters from zero.
            if let Err(e) = self
                .ebpf
                .map_mut(MAP_MATCH_COUNTS)
                .context("MATCH_COUNTS map")
                .and_then(|m| counters::clear_match_counts(m, free))
            {
                tracing::error!(interface = %label, error = %format!("{e:#}"), "cannot clear the match counters");
            }
            self.slots.insert(label.clone(), free);
            free
        };
        if let Err(e) = self.set_ifslot(&label, ifindex, slot) {
            tracing::error!(interface = %label, error = %format!("{e:#}"), "cannot set the counter slot");
        }
    }

    fn set_ifslot(&mut self, label: &str, ifindex: u32, slot: u32) -> Result<()> {
        let mut a: Array<&mut aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map_mut(MAP_IFSLOT).context("IFSLOT map")?)?;
        let idx = ifindex % IFSLOT_ENTRIES;
        let cur = a.get(&idx, 0)?;
        // The entry belongs to another guarded interface: one whose index shares the
        // entry, or (in another network namespace) equals this one's.
        let other = self
            .attached_at
            .iter()
            .find(|(b, i)| **i == cur.ifindex && b.label() != label)
            .map(|(b, _)| b.label());
        if cur.slot != 0 && cur.slot != slot {
            if let Some(other) = other {
                tracing::warn!(interface = %label, other = %other,
                    "interface index collides with another guarded interface; counted as interface=\"other\"");
                return Ok(());
            }
        }
        a.set(idx, IfSlot { ifindex, slot }, 0)?;
        Ok(())
    }

    /// The label of the guarded interface with index `ifindex` (events and the match
    /// hash carry indexes); its name in the daemon's namespace when no single guarded
    /// interface has it.
    fn iface_label(&self, ifindex: u32) -> String {
        let mut found = self.attached_at.iter().filter(|(_, i)| **i == ifindex);
        match (found.next(), found.next()) {
            (Some((a, _)), None) => a.label(),
            _ => ifname(ifindex),
        }
    }

    fn render_metrics(&self) -> Result<String> {
        let by_slot: HashMap<u32, &str> =
            self.slots.iter().map(|(n, s)| (*s, n.as_str())).collect();
        let packets = counters::stats_by_slot(self.stats_map()?)?
            .into_iter()
            .map(|(slot, h, s)| (by_slot.get(&slot).map_or("other", |n| n).to_owned(), h, s))
            .collect();
        let mut matches: Vec<(String, MatchKey, u64)> =
            counters::matches_of(self.ebpf.map(MAP_MATCHES).context("MATCHES map")?)?
                .into_iter()
                .map(|(k, n)| (self.iface_label(k.ifindex), k, n))
                .collect();
        let counts = self
            .ebpf
            .map(MAP_MATCH_COUNTS)
            .context("MATCH_COUNTS map")?;
        for (iface, &slot) in &self.slots {
            for (hook, rule_id, outcome, n) in counters::match_counts_of(counts, slot)? {
                let key = MatchKey {
                    ifindex: 0,
                    rule_id,
                    hook,
                    outcome,
                    _pad: [0; 6],
                };
                matches.push((iface.clone(), key, n));
            }
        }
        let header = |id: u32| {
            self.names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("rule-{id}"))
        };
        let attached = self
            .config
            .attach
            .iter()
            .map(|a| (a.label(), a.hook.name(), !self.missing.contains(a)))
            .collect();
        metrics::render(&metrics::Inputs {
            packets,
            matches,
            header: &header,
            attached,
            // Every attachment from the start (at 0), so a first increase is a rate.
            unguarded: self
                .config
                .attach
                .iter()
                .map(|a| {
                    let n = self.unguarded.get(a).copied().unwrap_or(0);
                    (a.label(), a.hook.name(), n)
                })
                .collect(),
            reloads_ok: self.reloads_ok,
            reloads_rejected: self.reloads_rejected,
            selftest_ok: self.selftest_ok == Some(true),
            tracked_flows: self.tracked_flows()?,
        })
    }

    /// Entries in the flow table, recounted at most every `FLOW_COUNT_EVERY`.
    fn tracked_flows(&self) -> Result<u64> {
        let (n, at) = self.flows.get();
        if at.is_some_and(|t| t.elapsed() < FLOW_COUNT_EVERY) {
            return Ok(n);
        }
        let n = counters::flow_count(self.ebpf.map(MAP_FLOWS).context("FLOWS map")?)?;
        self.flows.set((n, Some(std::time::Instant::now())));
        Ok(n)
    }

    fn stats_map(&self) -> Result<&Map> {
        self.ebpf.map(MAP_STATS).context("STATS map")
    }

    fn refresh_metrics(&self) {
        match self.render_metrics() {
            Ok(text) => {
                if let Ok(mut m) = self.metrics.lock() {
                    *m = text;
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "rendering metrics failed"),
        }
    }
    fn attach_all(&mut self) -> Result<()> {
        self.missing.clear();
        for a in self.config.attach.clone() {
            match attach::attach(&mut self.ebpf, &self.pins, &a)? {
                Outcome::Attached => {
                    self.attached(&a);
                    tracing::info!(interface = %a.label(), hook = a.hook.name(), "attached");
                }
                Outcome::Replaced => {
                    self.attached(&a);
                    tracing::info!(interface = %a.label(), hook = a.hook.name(),
                        "adopted the pinned link; program replaced atomically");
                }
                Outcome::ReplacedFilter => {
                    self.attached(&a);
                    tracing::info!(interface = %a.label(), hook = a.hook.name(),
                        "adopted the TC filter; program replaced atomically");
                }
                Outcome::Missing => {
                    tracing::warn!(interface = %a.label(), hook = a.hook.name(),
                        "interface (or its network namespace) does not exist; it will be guarded when it appears");
                    self.missing.push(a);
                }
            }
        }
        Ok(())
    }

    fn retry_missing(&mut self) {
        let mut still = Vec::new();
        for a in std::mem::take(&mut self.missing) {
            if !matches!(attach::entry_index(&a), Ok(Some(_))) {
                still.push(a);
                continue;
            }
            match attach::attach(&mut self.ebpf, &self.pins, &a) {
                Ok(Outcome::Missing) => still.push(a),
                Ok(outcome) => {
                    self.attached(&a);
                    tracing::info!(interface = %a.label(), hook = a.hook.name(), "interface appeared; attached");
                    if outcome == Outcome::Attached {
                        self.appeared(&a);
                    }
                }
                Err(e) => {
                    tracing::error!(interface = %a.label(), error = %format!("{e:#}"), "attaching failed");
                    still.push(a);
                }
            }
        }
        self.missing = still;
    }

    /// An interface that appeared while the daemon ran is guarded from its first packet
    /// only if the attach came first (the daemon attaches on the interface's first netlink
    /// message, normally before it is up). Packets it had already passed in the hook's
    /// direction were not scanned: say so, and count them, rather than let it pass
    /// silently.
    fn appeared(&mut self, a: &Attach) {
        let Some(n) = packets_so_far(a) else {
            return;
        };
        if n > 0 {
            tracing::warn!(interface = %a.label(), hook = a.hook.name(), packets = n,
                "the interface passed packets before the guard was attached; they were not scanned");
            *self.unguarded.entry(a.clone()).or_default() += n;
        }
    }

    /// SIGHUP: an invalid file is rejected and the running policy stays.
    fn reload(&mut self) {
        let config = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                self.reloads_rejected += 1;
                tracing::error!(error = %e, "reload rejected; the running policy stays");
                return;
            }
        };
        if config.pin_path != self.config.pin_path
            || config.metrics_listen != self.config.metrics_listen
        {
            self.reloads_rejected += 1;
            tracing::error!(
                "reload rejected: daemon.pin_path and metrics.listen take effect on restart only"
            );
            return;
        }
        let ids = match apply::apply(&mut self.ebpf, &config.kernel) {
            Ok(ids) => ids,
            Err(e) => {
                self.reloads_rejected += 1;
                tracing::error!(error = %e, "reload rejected by the kernel maps; the running policy stays");
                return;
            }
        };
        self.reloads_ok += 1;
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        self.config = config;
        self.learn_names(&ids);
        if let Err(e) = self.attach_all() {
            tracing::error!(error = %format!("{e:#}"), "attaching after reload failed");
        }
        self.open_link_sockets();
        tracing::info!(digest = %format!("{:016x}", compile::digest(&self.config.kernel)), "policy reloaded");
    }

    /// Logs the events of the last tick, one line per (interface, hook, destination,
    /// header, outcome) with a count: repeats are aggregated, never a value.
    fn log_events(&self, ring: &mut RingBuf<MapData>) {
        let mut agg: BTreeMap<EventKey, u64> = BTreeMap::new();
        while let Some(item) = ring.next() {
            let Some(e) = Event::from_record(&item) else {
                continue;
            };
            let dst = if e.family == FAMILY_IPV4 {
                IpAddr::from([e.daddr[0], e.daddr[1], e.daddr[2], e.daddr[3]])
            } else {
                IpAddr::from(e.daddr)
            };
            let header = if e.rule_id == INCOMPLETE_RULE_ID {
                "(a whole head)".to_owned()
            } else if e.rule_id == MSISDN_RULE_ID {
                // The name the number came under, as the kernel folded it (token bytes
                // only: lowercase, `_` as `-`). The value is never in an event.
                event_name(&e)
            } else {
                self.names
                    .get(&e.rule_id)
                    .cloned()
                    .unwrap_or_else(|| "(unknown rule)".into())
            };
            *agg.entry((e.ifindex, e.hook, dst, e.rule_id, e.action, header, e.build))
                .or_default() += 1;
        }
        for ((ifindex, h, dst, rule, outcome, header, build), n) in agg {
            if rule == INCOMPLETE_RULE_ID {
                tracing::warn!(
                    interface = %self.iface_label(ifindex),
                    hook = hook::name(h),
                    destination = %dst,
                    action = if outcome == action::DROP { "drop" } else { "pass" },
                    count = n,
                    program_build = build,
                    "request head not seen whole (longer than scan.max_head_bytes, or open where a segment's scan ended)"
                );
                continue;
            }
            let what = if rule == MSISDN_RULE_ID {
                "identity number"
            } else {
                "identity header"
            };
            tracing::info!(
                interface = %self.iface_label(ifindex),
                hook = hook::name(h),
                destination = %dst,
                header = %header,
                action = action::name(outcome),
                count = n,
                program_build = build,
                "{what}"
            );
        }
    }
}

/// What one log line aggregates: interface index, hook, destination, rule id, outcome,
/// header name, program build.
type EventKey = (u32, u8, IpAddr, u32, u8, String, u32);

/// The header name carried by an event, printable by construction (token bytes).
fn event_name(e: &Event) -> String {
    let len = (e.name_len as usize).min(e.name.name.len());
    let name = &e.name.name[..len];
    if name.is_empty() || !name.iter().all(|&b| leakguard_common::name::is_tchar(b)) {
        return "(unprintable)".into();
    }
    String::from_utf8_lossy(name).into_owned()
}

/// Packets `a`'s interface has sent (TC egress) or received (XDP, TC ingress) since it
/// was created, from `/proc/thread-self/net/dev`, read in its network namespace.
fn packets_so_far(a: &Attach) -> Option<u64> {
    let dev = netns::run_in(a.netns.as_ref(), || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })
    .ok()?
    .ok()?;
    let (_, counters) = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim() == a.interface)?;
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
    // packets …
    let field = if a.hook == Hook::TcEgress { 9 } else { 1 };
    counters.split_whitespace().nth(field)?.parse().ok()
}

fn ifname(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE long, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("ifindex {index}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
