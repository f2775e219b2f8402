//! Network namespaces and veth pairs for end-to-end tests, as RAII guards: whatever a
//! test does (panic included), its namespaces and interfaces are deleted on drop.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd::{checked, sh};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where named namespaces live, and the start of every name these tests give one (then
/// the owning process's pid and `-`).
pub(crate) const DIR: &str = "/run/netns";
pub(crate) const PREFIX: &str = "lg-";

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with loopback up. `tag` makes names readable in `ip netns`.
    pub fn new(tag: &str) -> Result<Self> {
        crate::stale::sweep_once();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{n}-{tag}", own_prefix());
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS…`
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `sysctl -qw SETTING` inside the namespace.
    pub fn sysctl(&self, setting: &str) -> Result<()> {
        checked(self.command("sysctl").args(["-qw", setting]))?;
        Ok(())
    }

    /// `ethtool -K IFNAME FEATURES…` inside the namespace: offloads on or off.
    pub fn ethtool(&self, ifname: &str, features: &[&str]) -> Result<()> {
        checked(self.command("ethtool").args(["-K", ifname]).args(features))?;
        Ok(())
    }

    /// A command inside the namespace (`ip netns exec`).
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it creates and
    /// interfaces it names are this namespace's. The caller's thread is unaffected.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let file = File::open(format!("{DIR}/{}", self.name))
            .with_context(|| format!("opening netns {}", self.name))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only, with a valid namespace fd.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns {}: {}", self.name, std::io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in netns {} panicked", self.name))?
        })
    }
}

impl Netns {
    /// Starts a thread that lives in this namespace and runs `f`.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let file = File::open(format!("{DIR}/{}", self.name))
            .with_context(|| format!("opening netns {}", self.name))?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a valid namespace fd.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {name}: {}", std::io::Error::last_os_error());
            }
            Ok(f())
        }))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// Deletes the named namespace, which deletes its interfaces (and the veth peers
/// elsewhere). True when `ip` says it did.
pub(crate) fn delete(name: &str) -> bool {
    Command::new("ip")
        .args(["netns", "del", name])
        .status()
        .is_ok_and(|s| s.success())
}

/// The start of the name of every namespace this process makes.
fn own_prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// Deletes every namespace this process made and has not dropped: for a signal handler,
/// where destructors do not run.
pub fn delete_own() {
    let prefix = own_prefix();
    for e in std::fs::read_dir(DIR).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            delete(&name);
        }
    }
}

/// Connects `a` and `b` with a veth pair named `a_if`/`b_if`, addresses in CIDR form.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> Result<()> {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    a.ip(&["addr", "add", a_addr, "dev", a_if])?;
    b.ip(&["addr", "add", b_addr, "dev", b_if])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}
