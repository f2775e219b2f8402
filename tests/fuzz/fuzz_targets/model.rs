//! The reference model on arbitrary payloads cut into segments, under each `[msisdn]`
//! action and scan limit: never a panic; a segment keeps its length; the only bytes it
//! changes become the redaction filler; the same input gives the same output.
#![no_main]

use leakguard_common::{model, REDACT_FILLER};
use leakguard_tests::{
    corpus::{model_policy, policy, MSISDN_ACTIONS},
    packet::SERVER_V4,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [sel, cut, payload @ ..] = data else {
        return;
    };
    let action = MSISDN_ACTIONS[usize::from(sel & 3)];
    let mut p = policy(action);
    if sel & 4 != 0 {
        p.max_head_bytes = 64 + u32::from(*cut);
        if sel & 8 != 0 {
            p.incomplete = leakguard::policy::Incomplete::Pass;
        }
    }
    let pol = model_policy(&p, SERVER_V4.into());
    let at = usize::from(*cut).min(payload.len());
    let run = || {
        let mut flow = None;
        let mut outs = Vec::new();
        let mut seq = 7_000u32;
        for seg in [&payload[..at], &payload[at..]] {
            let out = model::segment(&mut flow, seq, seg, &pol);
            seq = seq.wrapping_add(seg.len() as u32);
            outs.push((out.drop, out.payload));
        }
        outs
    };
    let first = run();
    for ((_, out), seg) in first.iter().zip([&payload[..at], &payload[at..]]) {
        assert_eq!(out.len(), seg.len());
        for (a, b) in seg.iter().zip(out) {
            assert!(
                a == b || *b == REDACT_FILLER,
                "a byte changed to something else"
            );
        }
    }
    assert_eq!(first, run(), "the model is not deterministic");
});
