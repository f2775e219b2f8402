//! The benchmark's kernel cases (issue 5's list), shared by `cargo xtask bench` and
//! `cargo xtask profile`, so that a profile is of exactly what the benchmark times.

use leakguard::policy::{Action, KernelPolicy, Rule};

use crate::{
    http::{browser_get, browser_get_lines, get_with_header_at, MSISDN},
    kernel::rule,
    packet::Frame,
};

/// One packet under one policy.
pub struct Case {
    pub name: &'static str,
    pub policy: KernelPolicy,
    pub frame: Vec<u8>,
    /// Also on TC: a TC test run takes at most ~3.7 KB of packet.
    pub tc: bool,
}

#[must_use]
pub fn policy(rules: Vec<Rule>) -> KernelPolicy {
    KernelPolicy {
        rules,
        ..KernelPolicy::default()
    }
}

/// `req` with an `X-MSISDN` line before the blank line.
#[must_use]
pub fn with_msisdn(req: &[u8]) -> Vec<u8> {
    let mut v = req.to_vec();
    let at = v.len() - 2;
    v.splice(at..at, format!("X-MSISDN: {MSISDN}\r\n").bytes());
    v
}

/// 1,400 bytes of a request body (a POST's gzip payload): its first byte
/// cannot start a request, so a segment of it is a body, not a head.
#[must_use]
pub fn body_segment() -> Vec<u8> {
    let mut body = vec![0u8; 1400];
    body[0] = 0x1f; // gzip magic
    body[1] = 0x8b;
    body
}

/// A 16 KiB request whose identity header sits at byte 6,000.
#[must_use]
pub fn deep_request() -> Vec<u8> {
    let mut r = get_with_header_at(6000, &[&format!("X-MSISDN: {MSISDN}")]);
    let pad = 16_000usize.saturating_sub(r.len());
    let at = r.len() - 2;
    r.splice(
        at..at,
        format!("X-Pad: {}\r\n", "p".repeat(pad.saturating_sub(10))).bytes(),
    );
    r
}

/// The case `cargo xtask profile` runs without `--case`: the 600 B request without an
/// identity header, the one issue 5's main target is about.
pub const PROFILE_DEFAULT: usize = 4;

/// The kernel-cost cases, in the benchmark's order. Frames over 4 KiB need a policy whose
/// `max_head_bytes` covers them (`Case::policy` has it).
#[must_use]
/// The bench's policy with the identity-number check on (prefixes 44 and 447).
fn numbers(action: Action, target: bool, cookies: bool) -> KernelPolicy {
    let mut p = policy(vec![rule("X-MSISDN", Action::Count, &[])]);
    let mut m = crate::corpus::number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.request_target = target;
    m.cookies = cookies;
    p.msisdn = Some(m);
    p
}

/// `req` with a `msisdn=447700900123` pair at the start of its cookie.
fn with_cookie_number(req: &[u8]) -> Vec<u8> {
    let at = crate::http::find(req, b"Cookie: ").unwrap() + 8;
    let mut out = req[..at].to_vec();
    out.extend_from_slice(b"msisdn=447700900123; ");
    out.extend_from_slice(&req[at..]);
    out
}

/// `req` with `?msisdn=447700900123` after its path (26 bytes longer).
fn with_query_number(req: &[u8]) -> Vec<u8> {
    let at = req.iter().position(|&b| b == b' ').unwrap() + 1;
    let end = at + req[at..].iter().position(|&b| b == b' ').unwrap();
    let mut out = req[..end].to_vec();
    out.extend_from_slice(b"?msisdn=447700900123");
    out.extend_from_slice(&req[end..]);
    out
}

/// `req` with `?uid=` and base64 of 447700900123 after its path (21 bytes longer).
fn with_query_b64(req: &[u8]) -> Vec<u8> {
    let at = req.iter().position(|&b| b == b' ').unwrap() + 1;
    let end = at + req[at..].iter().position(|&b| b == b' ').unwrap();
    let mut out = req[..end].to_vec();
    out.extend_from_slice(b"?uid=NDQ3NzAwOTAwMTIz");
    out.extend_from_slice(&req[end..]);
    out
}

/// `numbers` with the base64 form off.
fn numbers_no_b64(action: Action) -> KernelPolicy {
    let mut p = numbers(action, true, true);
    if let Some(m) = &mut p.msisdn {
        m.base64 = false;
    }
    p
}

