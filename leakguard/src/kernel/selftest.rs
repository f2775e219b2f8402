//! The self-test: canary requests built from the live policy, run through the programs
//! the links point at with `BPF_PROG_TEST_RUN`, verdicts and output bytes checked.
//!
//! Canaries carry `CANARY_MAGIC` (TC: `__sk_buff.mark`; XDP: frame metadata), so the
//! programs treat them exactly like traffic but move no production counter and send no
//! event. Canary values are a run of zeros (for the identity-number check, a configured
//! prefix then zeros, and that number in hex and in base64 form): never a subscriber's.

use std::net::Ipv4Addr;

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use base64::Engine as _;
use leakguard_common::{csum, form, name, CANARY_MAGIC, REDACT_FILLER};

use super::object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP};
use crate::{
    config::Hook,
    policy::{Action, KernelPolicy},
};

const CANARY_VALUE: &str = "000000000000";
/// The canaries' destination (TEST-NET-1); if a rule allowlists it, that rule's canary
/// is expected to pass unchanged.
const UNTRUSTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

// Return codes (linux/pkt_cls.h, linux/bpf.h).
const TC_ACT_UNSPEC: u32 = u32::MAX;
const TC_ACT_SHOT: u32 = 2;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Unchanged,
    Redacted,
    Dropped,
}

struct Canary {
    what: String,
    frame: Vec<u8>,
    /// The header value the canary carries.
    value: String,
    expect: Expect,
}

/// The header name of the identity-number canary: no rule names it.
const NUMBER_CANARY_HEADER: &str = "X-Leakguard-Selftest-Number";

/// The request target of every canary but the request-target one: no digits, so the
/// number check finds nothing in it.
const CANARY_TARGET: &str = "/leakguard-selftest";

/// The cookie canary's header, and its pairs before the one with the number (none of
/// them a run of digits the number check could take).
const COOKIE_HEADER: &str = "Cookie";
const COOKIE_PAIRS: &str = "lg=1; msisdn=";

/// What a self-test found.
#[derive(Debug, Default)]
pub struct Report {
    pub canaries: usize,
    /// One line per failed canary (header names and hooks only).
    pub failures: Vec<String>,
}

