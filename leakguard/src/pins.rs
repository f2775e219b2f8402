//! The pinned state under `daemon.pin_path`, the source of truth across daemon restarts:
//!
//! ```text
//! PIN_PATH/maps/NAME        every map (policy, counters, events, scratch)
//! PIN_PATH/progs/NAME       the programs this daemon loaded (for inspection with bpftool)
//! PIN_PATH/links/IFACE@HOOK the attachment links: the guard stays while they are pinned
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
        let mut out = Vec::new();
        let dir = match std::fs::read_dir(self.links_dir()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).context("listing pinned links"),
        };
        for entry in dir {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((iface, hook)) = name.rsplit_once('@') else {
                continue;
            };
            let hook = match hook {
                "tc-egress" => Hook::TcEgress,
                "tc-ingress" => Hook::TcIngress,
                "xdp" => Hook::Xdp,
                _ => continue,
            };
            out.push((iface.to_owned(), hook, entry.path()));
        }
        out.sort();
        Ok(out)
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
