//! What leakguard needs from the running kernel, checked before anything is loaded: a
//! kernel that lacks a piece gets one line naming it and the Linux version that brought
//! it, instead of a verifier log. Probed, not inferred from the version number:
//! distribution kernels carry features their version predates.

use anyhow::{bail, Result};
use aya::{
    maps::MapType,
    programs::{ProgramType, SchedClassifier, TcAttachType},
    sys::{is_helper_supported, is_map_supported, BpfHelper},
};

/// One requirement: what it is called, the Linux version that brought it, and its probe.
struct Need {
    what: &'static str,
    since: &'static str,
    present: fn() -> Result<bool>,
}

/// A helper both program types call.
macro_rules! helper {
    ($what:literal, $since:literal, $helper:ident, [$($ty:ident),+]) => {
        Need {
            what: $what,
            since: $since,
            present: || {
                Ok($(is_helper_supported(ProgramType::$ty, BpfHelper::$helper)?)&&+)
            },
        }
    };
}

macro_rules! map {
    ($what:literal, $since:literal, $ty:ident) => {
        Need {
            what: $what,
            since: $since,
            present: || Ok(is_map_supported(MapType::$ty)?),
        }
    };
}

/// Everything the programs and the daemon rely on, oldest first.
const NEEDS: &[Need] = &[
    map!("BPF LRU hash maps (the flow table)", "4.10", LruHash),
    map!(
        "BPF LPM trie maps (allowlists, number prefixes)",
        "4.11",
        LpmTrie
    ),
    helper!(
        "the bpf_skb_pull_data helper",
        "4.9",
        BPF_FUNC_skb_pull_data,
        [SchedClassifier]
    ),
    Need {
        what: "BTF with global functions (the scanner's body is one)",
        since: "5.6",
        present: || {
            Ok(aya::features()
                .btf()
                .is_some_and(|b| b.btf_func() && b.btf_func_global()))
        },
    },
    map!("the BPF ring buffer (match events)", "5.8", RingBuf),
    helper!(
        "the bpf_ringbuf_query helper",
        "5.8",
        BPF_FUNC_ringbuf_query,
        [SchedClassifier, Xdp]
    ),
    helper!(
        "the bpf_loop helper (the scan loop)",
        "5.17",
        BPF_FUNC_loop,
        [SchedClassifier, Xdp]
    ),
    helper!(
        "the bpf_xdp_load_bytes helper",
        "5.18",
        BPF_FUNC_xdp_load_bytes,
        [Xdp]
    ),
    helper!(
        "the bpf_xdp_store_bytes helper",
        "5.18",
        BPF_FUNC_xdp_store_bytes,
        [Xdp]
    ),
    helper!(
        "the bpf_xdp_get_buff_len helper",
        "5.18",
        BPF_FUNC_xdp_get_buff_len,
        [Xdp]
    ),
];

/// The oldest Linux with everything in `NEEDS`.
pub const MIN_LINUX: &str = "5.18";

/// Fails with one line naming the first requirement this kernel lacks.
pub fn check() -> Result<()> {
    for n in NEEDS {
        let present = (n.present)().map_err(|e| refused(n.what, &e, seccomp_filtered()))?;
        if !present {
            bail!(
                "this kernel ({}) lacks {}, which leakguard needs (Linux {} or newer; \
                 leakguard needs Linux {MIN_LINUX} or newer)",
                release(),
                n.what,
                n.since
            );
        }
    }
    Ok(())
}

/// The line for a probe the kernel refused (`e` with its cause: the errno says why). A
/// process under a seccomp filter is told what refuses it there: the container runtimes'
/// default profiles (Docker's, containerd's, Podman's) allow bpf(2) only with
/// CAP_SYS_ADMIN, so with CAP_BPF alone every call fails with EPERM before the kernel
/// looks at capabilities.
fn refused(what: &str, e: &anyhow::Error, seccomp: bool) -> anyhow::Error {
    let mut line = format!("probing the kernel for {what}: {e:#}");
    if seccomp {
        line.push_str(
            "; this process runs under a seccomp filter, which may refuse bpf(2): a \
             container runtime's default profile allows it only with CAP_SYS_ADMIN; run \
             leakguard with a profile that allows bpf and perf_event_open (Kubernetes: \
             securityContext.seccompProfile Unconfined or Localhost; podman: --security-opt \
             seccomp=...)",
        );
    }
    anyhow::anyhow!(line)
}

/// True when a seccomp filter applies to this process (`Seccomp: 2` in its status).
fn seccomp_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .is_some_and(|v| v.trim() == "2")
    })
}

/// How TC programs are attached on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcMode {
    /// TCX links (Linux 6.6): pinned, updated atomically, owned by leakguard alone.
    Tcx,
    /// A cls_bpf filter in direct-action mode on a clsact qdisc, through netlink: what
    /// kernels before TCX have.
    Netlink,
}

/// TCX when the kernel has it. Asked with a query of the loopback interface's TCX
/// programs, which attaches nothing: kernels without TCX refuse the attach type.
/// Probed once per process.
#[must_use]
pub fn tc_mode() -> TcMode {
    static MODE: std::sync::OnceLock<TcMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(
        || match SchedClassifier::query_tcx("lo", TcAttachType::Ingress) {
            Ok(_) => TcMode::Tcx,
            Err(_) => TcMode::Netlink,
        },
    )
}

/// The running kernel's release (`uname -r`).
#[must_use]
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "release unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_probe_names_its_cause_and_under_seccomp_the_profile() {
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EPERM))
            .context("`bpf_map_create` failed");
        let plain = refused("BPF LRU hash maps", &e, false).to_string();
        assert!(plain.contains("Operation not permitted"), "{plain}");
        assert!(!plain.contains("seccomp"), "{plain}");
        let filtered = refused("BPF LRU hash maps", &e, true).to_string();
        assert!(
            filtered.contains("seccomp filter") && filtered.contains("CAP_SYS_ADMIN"),
            "{filtered}"
        );
        assert!(!filtered.contains('\n'), "one line: {filtered}");
    }
}
