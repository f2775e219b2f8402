//! What `run` and `detach` need from the kernel, checked up front so that a missing
//! privilege is one clear line instead of an `EPERM` from deep inside a map creation.

use anyhow::{bail, Result};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process (`CapEff` in /proc/self/status).
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The capabilities missing from `caps` to load, pin and attach the guard (and, with
/// `setns`, to enter the network namespaces the policy names). CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as in the kernel.
#[must_use]
pub fn missing(caps: u64, setns: bool) -> Vec<&'static str> {
    let has = |c: u32| caps & (1 << c) != 0;
    let admin = has(CAP_SYS_ADMIN);
    let mut m = Vec::new();
    if setns && !admin {
        m.push("CAP_SYS_ADMIN");
    }
    if !has(CAP_BPF) && !admin {
        m.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !admin {
        m.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        m.push("CAP_NET_ADMIN");
    }
    m
}

/// True when this process may load BPF programs (CAP_BPF or CAP_SYS_ADMIN effective), or
/// when that cannot be told (then the kernel decides): what `audit` needs.
#[must_use]
pub fn may_load_bpf() -> bool {
    effective().is_none_or(|caps| caps & ((1 << CAP_BPF) | (1 << CAP_SYS_ADMIN)) != 0)
}

/// Fails, naming what is missing, unless this process may load and attach the guard
/// (and enter other network namespaces, with `setns`: an `[[attach]]` names one).
pub fn require(setns: bool) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(caps) = effective() else {
        // No /proc: let the kernel decide.
        return Ok(());
    };
    let m = missing(caps, setns);
    if m.is_empty() {
        return Ok(());
    }
    if m == ["CAP_SYS_ADMIN"] {
        bail!(
            "an [[attach]] entry names a network namespace, and entering one takes \
             CAP_SYS_ADMIN, which this process lacks: add it (the systemd drop-in \
             leakguard-netns.conf in /usr/share/doc/leakguard/examples does), or run the daemon \
             inside that namespace instead (systemd's NetworkNamespacePath=, or nsenter --net=)"
        );
    }
    let who = if root {
        "root, but without"
    } else {
        "not root, and without"
    };
    bail!(
        "leakguard needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN to load and attach its programs; \
         this process is {who} {}: run it as root, or through the systemd unit, which grants \
         exactly these",
        m.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_but_not_net_admin() {
        assert_eq!(
            missing(0, false),
            ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]
        );
        assert_eq!(missing(1 << CAP_SYS_ADMIN, false), ["CAP_NET_ADMIN"]);
        let unit = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN);
        assert!(missing(unit, false).is_empty());
        assert_eq!(missing(unit & !(1 << CAP_BPF), false), ["CAP_BPF"]);
        assert_eq!(
            missing(unit, true),
            ["CAP_SYS_ADMIN"],
            "entering a namespace"
        );
        assert!(missing(unit | (1 << CAP_SYS_ADMIN), true).is_empty());
    }
}
