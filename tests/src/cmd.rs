//! Running a command that must succeed: one way for every test and tool, so that every
//! failure names the command and shows what it printed.

use std::process::{Command, Output};

use anyhow::{bail, Context as _, Result};

/// Runs `cmd`; an error, with what it printed, unless it exits 0.
pub fn checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{}", out.status, printed(&out).trim());
    }
    Ok(out)
}

/// What a command printed: stdout, then stderr.
#[must_use]
pub fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and returns what it printed (stdout, then stderr); panics unless it exits 0.
/// For tests, where a failed command is a failed test.
pub fn run(cmd: &mut Command) -> String {
    printed(&checked(cmd).unwrap_or_else(|e| panic!("{e:#}")))
}

/// `args[0]` run with the rest as its arguments, checked.
pub fn sh(args: &[&str]) -> Result<Output> {
    checked(Command::new(args[0]).args(&args[1..]))
}
