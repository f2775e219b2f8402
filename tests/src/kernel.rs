//! Rules for the kernel programs' policies ([`rule`], for every test and tool), and what
//! the `kernel_*` test files share. Those load the real programs into the kernel and run
//! them by `BPF_PROG_TEST_RUN` on frames built here; every case runs on every hook (TC
//! egress, TC ingress, XDP) unless the kernel's test-run limits say otherwise (TC takes at
//! most ~3.7 KB of packet). For them: the policy they load, its rule ids, and what a
//! correct redaction leaves.

use leakguard::policy::{Action, KernelPolicy, Rule};
use leakguard_common::REDACT_FILLER;

use crate::{
    guard::{Guard, Hook, Pooled, Verdict},
    http::find,
    packet::{tcp_checksum_ok, tcp_header_len, tcp_payload, Frame},
};

/// The rule ids of [`policy`]: its rules' order.
pub const R_MSISDN: u32 = 0;
pub const R_UIDH: u32 = 1;
pub const R_ACR: u32 = 2;
pub const R_CLID: u32 = 3;
pub const R_LONG: u32 = 4;
/// A rule name of exactly the 64-byte limit.
pub const LONG_NAME: &str = "X-Operator-Subscriber-Identity-Forwarded-By-Enrichment-Gateway-0";

/// A rule for `header` that trusts the destinations in `allow` (CIDR).
#[must_use]
pub fn rule(header: &str, action: Action, allow: &[&str]) -> Rule {
    Rule {
        header: header.into(),
        action,
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

#[must_use]
pub fn policy() -> KernelPolicy {
    assert_eq!(LONG_NAME.len(), 64);
    KernelPolicy {
        rules: vec![
            rule(
                "X-MSISDN",
                Action::Redact,
                &["198.51.100.0/24", "2001:db8:100::/48"],
            ),
            rule("X-UIDH", Action::Drop, &[]),
            rule("X-ACR", Action::Count, &[]),
            rule("x-up-calling-line-id", Action::Redact, &[]),
            rule(LONG_NAME, Action::Redact, &[]),
        ],
        ..KernelPolicy::default()
    }
}

#[must_use]
pub fn load() -> Pooled {
    Guard::pooled(&policy()).expect("load leakguard with the test policy")
}

/// A count rule for each of `names`, in order (rule id = index).
#[must_use]
pub fn count_rules(names: &[String]) -> KernelPolicy {
    KernelPolicy {
        rules: names.iter().map(|n| rule(n, Action::Count, &[])).collect(),
        ..KernelPolicy::default()
    }
}

/// `input` with every occurrence of `values` in the TCP payload overwritten by the filler
/// and the TCP checksum field taken from `out`: what a correct redaction produces.
fn redacted(input: &[u8], values: &[&str], out: &[u8]) -> Vec<u8> {
    let payload = tcp_payload(input).expect("TCP frame");
    let start = input.len() - payload.len();
    let mut want = input.to_vec();
    for v in values {
        let mut from = start;
        while let Some(p) = find(&want[from..], v.as_bytes()) {
            let at = from + p;
            want[at..at + v.len()].fill(REDACT_FILLER);
            from = at + v.len();
        }
    }
    // The TCP checksum field: 16 bytes into the TCP header.
    let tcp_len = tcp_header_len(input).unwrap();
    let csum = start - tcp_len + 16;
    want[csum..csum + 2].copy_from_slice(&out[csum..csum + 2]);
    want
}

#[track_caller]
pub fn assert_redacted(case: &str, hook: Hook, input: &[u8], out: &[u8], values: &[&str]) {
    assert_eq!(out.len(), input.len(), "{case} on {hook:?}: length changed");
    assert_eq!(
        out,
        &redacted(input, values, out)[..],
        "{case} on {hook:?}: bytes other than the value and checksum changed, or the value \
         was not fully overwritten"
    );
    assert!(
        tcp_checksum_ok(out),
        "{case} on {hook:?}: TCP checksum does not verify"
    );
    // In the payload: the frame's headers (ports, checksum) may hold a short value's
    // bytes by chance.
    let payload = tcp_payload(out).expect("TCP frame");
    for v in values {
        assert!(
            find(&payload, v.as_bytes()).is_none(),
            "{case} on {hook:?}: value still present"
        );
    }
}

/// `req` in one frame passes on every hook with exactly `values` redacted.
#[track_caller]
pub fn assert_passes_redacted(g: &mut Guard, case: &str, req: &str, values: &[&str]) {
    let input = Frame::http_v4(req.as_bytes()).build();
    for hook in Hook::ALL {
        let r = g.run(hook, &input).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
        assert_redacted(case, hook, &input, &r.out, values);
    }
}

/// Every outcome of the first five rules (those of [`policy`]), summed.
pub fn counters_total(g: &Guard) -> u64 {
    (0..5)
        .map(|id| g.counters(id).unwrap().outcomes.iter().sum::<u64>())
        .sum()
}
