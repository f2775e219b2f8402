//! Network namespaces of guarded interfaces. Gateways often route in a network
//! namespace; an `[[attach]]` entry may name one (`netns = "NAME"` for `/run/netns/NAME`,
//! or a path). The daemon itself stays in the host's namespaces, so its pins live on the
//! host's BPF filesystem and outlive it; every operation that names an interface of
//! another namespace (lookup, attach, filters, link events) runs on a short-lived thread
//! that has entered that namespace. Entering one takes CAP_SYS_ADMIN.

use std::{fs::File, io, os::fd::AsRawFd as _};

use crate::config::NetNs;

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
