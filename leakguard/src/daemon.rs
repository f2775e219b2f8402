//! `leakguard run`: load, apply the policy, attach (or adopt), then serve: match events to
//! logs, SIGHUP reloads, interfaces attached when they appear. Stopping or crashing leaves
//! the guard attached and enforcing (everything is pinned).

use std::{
    collections::{BTreeMap, HashMap},
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
use tokio::signal::unix::{signal, SignalKind};

use sd_notify::NotifyState;

use crate::{
    attach::{self, Outcome},
    maps::{self, MAP_EVENTS, MAP_IFSLOT, MAP_MATCHES, MAP_MATCH_COUNTS, MAP_STATS},
    metrics, netlink,
    object::EBPF_OBJECT,
    pins::Pins,
    policy::file::{self, Attach, Config},
    selftest,
};

/// How often missing interfaces are looked for and events are drained and logged.
const TICK: Duration = Duration::from_secs(1);

struct Daemon {
    config_path: PathBuf,
    config: Config,
    pins: Pins,
    ebpf: Ebpf,
    /// Attach entries whose interface does not exist (yet, or any more).
    missing: Vec<Attach>,
    /// The interface index each attachment was made on: a different one means the
    /// interface was deleted and re-created, and its old link is defunct.
    attached_at: HashMap<(String, file::Hook), u32>,
    /// Counter slot of each guarded interface (rebuilt from the pinned `IFSLOT` on start).
    slots: BTreeMap<String, u32>,
    /// Header name of each rule id this process has known (metrics labels).
    names: HashMap<u32, String>,
    reloads_ok: u64,
    reloads_rejected: u64,
    /// Packets interfaces passed between appearing and being guarded (see `appeared`).
    unguarded: BTreeMap<(String, file::Hook), u64>,
    metrics: Arc<Mutex<String>>,
    /// Result of the last self-test (None before the first).
    selftest_ok: Option<bool>,
    last_selftest: std::time::Instant,
    /// The tracked-flows gauge and when it was counted: counting walks the flow table's
    /// keys (about 40 ms when it is full), so it is refreshed every `FLOW_COUNT_EVERY`.
    flows: std::cell::Cell<(u64, Option<std::time::Instant>)>,
}

/// How often the tracked-flows gauge is recounted.
const FLOW_COUNT_EVERY: Duration = Duration::from_secs(10);

pub async fn run(config_path: &Path, ebpf_object: Option<&Path>) -> Result<()> {
    crate::privileges::require()?;
    crate::features::check()?;
    let config = file::load(config_path).map_err(anyhow::Error::from)?;
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
    let mut ebpf = attach::load(&pins, object.as_deref().unwrap_or(EBPF_OBJECT))?;
    // The policy goes in before any link points at these programs.
    let ids = maps::apply(&mut ebpf, &config.kernel)
        .context("writing the policy into the kernel maps")?;
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("metrics.listen = {}: cannot listen", config.metrics_listen))?;
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
        metrics: Arc::new(Mutex::new(String::new())),
        selftest_ok: None,
        last_selftest: std::time::Instant::now(),
        flows: std::cell::Cell::new((0, None)),
    };
    d.learn_names(&ids);
    d.load_slots()?;
    d.attach_all()?;
    attach::pin_programs(&mut d.ebpf, &d.pins)?;
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
        digest = %format!("{:016x}", maps::digest(&d.config.kernel)),
        adopted = adopting,
        tc = match crate::features::tc_mode() {
            crate::features::TcMode::Tcx => "tcx",
            crate::features::TcMode::Netlink => "cls_bpf (no TCX in this kernel)",
        },
        kernel = %crate::features::release(),
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
    let links = match netlink::LinkEvents::open() {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "no netlink link events; interfaces are checked once a second");
            None
        }
    };
    loop {
        tokio::select! {
            ev = async { links.as_ref().expect("guarded by the branch condition").next().await }, if links.is_some() => {
                match ev {
                    Ok(events) => d.on_link_events(&events),
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
        let mut hooks: Vec<file::Hook> = self.config.attach.iter().map(|a| a.hook).collect();
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

    fn on_link_events(&mut self, events: &[netlink::LinkEvent]) {
        for e in events {
            match e {
                netlink::LinkEvent::Del { name, .. } => self.lost(name),
                netlink::LinkEvent::New { name, index } => {
                    let stale = self
                        .attached_at
                        .iter()
                        .any(|((n, _), i)| n == name && i != index);
                    if stale {
                        self.lost(name);
                    }
                }
            }
        }
        self.retry_missing();
    }

    /// A guarded interface went away: its links are defunct until it comes back.
    fn lost(&mut self, name: &str) {
        for a in self.config.attach.clone() {
            if a.interface == name
                && self
                    .attached_at
                    .remove(&(a.interface.clone(), a.hook))
                    .is_some()
            {
                tracing::warn!(interface = %a.interface, hook = a.hook.name(),
                    "interface disappeared; it will be guarded again when it reappears");
                self.missing.push(a);
            }
        }
    }

    /// Safety net for lost netlink messages: every attachment's interface still exists
    /// with the index it was attached on; missing ones are retried.
    fn recheck_interfaces(&mut self) {
        let gone: Vec<String> = self
            .attached_at
            .iter()
            .filter(|((n, _), i)| attach::interface_index(n) != Some(**i))
            .map(|((n, _), _)| n.clone())
            .collect();
        for name in gone {
            self.lost(&name);
        }
        self.recheck_filters();
        self.retry_missing();
    }

    /// On kernels without TCX the guard is a cls_bpf filter, which anyone with
    /// CAP_NET_ADMIN can delete (`tc qdisc del dev IFACE clsact`): one found gone is
    /// said loudly and attached again.
    fn recheck_filters(&mut self) {
        if crate::features::tc_mode() != crate::features::TcMode::Netlink {
            return;
        }
        let gone: Vec<(String, file::Hook)> = self
            .attached_at
            .iter()
            .filter(|((_, hook), _)| *hook != file::Hook::Xdp)
            .filter(|((_, hook), ifindex)| {
                let ty = if *hook == file::Hook::TcIngress {
                    aya::programs::TcAttachType::Ingress
                } else {
                    aya::programs::TcAttachType::Egress
                };
                matches!(crate::tc::ours(**ifindex, crate::tc::parent(ty)), Ok(None))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (iface, hook) in gone {
            tracing::error!(interface = %iface, hook = hook.name(),
                "leakguard's TC filter was removed from the interface by something else; attaching it again");
            self.attached_at.remove(&(iface.clone(), hook));
            self.missing.push(Attach {
                interface: iface,
                hook,
            });
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

    fn learn_names(&mut self, ids: &maps::RuleIds) {
        for (r, id) in self.config.kernel.rules.iter().zip(&ids.by_rule) {
            self.names.insert(*id, r.header.clone());
        }
    }

    /// Rebuilds the slot of each interface from the pinned `IFSLOT`, so counters keep their
    /// interface across restarts.
    fn load_slots(&mut self) -> Result<()> {
        let a: Array<&aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map(MAP_IFSLOT).context("IFSLOT map")?)?;
        for i in 0..IFSLOT_ENTRIES {
            let e = a.get(&i, 0)?;
            if e.slot != 0 {
                let name = ifname(e.ifindex);
                if !name.starts_with("ifindex ") {
                    self.slots.insert(name, e.slot);
                }
            }
        }
        Ok(())
    }

    /// Bookkeeping after a successful attach: the interface index and counter slot.
    fn attached(&mut self, a: &Attach) {
        if let Some(i) = attach::interface_index(&a.interface) {
            self.attached_at.insert((a.interface.clone(), a.hook), i);
        }
        self.assign_slot(&a.interface);
    }

    /// Gives `iface` a counter slot and points its `IFSLOT` entry at it.
    fn assign_slot(&mut self, iface: &str) {
        let Some(ifindex) = attach::interface_index(iface) else {
            return;
        };
        let slot = if let Some(&s) = self.slots.get(iface) {
            s
        } else {
            let Some(free) = (1..MAX_SLOTS).find(|s| !self.slots.values().any(|v| v == s)) else {
                tracing::warn!(interface = %iface, "no counter slot left; counted as interface=\"other\"");
                return;
            };
            // A slot new to this interface starts its match counters from zero.
            if let Err(e) = self
                .ebpf
                .map_mut(MAP_MATCH_COUNTS)
                .context("MATCH_COUNTS map")
                .and_then(|m| maps::clear_match_counts(m, free))
            {
                tracing::error!(interface = %iface, error = %format!("{e:#}"), "cannot clear the match counters");
            }
            self.slots.insert(iface.to_owned(), free);
            free
        };
        if let Err(e) = self.set_ifslot(iface, ifindex, slot) {
            tracing::error!(interface = %iface, error = %format!("{e:#}"), "cannot set the counter slot");
        }
    }

    fn set_ifslot(&mut self, iface: &str, ifindex: u32, slot: u32) -> Result<()> {
        let mut a: Array<&mut aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map_mut(MAP_IFSLOT).context("IFSLOT map")?)?;
        let idx = ifindex % IFSLOT_ENTRIES;
        let cur = a.get(&idx, 0)?;
        if cur.slot != 0
            && cur.ifindex != ifindex
            && attach::interface_index(&ifname(cur.ifindex)).is_some()
        {
            tracing::warn!(interface = %iface, other = %ifname(cur.ifindex),
                "interface index collides with another guarded interface; counted as interface=\"other\"");
            return Ok(());
        }
        a.set(idx, IfSlot { ifindex, slot }, 0)?;
        Ok(())
    }

    fn render_metrics(&self) -> Result<String> {
        let by_slot: HashMap<u32, &str> =
            self.slots.iter().map(|(n, s)| (*s, n.as_str())).collect();
        let packets = maps::stats_by_slot(self.stats_map()?)?
            .into_iter()
            .map(|(slot, h, s)| (by_slot.get(&slot).map_or("other", |n| n).to_owned(), h, s))
            .collect();
        let mut matches: Vec<(String, MatchKey, u64)> =
            maps::matches_of(self.ebpf.map(MAP_MATCHES).context("MATCHES map")?)?
                .into_iter()
                .map(|(k, n)| (ifname(k.ifindex), k, n))
                .collect();
        let counts = self
            .ebpf
            .map(MAP_MATCH_COUNTS)
            .context("MATCH_COUNTS map")?;
        for (iface, &slot) in &self.slots {
            for (hook, rule_id, outcome, n) in maps::match_counts_of(counts, slot)? {
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
            .map(|a| {
                let missing = self
                    .missing
                    .iter()
                    .any(|m| m.interface == a.interface && m.hook == a.hook);
                (a.interface.clone(), a.hook.name(), !missing)
            })
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
                    let n = self.unguarded.get(&(a.interface.clone(), a.hook));
                    (a.interface.clone(), a.hook.name(), n.copied().unwrap_or(0))
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
        let n = maps::flow_count(self.ebpf.map(maps::MAP_FLOWS).context("FLOWS map")?)?;
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
                    tracing::info!(interface = %a.interface, hook = a.hook.name(), "attached");
                }
                Outcome::Replaced => {
                    self.attached(&a);
                    tracing::info!(interface = %a.interface, hook = a.hook.name(),
                        "adopted the pinned link; program replaced atomically");
                }
                Outcome::ReplacedFilter => {
                    self.attached(&a);
                    tracing::info!(interface = %a.interface, hook = a.hook.name(),
                        "adopted the TC filter; program replaced atomically");
                }
                Outcome::Missing => {
                    tracing::warn!(interface = %a.interface, hook = a.hook.name(),
                        "interface does not exist; it will be guarded when it appears");
                    self.missing.push(a);
                }
            }
        }
        Ok(())
    }

    fn retry_missing(&mut self) {
        let mut still = Vec::new();
        for a in std::mem::take(&mut self.missing) {
            if attach::interface_index(&a.interface).is_none() {
                still.push(a);
                continue;
            }
            match attach::attach(&mut self.ebpf, &self.pins, &a) {
                Ok(Outcome::Missing) => still.push(a),
                Ok(outcome) => {
                    self.attached(&a);
                    tracing::info!(interface = %a.interface, hook = a.hook.name(), "interface appeared; attached");
                    if outcome == Outcome::Attached {
                        self.appeared(&a);
                    }
                }
                Err(e) => {
                    tracing::error!(interface = %a.interface, error = %format!("{e:#}"), "attaching failed");
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
        let Some(n) = packets_so_far(&a.interface, a.hook) else {
            return;
        };
        if n > 0 {
            tracing::warn!(interface = %a.interface, hook = a.hook.name(), packets = n,
                "the interface passed packets before the guard was attached; they were not scanned");
            *self
                .unguarded
                .entry((a.interface.clone(), a.hook))
                .or_default() += n;
        }
    }

    /// SIGHUP: an invalid file is rejected and the running policy stays.
    fn reload(&mut self) {
        let config = match file::load(&self.config_path) {
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
        let ids = match maps::apply(&mut self.ebpf, &config.kernel) {
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
        tracing::info!(digest = %format!("{:016x}", maps::digest(&self.config.kernel)), "policy reloaded");
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
                    interface = %ifname(ifindex),
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
                interface = %ifname(ifindex),
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

/// Packets `iface` has sent (TC egress) or received (XDP, TC ingress) since it was
/// created, from `/proc/net/dev`, which shows this process's network namespace.
fn packets_so_far(iface: &str, hook: file::Hook) -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let (_, counters) = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim() == iface)?;
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
    // packets …
    let field = if hook == file::Hook::TcEgress { 9 } else { 1 };
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
