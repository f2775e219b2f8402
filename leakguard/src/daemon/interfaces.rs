//! Keeping every `[[attach]]` entry attached as interfaces come and go: attached at the
//! start or when they appear (from link events of each network namespace, or the
//! once-a-tick recheck that stands in for lost ones), marked missing when they go, and a
//! cls_bpf filter someone removed put back.
//!
//! Only the kernel's "no such device" means an interface is gone. A lookup that fails
//! otherwise (out of file descriptors, memory, permission) says nothing about it: the
//! attachment stays as it is, and the failure is logged, at most once a minute.

use std::time::{Duration, Instant};

use std::collections::HashSet;

use anyhow::Result;

use super::Daemon;
use crate::{
    config::{Attach, Hook, NetNs},
    kernel::{
        attach::{self, Outcome},
        features, link_events, netns, tc_filter,
    },
};

/// Link events of one network namespace (`None`: the daemon's own), or the error that
/// lost some (then every interface is checked).
pub(super) type LinkMessage = (Option<NetNs>, std::io::Result<Vec<link_events::LinkEvent>>);

/// How often a failing interface lookup is logged: it is retried every tick.
const LOOKUP_LOG_EVERY: Duration = Duration::from_secs(60);

/// Failed interface lookups since the last line about them, and when that was.
#[derive(Default)]
pub(super) struct LookupErrors {
    logged: Option<Instant>,
    since: u64,
}

impl Daemon {
    /// Listens to the link events of every network namespace the policy names (and the
    /// daemon's own), where not yet: a namespace made after the start is picked up on
    /// a later call (every tick).
    pub(super) fn open_link_sockets(&mut self) {
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

    pub(super) fn on_link_events(&mut self, ns: Option<&NetNs>, events: &[link_events::LinkEvent]) {
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
    pub(super) fn lost(&mut self, ns: Option<&NetNs>, name: &str) {
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
    pub(super) fn recheck_interfaces(&mut self) {
        let mut gone = Vec::new();
        for (a, i) in self.attached_at.clone() {
            match attach::entry_index(&a) {
                Ok(found) if found != Some(i) => gone.push(a),
                Ok(_) => {}
                // A namespace that cannot be entered now, or a lookup that failed, is not
                // proof of anything: the attachment stays.
                Err(e) => self.lookup_failed(&a, &e),
            }
        }
        for a in gone {
            self.lost(a.netns.as_ref(), &a.interface);
        }
        // Attached, but the lookup right after could not tell the index: asked again.
        let untracked: Vec<Attach> = self
            .config
            .attach
            .iter()
            .filter(|a| !self.attached_at.contains_key(a) && !self.missing.contains(a))
            .cloned()
            .collect();
        for a in untracked {
            match attach::entry_index(&a) {
                Ok(Some(i)) => {
                    self.attached_at.insert(a.clone(), i);
                    self.assign_slot(&a, i);
                }
                // Gone since: attached again when it appears.
                Ok(None) => self.missing.push(a),
                Err(e) => self.lookup_failed(&a, &e),
            }
        }
        self.recheck_filters();
        self.retry_missing();
    }

    /// Logs a failed lookup of `a`'s interface, at most every `LOOKUP_LOG_EVERY`.
    pub(super) fn lookup_failed(&mut self, a: &Attach, e: &std::io::Error) {
        let l = &mut self.lookup_errors;
        l.since += 1;
        if l.logged.is_some_and(|t| t.elapsed() < LOOKUP_LOG_EVERY) {
            return;
        }
        tracing::error!(interface = %a.label(), hook = a.hook.name(), error = %e, failures = l.since,
            "looking the interface up failed; its attachment is kept as it is (retried every second, logged at most once a minute)");
        l.logged = Some(Instant::now());
        l.since = 0;
    }

    /// On kernels without TCX the guard is a cls_bpf filter, which anyone with
    /// CAP_NET_ADMIN can delete (`tc qdisc del dev IFACE clsact`): one found gone is
    /// said loudly and attached again.
    pub(super) fn recheck_filters(&mut self) {
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

    /// Bookkeeping after a successful attach: the interface index and counter slot.
    pub(super) fn attached(&mut self, a: &Attach) {
        match attach::entry_index(a) {
            Ok(Some(i)) => {
                self.attached_at.insert(a.clone(), i);
                self.assign_slot(a, i);
            }
            Ok(None) => {}
            Err(e) => self.lookup_failed(a, &e),
        }
    }
    pub(super) fn attach_all(&mut self) -> Result<()> {
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
        // Taking an entry out of the file does not take the guard off (nothing leaves
        // unguarded by an edit), but the operator who did it is told so.
        for a in self.unlisted().unwrap_or_default() {
            tracing::warn!(interface = %a.label(), hook = a.hook.name(),
                "not in [[attach]] but still guarded: a policy edit never removes the guard; `leakguard detach` (daemon stopped) removes it from every interface");
        }
        Ok(())
    }

    /// Pinned links and cls_bpf filters of entries the policy no longer names.
    fn unlisted(&self) -> Result<Vec<Attach>> {
        let listed: HashSet<(String, Hook)> = self
            .config
            .attach
            .iter()
            .map(|a| (a.label(), a.hook))
            .collect();
        Ok(self
            .pins
            .links()?
            .into_iter()
            .chain(self.pins.filters()?)
            .map(|(a, _)| a)
            .filter(|a| !listed.contains(&(a.label(), a.hook)))
            .collect())
    }

    /// A handover: every pinned link and cls_bpf filter of an entry the policy no longer
    /// names still runs the old programs on the old maps; they are switched too.
    pub(super) fn switch_unlisted(&mut self) -> Result<()> {
        for a in self.unlisted()? {
            let outcome = attach::attach(&mut self.ebpf, &self.pins, &a)?;
            tracing::info!(interface = %a.label(), hook = a.hook.name(), ?outcome,
                "switched a link the policy no longer names to the new programs");
        }
        Ok(())
    }

    pub(super) fn retry_missing(&mut self) {
        let mut still = Vec::new();
        for a in std::mem::take(&mut self.missing) {
            match attach::entry_index(&a) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    still.push(a);
                    continue;
                }
                Err(e) => {
                    self.lookup_failed(&a, &e);
                    still.push(a);
                    continue;
                }
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
    pub(super) fn appeared(&mut self, a: &Attach) {
        let Some(n) = packets_so_far(a) else {
            return;
        };
        if n > 0 {
            tracing::warn!(interface = %a.label(), hook = a.hook.name(), packets = n,
                "the interface passed packets before the guard was attached; they were not scanned");
            *self.unguarded.entry(a.clone()).or_default() += n;
        }
    }
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
