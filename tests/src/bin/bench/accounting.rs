//! The kernel's accounting of loaded programs (`kernel.bpf_stats_enabled`) and of map
//! memory (`memlock` in fdinfo), for the `segments`, `gso` and `e2e` parts.

use anyhow::{Context as _, Result};

/// The kernel keeps 15 bytes of a program's name.
fn kernel_name(p: &aya::programs::ProgramInfo, name: &str) -> bool {
    p.name_as_str()
        .is_some_and(|n| !n.is_empty() && name.starts_with(n) && n.len() >= name.len().min(15))
}

/// The kernel's accounting (`bpf_stats_enabled`) of a loaded program: (run ns, runs).
pub fn prog_stats(name: &str) -> Result<(u64, u64)> {
    let mut total = (0, 0);
    for p in aya::programs::loaded_programs().flatten() {
        if kernel_name(&p, name) {
            total.0 += p.run_time().as_nanos() as u64;
            total.1 += p.run_count();
        }
    }
    Ok(total)
}

/// Memory the kernel charges for the maps a loaded program uses.
pub fn prog_map_bytes(name: &str) -> Result<u64> {
    let mut bytes = 0;
    for p in aya::programs::loaded_programs().flatten() {
        if !kernel_name(&p, name) {
            continue;
        }
        for id in p.map_ids()?.unwrap_or_default() {
            let m = aya::maps::MapInfo::from_id(id)?;
            let fd = m.fd()?;
            use std::os::fd::{AsFd as _, AsRawFd as _};
            bytes += fdinfo_memlock(fd.as_fd().as_raw_fd())?;
        }
        break;
    }
    Ok(bytes)
}

pub fn fdinfo_memlock(fd: i32) -> Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .context("memlock in fdinfo")
}
