//! The self-test's canaries through the real programs: a correct guard passes without a
//! single production counter or event moving; a guard that disagrees with the policy fails.

use leakguard::{
    config::Hook,
    kernel::selftest,
    policy::{Action, KernelPolicy},
};
use leakguard_tests::{guard::Guard, kernel::rule};

const HOOKS: [Hook; 3] = [Hook::TcEgress, Hook::TcIngress, Hook::Xdp];

fn policy(msisdn: Action) -> KernelPolicy {
    KernelPolicy {
        rules: vec![
            rule("X-MSISDN", msisdn, &["198.51.100.0/24"]),
            rule("X-UIDH", Action::Drop, &[]),
            rule("X-ACR", Action::Count, &[]),
        ],
        ..KernelPolicy::default()
    }
}

#[test]
fn canaries_pass_on_every_hook_and_move_no_production_counter() {
    let p = policy(Action::Redact);
    let mut g = Guard::pooled(&p).unwrap();
    let report = selftest::run(&mut g.ebpf, &p, &HOOKS).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    // clean + 3 rules + 1 allowed destination, on 3 hooks
    assert_eq!(report.canaries, 5 * 3);
    assert_eq!(
        g.stats().unwrap().packets,
        0,
        "no production packet counted"
    );
    for id in 0..3 {
        assert_eq!(g.counters(id).unwrap().outcomes, [0; 4], "rule {id}");
    }
    assert!(g.events().unwrap().is_empty(), "no events");
}

#[test]
fn a_guard_that_disagrees_with_the_policy_fails_the_self_test() {
    // The kernel counts X-MSISDN; the policy the self-test checks says redact.
    let mut g = Guard::pooled(&policy(Action::Count)).unwrap();
    let report = selftest::run(&mut g.ebpf, &policy(Action::Redact), &HOOKS).unwrap();
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.contains("x-msisdn") && f.contains("not fully overwritten")),
        "{:?}",
        report.failures
    );
    let mut g = Guard::pooled(&policy(Action::Redact)).unwrap();
    let report = selftest::run(&mut g.ebpf, &policy(Action::Drop), &HOOKS).unwrap();
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
}

/// With `[msisdn]` on, a canary carries a number (a configured prefix, then zeros) under a
/// header no rule names; a kernel whose number check is off fails it.
#[test]
fn the_number_check_has_a_canary() {
    let mut p = policy(Action::Redact);
    p.msisdn = Some(leakguard_tests::corpus::number_check(Action::Redact));
    let mut g = Guard::pooled(&p).unwrap();
    let report = selftest::run(&mut g.ebpf, &p, &HOOKS).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    // A header, a request-target, a cookie, a hex and a base64 canary per hook, on top
    // of the rules'.
    assert_eq!(report.canaries, 10 * 3);
    assert_eq!(
        g.counters(leakguard_common::MSISDN_RULE_ID)
            .unwrap()
            .outcomes,
        [0; 4]
    );
    // The kernel without the check: the five canaries' numbers pass in clear.
    let mut off = Guard::pooled(&policy(Action::Redact)).unwrap();
    let report = selftest::run(&mut off.ebpf, &p, &HOOKS).unwrap();
    assert_eq!(report.failures.len(), 15, "{:?}", report.failures);
    assert!(report
        .failures
        .iter()
        .all(|f| f.contains("identity number")));
    // A place turned off sends no canary; the hex and base64 canaries go to the first
    // place read for runs (a header value read inside when the target and cookies are
    // off).
    for (target, cookies, canaries) in [(false, true, 9), (true, false, 9), (false, false, 8)] {
        let mut m = leakguard_tests::corpus::number_check(Action::Redact);
        m.request_target = target;
        m.cookies = cookies;
        p.msisdn = Some(m);
        let mut g = Guard::pooled(&p).unwrap();
        let report = selftest::run(&mut g.ebpf, &p, &HOOKS).unwrap();
        assert!(report.ok(), "{:?}", report.failures);
        assert_eq!(
            report.canaries,
            canaries * 3,
            "target {target}, cookies {cookies}"
        );
    }
}

/// With hex on, a canary carries the number in hex form; a kernel told hex is off fails
/// exactly that canary on every hook, and with hex off there is no such canary.
#[test]
fn the_hex_form_has_a_canary() {
    let mut p = policy(Action::Redact);
    // Base64 off on both sides: this is about hex alone.
    let mut m = leakguard_tests::corpus::number_check(Action::Redact);
    m.base64 = false;
    p.msisdn = Some(m);
    let mut decimal = p.clone();
    decimal.msisdn.as_mut().unwrap().hex = false;
    let mut g = Guard::pooled(&decimal).unwrap();
    let report = selftest::run(&mut g.ebpf, &decimal, &HOOKS).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.canaries, 8 * 3);
    // The kernel reads decimal only; the policy says hex too: the hex canary's number
    // passes in clear on each hook, and nothing else fails.
    let report = selftest::run(&mut g.ebpf, &p, &HOOKS).unwrap();
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    assert!(
        report.failures.iter().all(
            |f| f.contains("identity number in hex in the request target")
                && f.contains("not fully overwritten")
        ),
        "{:?}",
        report.failures
    );
}

/// With base64 on, a canary carries the number in base64 form; a kernel told base64 is
/// off (hex on) fails exactly that canary on every hook, and with base64 off there is no
/// such canary.
#[test]
fn the_base64_form_has_a_canary() {
    let mut p = policy(Action::Redact);
    p.msisdn = Some(leakguard_tests::corpus::number_check(Action::Redact));
    let mut no_b64 = p.clone();
    no_b64.msisdn.as_mut().unwrap().base64 = false;
    let mut g = Guard::pooled(&no_b64).unwrap();
    let report = selftest::run(&mut g.ebpf, &no_b64, &HOOKS).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.canaries, 9 * 3);
    // The kernel reads decimal and hex; the policy says base64 too: the base64 canary's
    // number passes in clear on each hook, and nothing else fails.
    let report = selftest::run(&mut g.ebpf, &p, &HOOKS).unwrap();
    assert_eq!(report.canaries, 10 * 3);
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    assert!(
        report.failures.iter().all(|f| f
            .contains("identity number in base64 in the request target")
            && f.contains("not fully overwritten")),
        "{:?}",
        report.failures
    );
}
