//! Differential test: a seeded random corpus of requests, each in one segment, through the
//! real kernel programs (XDP and TC, `BPF_PROG_TEST_RUN`) and through the pure-Rust model;
//! verdicts, output bytes and counters must agree. The seed is printed;
//! `LEAKGUARD_SEED=N` replays it. (Requests cut into segments: `segments.rs`.)

use leakguard_tests::{
    corpus::{destination, model_policy, policy, requests, vary_cap, Rng, MSISDN_ACTIONS},
    diff::Differ,
    guard::Hook,
    packet::{Frame, SERVER_V4},
};

#[test]
fn kernel_and_model_agree_on_a_random_corpus() {
    let (mut rng, seed) = Rng::from_env();
    const CASES: usize = 400;
    // With `[msisdn]` on, header values read inside (the default) and whole.
    let configs = MSISDN_ACTIONS.iter().flat_map(|&a| {
        let modes: &[bool] = if a.is_some() { &[true, false] } else { &[true] };
        modes.iter().map(move |&inside| (a, inside))
    });
    for (msisdn, inside) in configs {
        let mut p = policy(msisdn);
        if let Some(m) = p.msisdn.as_mut() {
            m.inside_values = inside;
        }
        let mut d = Differ::new(&p);
        for case in 0..CASES {
            // Now and then, a small scan limit, to exercise truncation.
            vary_cap(&mut rng, &mut p, &mut d.g, 10, 200);
            let payload = requests(&mut rng);
            let dst = destination(&mut rng, 20);
            let pol = model_policy(&p, dst.into());
            let frame = Frame::http_v4(payload.as_bytes()).dst_v4(dst);
            let ctx = format!(
                "case {case}, msisdn {msisdn:?}, inside values {inside}, seed {seed}: {payload:?}"
            );
            // Each frame is a flow of its own (a new source port), per hook.
            let bytes = frame.build();
            for hook in [Hook::Xdp, Hook::TcEgress] {
                d.single(hook, &bytes, payload.as_bytes(), &pol, &ctx);
            }
            let _ = d.g.events();
        }
        println!(
            "{} kernel runs matched the model (msisdn {msisdn:?})",
            d.runs
        );
    }
}

/// Found by `cargo xtask fuzz`: the kernel's line-start table keeps 6 bits of each of a
/// line's first two bytes, so `xM…` reads like `x-…` (a rule name's start) and its name is
/// read — here found malformed (space before the colon). Kernel and model must agree.
#[test]
fn a_line_start_that_collides_with_a_rule_start_is_read() {
    let p = policy(None);
    let mut d = Differ::new(&p);
    let pol = model_policy(&p, SERVER_V4.into());
    let payload: &[u8] = b"GET /a HTTP/1.1\r\nxMOrder_id : 1\r\nzz : 2\r\n\r\n";
    for hook in [Hook::Xdp, Hook::TcEgress] {
        let frame = Frame::http_v4(payload).build();
        let out = d.single(hook, &frame, payload, &pol, "collision");
        // `xM…` collides and is read (malformed); `zz` starts no rule and is skipped.
        assert_eq!((out.lines, out.malformed), (2, 1), "{hook:?}");
    }
}
