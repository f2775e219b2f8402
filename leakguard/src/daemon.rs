//! `leakguard run`: load, apply the policy, attach (or adopt), then serve: match events to
//! logs, SIGHUP reloads, interfaces attached when they appear. Stopping or crashing leaves
//! the guard attached and enforcing (everything is pinned).

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{MapData, RingBuf},
    Ebpf,
};
use leakguard_common::{action, hook, Event, FAMILY_IPV4};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    attach::{self, Outcome},
    maps::{self, MAP_EVENTS},
    pins::Pins,
    policy::file::{self, Attach, Config},
};

/// How often missing interfaces are looked for and events are drained and logged.
const TICK: Duration = Duration::from_secs(1);

pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("leakguard needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN) to load and attach its programs");
    }
    Ok(())
}

struct Daemon {
    config_path: PathBuf,
    config: Config,
    pins: Pins,
    ebpf: Ebpf,
    /// Attach entries whose interface does not exist yet.
    missing: Vec<Attach>,
}

pub async fn run(config_path: &Path) -> Result<()> {
    let config = file::load(config_path).map_err(anyhow::Error::from)?;
    require_root()?;
    let pins = Pins::new(&config.pin_path);
    pins.prepare()?;
    let adopting = !pins.links()?.is_empty();
    let mut ebpf = attach::load(&pins)?;
    // The policy goes in before any link points at these programs.
    maps::apply(&mut ebpf, &config.kernel).context("writing the policy into the kernel maps")?;
    let mut d = Daemon {
        config_path: config_path.to_owned(),
        config,
        pins,
        ebpf,
        missing: Vec::new(),
    };
    d.attach_all()?;
    tracing::info!(
        rules = d.config.kernel.rules.len(),
        digest = %format!("{:016x}", maps::digest(&d.config.kernel)),
        adopted = adopting,
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
    loop {
        tokio::select! {
            _ = hup.recv() => d.reload(),
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                d.log_events(&mut events);
                d.retry_missing();
            }
        }
    }
    d.log_events(&mut events);
    tracing::info!("stopping; the guard stays attached (`leakguard detach` removes it)");
    Ok(())
}

impl Daemon {
    fn attach_all(&mut self) -> Result<()> {
        self.missing.clear();
        for a in self.config.attach.clone() {
            match attach::attach(&mut self.ebpf, &self.pins, &a)? {
                Outcome::Attached => {
                    tracing::info!(interface = %a.interface, hook = a.hook.name(), "attached")
                }
                Outcome::Replaced => tracing::info!(interface = %a.interface, hook = a.hook.name(),
                    "adopted the pinned link; program replaced atomically"),
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
                Ok(_) => {
                    tracing::info!(interface = %a.interface, hook = a.hook.name(), "interface appeared; attached")
                }
                Err(e) => {
                    tracing::error!(interface = %a.interface, error = %format!("{e:#}"), "attaching failed");
                    still.push(a);
                }
            }
        }
        self.missing = still;
    }

    /// SIGHUP: an invalid file is rejected and the running policy stays.
    fn reload(&mut self) {
        let config = match file::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the running policy stays");
                return;
            }
        };
        if config.pin_path != self.config.pin_path {
            tracing::error!("reload rejected: daemon.pin_path cannot change while running");
            return;
        }
        if let Err(e) = maps::apply(&mut self.ebpf, &config.kernel) {
            tracing::error!(error = %e, "reload rejected by the kernel maps; the running policy stays");
            return;
        }
        self.config = config;
        if let Err(e) = self.attach_all() {
            tracing::error!(error = %format!("{e:#}"), "attaching after reload failed");
        }
        tracing::info!(digest = %format!("{:016x}", maps::digest(&self.config.kernel)), "policy reloaded");
    }

    /// Logs the events of the last tick, one line per (interface, hook, destination,
    /// header, outcome) with a count: repeats are aggregated, never a value.
    fn log_events(&self, ring: &mut RingBuf<MapData>) {
        let mut agg: BTreeMap<(u32, u8, IpAddr, u32, u8), u64> = BTreeMap::new();
        while let Some(item) = ring.next() {
            if item.len() != size_of::<Event>() {
                continue;
            }
            // SAFETY: the kernel wrote an `Event` of this size.
            let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let dst = if e.family == FAMILY_IPV4 {
                IpAddr::from([e.daddr[0], e.daddr[1], e.daddr[2], e.daddr[3]])
            } else {
                IpAddr::from(e.daddr)
            };
            *agg.entry((e.ifindex, e.hook, dst, e.rule_id, e.action))
                .or_default() += 1;
        }
        for ((ifindex, h, dst, rule, outcome), n) in agg {
            let header = self
                .config
                .kernel
                .rules
                .get(rule as usize)
                .map_or("(unknown rule)", |r| r.header.as_str());
            tracing::info!(
                interface = %ifname(ifindex),
                hook = hook::name(h),
                destination = %dst,
                header,
                action = action::name(outcome),
                count = n,
                "identity header"
            );
        }
    }
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
