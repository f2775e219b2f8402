//! The leakguard command. The daemon and its subcommands arrive with the daemon work;
//! for now the binary reports its version and the programs it embeds.
use clap::Parser;

/// Stops mobile subscriber identity headers (MSISDN, IMSI, tracking IDs) leaking to
/// websites, with eBPF programs on the gateway's HTTP egress.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "leakguard {}: eBPF object of {} bytes embedded",
        env!("CARGO_PKG_VERSION"),
        leakguard::object::EBPF_OBJECT.len()
    );
}
