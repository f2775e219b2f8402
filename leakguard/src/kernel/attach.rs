//! Attaching, adopting what a previous run left, detaching.
//!
//! The guard never has a gap: links are pinned, so they outlive the daemon; a new daemon
//! replaces the program of an existing link in one `BPF_LINK_UPDATE`, never detaching first.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::{
    programs::{
        links::{FdLink, LinkOrder, PinnedLink},
        tc::{qdisc_add_clsact, NlOptions, SchedClassifierLink, TcAttachOptions, TcError},
        xdp::XdpLink,
        Link as _, SchedClassifier, TcAttachType, Xdp, XdpMode,
    },
    Ebpf,
};

use super::{
    features::{self, TcMode},
    maps::ALL_MAPS,
    netns,
    object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
    pins::Pins,
    tc_filter,
};
use crate::config::{Attach, Hook};

/// What happened to one `[[attach]]` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new link, now pinned.
    Attached,
    /// A pinned link from a previous run now runs this binary's program.
    Replaced,
    /// leakguard's TC filter from a previous run (kernels without TCX) now runs this
    /// binary's program.
    ReplacedFilter,
    /// The interface does not exist (yet).
    Missing,
}

/// The index of interface `name` in this thread's network namespace: `Ok(None)` when
/// there is no such interface, an error when the lookup itself failed.
///
/// Asking takes a socket, which can fail (out of descriptors, memory, permission): that
/// says nothing about the interface, so only the kernel's "no such device" is `None`.
/// This is `if_nametoindex(3)` by hand because glibc's reports a failed socket as ENOENT
/// (from its probing of /proc), which would hide EMFILE from the operator.
pub fn interface_index(name: &str) -> std::io::Result<Option<u32>> {
    let Some(req) = ask_interface(name, libc::SIOCGIFINDEX)? else {
        return Ok(None);
    };
    // SAFETY: SIOCGIFINDEX succeeded: the union holds the index.
    let i = unsafe { req.ifr_ifru.ifru_ifindex };
    Ok(u32::try_from(i).ok().filter(|&i| i != 0))
}

/// The link type (`ARPHRD_*`) of interface `name` in this thread's network namespace;
/// `Ok(None)` when there is no such interface.
pub fn link_type(name: &str) -> std::io::Result<Option<u16>> {
    let Some(req) = ask_interface(name, libc::SIOCGIFHWADDR)? else {
        return Ok(None);
    };
    // SAFETY: SIOCGIFHWADDR succeeded: the union holds the hardware address.
    Ok(Some(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family }))
}

