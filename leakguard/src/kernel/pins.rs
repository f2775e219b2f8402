//! The pinned state under `daemon.pin_path`, the source of truth across daemon restarts:
//!
//! ```text
//! PIN_PATH/maps/NAME        every map (policy, counters, events, scratch)
//! PIN_PATH/maps-next/NAME   a handover's new maps, while it runs (`handover`)
//! PIN_PATH/progs/NAME       the programs this daemon loaded (for inspection with bpftool)
//! PIN_PATH/links/IFACE@HOOK the attachment links: the guard stays while they are pinned
//!                           (NETNS:IFACE@HOOK for an interface of another network namespace)
//! PIN_PATH/filters/IFACE@HOOK on kernels without TCX, the program of leakguard's cls_bpf
//!                           filter on IFACE (the filter lives in the qdisc; this records it)
//! PIN_PATH/filters/IFACE@clsact  leakguard added IFACE's clsact qdisc (`detach` removes it)
//! ```

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::config::{Attach, Hook};

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub struct Pins {
    pub root: PathBuf,
    /// Where the maps are pinned: `maps/`, or `maps-next/` while a handover to maps of
    /// another layout is made (see `handover`).
    maps: PathBuf,
}

/// The maps of a handover in progress, beside the old ones (bpffs refuses names with a
/// dot).
const STAGING: &str = "maps-next";

impl Pins {
    #[must_use]
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            maps: root.join("maps"),
        }
    }

    /// The same pin path with the maps pinned under `maps-next/` (a handover's new maps).
    #[must_use]
    pub fn staging(&self) -> Self {
        Self {
            root: self.root.clone(),
            maps: self.root.join(STAGING),
        }
    }

    #[must_use]
    pub fn maps_dir(&self) -> PathBuf {
        self.maps.clone()
    }

    #[must_use]
    pub fn progs_dir(&self) -> PathBuf {
        self.root.join("progs")
    }

    #[must_use]
    pub fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    #[must_use]
    pub fn filters_dir(&self) -> PathBuf {
        self.root.join("filters")
    }

    /// The record of leakguard's cls_bpf filter for attach entry `a`.
    #[must_use]
    pub fn filter(&self, a: &Attach) -> PathBuf {
        self.filters_dir()
            .join(format!("{}@{}", a.label(), a.hook.name()))
    }

    /// Present when leakguard added the clsact qdisc of `a`'s interface.
    #[must_use]
    pub fn clsact(&self, a: &Attach) -> PathBuf {
        self.filters_dir().join(format!("{}@{CLSACT}", a.label()))
    }

    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    /// The link of attach entry `a`: `IFACE@HOOK`, or `NETNS:IFACE@HOOK` for an interface
    /// of another network namespace (`Attach::label`).
    #[must_use]
    pub fn link(&self, a: &Attach) -> PathBuf {
        self.links_dir()
            .join(format!("{}@{}", a.label(), a.hook.name()))
    }

    /// True when a previous run left state here.
    #[must_use]
    pub fn exists(&self) -> bool {
        self.maps_dir().is_dir()
    }

    /// Makes sure the pin path is on the host's bpffs (mounting one at /sys/fs/bpf if
    /// none is, in the mount namespace the daemon was started in) and creates the
    /// directories, readable by root only.
    ///
    /// Never pins where the pins cannot outlive this process: a private mount namespace
    /// (`ip netns exec` makes one) has no bpffs, or one of its own, which vanishes with
    /// it, and every pinned link with it. That is refused, before anything is attached.
    pub fn prepare(&self) -> Result<()> {
        let top = Path::new("/sys/fs/bpf");
        let private = private_mount_ns();
        let refuse = |why: &str| {
            anyhow::anyhow!(
                "daemon.pin_path {}: this process runs in a private mount namespace (as `ip \
                 netns exec` gives one), {why}: its pins, and the guard with them, would vanish \
                 with it. Run the daemon in the host's mount namespace and name the interface's \
                 network namespace in the policy ([[attach]] netns = \"NAME\"), or enter only \
                 the network namespace (nsenter --net=/run/netns/NAME, or systemd's \
                 NetworkNamespacePath=)",
                self.root.display()
            )
        };
        if self.root.starts_with(top) && !is_bpffs(top)? {
            if private == Some(true) {
                return Err(refuse("which has no BPF filesystem of the host's"));
            }
            mount_bpffs(top)?;
            tracing::info!(path = %top.display(), "no BPF filesystem was mounted; mounted one");
        }
        if private == Some(true) && same_fs_as_host(&self.root) == Some(false) {
            return Err(refuse("whose BPF filesystem is its own, not the host's"));
        }
        for dir in [
            &self.root,
            &self.maps_dir(),
            &self.progs_dir(),
            &self.links_dir(),
            &self.filters_dir(),
        ] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", dir.display()))?;
        }
        if !is_bpffs(&self.root)? {
            bail!(
                "daemon.pin_path {} is not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)",
                self.root.display()
            );
        }
        Ok(())
    }

    /// True when something is pinned for an interface of another network namespace.
    pub fn namespaced(&self) -> Result<bool> {
        Ok(self
            .links()?
            .iter()
            .chain(self.filters()?.iter())
            .chain(self.clsacts()?.iter())
            .any(|(a, _)| a.netns.is_some()))
    }

    /// The pinned links: (attach entry, path).
    pub fn links(&self) -> Result<Vec<(Attach, PathBuf)>> {
        attachments(&self.links_dir())
    }

    /// The recorded cls_bpf filters: (attach entry, path).
    pub fn filters(&self) -> Result<Vec<(Attach, PathBuf)>> {
        attachments(&self.filters_dir())
    }

    /// Interfaces whose clsact qdisc leakguard added: (an attach entry of the interface,
    /// its hook meaningless; path of the record).
    pub fn clsacts(&self) -> Result<Vec<(Attach, PathBuf)>> {
        Ok(entries(&self.filters_dir())?
            .into_iter()
            .filter_map(|(name, path)| {
                let (label, what) = name.rsplit_once('@')?;
                (what == CLSACT).then(|| (Attach::from_label(label, Hook::TcEgress), path))
            })
            .collect())
    }
}

