//! Command line: subcommands, their help, and exit codes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG;

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
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the guard: load the programs, write the policy into their maps, attach them to
    /// every [[attach]] interface (adopting a running guard without a gap), then log
    /// matches. SIGHUP reloads the policy file; stopping leaves the guard attached.
    #[command(after_help = "Example:\n  leakguard run --config /etc/leakguard/leakguard.toml")]
    Run {
        /// The policy file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Load the kernel programs from this BPF object instead of the ones built into
        /// the binary (a staged program upgrade: the running guard's links switch to it in
        /// one atomic update). The object must share this version's map layouts.
        #[arg(long, value_name = "FILE")]
        ebpf_object: Option<PathBuf>,
    },
    /// Show what is guarded, from the pinned state alone (works with the daemon stopped):
    /// interfaces and hooks, policy digest, counters per header and action. Exit 1 when
    /// nothing is pinned.
    Status {
        /// The policy file (for `daemon.pin_path`).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The pin path itself, instead of reading it from the policy file (for when the
        /// file is gone or broken).
        #[arg(long)]
        pin_path: Option<PathBuf>,
        /// `text` for people, `json` for config management and fleet tools (one object:
        /// attachments, policy_digest, counters, rules).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove the guard: detach every pinned link and remove the pinned maps. The only way
    /// the guard goes away; prints what it removed. Stop the daemon first (`systemctl stop
    /// leakguard`); taking an interface out of the policy file does not remove its guard.
    Detach {
        /// The policy file (for `daemon.pin_path`).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The pin path itself, instead of reading it from the policy file (for when the
        /// file is gone or broken).
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// Validate a policy file and print the effective policy (file rules, then the built-in
    /// catalog headers they do not override). Exit 0 when valid, 1 when not.
    #[command(after_help = "Example:\n  leakguard check-config /etc/leakguard/leakguard.toml")]
    CheckConfig {
        /// The policy file.
        path: PathBuf,
    },
    /// Replay a capture (pcap or pcapng) through the guard's kernel program under a policy,
    /// and report every identity header or number it finds: time, source, destination,
    /// header name and what the policy does. Heads spanning segments are followed. Never
    /// prints a value. Needs the privileges to load BPF programs (root); touches nothing
    /// that is attached or pinned.
    #[command(
        after_help = "Example:\n  leakguard audit --config /etc/leakguard/leakguard.toml gateway.pcapng\n  leakguard audit --format json capture.pcap | jq '.summary'"
    )]
    Audit {
        /// The policy file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Output: a table with a summary per header, or JSON.
        #[arg(long, value_enum, default_value_t = crate::audit::Format::Table)]
        format: crate::audit::Format,
        /// The capture (pcap or pcapng; Ethernet, Linux cooked, raw IP or loopback).
        capture: PathBuf,
    },
    /// List the built-in catalog of identity headers: name, what it carries, where it is
    /// seen. Names match case-insensitively and with '_' equal to '-'.
    Headers,
    /// Write man pages and shell completions (bash, zsh, fish) into a directory: used to
    /// build the Debian package.
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory (`man/` and `completions/` are created in it).
        out: PathBuf,
    },
}

/// Writes the man pages (one for `leakguard`, one per subcommand) and the completions.
pub fn generate_assets(out: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    let man = out.join("man");
    let comp = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let cmd = Cli::command();
    let write_page = |cmd: clap::Command, file: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).section("8").render(&mut buf)?;
        std::fs::write(man.join(file), buf)
    };
    write_page(cmd.clone(), "leakguard.8".into())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("leakguard-{}", sub.get_name());
        write_page(sub.clone().name(name.clone()), format!("{name}.8"))?;
    }
    for (shell, file) in [
        (clap_complete::Shell::Bash, "leakguard.bash"),
        (clap_complete::Shell::Zsh, "_leakguard"),
        (clap_complete::Shell::Fish, "leakguard.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "leakguard", &mut buf);
        std::fs::write(comp.join(file), buf)?;
    }
    Ok(())
}

/// The default policy path, for help texts.
#[must_use]
pub fn default_config() -> PathBuf {
    PathBuf::from(DEFAULT_CONFIG)
}

/// How `status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}
