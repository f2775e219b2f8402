//! The programs must load with headroom on every kernel of the matrix: a change that
//! brings a verifier near its 1,000,000-instruction limit fails here.

use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP};
use leakguard_tests::guard::Guard;

/// Instructions the verifier may process per program, by kernel: a quarter of its
/// 1,000,000 limit, but on 6.1, whose verifier prunes less (it marks every scalar precise
/// once it tracks one across a call), 40% of it. The kernel matrix (`cargo xtask test`)
/// runs this test on 6.1 and 6.12 too. Measured: 6.1 about 291,000 (TC) and 285,000
/// (XDP), 6.12 about 188,000-192,000, 6.18 about 194,000. `cargo xtask matrix --object`
/// counts variants of a change on each kernel (`tests/src/bin/vcount.rs`).
fn budget(release: &str) -> u32 {
    if release.starts_with("6.1.") {
        400_000
    } else {
        250_000
    }
}

#[test]
fn verifier_cost_has_headroom() {
    let release = leakguard::kernel::features::release();
    let budget = budget(&release);
    let g = Guard::load(&leakguard::policy::KernelPolicy::default()).unwrap();
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP] {
        let (n, size) = g.verified_instructions(name).unwrap();
        println!("{release} {name}: {n} instructions verified, {size} in the program");
        assert!(
            n <= budget,
            "{name}: the verifier of {release} processed {n} instructions (budget {budget})"
        );
    }
}
