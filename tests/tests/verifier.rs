//! The programs must load with headroom: a change that brings the verifier near its
//! 1,000,000-instruction limit fails here, before it fails on some other kernel.

use aya::programs::{SchedClassifier, Xdp};
use leakguard::object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP};
use leakguard_tests::guard::Guard;

/// A quarter of the kernel's limit.
const BUDGET: u32 = 250_000;

#[test]
fn verifier_cost_has_headroom() {
    let g = Guard::load(&leakguard::policy::KernelPolicy::default()).unwrap();
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP] {
        let p = g.ebpf.program(name).unwrap();
        let info = if name == PROG_XDP {
            <&Xdp>::try_from(p).unwrap().info()
        } else {
            <&SchedClassifier>::try_from(p).unwrap().info()
        }
        .unwrap();
        let n = info
            .verified_instruction_count()
            .expect("kernel reports verified_insns");
        println!(
            "{name}: {n} instructions verified, {} in the program",
            info.size_translated().unwrap_or(0) / 8
        );
        assert!(
            n <= BUDGET,
            "{name}: the verifier processed {n} instructions (budget {BUDGET})"
        );
    }
}
