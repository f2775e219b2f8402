//! `cargo xtask fuzz [--packets N] [--seconds S]`: the packet fuzzer of
//! `leakguard_tests::fuzz` at full size (a million packets by default, bounded in time).
//! Prints the report and writes it to `target/fuzz/report.txt`; exit 1 on a difference.

use std::time::Duration;

use leakguard_tests::{corpus::Rng, fuzz};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
        })
}

fn main() {
    let packets = arg("--packets", 1_000_000);
    let seconds = arg("--seconds", 1_800);
    let (mut rng, seed) = Rng::from_env();
    let report = fuzz::run(&mut rng, seed, packets, Duration::from_secs(seconds));
    println!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("report.txt"), format!("{report}\n"));
    if report.packets < packets {
        eprintln!("stopped by the time bound before {packets} packets");
        std::process::exit(1);
    }
}