impl Report {
    #[must_use]
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every canary through the program of each hook in `hooks`.
pub fn run(ebpf: &mut Ebpf, policy: &KernelPolicy, hooks: &[Hook]) -> Result<Report> {
    let port = *policy.ports.first().context("no HTTP port configured")?;
    let canaries = canaries(policy, port);
    let mut report = Report::default();
    for &hook in hooks {
        for c in &canaries {
            report.canaries += 1;
            if let Err(e) = check(ebpf, hook, c) {
                report
                    .failures
                    .push(format!("{} on {}: {e:#}", c.what, hook.name()));
            }
        }
    }
    Ok(report)
}

fn canaries(policy: &KernelPolicy, port: u16) -> Vec<Canary> {
    let mut out = vec![Canary {
        what: "a request without identity headers".into(),
        frame: frame(UNTRUSTED, port, CANARY_TARGET, None, CANARY_VALUE),
        value: CANARY_VALUE.into(),
        expect: Expect::Unchanged,
    }];
    for r in &policy.rules {
        let expect = expect_at_untrusted(r.action, &r.allow);
        out.push(Canary {
            what: format!("{} ({:?})", r.header, r.action).to_lowercase(),
            frame: frame(
                UNTRUSTED,
                port,
                CANARY_TARGET,
                Some(&r.header),
                CANARY_VALUE,
            ),
            value: CANARY_VALUE.into(),
            expect,
        });
        // A destination on the rule's allowlist passes unchanged.
        if let Some(ipnet::IpNet::V4(net)) = r.allow.first() {
            out.push(Canary {
                what: format!("{} to an allowed destination", r.header).to_lowercase(),
                frame: frame(
                    net.network(),
                    port,
                    CANARY_TARGET,
                    Some(&r.header),
                    CANARY_VALUE,
                ),
                value: CANARY_VALUE.into(),
                expect: Expect::Unchanged,
            });
        }
    }
    // The identity-number check: a configured prefix padded with zeros to 12 digits,
    // under a header no rule names, and (when the check reads them) in a query value of
    // the request target and in a cookie.
    if let Some(m) = &policy.msisdn {
        // A header with a rule, or in `ignore_headers`, is not read for numbers: the rule
        // or the ignore wins, so a canary under it would not test the check.
        let checked = |header: &str| {
            let key = name::key(header.as_bytes()).ok();
            let named = |h: &String| name::key(h.as_bytes()).ok() == key;
            !policy.rules.iter().any(|r| named(&r.header)) && !m.ignore_headers.iter().any(named)
        };
        if let Some(prefix) = m.prefixes.first() {
            let value = format!("{prefix:0<12}");
            let expect = expect_at_untrusted(m.action, &m.allow);
            if checked(NUMBER_CANARY_HEADER) {
                out.push(Canary {
                    what: format!("an identity number ({:?})", m.action).to_lowercase(),
                    frame: frame(
                        UNTRUSTED,
                        port,
                        CANARY_TARGET,
                        Some(NUMBER_CANARY_HEADER),
                        &value,
                    ),
                    value: value.clone(),
                    expect,
                });
            }
            if m.request_target {
                // Redacted, exactly the digits become filler (`*`, valid in a query).
                out.push(Canary {
                    what: format!("an identity number in the request target ({:?})", m.action)
                        .to_lowercase(),
                    frame: frame(
                        UNTRUSTED,
                        port,
                        &format!("{CANARY_TARGET}?msisdn={value}"),
                        None,
                        &value,
                    ),
                    value: value.clone(),
                    expect,
                });
            }
            if m.cookies && checked(COOKIE_HEADER) {
                // The number is one pair's value among others; redacted, exactly its
                // digits become filler (`*`, valid in a cookie value).
                out.push(Canary {
                    what: format!("an identity number in a cookie ({:?})", m.action).to_lowercase(),
                    frame: frame(
                        UNTRUSTED,
                        port,
                        CANARY_TARGET,
                        Some(COOKIE_HEADER),
                        &format!("{COOKIE_PAIRS}{value}"),
                    ),
                    value: value.clone(),
                    expect,
                });
            }
            for f in [form::HEX, form::BASE64] {
                if let Some(c) = form_canary(m, f, &value, port, expect, &checked) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The canary of a form read only in runs of digits (`form::HEX`, `form::BASE64`): the
/// canary number written in that form, in the first place read for runs of digits: the
/// request target, else a cookie, else a header value read inside. One per form and hook
/// is enough: a form is decided by the same code in every place. `None` when the form is
/// off or no place reads runs (a value read whole is decimal only).
///
/// Hex: every digit `d` written `3d` (`44000…` -> `343430…`, 24 digits: too long for a
/// decimal number). Base64: the standard alphabet without padding (`440000000000` ->
/// `NDQwMDAwMDAwMDAw`; no run of digits in it), so that the value is exactly the
/// characters carrying the number's bits, what `redact` stars, whatever the prefix's
/// length (12 to 15 digits).
fn form_canary(
    m: &crate::policy::Msisdn,
    f: u8,
    number: &str,
    port: u16,
    expect: Expect,
    checked: &dyn Fn(&str) -> bool,
) -> Option<Canary> {
    let value: String = match f {
        form::HEX if m.reads_hex() => number.bytes().map(|d| format!("{d:02x}")).collect(),
        form::BASE64 if m.reads_b64() => {
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(number)
        }
        _ => return None,
    };
    let name = form::name(f);
    let what = |place: &str| {
        format!("an identity number in {name} {place} ({:?})", m.action).to_lowercase()
    };
    let (what, frame) = if m.request_target {
        (
            what("in the request target"),
            frame(
                UNTRUSTED,
                port,
                &format!("{CANARY_TARGET}?msisdn={value}"),
                None,
                &value,
            ),
        )
    } else if m.cookies && checked(COOKIE_HEADER) {
        (
            what("in a cookie"),
            frame(
                UNTRUSTED,
                port,
                CANARY_TARGET,
                Some(COOKIE_HEADER),
                &format!("{COOKIE_PAIRS}{value}"),
            ),
        )
    } else if m.inside_values && checked(NUMBER_CANARY_HEADER) {
        (
            what("inside a header value"),
            frame(
                UNTRUSTED,
                port,
                CANARY_TARGET,
                Some(NUMBER_CANARY_HEADER),
                &format!("uid={value}"),
            ),
        )
    } else {
        return None;
    };
    Some(Canary {
        what,
        frame,
        value,
        expect,
    })
}

/// What `action` does to a canary sent to `UNTRUSTED`: an operator may well allowlist
/// the documentation range the canary uses, and then it passes unchanged.
fn expect_at_untrusted(action: Action, allow: &[ipnet::IpNet]) -> Expect {
    let allowed = allow
        .iter()
        .any(|n| n.contains(&std::net::IpAddr::V4(UNTRUSTED)));
    match action {
        _ if allowed => Expect::Unchanged,
        Action::Count => Expect::Unchanged,
        Action::Redact => Expect::Redacted,
        Action::Drop => Expect::Dropped,
    }
}

fn check(ebpf: &mut Ebpf, hook: Hook, c: &Canary) -> Result<()> {
    let (ret, out) = match hook {
        Hook::TcEgress | Hook::TcIngress => {
            let name = if hook == Hook::TcIngress {
                PROG_TC_INGRESS
            } else {
                PROG_TC_EGRESS
            };
            // __sk_buff: len, pkt_type, then mark.
            let mut ctx = [0u8; 12];
            ctx[8..].copy_from_slice(&CANARY_MAGIC.to_ne_bytes());
            let p: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
            test_run(&*p, &c.frame, Some(&ctx))?
        }
        Hook::Xdp => {
            // 4 bytes of metadata before the frame; xdp_md.data = metadata length,
            // data_end = input size.
            let mut input = CANARY_MAGIC.to_ne_bytes().to_vec();
            input.extend_from_slice(&c.frame);
            let mut ctx = [0u8; 24];
            ctx[0..4].copy_from_slice(&4u32.to_ne_bytes());
            ctx[4..8].copy_from_slice(&(input.len() as u32).to_ne_bytes());
            let p: &mut Xdp = ebpf.program_mut(PROG_XDP).context(PROG_XDP)?.try_into()?;
            let (ret, out) = test_run(&*p, &input, Some(&ctx))?;
            let out = if out.len() == input.len() {
                out[4..].to_vec()
            } else {
                out
            };
            (ret, out)
        }
    };
    let dropped = match (hook, ret) {
        (Hook::Xdp, XDP_PASS) | (Hook::TcEgress | Hook::TcIngress, TC_ACT_UNSPEC) => false,
        (Hook::Xdp, XDP_DROP) | (Hook::TcEgress | Hook::TcIngress, TC_ACT_SHOT) => true,
        _ => bail!("unexpected return code {ret}"),
    };
    match c.expect {
        Expect::Dropped if !dropped => bail!("passed; the policy says drop"),
        Expect::Dropped => Ok(()),
        _ if dropped => bail!("dropped; the policy says pass"),
        Expect::Unchanged if out != c.frame => bail!("the packet was modified"),
        Expect::Unchanged => Ok(()),
        Expect::Redacted => check_redacted(&c.frame, &out, &c.value),
    }
}

/// One `BPF_PROG_TEST_RUN`: the return code and the packet as the program left it.
fn test_run<T>(p: &T, data: &[u8], ctx: Option<&[u8]>) -> Result<(u32, Vec<u8>)>
where
    T: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
{
    let mut out = vec![0u8; data.len() + 256];
    let r = p.test_run(TestRunOptions {
        data_in: Some(data),
        data_out: Some(&mut out),
        ctx_in: ctx,
        repeat: 1,
        ..TestRunOptions::default()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}

/// The value bytes became filler, nothing else changed but the checksum, which verifies.
fn check_redacted(input: &[u8], out: &[u8], canary_value: &str) -> Result<()> {
    if out.len() != input.len() {
        bail!("length changed");
    }
    let at = input
        .windows(canary_value.len())
        .position(|w| w == canary_value.as_bytes())
        .context("canary value")?;
    let value = at..at + canary_value.len();
    if !out[value.clone()].iter().all(|&b| b == REDACT_FILLER) {
        bail!("the value was not fully overwritten");
    }
    for (i, (a, b)) in input.iter().zip(out).enumerate() {
        if a != b && !value.contains(&i) && !CSUM.contains(&i) {
            bail!("byte {i} outside the value changed");
        }
    }
    if !tcp_checksum_ok(out) {
        bail!("the TCP checksum does not verify");
    }
    Ok(())
}

/// Offsets of the TCP checksum in `frame`'s layout (Ethernet 14 + IPv4 20 + 16).
const CSUM: std::ops::Range<usize> = 50..52;

/// Ethernet + IPv4 + TCP carrying a GET of `target` with an optional `header: value`
/// line.
fn frame(dst: Ipv4Addr, port: u16, target: &str, header: Option<&str>, value: &str) -> Vec<u8> {
    let mut http = format!("GET {target} HTTP/1.1\r\nHost: selftest.invalid\r\n");
    if let Some(h) = header {
        // The canary uses the header as configured; names are validated tokens.
        debug_assert!(name::key(h.as_bytes()).is_ok());
        http.push_str(&format!("{h}: {value}\r\n"));
    }
    http.push_str("\r\n");
    let payload = http.as_bytes();
    let tcp_len = 20 + payload.len();
    let mut f = Vec::with_capacity(34 + tcp_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + tcp_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&SOURCE.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = !csum::fold(csum::sum(&ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let pseudo = pseudo_sum(&ip, tcp_len);
    let c = !csum::fold(csum::sum(payload, csum::sum(&tcp, pseudo)));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

fn pseudo_sum(ip: &[u8], tcp_len: usize) -> u64 {
    csum::sum(&ip[12..20], 6 + tcp_len as u64)
}

fn tcp_checksum_ok(f: &[u8]) -> bool {
    let ip = &f[14..34];
    let seg = &f[34..];
    csum::fold(csum::sum(seg, pseudo_sum(ip, seg.len()))) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Msisdn;

    fn policy(action: Action, request_target: bool, cookies: bool) -> KernelPolicy {
        KernelPolicy {
            msisdn: Some(Msisdn {
                prefixes: vec!["44".into()],
                action,
                ignore_headers: Vec::new(),
                allow: Vec::new(),
                request_target,
                cookies,
                inside_values: true,
                hex: true,
                base64: true,
            }),
            ..KernelPolicy::default()
        }
    }

    fn target_canary(p: &KernelPolicy) -> Option<Canary> {
        canaries(p, 80)
            .into_iter()
            .find(|c| c.what.contains("request target"))
    }

    /// With the request target read, a canary carries a number with a configured
    /// prefix in a query value, expected as the action says; a redaction of exactly its
    /// digits (checksum fixed) is what the check accepts.
    #[test]
    fn the_request_target_has_its_canary() {
        assert!(target_canary(&policy(Action::Redact, false, true)).is_none());
        let c = target_canary(&policy(Action::Redact, true, true)).unwrap();
        assert_eq!(c.value, "440000000000");
        assert_eq!(c.expect, Expect::Redacted);
        let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
        assert!(
            http.starts_with("GET /leakguard-selftest?msisdn=440000000000 HTTP/1.1\r\n"),
            "{http}"
        );
        assert!(!http.contains("X-Leakguard-Selftest-Number"), "{http}");
        let redacted = frame(
            UNTRUSTED,
            80,
            "/leakguard-selftest?msisdn=************",
            None,
            "",
        );
        check_redacted(&c.frame, &redacted, &c.value).unwrap();
        // More than the digits overwritten: refused.
        let more = frame(
            UNTRUSTED,
            80,
            "/leakguard-selftest?msisdn*************",
            None,
            "",
        );
        assert!(check_redacted(&c.frame, &more, &c.value).is_err());
        let count = target_canary(&policy(Action::Count, true, true)).unwrap();
        assert_eq!(count.expect, Expect::Unchanged);
        let drop = target_canary(&policy(Action::Drop, true, true)).unwrap();
        assert_eq!(drop.expect, Expect::Dropped);
        // The other canaries' targets carry no digits.
        for c in canaries(&policy(Action::Drop, true, true), 80) {
            if !c.what.contains("request target") {
                let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
                let target = http.split(' ').nth(1).unwrap();
                assert!(!target.bytes().any(|b| b.is_ascii_digit()), "{http}");
            }
        }
    }

    fn cookie_canary(p: &KernelPolicy) -> Option<Canary> {
        canaries(p, 80)
            .into_iter()
            .find(|c| c.what.contains("in a cookie"))
    }

    /// The `Cookie` line of a canary's head, if it has one (any case).
    fn cookie_line(c: &Canary) -> Option<String> {
        let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
        http.split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("cookie:"))
            .map(str::to_owned)
    }

    /// With cookies read, a canary carries a number with a configured prefix as one
    /// cookie's value among others, expected as the action says; a redaction of exactly
    /// its digits (checksum fixed) is what the check accepts. No other canary has a
    /// `Cookie` line; a `Cookie` with a rule or in `ignore_headers` gets no number canary
    /// (the rule or the ignore wins).
    #[test]
    fn cookies_have_their_canary() {
        assert!(cookie_canary(&policy(Action::Redact, true, false)).is_none());
        let c = cookie_canary(&policy(Action::Redact, false, true)).unwrap();
        assert_eq!(c.what, "an identity number in a cookie (redact)");
        assert_eq!(c.value, "440000000000");
        assert_eq!(c.expect, Expect::Redacted);
        let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
        assert_eq!(
            http,
            "GET /leakguard-selftest HTTP/1.1\r\nHost: selftest.invalid\r\n\
             Cookie: lg=1; msisdn=440000000000\r\n\r\n"
        );
        let redacted = frame(
            UNTRUSTED,
            80,
            CANARY_TARGET,
            Some("Cookie"),
            "lg=1; msisdn=************",
        );
        check_redacted(&c.frame, &redacted, &c.value).unwrap();
        // More than the digits overwritten (the `=` too), or the other pair: refused.
        for wrong in ["lg=1; msisdn*************", "lg=*; msisdn=************"] {
            let out = frame(UNTRUSTED, 80, CANARY_TARGET, Some("Cookie"), wrong);
            assert!(check_redacted(&c.frame, &out, &c.value).is_err(), "{wrong}");
        }
        let count = cookie_canary(&policy(Action::Count, true, true)).unwrap();
        assert_eq!(count.expect, Expect::Unchanged);
        let drop = cookie_canary(&policy(Action::Drop, true, true)).unwrap();
        assert_eq!(drop.expect, Expect::Dropped);
        let mut allowed = policy(Action::Drop, true, true);
        allowed.msisdn.as_mut().unwrap().allow = vec!["192.0.2.0/24".parse().unwrap()];
        assert_eq!(cookie_canary(&allowed).unwrap().expect, Expect::Unchanged);

        // One canary more per hook than with cookies off; no other has a Cookie line.
        let all = canaries(&policy(Action::Drop, true, true), 80);
        assert_eq!(
            all.len(),
            canaries(&policy(Action::Drop, true, false), 80).len() + 1
        );
        for c in &all {
            if !c.what.contains("in a cookie") {
                assert_eq!(cookie_line(c), None, "{}", c.what);
            }
        }

        // A rule on Cookie, or Cookie ignored (any case, `_` or `-`): no number canary.
        let mut ruled = policy(Action::Redact, true, true);
        ruled.rules.push(crate::policy::Rule {
            header: "cookie".into(),
            action: Action::Count,
            allow: Vec::new(),
        });
        assert!(cookie_canary(&ruled).is_none());
        let mut ignored = policy(Action::Redact, true, true);
        ignored.msisdn.as_mut().unwrap().ignore_headers = vec!["COOKIE".into()];
        assert!(cookie_canary(&ignored).is_none());
        assert!(canaries(&ignored, 80)
            .iter()
            .all(|c| cookie_line(c).is_none()));
    }

    fn hex_canary_of(p: &KernelPolicy) -> Option<Canary> {
        canaries(p, 80)
            .into_iter()
            .find(|c| c.what.contains("in hex"))
    }

    /// With hex on, one canary carries the number in hex form (24 digits: never a
    /// decimal number) in the first place read for runs: the request target, else a
    /// cookie, else a header value read inside; none with hex off or no place read for
    /// runs. Redacted, exactly the stretch becomes filler.
    #[test]
    fn the_hex_form_has_its_canary() {
        let c = hex_canary_of(&policy(Action::Redact, true, true)).unwrap();
        assert_eq!(c.value, "343430303030303030303030");
        assert_eq!(c.expect, Expect::Redacted);
        assert_eq!(
            c.what,
            "an identity number in hex in the request target (redact)"
        );
        let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
        assert!(
            http.starts_with(
                "GET /leakguard-selftest?msisdn=343430303030303030303030 HTTP/1.1\r\n"
            ),
            "{http}"
        );
        let redacted = frame(
            UNTRUSTED,
            80,
            &format!("/leakguard-selftest?msisdn={}", "*".repeat(24)),
            None,
            "",
        );
        check_redacted(&c.frame, &redacted, &c.value).unwrap();
        // Only half the stretch starred (the decoded digits' length): refused.
        let half = frame(
            UNTRUSTED,
            80,
            &format!("/leakguard-selftest?msisdn={}303030303030", "*".repeat(12)),
            None,
            "",
        );
        assert!(check_redacted(&c.frame, &half, &c.value).is_err());

        let cookie = hex_canary_of(&policy(Action::Drop, false, true)).unwrap();
        assert_eq!(cookie.expect, Expect::Dropped);
        assert_eq!(
            cookie_line(&cookie).unwrap(),
            "Cookie: lg=1; msisdn=343430303030303030303030"
        );
        let inside = hex_canary_of(&policy(Action::Count, false, false)).unwrap();
        assert_eq!(inside.expect, Expect::Unchanged);
        let http = String::from_utf8_lossy(&inside.frame[54..]).into_owned();
        assert!(
            http.contains("\r\nX-Leakguard-Selftest-Number: uid=343430303030303030303030\r\n"),
            "{http}"
        );

        // Hex off, or no place read for runs (values read whole): no hex canary, one
        // canary fewer per hook.
        let mut off = policy(Action::Redact, true, true);
        off.msisdn.as_mut().unwrap().hex = false;
        assert!(hex_canary_of(&off).is_none());
        assert_eq!(
            canaries(&off, 80).len() + 1,
            canaries(&policy(Action::Redact, true, true), 80).len()
        );
        let mut whole = policy(Action::Redact, false, false);
        whole.msisdn.as_mut().unwrap().inside_values = false;
        assert!(hex_canary_of(&whole).is_none());
        // Canary counts per hook: clean + header + target + cookie + hex + base64.
        assert_eq!(canaries(&policy(Action::Redact, true, true), 80).len(), 6);
    }

    fn b64_canary_of(p: &KernelPolicy) -> Option<Canary> {
        canaries(p, 80)
            .into_iter()
            .find(|c| c.what.contains("in base64"))
    }

    /// With base64 on, one canary carries the number in base64 form (no digit run in
    /// it: never a decimal or hex number) in the first place read for runs, as the hex
    /// one; none with base64 off or no place read for runs. Redacted, exactly the
    /// characters carrying the number's bits become filler, whatever the number's length.
    #[test]
    fn the_base64_form_has_its_canary() {
        let c = b64_canary_of(&policy(Action::Redact, true, true)).unwrap();
        assert_eq!(c.value, "NDQwMDAwMDAwMDAw");
        assert_eq!(c.expect, Expect::Redacted);
        assert_eq!(
            c.what,
            "an identity number in base64 in the request target (redact)"
        );
        let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
        assert!(
            http.starts_with("GET /leakguard-selftest?msisdn=NDQwMDAwMDAwMDAw HTTP/1.1\r\n"),
            "{http}"
        );
        let redacted = frame(
            UNTRUSTED,
            80,
            &format!("/leakguard-selftest?msisdn={}", "*".repeat(16)),
            None,
            "",
        );
        check_redacted(&c.frame, &redacted, &c.value).unwrap();
        // Only the first three groups starred (nine digits' worth): refused.
        let part = frame(
            UNTRUSTED,
            80,
            &format!("/leakguard-selftest?msisdn={}MDAw", "*".repeat(12)),
            None,
            "",
        );
        assert!(check_redacted(&c.frame, &part, &c.value).is_err());

        let cookie = b64_canary_of(&policy(Action::Drop, false, true)).unwrap();
        assert_eq!(cookie.expect, Expect::Dropped);
        assert_eq!(
            cookie_line(&cookie).unwrap(),
            "Cookie: lg=1; msisdn=NDQwMDAwMDAwMDAw"
        );
        let inside = b64_canary_of(&policy(Action::Count, false, false)).unwrap();
        assert_eq!(inside.expect, Expect::Unchanged);
        let http = String::from_utf8_lossy(&inside.frame[54..]).into_owned();
        assert!(
            http.contains("\r\nX-Leakguard-Selftest-Number: uid=NDQwMDAwMDAwMDAw\r\n"),
            "{http}"
        );

        // A longer prefix makes a longer number (13 to 15 digits): unpadded, the value
        // is exactly the characters carrying its bits (18 to 20 for 13 to 15 digits).
        for (prefix, want) in [
            ("4412345678901", "NDQxMjM0NTY3ODkwMQ"),
            ("44123456789012", "NDQxMjM0NTY3ODkwMTI"),
            ("441234567890123", "NDQxMjM0NTY3ODkwMTIz"),
        ] {
            let mut p = policy(Action::Redact, true, true);
            p.msisdn.as_mut().unwrap().prefixes = vec![prefix.into()];
            assert_eq!(b64_canary_of(&p).unwrap().value, want, "{prefix}");
        }

        // Base64 off, or no place read for runs (values read whole): no base64 canary,
        // one canary fewer per hook; hex and base64 are apart.
        let mut off = policy(Action::Redact, true, true);
        off.msisdn.as_mut().unwrap().base64 = false;
        assert!(b64_canary_of(&off).is_none());
        assert!(hex_canary_of(&off).is_some());
        assert_eq!(
            canaries(&off, 80).len() + 1,
            canaries(&policy(Action::Redact, true, true), 80).len()
        );
        let mut hex_off = policy(Action::Redact, true, true);
        hex_off.msisdn.as_mut().unwrap().hex = false;
        assert!(b64_canary_of(&hex_off).is_some());
        let mut whole = policy(Action::Redact, false, false);
        whole.msisdn.as_mut().unwrap().inside_values = false;
        assert!(b64_canary_of(&whole).is_none());
        // No canary but the base64 one carries its value.
        for c in canaries(&policy(Action::Redact, true, true), 80) {
            if !c.what.contains("in base64") {
                let http = String::from_utf8_lossy(&c.frame[54..]).into_owned();
                assert!(!http.contains("NDQw"), "{}: {http}", c.what);
            }
        }
    }
}
