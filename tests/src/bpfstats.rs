//! The kernel's run-time accounting of BPF programs (`kernel.bpf_stats_enabled`). While it
//! is on, every program run also reads the clock twice: the benchmark's `BPF_PROG_TEST_RUN`
//! timings then measure the accounting as much as the program (on this machine the empty
//! programs went from 10-15 ns to 90-130 ns). The parts that time test runs need it off,
//! the parts that read the kernel's figures for real traffic need it on, and no part may
//! leave it changed, on any way out: a run that stopped half way once left it on, and
//! every later timing was wrong without a word.

use anyhow::{bail, Context as _, Result};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Whether the accounting is on (by the sysctl, or by a process holding a
/// `BPF_ENABLE_STATS` descriptor).
pub fn enabled() -> Result<bool> {
    let v = std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
    Ok(v.trim() != "0")
}

fn write(on: bool) -> Result<()> {
    std::fs::write(SYSCTL, if on { "1" } else { "0" })
        .with_context(|| format!("writing {SYSCTL} (as root?)"))
}

/// The accounting held on or off until dropped, then set back to what it was.
#[must_use = "the setting lasts as long as the value"]
pub struct Setting {
    /// What to write back on drop: `Some` only when this value changed it.
    restore: Option<bool>,
}

impl Setting {
    /// Turns the accounting `on` (or off) for as long as the value lives. Fails when it
    /// cannot be had: turning it off while another process holds it on through a
    /// `BPF_ENABLE_STATS` descriptor leaves it on.
    pub fn new(on: bool) -> Result<Self> {
        let was = enabled()?;
        let setting = Self {
            restore: (was != on).then_some(was),
        };
        if was != on {
            write(on)?;
        }
        if enabled()? != on {
            bail!(
                "kernel.bpf_stats_enabled stays {} after writing {}: another process holds \
                 the accounting on (BPF_ENABLE_STATS); timings would include it",
                u8::from(!on),
                u8::from(on)
            );
        }
        Ok(setting)
    }

    /// True when the accounting was not as asked before this value set it.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.restore.is_some()
    }
}

impl Drop for Setting {
    fn drop(&mut self) {
        if let Some(was) = self.restore {
            let _ = write(was);
        }
    }
}

/// For a tool that times test runs: the accounting off for its run, with one line when it
/// was on (left so by an interrupted run, or on purpose), restored after.
pub fn off_for_timing(tool: &str) -> Result<Setting> {
    let s = Setting::new(false)?;
    if s.changed() {
        eprintln!(
            "{tool}: kernel.bpf_stats_enabled was on, which adds the kernel's accounting to every \
             timed run; off for this run, back on after"
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setting holds what it was asked for and gives back what was there, nested too,
    /// and one that finds the accounting as asked changes nothing.
    #[test]
    fn a_setting_holds_and_restores() -> Result<()> {
        let before = enabled()?;
        {
            let flipped = Setting::new(!before)?;
            assert!(flipped.changed());
            assert_eq!(enabled()?, !before);
            {
                let same = Setting::new(!before)?;
                assert!(!same.changed());
                let back = Setting::new(before)?;
                assert!(back.changed());
                assert_eq!(enabled()?, before);
            }
            assert_eq!(
                enabled()?,
                !before,
                "the inner settings restore the outer one's"
            );
        }
        assert_eq!(enabled()?, before);
        Ok(())
    }
}
