//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`) during
//! and after a handover to maps of another layout (`leakguard::kernel::handover`): the
//! handover flag, and flow entries as the daemon carries them over.

use aya::maps::HashMap;
use leakguard::{
    kernel::{handover, maps::MAP_FLOWS},
    policy::{Incomplete, KernelPolicy},
};
use leakguard_common::{FlowKey, FlowState};
use leakguard_tests::{
    guard::{Guard, Hook, Pooled, Verdict},
    http::{find, get, MSISDN},
    kernel::policy,
    packet::Frame,
};

/// One flow's segments share a source port (a frame's is random otherwise).
const SPORT: u16 = 40123;

fn guard(incomplete: Incomplete) -> Pooled {
    Guard::pooled(&KernelPolicy {
        incomplete,
        ..policy()
    })
    .unwrap()
}

/// While the flag is set, a segment of a flow without state that starts no request may
/// continue a head the old programs saw begin: it meets `incomplete_heads`, whether its
/// first byte could start a token or not. A request is scanned as ever. Without the flag
/// the same segments pass as bodies.
#[test]
fn during_a_handover_a_stateless_segment_that_starts_no_request_is_not_seen_whole() {
    let continuation = format!("X-MSISDN: {MSISDN}\r\n\r\n");
    let body = "{\"msisdn\": 1}";
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    for hook in Hook::ALL {
        for incomplete in [Incomplete::Drop, Incomplete::Pass] {
            let case = format!("{hook:?}, {}", incomplete.name());
            let mut g = guard(incomplete);
            for (n, payload) in [continuation.as_bytes(), body.as_bytes()]
                .into_iter()
                .enumerate()
            {
                let frame = Frame::http_v4(payload).sport(41000 + n as u16).build();
                handover::set_flag(&mut g.ebpf, 1).unwrap();
                let r = g.run(hook, &frame).unwrap();
                let st = g.stats().unwrap();
                assert_eq!(st.truncated, n as u64 + 1, "{case}: counted");
                if incomplete == Incomplete::Drop {
                    assert_eq!(r.verdict, Verdict::Drop, "{case}");
                } else {
                    assert_eq!((r.verdict, &r.out), (Verdict::Pass, &frame), "{case}");
                }
                handover::set_flag(&mut g.ebpf, 0).unwrap();
                let r = g.run(hook, &frame).unwrap();
                assert_eq!(r.verdict, Verdict::Pass, "{case}: no handover, a body");
                assert_eq!(g.stats().unwrap().truncated, n as u64 + 1, "{case}");
            }
            handover::set_flag(&mut g.ebpf, 1).unwrap();
            let r = g.run(hook, &Frame::http_v4(&req).build()).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case}: a request is scanned");
            assert!(find(&r.out, MSISDN.as_bytes()).is_none(), "{case}");
            assert_eq!(g.stats().unwrap().truncated, 2, "{case}");
        }
    }
}

/// Every flow entry replaced by what the daemon makes of it in a handover (from the
/// contract's three words alone).
fn carry_all(g: &mut Guard) -> Vec<(FlowKey, bool)> {
    let mut flows: HashMap<_, FlowKey, FlowState> =
        HashMap::try_from(g.ebpf.map_mut(MAP_FLOWS).unwrap()).unwrap();
    let entries: Vec<(FlowKey, FlowState)> = flows.iter().map(Result::unwrap).collect();
    let mut out = Vec::new();
    for (k, old) in entries {
        let (f, open) = handover::carried(old.next_seq, old.state, old.tok);
        flows.insert(k, f, 0).unwrap();
        out.push((k, open));
    }
    out
}

/// A head open at the handover: its rest is not seen whole (dropped under "drop", passed
/// and forgotten under "pass"), and the bytes before it are never resent.
#[test]
fn a_carried_open_head_meets_the_incomplete_policy() {
    let head = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let cut = head.len() / 2;
    let seq0 = 1000;
    for hook in Hook::ALL {
        for incomplete in [Incomplete::Drop, Incomplete::Pass] {
            let case = format!("{hook:?}, {}", incomplete.name());
            let mut g = guard(incomplete);
            let first = Frame::http_v4(&head[..cut]).sport(SPORT).seq(seq0).build();
            assert_eq!(g.run(hook, &first).unwrap().verdict, Verdict::Pass);
            let carried = carry_all(&mut g);
            assert_eq!(carried.len(), 1, "{case}: the open head has an entry");
            assert!(carried[0].1, "{case}: carried as open");
            let rest = Frame::http_v4(&head[cut..])
                .sport(SPORT)
                .seq(seq0 + cut as u32)
                .build();
            let r = g.run(hook, &rest).unwrap();
            assert_eq!(g.stats().unwrap().truncated, 1, "{case}");
            if incomplete == Incomplete::Drop {
                assert_eq!(r.verdict, Verdict::Drop, "{case}");
                // Its resend meets the same end.
                assert_eq!(g.run(hook, &rest).unwrap().verdict, Verdict::Drop, "{case}");
            } else {
                assert_eq!((r.verdict, &r.out), (Verdict::Pass, &rest), "{case}");
            }
            let resent = g.run(hook, &first).unwrap();
            if incomplete == Incomplete::Drop {
                assert_eq!(resent.verdict, Verdict::Drop, "{case}: bytes before it");
            } else {
                // The head passed unseen and its entry went: a resend of its start is
                // a request start, scanned afresh.
                assert_eq!(resent.verdict, Verdict::Pass, "{case}");
            }
        }
    }
}

/// A flow whose redactions the old table remembered (a head over two segments, the
/// value in the first): a resend of those bytes is dropped (their redactions are not
/// known), the next request on the connection is scanned as ever.
#[test]
fn a_carried_flow_with_redactions_drops_their_resend_and_scans_what_follows() {
    let head = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let cut = head.len() - 2;
    let second = get(&[&format!("X-MSISDN: {MSISDN}"), "X-Second: 1"]);
    let seq0 = 7000;
    for hook in Hook::ALL {
        let case = format!("{hook:?}");
        let mut g = guard(Incomplete::Drop);
        let f1 = Frame::http_v4(&head[..cut]).sport(SPORT).seq(seq0).build();
        let r = g.run(hook, &f1).unwrap();
        assert!(find(&r.out, MSISDN.as_bytes()).is_none(), "{case}");
        let f2 = Frame::http_v4(&head[cut..])
            .sport(SPORT)
            .seq(seq0 + cut as u32)
            .build();
        assert_eq!(g.run(hook, &f2).unwrap().verdict, Verdict::Pass, "{case}");
        let carried = carry_all(&mut g);
        assert_eq!(carried.len(), 1, "{case}: redactions kept for resends");
        assert!(!carried[0].1, "{case}: carried as closed");
        assert_eq!(g.run(hook, &f1).unwrap().verdict, Verdict::Drop, "{case}");
        let f3 = Frame::http_v4(&second)
            .sport(SPORT)
            .seq(seq0 + head.len() as u32)
            .build();
        let r = g.run(hook, &f3).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{case}");
        assert!(find(&r.out, MSISDN.as_bytes()).is_none(), "{case}");
        assert_eq!(g.stats().unwrap().truncated, 0, "{case}");
    }
}
