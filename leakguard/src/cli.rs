//! Command line: subcommands, their help, and exit codes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::policy::file::DEFAULT_CONFIG;

/// Exit codes, as `--help` documents them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The policy file is invalid, or the command failed (the message says why).
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage.
    pub const USAGE: u8 = 2;
}

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 invalid policy or failure (the message says which); 2 bad usage.

Identity values (phone numbers, IMSIs, tracking IDs) never appear in leakguard's output,
logs, metrics or events: only header names, addresses and counts.";

/// Stops mobile subscriber identities (MSISDN, IMSI, tracking IDs) leaking to websites in
/// HTTP headers: eBPF programs on a gateway's interfaces count, redact or drop identity
/// headers per policy, with allowlists of trusted destinations.
#[derive(Parser)]
#[command(version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate a policy file and print the effective policy (file rules, then the built-in
    /// catalog headers they do not override). Exit 0 when valid, 1 when not.
    #[command(after_help = "Example:\n  leakguard check-config /etc/leakguard/leakguard.toml")]
    CheckConfig {
        /// The policy file.
        path: PathBuf,
    },
    /// List the built-in catalog of identity headers: name, what it carries, where it is
    /// seen. Names match case-insensitively and with '_' equal to '-'.
    Headers,
}

/// The default policy path, for help texts.
#[must_use]
pub fn default_config() -> PathBuf {
    PathBuf::from(DEFAULT_CONFIG)
}
