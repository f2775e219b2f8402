//! The packet fuzzer (`leakguard_tests::fuzz`) at CI size: generated and mutated requests
//! and frames through the real programs and the model (`cargo xtask fuzz` runs a million).
//! The seed is printed; `LEAKGUARD_SEED=N` replays it.

use std::time::Duration;

use leakguard_tests::{corpus::Rng, fuzz};

/// Packets per CI run, and the bound on its time.
const PACKETS: u64 = 20_000;
const BOUND: Duration = Duration::from_secs(240);

#[test]
fn kernel_and_model_agree_on_fuzzed_packets() {
    let (mut rng, seed) = Rng::from_env();
    let r = fuzz::run(&mut rng, seed, PACKETS, BOUND);
    println!("{r}");
    assert!(
        r.packets >= PACKETS,
        "the time bound cut the run short: {r}"
    );
    // Every kind of case came up.
    for (what, n) in [
        ("single-segment payloads", r.single),
        ("segmented payloads", r.segmented),
        ("mutated payloads", r.mutated),
        ("frames passed untouched", r.frames_untouched),
        ("frames still TCP", r.frames_still_tcp),
    ] {
        assert!(n > 0, "no {what}: {r}");
    }
}
