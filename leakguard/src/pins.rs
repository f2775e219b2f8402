//! The pinned state under `daemon.pin_path`, the source of truth across daemon restarts:
//!
//! ```text
//! PIN_PATH/maps/NAME        every map (policy, counters, events, scratch)
//! PIN_PATH/progs/NAME       the programs this daemon loaded (for inspection with bpftool)
//! PIN_PATH/links/IFACE@HOOK the attachment links: the guard stays while they are pinned
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

use crate::policy::file::Hook;

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub struct Pins {
    pub root: PathBuf,
}

impl Pins {
    #[must_use]
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    #[must_use]
    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
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

    /// The record of leakguard's cls_bpf filter for `hook` on `interface`.
    #[must_use]
    pub fn filter(&self, interface: &str, hook: Hook) -> PathBuf {
        self.filters_dir()
            .join(format!("{interface}@{}", hook.name()))
    }

    /// Present when leakguard added `interface`'s clsact qdisc.
    #[must_use]
    pub fn clsact(&self, interface: &str) -> PathBuf {
        self.filters_dir().join(format!("{interface}@{CLSACT}"))
    }

    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    #[must_use]
    pub fn link(&self, interface: &str, hook: Hook) -> PathBuf {
        self.links_dir()
            .join(format!("{interface}@{}", hook.name()))
    }

    /// True when a previous run left state here.
    #[must_use]
    pub fn exists(&self) -> bool {
        self.maps_dir().is_dir()
    }

    /// Makes sure the pin path is on a bpffs (mounting one at /sys/fs/bpf if needed and
    /// allowed) and creates the directories, readable by root only.
    pub fn prepare(&self) -> Result<()> {
        let top = Path::new("/sys/fs/bpf");
        if self.root.starts_with(top) && !is_bpffs(top)? {
            mount_bpffs(top)?;
            tracing::info!(path = %top.display(), "no BPF filesystem was mounted; mounted one");
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

    /// The pinned links: (interface, hook, path).
    pub fn links(&self) -> Result<Vec<(String, Hook, PathBuf)>> {
        attachments(&self.links_dir())
    }

    /// The recorded cls_bpf filters: (interface, hook, path).
    pub fn filters(&self) -> Result<Vec<(String, Hook, PathBuf)>> {
        attachments(&self.filters_dir())
    }

    /// Interfaces whose clsact qdisc leakguard added: (interface, path of the record).
    pub fn clsacts(&self) -> Result<Vec<(String, PathBuf)>> {
        Ok(entries(&self.filters_dir())?
            .into_iter()
            .filter_map(|(name, path)| {
                let (iface, what) = name.rsplit_once('@')?;
                (what == CLSACT).then(|| (iface.to_owned(), path))
            })
            .collect())
    }
}

/// The record name of a clsact qdisc leakguard added.
const CLSACT: &str = "clsact";

/// `IFACE@HOOK` entries of `dir`, sorted.
fn attachments(dir: &Path) -> Result<Vec<(String, Hook, PathBuf)>> {
    let mut out: Vec<_> = entries(dir)?
        .into_iter()
        .filter_map(|(name, path)| {
            let (iface, hook) = name.rsplit_once('@')?;
            Some((iface.to_owned(), Hook::from_name(hook)?, path))
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