/// `req` with `?uid=` and hex of 447700900123 after its path (29 bytes longer).
fn with_query_hex(req: &[u8]) -> Vec<u8> {
    let at = req.iter().position(|&b| b == b' ').unwrap() + 1;
    let end = at + req[at..].iter().position(|&b| b == b' ').unwrap();
    let mut out = req[..end].to_vec();
    out.extend_from_slice(b"?uid=343437373030393030313233");
    out.extend_from_slice(&req[end..]);
    out
}

pub fn kernel_cases() -> Vec<Case> {
    let count = policy(vec![rule("X-MSISDN", Action::Count, &[])]);
    let redact = policy(vec![rule("X-MSISDN", Action::Redact, &[])]);
    let body = body_segment();
    let case = |name, policy: &KernelPolicy, frame: Vec<u8>, tc| Case {
        name,
        policy: policy.clone(),
        frame,
        tc,
    };
    vec![
        case(
            "UDP 80 B",
            &count,
            Frame::http_v4(&[0; 38]).udp().build(),
            true,
        ),
        case(
            "TCP to 443, 1,400 B",
            &count,
            Frame::http_v4(&[0x16; 1400]).dport(443).build(),
            true,
        ),
        case(
            "TCP to 80, body segment 1,400 B",
            &count,
            Frame::http_v4(&body).build(),
            true,
        ),
        // The least a scanned request costs: request line, Host, blank line.
        case(
            "HTTP GET 38 B, request line and Host",
            &count,
            Frame::http_v4(b"GET / HTTP/1.1\r\nHost: 198.51.100.2\r\n\r\n").build(),
            true,
        ),
        case(
            "HTTP GET 600 B, 12 headers, no identity header",
            &count,
            Frame::http_v4(&browser_get(600)).build(),
            true,
        ),
        case(
            "same + X-MSISDN, count",
            &count,
            Frame::http_v4(&with_msisdn(&browser_get(574))).build(),
            true,
        ),
        case(
            "same + X-MSISDN, redact",
            &redact,
            Frame::http_v4(&with_msisdn(&browser_get(574))).build(),
            true,
        ),
        // The identity-number check (prefixes 44 and 447, count): header values only, then
        // with the request target, then with cookies too; a number in the query (counted,
        // redacted) and in the cookie.
        case(
            "same, [msisdn] on, header values only",
            &numbers(Action::Count, false, false),
            Frame::http_v4(&browser_get(600)).build(),
            true,
        ),
        case(
            "same, [msisdn] on, header values and request target",
            &numbers(Action::Count, true, false),
            Frame::http_v4(&browser_get(600)).build(),
            true,
        ),
        case(
            "same, [msisdn] on, header values, request target and cookies",
            &numbers(Action::Count, true, true),
            Frame::http_v4(&browser_get(600)).build(),
            true,
        ),
        case(
            "same, [msisdn] on, all places, base64 form off",
            &numbers_no_b64(Action::Count),
            Frame::http_v4(&browser_get(600)).build(),
            true,
        ),
        case(
            "same + ?msisdn=447700900123, count",
            &numbers(Action::Count, true, true),
            Frame::http_v4(&with_query_number(&browser_get(574))).build(),
            true,
        ),
        case(
            "same + ?msisdn=447700900123, redact",
            &numbers(Action::Redact, true, true),
            Frame::http_v4(&with_query_number(&browser_get(574))).build(),
            true,
        ),
        case(
            "same + ?uid=hex of 447700900123, count",
            &numbers(Action::Count, true, true),
            Frame::http_v4(&with_query_hex(&browser_get(571))).build(),
            true,
        ),
        case(
            "same + ?uid=base64 of 447700900123, count",
            &numbers(Action::Count, true, true),
            Frame::http_v4(&with_query_b64(&browser_get(579))).build(),
            true,
        ),
        case(
            "same + cookie msisdn=447700900123, count",
            &numbers(Action::Count, true, true),
            Frame::http_v4(&with_cookie_number(&browser_get(574))).build(),
            true,
        ),
        case(
            "HTTP GET 1,400 B, 30 headers, large cookie",
            &count,
            Frame::http_v4(&browser_get_lines(1400, 30)).build(),
            true,
        ),
        // XDP only; the TC figure for a real GSO skb of this request is the `gso` part.
        Case {
            name: "HTTP GET 16 KiB, X-MSISDN at byte 6,000, redact",
            policy: redact.clone(),
            frame: Frame::http_v4(&deep_request()).build(),
            tc: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::{kernel_cases, PROFILE_DEFAULT};

    #[test]
    fn the_profile_default_is_the_600_byte_request() {
        let cases = kernel_cases();
        assert!(cases[PROFILE_DEFAULT].name.starts_with("HTTP GET 600 B"));
    }
}
