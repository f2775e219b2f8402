//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`): what
//! the policy decides. Each action on each hook; allowlists for both address families; a
//! replaced policy; a full rule table.

use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::action;
use leakguard_tests::{
    guard::{Guard, Hook, Verdict},
    http::{get, ACR, MSISDN, UIDH},
    kernel::{assert_redacted, count_rules, load, rule, R_ACR, R_CLID, R_MSISDN, R_UIDH},
    packet::{Frame, TRUSTED_V4, TRUSTED_V6},
};

/// Each action on each hook: verdict, bytes, counter, event.
#[test]
fn every_action_on_every_hook() {
    struct Case {
        name: &'static str,
        frame: Frame,
        verdict: Verdict,
        rule: u32,
        outcome: u8,
        redacts: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "count",
            frame: Frame::http_v4(&get(&[&format!("X-ACR: {ACR}")])),
            verdict: Verdict::Pass,
            rule: R_ACR,
            outcome: action::COUNT,
            redacts: &[],
        },
        Case {
            name: "redact",
            frame: Frame::http_v4(&get(&[&format!("X-MSISDN: {MSISDN}")])),
            verdict: Verdict::Pass,
            rule: R_MSISDN,
            outcome: action::REDACT,
            redacts: &[MSISDN],
        },
        Case {
            name: "redact ipv6",
            frame: Frame::http_v6(&get(&[&format!("X-Up-Calling-Line-ID: {MSISDN}")])),
            verdict: Verdict::Pass,
            rule: R_CLID,
            outcome: action::REDACT,
            redacts: &[MSISDN],
        },
        Case {
            name: "drop",
            frame: Frame::http_v4(&get(&[&format!("X-UIDH: {UIDH}")])),
            verdict: Verdict::Drop,
            rule: R_UIDH,
            outcome: action::DROP,
            redacts: &[],
        },
        Case {
            name: "drop ipv6",
            frame: Frame::http_v6(&get(&[&format!("x-uidh: {UIDH}")])),
            verdict: Verdict::Drop,
            rule: R_UIDH,
            outcome: action::DROP,
            redacts: &[],
        },
    ];
    for c in &cases {
        for hook in Hook::ALL {
            let mut g = load();
            let input = c.frame.build();
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, c.verdict, "{} on {hook:?}", c.name);
            if c.verdict == Verdict::Pass {
                if c.redacts.is_empty() {
                    assert_eq!(r.out, input, "{} on {hook:?}: modified", c.name);
                } else {
                    assert_redacted(c.name, hook, &input, &r.out, c.redacts);
                }
            }
            let counters = g.counters(c.rule).unwrap();
            let mut want = [0; action::OUTCOMES];
            want[usize::from(c.outcome)] = 1;
            assert_eq!(counters.outcomes, want, "{} on {hook:?}: counters", c.name);
            let events = g.events().unwrap();
            assert_eq!(events.len(), 1, "{} on {hook:?}: events", c.name);
            assert_eq!(events[0].rule_id, c.rule);
            assert_eq!(events[0].action, c.outcome);
            assert_eq!(events[0].hook, hook.id());
            let s = g.stats().unwrap();
            assert_eq!(s.dropped_packets, u64::from(c.verdict == Verdict::Drop));
        }
    }
}

/// A trusted destination passes unchanged and is counted as `allow`; others are redacted.
#[test]
fn allowlist_hit_and_miss_for_both_families() {
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let cases = [
        ("v4 trusted", Frame::http_v4(&req).dst_v4(TRUSTED_V4), true),
        (
            "v4 edge of /24",
            Frame::http_v4(&req).dst_v4([198, 51, 100, 255]),
            true,
        ),
        (
            "v4 next /24",
            Frame::http_v4(&req).dst_v4([198, 51, 101, 1]),
            false,
        ),
        ("v4 untrusted", Frame::http_v4(&req), false),
        ("v6 trusted", Frame::http_v6(&req).dst_v6(TRUSTED_V6), true),
        ("v6 untrusted", Frame::http_v6(&req), false),
    ];
    for (case, frame, trusted) in &cases {
        for hook in Hook::ALL {
            let mut g = load();
            let input = frame.build();
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass);
            if *trusted {
                assert_eq!(
                    r.out, input,
                    "{case} on {hook:?}: trusted destination modified"
                );
                assert_eq!(g.count(R_MSISDN, action::ALLOW).unwrap(), 1, "{case}");
                assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 0, "{case}");
            } else {
                assert_redacted(case, hook, &input, &r.out, &[MSISDN]);
                assert_eq!(g.count(R_MSISDN, action::ALLOW).unwrap(), 0, "{case}");
                assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 1, "{case}");
            }
        }
    }
}

/// Replacing the policy takes effect for the next packet, and removed rules stop matching.
#[test]
fn policy_replacement() {
    let mut g = load();
    let input = Frame::http_v4(&get(&[&format!("X-ACR: {ACR}")])).build();
    assert_eq!(g.run(Hook::Xdp, &input).unwrap().verdict, Verdict::Pass);
    g.set_policy(&KernelPolicy {
        rules: vec![rule("X-ACR", Action::Drop, &[])],
        ..KernelPolicy::default()
    })
    .unwrap();
    assert_eq!(g.run(Hook::Xdp, &input).unwrap().verdict, Verdict::Drop);
    let msisdn = Frame::http_v4(&get(&[&format!("X-MSISDN: {MSISDN}")])).build();
    assert_eq!(
        g.run(Hook::Xdp, &msisdn).unwrap().out,
        msisdn,
        "old rule removed"
    );
}

/// Every rule of a full table is found (the rule table's probing), and names that pass
/// the length/first/last prefilter without being rules are not.
#[test]
fn a_full_rule_table_finds_every_rule_and_nothing_else() {
    const RULES: usize = leakguard_common::MAX_RULES as usize - 1;
    let names: Vec<String> = (0..RULES).map(|i| format!("X-Id-{i:04}")).collect();
    let mut g = Guard::pooled(&count_rules(&names)).unwrap();
    for hook in Hook::ALL {
        for (c, chunk) in names.chunks(64).enumerate() {
            // Each rule, and a non-rule of the same length and first and last byte
            // (indexes 5000 and up are not rules).
            let mut lines: Vec<String> = chunk.iter().map(|n| format!("{n}: 1")).collect();
            lines.extend(chunk.iter().map(|n| format!("X-Id-5{}: 1", &n[6..])));
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let r = g.run(hook, &Frame::http_v4(&get(&refs)).build()).unwrap();
            assert_eq!(r.verdict, Verdict::Pass);
            // An event per rule line, in order; none for the others.
            let ids: Vec<u32> = g.events().unwrap().iter().map(|e| e.rule_id).collect();
            let want: Vec<u32> = (c * 64..c * 64 + chunk.len()).map(|i| i as u32).collect();
            assert_eq!(ids, want, "{hook:?}");
        }
    }
    for (id, name) in names.iter().enumerate() {
        let c = g.counters(id as u32).unwrap();
        assert_eq!(
            c.outcomes[usize::from(action::COUNT)],
            3,
            "{name} (rule {id}): one match per hook"
        );
    }
    let s = g.stats().unwrap();
    assert_eq!(
        s.lines,
        3 * 2 * RULES as u64 + 3 * 3 * RULES.div_ceil(64) as u64
    );
}