/// An `ioctl` on interface `name` that fills an `ifreq`: `Ok(None)` for "no such device".
fn ask_interface(name: &str, request: libc::Ioctl) -> std::io::Result<Option<libc::ifreq>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: an all-zero ifreq is valid (an empty name, a zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains('\0') {
        return Ok(None);
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor socket(2) just returned, owned here alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the request reads the NUL-terminated name and writes into `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) } < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV | libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(req))
}

/// Refuses an interface whose frames are not Ethernet (a tun, WireGuard, GRE or IPIP
/// tunnel, PPP, a raw-IP modem, loopback): the programs parse Ethernet headers, so there
/// they would see every packet and read no request, a guard in name only.
fn require_ethernet(a: &Attach) -> Result<()> {
    let Some(t) =
        link_type(&a.interface).with_context(|| format!("looking up interface {}", a.interface))?
    else {
        return Ok(());
    };
    if t == libc::ARPHRD_ETHER {
        return Ok(());
    }
    let kind = match t {
        libc::ARPHRD_NONE => "none: a tun or WireGuard device",
        libc::ARPHRD_LOOPBACK => "loopback",
        libc::ARPHRD_PPP => "PPP",
        libc::ARPHRD_IPGRE | 823 => "a GRE tunnel",
        libc::ARPHRD_TUNNEL | libc::ARPHRD_TUNNEL6 | libc::ARPHRD_SIT => "an IP tunnel",
        _ => "not Ethernet",
    };
    anyhow::bail!(
        "{} ({}): link type {t} ({kind}): leakguard reads Ethernet frames and would read no \
         request there; attach it to the Ethernet interface the traffic leaves by",
        a.label(),
        a.hook.name()
    )
}

/// The index of `a`'s interface in its network namespace: `Ok(None)` when it (or its
/// namespace) does not exist, an error when the namespace cannot be entered or the
/// lookup failed (then nothing is known about the interface).
pub fn entry_index(a: &Attach) -> std::io::Result<Option<u32>> {
    if !netns::exists(a.netns.as_ref()) {
        return Ok(None);
    }
    netns::run_in(a.netns.as_ref(), || interface_index(&a.interface))?
}

/// Attaches the guard per `a`, or adopts the link (or filter) a previous run left: in
/// `a`'s network namespace; the pins stay on this process's BPF filesystem.
pub fn attach(ebpf: &mut Ebpf, pins: &Pins, a: &Attach) -> Result<Outcome> {
    if !netns::exists(a.netns.as_ref()) {
        return Ok(Outcome::Missing);
    }
    netns::run_in(a.netns.as_ref(), || attach_here(ebpf, pins, a))?
}

fn attach_here(ebpf: &mut Ebpf, pins: &Pins, a: &Attach) -> Result<Outcome> {
    require_ethernet(a)?;
    if a.hook != Hook::Xdp && features::tc_mode() == TcMode::Netlink {
        return attach_filter(ebpf, pins, a);
    }
    let path = pins.link(a);
    if path.exists() {
        match replace(ebpf, &path, a.hook) {
            Ok(()) => return Ok(Outcome::Replaced),
            Err(e) => {
                // The interface went away while nobody watched: its link is defunct.
                tracing::warn!(interface = %a.interface, hook = a.hook.name(), error = %format!("{e:#}"),
                    "pinned link cannot be updated; attaching anew");
                if let Ok(p) = PinnedLink::from_pin(&path) {
                    let _ = p.unpin();
                }
            }
        }
    }
    if interface_index(&a.interface)
        .with_context(|| format!("looking up interface {}", a.interface))?
        .is_none()
    {
        return Ok(Outcome::Missing);
    }
    let link: FdLink = match a.hook {
        Hook::TcEgress | Hook::TcIngress => {
            let (name, ty) = tc_program(a.hook);
            let p: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
            let id = p
                .attach_with_options(
                    &a.interface,
                    ty,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .with_context(|| format!("attaching TCX {} on {}", a.hook.name(), a.interface))?;
            p.take_link(id)?.try_into()?
        }
        Hook::Xdp => {
            let p: &mut Xdp = ebpf.program_mut(PROG_XDP).context(PROG_XDP)?.try_into()?;
            let id = match p.attach(&a.interface, XdpMode::Driver) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(interface = %a.interface, error = %e,
                        "native XDP unavailable; using generic (skb) mode");
                    p.attach(&a.interface, XdpMode::Skb)
                        .with_context(|| format!("attaching XDP on {}", a.interface))?
                }
            };
            p.take_link(id)?.try_into()?
        }
    };
    link.pin(&path)
        .with_context(|| format!("pinning the link at {}", path.display()))?;
    Ok(Outcome::Attached)
}

/// On a kernel without TCX: leakguard's cls_bpf filter (`tc_filter`) on the hook's clsact
/// parent, made or, when a previous run left it, given this binary's program in place.
fn attach_filter(ebpf: &mut Ebpf, pins: &Pins, a: &Attach) -> Result<Outcome> {
    let Some(ifindex) = interface_index(&a.interface)
        .with_context(|| format!("looking up interface {}", a.interface))?
    else {
        return Ok(Outcome::Missing);
    };
    let (name, ty) = tc_program(a.hook);
    let what = || format!("cls_bpf {} on {}", a.hook.name(), a.interface);
    let existing = tc_filter::ours(ifindex, tc_filter::parent(ty))
        .with_context(|| format!("reading the TC filters of {}", a.interface))?;
    let p: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
    let outcome = if existing.is_some() {
        // The same priority and handle: cls_bpf swaps the filter's program atomically.
        let link = SchedClassifierLink::attached(
            &a.interface,
            ty,
            tc_filter::PRIORITY,
            tc_filter::HANDLE,
            None,
        )?;
        let id = p
            .attach_to_link(link)
            .with_context(|| format!("replacing the program of {}", what()))?;
        // The filter belongs to the qdisc, not to this process: never detach it on drop.
        std::mem::forget(p.take_link(id)?);
        Outcome::ReplacedFilter
    } else {
        match qdisc_add_clsact(&a.interface) {
            Ok(()) => pin_record(p, &pins.clsact(a))?,
            Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("adding a clsact qdisc to {}", a.interface))
            }
        }
        let id = p
            .attach_with_options(
                &a.interface,
                ty,
                TcAttachOptions::Netlink(NlOptions {
                    priority: tc_filter::PRIORITY,
                    handle: tc_filter::HANDLE,
                    classid: None,
                }),
            )
            .with_context(|| format!("attaching {} (priority {})", what(), tc_filter::PRIORITY))?;
        std::mem::forget(p.take_link(id)?);
        Outcome::Attached
    };
    pin_record(p, &pins.filter(a))?;
    Ok(outcome)
}

/// Pins `p` at `path` (replacing what is there): the record of a filter or qdisc, which
/// are not BPF objects and cannot be pinned themselves.
fn pin_record(p: &mut SchedClassifier, path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    p.pin(path)
        .with_context(|| format!("recording at {}", path.display()))
}

fn tc_program(hook: Hook) -> (&'static str, TcAttachType) {
    match hook {
        Hook::TcIngress => (PROG_TC_INGRESS, TcAttachType::Ingress),
        _ => (PROG_TC_EGRESS, TcAttachType::Egress),
    }
}

/// Points the pinned link at this binary's program: one atomic link update.
fn replace(ebpf: &mut Ebpf, path: &Path, hook: Hook) -> Result<()> {
    // Converting keeps the pin: the link stays attached whatever happens to this fd.
    let fd_link = FdLink::from(PinnedLink::from_pin(path)?);
    match hook {
        Hook::TcEgress | Hook::TcIngress => {
            let (name, _) = tc_program(hook);
            let link = SchedClassifierLink::try_from(fd_link)?;
            let p: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
            let id = p.attach_to_link(link)?;
            drop(p.take_link(id)?);
        }
        Hook::Xdp => {
            let link = XdpLink::try_from(fd_link)?;
            let p: &mut Xdp = ebpf.program_mut(PROG_XDP).context(PROG_XDP)?.try_into()?;
            let id = p.attach_to_link(link)?;
            drop(p.take_link(id)?);
        }
    }
    Ok(())
}

/// Removes every pinned link (detaching the guard) and the map pins. Returns what was
/// removed, for the operator.
pub fn detach_all(pins: &Pins) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    // Filters first: one that cannot be reached stops the detach before anything else
    // is removed.
    for (a, path) in pins.filters()? {
        removed.push(netns::run_in(a.netns.as_ref(), || detach_filter(&a))??);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    for (a, path) in pins.clsacts()? {
        removed.push(netns::run_in(a.netns.as_ref(), || remove_clsact(&a))??);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    for (a, path) in pins.links()? {
        let link =
            PinnedLink::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        // Unpinning drops the last reference: the kernel detaches the program.
        drop(
            link.unpin()
                .with_context(|| format!("unpinning {}", path.display()))?,
        );
        removed.push(format!("detached {} from {}", a.hook.name(), a.label()));
    }
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP] {
        let p = pins.progs_dir().join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            removed.push(format!("removed program pin {}", p.display()));
        }
    }
    for name in ALL_MAPS {
        let p = pins.map(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            removed.push(format!("removed map pin {}", p.display()));
        }
    }
    // A handover that stopped half way left its new maps beside the old ones.
    let staging = pins.staging().maps_dir();
    if staging.is_dir() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
        removed.push(format!("removed {}", staging.display()));
    }
    for dir in [
        pins.links_dir(),
        pins.filters_dir(),
        pins.progs_dir(),
        pins.maps_dir(),
        pins.root.clone(),
    ] {
        if dir.is_dir() && std::fs::remove_dir(&dir).is_ok() {
            removed.push(format!("removed {}", dir.display()));
        }
    }
    Ok(removed)
}

/// Removes leakguard's cls_bpf filter of `a` (run in `a`'s network namespace), if it is
/// still there. A filter belongs to its interface's namespace: for an entry without one,
/// an interface this process cannot see may live in another, so that is an error, and the
/// record stays for a `detach` where it lives.
fn detach_filter(a: &Attach) -> Result<String> {
    let (_, ty) = tc_program(a.hook);
    let (label, hook) = (a.label(), a.hook.name());
    let Some(ifindex) =
        interface_index(&a.interface).with_context(|| format!("looking up interface {label}"))?
    else {
        if a.netns.is_some() {
            return Ok(format!(
                "{hook} filter of {label}: the interface is gone, and its filter with it"
            ));
        }
        anyhow::bail!(
            "interface {label} is not visible from this network namespace: its {hook} filter \
             stays (run `leakguard detach` in the interface's namespace, e.g. with \
             nsenter --net=/run/netns/NAME); nothing was removed"
        );
    };
    if tc_filter::ours(ifindex, tc_filter::parent(ty))?.is_none() {
        return Ok(format!("{hook} filter of {label}: already gone"));
    }
    SchedClassifierLink::attached(
        &a.interface,
        ty,
        tc_filter::PRIORITY,
        tc_filter::HANDLE,
        None,
    )?
    .detach()
    .with_context(|| format!("removing the cls_bpf {hook} filter of {label}"))?;
    Ok(format!("detached {hook} (cls_bpf filter) from {label}"))
}

/// Removes the clsact qdisc leakguard added to `a`'s interface (run in its network
/// namespace), unless filters of others are on it now: then it stays, and the line says
/// so.
fn remove_clsact(a: &Attach) -> Result<String> {
    let label = a.label();
    let Some(ifindex) =
        interface_index(&a.interface).with_context(|| format!("looking up interface {label}"))?
    else {
        return Ok(format!("clsact qdisc of {label}: the interface is gone"));
    };
    let mut others = tc_filter::filters(ifindex, tc_filter::parent(TcAttachType::Ingress))?;
    others.extend(tc_filter::filters(
        ifindex,
        tc_filter::parent(TcAttachType::Egress),
    )?);
    if !others.is_empty() {
        return Ok(format!(
            "left the clsact qdisc leakguard added to {label}: {} other filter(s) use it",
            others.len()
        ));
    }
    match tc_filter::delete_clsact(ifindex) {
        Ok(()) => Ok(format!(
            "removed the clsact qdisc leakguard added to {label}"
        )),
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            Ok(format!("clsact qdisc of {label}: already gone"))
        }
        Err(e) => Err(e).with_context(|| format!("removing the clsact qdisc of {label}")),
    }
}
