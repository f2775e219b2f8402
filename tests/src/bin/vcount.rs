//! Verifier instructions of leakguard objects, as this kernel counts them:
//! `vcount OBJECT...` loads each object's programs (as root, with the default policy) and
//! prints what the verifier processed for each, or the first line of the refusal.
//!
//! The quick way to ask what a change costs a kernel's verifier, 6.1's above all (the
//! budgets are in `tests/tests/verifier.rs`): build each variant, copy its object aside
//! (the bench's is `target/release/build/leakguard-tests-*/out/ebpf-target/
//! bpfel-unknown-none/release/leakguard-ebpf`), then `cargo xtask matrix --kernel 6.1
//! --object A --object B` runs this on that kernel, about a minute an object there.
//! 6.1 keeps few of the states it visits to prune against, so its counts move by tens
//! of thousands with changes that look unrelated: compare variants in one run, and
//! prefer what keeps the paths' states alike over what happens to count less.

use std::process::ExitCode;

use leakguard::{
    kernel::object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
    policy::KernelPolicy,
};
use leakguard_tests::guard::Guard;

fn main() -> ExitCode {
    let objects: Vec<String> = std::env::args().skip(1).collect();
    if objects.is_empty() || objects.iter().any(|a| a.starts_with('-')) {
        eprintln!(
            "usage: vcount OBJECT...  (as root; prints each program's verifier instructions)"
        );
        return ExitCode::from(2);
    }
    let release = leakguard::kernel::features::release();
    let mut failed = false;
    for path in &objects {
        match count(path) {
            Ok(counts) => println!("{release} {path}: {counts}"),
            Err(e) => {
                failed = true;
                let first = format!("{e:#}");
                println!(
                    "{release} {path}: not loaded: {}",
                    first.lines().next().unwrap_or_default()
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// "tc_egress N, tc_ingress N, xdp N" for the object at `path`.
fn count(path: &str) -> anyhow::Result<String> {
    let object = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    let g = Guard::load_object(&object, &KernelPolicy::default())?;
    let mut out = Vec::new();
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP] {
        out.push(format!("{name} {}", g.verified_instructions(name)?.0));
    }
    Ok(out.join(", "))
}