/// The record name of a clsact qdisc leakguard added.
const CLSACT: &str = "clsact";

/// `LABEL@HOOK` entries of `dir`, sorted.
fn attachments(dir: &Path) -> Result<Vec<(Attach, PathBuf)>> {
    let mut out: Vec<_> = entries(dir)?
        .into_iter()
        .filter_map(|(name, path)| {
            let (label, hook) = name.rsplit_once('@')?;
            Some((Attach::from_label(label, Hook::from_name(hook)?), path))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    Ok(out)
}

/// Whether this process was given a mount namespace of its own: one that differs from
/// its parent's (`ip netns exec`, `unshare -m`, a systemd sandbox). None: cannot tell
/// (no parent in sight, as in a container).
fn private_mount_ns() -> Option<bool> {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if parent <= 0 {
        return None;
    }
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    let theirs = std::fs::read_link(format!("/proc/{parent}/ns/mnt")).ok()?;
    Some(ours != theirs)
}

/// Whether `path` (its nearest existing ancestor) is on the same filesystem as the same
/// place seen from the parent process's root: a systemd sandbox sees the host's bpffs,
/// a bpffs mounted in a private namespace is another (None: cannot tell).
fn same_fs_as_host(path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let ours = std::fs::metadata(p).ok()?.dev();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let host = Path::new(&format!("/proc/{parent}/root")).join(p.strip_prefix("/").unwrap_or(p));
    match std::fs::metadata(host) {
        Ok(m) => Some(m.dev() == ours),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

fn is_bpffs(path: &Path) -> Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statfs on a valid C string with a zeroed out-struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::NotFound {
            return Ok(false);
        }
        return Err(e).with_context(|| format!("statfs {}", path.display()));
    }
    Ok(st.f_type == BPF_FS_MAGIC)
}

fn mount_bpffs(at: &Path) -> Result<()> {
    let target = CString::new(at.as_os_str().as_bytes())?;
    // SAFETY: plain mount(2) with valid C strings.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        bail!(
            "no BPF filesystem at {} and mounting one failed: {e} (run as root, or mount -t bpf bpf {})",
            at.display(),
            at.display()
        );
    }
    Ok(())
}
