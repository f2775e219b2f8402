//! Network namespaces of guarded interfaces. Gateways often route in a network
//! namespace; an `[[attach]]` entry may name one (`netns = "NAME"` for `/run/netns/NAME`,
//! or a path). The daemon itself stays in the host's namespaces, so its pins live on the
//! host's BPF filesystem and outlive it; every operation that names an interface of
//! another namespace (lookup, attach, filters, link events) runs on a short-lived thread
//! that has entered that namespace. Entering one takes CAP_SYS_ADMIN.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace as the policy names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetNs {
    /// As written in the file: a name under `/run/netns`, or an absolute path.
    pub name: String,
}

impl NetNs {
    /// The namespace file.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        if self.name.starts_with('/') {
            PathBuf::from(&self.name)
        } else {
            Path::new(NETNS_DIR).join(&self.name)
        }
    }

    /// The name in pin file names and metric labels: `/` and `%` percent-encoded, so
    /// that a path fits in one file name and decodes back ([`NetNs::from_label`]).
    #[must_use]
    pub fn label(&self) -> String {
        self.name
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace(':', "%3A")
            .replace('@', "%40")
    }

    #[must_use]
    pub fn from_label(label: &str) -> Self {
        Self {
            name: label
                .replace("%40", "@")
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%25", "%"),
        }
    }
}

/// Runs `f` in the network namespace `ns` (this thread's own when `None`): on a scoped
/// thread that enters it, so the caller's thread never changes namespace.
pub fn run_in<T: Send>(ns: Option<&NetNs>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let Some(ns) = ns else {
        return Ok(f());
    };
    let path = ns.path();
    let file = File::open(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {}: {e}", path.display()),
        )
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on this thread only, with a namespace fd we hold open.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("entering network namespace {}: {e}", path.display()),
                ));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| {
            io::Error::other(format!(
                "a thread in network namespace {} panicked",
                path.display()
            ))
        })?
    })
}

/// True when the namespace's file exists (it may be created after the daemon starts).
#[must_use]
pub fn exists(ns: Option<&NetNs>) -> bool {
    ns.is_none_or(|n| n.path().exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_fit_a_file_name() {
        for name in ["gw", "/run/netns/gw", "/var/run/x%y:z@w"] {
            let ns = NetNs { name: name.into() };
            let label = ns.label();
            assert!(!label.contains('/') && !label.contains(':') && !label.contains('@'));
            assert_eq!(NetNs::from_label(&label), ns);
        }
        assert_eq!(
            NetNs { name: "gw".into() }.path(),
            PathBuf::from("/run/netns/gw")
        );
    }
}
