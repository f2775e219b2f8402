//! Pinning the calling thread to one CPU: a test run executes on its caller's CPU, so
//! timings and per-CPU map contents are only comparable from a thread that stays put.

use anyhow::{ensure, Result};

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity get
    // valid pointers to it, for this thread (pid 0).
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    ensure!(
        r == 0,
        "pinning to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Pins the calling thread to the CPU it runs on now.
pub fn pin_here() -> Result<()> {
    // SAFETY: no arguments; returns the CPU or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    ensure!(
        cpu >= 0,
        "sched_getcpu: {}",
        std::io::Error::last_os_error()
    );
    pin(cpu as usize)
}
