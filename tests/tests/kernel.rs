//! The real programs, loaded into the kernel and run by `BPF_PROG_TEST_RUN` on frames
//! built here. Every case runs on every hook (TC egress, TC ingress, XDP) unless the
//! kernel's test-run limits say otherwise (TC takes at most ~3.7 KB of packet).

use leakguard::policy::{Action, Incomplete, KernelPolicy, Rule};
use leakguard_common::{action, hook, Event, FAMILY_IPV4, FAMILY_IPV6, REDACT_FILLER};
use leakguard_tests::{
    guard::{Guard, Hook, Verdict, TEST_RUN_IFINDEX},
    http::{browser_get, find, get, get_with_header_at, ACR, MSISDN, UIDH, VALUES},
    packet::{
        arp, tcp_checksum_ok, tcp_header_len, tcp_payload, Ext, Frame, CLIENT_V4, SERVER_V4,
        TPID_8021AD, TPID_8021Q, TRUSTED_V4, TRUSTED_V6,
    },
};

const R_MSISDN: u32 = 0;
const R_UIDH: u32 = 1;
const R_ACR: u32 = 2;
const R_CLID: u32 = 3;
const R_LONG: u32 = 4;
/// A rule name of exactly the 64-byte limit.
const LONG_NAME: &str = "X-Operator-Subscriber-Identity-Forwarded-By-Enrichment-Gateway-0";

fn rule(header: &str, action: Action, allow: &[&str]) -> Rule {
    Rule {
        header: header.into(),
        action,
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

fn policy() -> KernelPolicy {
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

fn load() -> Guard {
    Guard::load(&policy()).expect("load leakguard with the test policy")
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
fn assert_redacted(case: &str, hook: Hook, input: &[u8], out: &[u8], values: &[&str]) {
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
fn assert_passes_redacted(g: &mut Guard, case: &str, req: &str, values: &[&str]) {
    let input = Frame::http_v4(req.as_bytes()).build();
    for hook in Hook::ALL {
        let r = g.run(hook, &input).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
        assert_redacted(case, hook, &input, &r.out, values);
    }
}

fn counters_total(g: &Guard) -> u64 {
    (0..5)
        .map(|id| g.counters(id).unwrap().outcomes.iter().sum::<u64>())
        .sum()
}

/// Every parser path: VLAN tags, IPv4 options, IPv6 extension chains, TCP options.
#[test]
fn parser_paths_reach_the_header_on_every_hook() {
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    // MSS, SACK permitted, timestamps, two NOPs: 20 bytes.
    let tcp_opts = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1,
    ];
    let cases: Vec<(&str, Frame)> = vec![
        ("ipv4", Frame::http_v4(&req)),
        (
            "ipv4, 802.1Q tag",
            Frame::http_v4(&req).vlan(TPID_8021Q, 10),
        ),
        (
            "ipv4, 802.1ad + 802.1Q tags",
            Frame::http_v4(&req)
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 10),
        ),
        (
            "ipv4, 4 bytes of options",
            Frame::http_v4(&req).ipv4_options(&[1, 1, 1, 0]),
        ),
        (
            "ipv4, 40 bytes of options",
            Frame::http_v4(&req).ipv4_options(&[1; 40]),
        ),
        (
            "ipv4, first fragment",
            Frame::http_v4(&req).ipv4_fragment(0, true),
        ),
        ("ipv6", Frame::http_v6(&req)),
        (
            "ipv6, 802.1ad + 802.1Q tags",
            Frame::http_v6(&req)
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 10),
        ),
        (
            "ipv6, hop-by-hop",
            Frame::http_v6(&req).ipv6_ext(&[Ext::HopByHop]),
        ),
        (
            "ipv6, routing",
            Frame::http_v6(&req).ipv6_ext(&[Ext::Routing]),
        ),
        (
            "ipv6, destination options",
            Frame::http_v6(&req).ipv6_ext(&[Ext::DestOpts]),
        ),
        (
            "ipv6, hop-by-hop + dest-opts + routing + first fragment",
            Frame::http_v6(&req).ipv6_ext(&[
                Ext::HopByHop,
                Ext::DestOpts,
                Ext::Routing,
                Ext::Fragment {
                    offset: 0,
                    more: true,
                },
            ]),
        ),
        (
            "tcp, 20 bytes of options",
            Frame::http_v4(&req).tcp_options(&tcp_opts),
        ),
        (
            "tcp, 40 bytes of options",
            Frame::http_v6(&req).tcp_options(&[1; 40]),
        ),
    ];
    let mut g = load();
    let mut expected = 0;
    for (case, frame) in &cases {
        let input = frame.build();
        assert!(tcp_checksum_ok(&input), "{case}: test frame is wrong");
        for hook in Hook::ALL {
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_redacted(case, hook, &input, &r.out, &[MSISDN]);
            expected += 1;
        }
    }
    assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), expected);
    assert_eq!(g.stats().unwrap().redacted_packets, expected);
}

/// Non-first fragments carry no TCP header: they pass untouched and are counted.
#[test]
fn non_first_fragments_pass_untouched_and_are_counted() {
    let req = get(&[&format!("X-UIDH: {UIDH}")]);
    let cases = [
        (
            "ipv4, offset 185",
            Frame::http_v4(&req).ipv4_fragment(185, false),
        ),
        (
            "ipv4, offset 1, more",
            Frame::http_v4(&req).ipv4_fragment(1, true),
        ),
        (
            "ipv6, offset 100",
            Frame::http_v6(&req).ipv6_ext(&[Ext::Fragment {
                offset: 100,
                more: false,
            }]),
        ),
        (
            "ipv6, hop-by-hop then offset 7",
            Frame::http_v6(&req).ipv6_ext(&[
                Ext::HopByHop,
                Ext::Fragment {
                    offset: 7,
                    more: true,
                },
            ]),
        ),
    ];
    let mut g = load();
    for (case, frame) in &cases {
        let input = frame.build();
        for hook in Hook::ALL {
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_eq!(r.out, input, "{case} on {hook:?}: fragment modified");
        }
    }
    let s = g.stats().unwrap();
    assert_eq!(s.fragments, (cases.len() * Hook::ALL.len()) as u64);
    assert_eq!(s.tcp_http, 0);
    assert_eq!(counters_total(&g), 0);
}

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

/// Names compare case-insensitively with `_` = `-`; whitespace before the colon makes a
/// line invalid; a name is not matched by a prefix or past 64 bytes.
#[test]
fn header_name_variants() {
    let long65 = format!("{LONG_NAME}X");
    // (line, redacted, malformed lines)
    let cases: Vec<(String, bool, u64)> = vec![
        (format!("x-msisdn: {MSISDN}"), true, 0),
        (format!("X-MsIsDn: {MSISDN}"), true, 0),
        (format!("X_MSISDN: {MSISDN}"), true, 0),
        (format!("x_Msisdn:{MSISDN}"), true, 0),
        (format!("X-MSISDN:\t {MSISDN}"), true, 0),
        (format!("X-UP-CALLING-LINE-ID: {MSISDN}"), true, 0),
        (format!("x_up_calling_line_id: {MSISDN}"), true, 0),
        (format!("{LONG_NAME}: {MSISDN}"), true, 0),
        (format!("{}: {MSISDN}", LONG_NAME.to_lowercase()), true, 0),
        (format!("{long65}: {MSISDN}"), false, 0),
        (format!("X-MSISDN : {MSISDN}"), false, 1),
        (format!("X-MSISDN\t: {MSISDN}"), false, 1),
        (format!("X-MSISDN2: {MSISDN}"), false, 0),
        (format!("XX-MSISDN: {MSISDN}"), false, 0),
        (format!("X-MSISD: {MSISDN}"), false, 0),
        (format!("X-MSISDN {MSISDN}"), false, 1),
    ];
    let mut g = load();
    for (line, redact, malformed) in &cases {
        for hook in Hook::ALL {
            let (matches, bad) = (counters_total(&g), g.stats().unwrap().malformed);
            let input = Frame::http_v4(&get(&[line])).build();
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass);
            if *redact {
                assert_redacted(line, hook, &input, &r.out, &[MSISDN]);
                assert_eq!(counters_total(&g), matches + 1, "{line:?} on {hook:?}");
            } else {
                assert_eq!(r.out, input, "{line:?} on {hook:?}: must not match");
                assert_eq!(counters_total(&g), matches, "{line:?} on {hook:?}");
            }
            let bad_now = g.stats().unwrap().malformed;
            assert_eq!(
                bad_now - bad,
                *malformed,
                "{line:?} on {hook:?}: malformed lines"
            );
        }
    }
    // The two 64-byte-name lines matched the 64-byte rule, on every hook.
    assert_eq!(
        g.count(R_LONG, action::REDACT).unwrap(),
        2 * Hook::ALL.len() as u64
    );
}

/// Bare LF, OWS forms, empty and folded values.
#[test]
fn line_ends_whitespace_and_folding() {
    let v = MSISDN;
    // (request, values to redact, malformed lines)
    let cases: Vec<(&str, String, Vec<&str>, u64)> = vec![
        (
            "bare LF",
            format!("GET / HTTP/1.1\nHost: a\nX-MSISDN: {v}\n\n"),
            vec![v],
            0,
        ),
        (
            "mixed CRLF and LF",
            format!("GET / HTTP/1.0\r\nHost: a\nX-MSISDN: {v}\r\nAccept: */*\n\r\n"),
            vec![v],
            0,
        ),
        (
            "trailing whitespace is part of what is overwritten",
            format!("GET / HTTP/1.1\r\nX-MSISDN: {v}   \r\n\r\n"),
            vec![v, "   \r"],
            0,
        ),
        (
            "obs-fold continuation of a redacted value",
            "GET / HTTP/1.1\r\nX-MSISDN: 4477\r\n  00900123\r\nHost: a\r\n\r\n".to_string(),
            vec!["4477", "00900123"],
            1,
        ),
        (
            "last line of the segment without line end",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-MSISDN: {v}"),
            vec![v],
            0,
        ),
    ];
    let mut g = load();
    for (case, req, values, malformed) in &cases {
        for hook in Hook::ALL {
            let bad = g.stats().unwrap().malformed;
            let input = Frame::http_v4(req.as_bytes()).build();
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass);
            // "   \r": the spaces are overwritten, the CR stays.
            let vals: Vec<&str> = values.iter().map(|s| s.trim_end_matches('\r')).collect();
            assert_redacted(case, hook, &input, &r.out, &vals);
            assert!(find(&r.out, b"\r\n\r\n").is_some() || !req.contains("\r\n\r\n"));
            let bad_now = g.stats().unwrap().malformed;
            assert_eq!(bad_now - bad, *malformed, "{case} on {hook:?}");
        }
    }

    // An empty value (OWS only): matched and counted, nothing to overwrite.
    let mut g = load();
    for (i, hook) in Hook::ALL.into_iter().enumerate() {
        let input = Frame::http_v4(b"GET / HTTP/1.1\r\nX-MSISDN: \r\nHost: a\r\n\r\n").build();
        let r = g.run(hook, &input).unwrap();
        assert_eq!(r.out, input);
        assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), i as u64 + 1);
        assert_eq!(
            g.stats().unwrap().redacted_packets,
            0,
            "nothing was overwritten"
        );
    }
}

/// Several requests in one segment are all scanned; a drop anywhere drops the segment.
#[test]
fn pipelined_requests_are_all_scanned() {
    let one = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let two = get(&[
        &format!("X-Up-Calling-Line-ID: {MSISDN}"),
        &format!("X-ACR: {ACR}"),
    ]);
    let three = b"HEAD /x HTTP/1.1\nX-MSISDN: 447700900999\n\n".to_vec();
    let pipelined = [one.clone(), two, three].concat();
    for hook in Hook::ALL {
        let mut g = load();
        let input = Frame::http_v4(&pipelined).build();
        let r = g.run(hook, &input).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        assert_redacted("pipelined", hook, &input, &r.out, &[MSISDN, "447700900999"]);
        assert_eq!(g.stats().unwrap().heads, 3);
        assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 2);
        assert_eq!(g.count(R_CLID, action::REDACT).unwrap(), 1);
        assert_eq!(g.count(R_ACR, action::COUNT).unwrap(), 1);

        let mut g = load();
        let with_drop = [one.clone(), get(&[&format!("X-UIDH: {UIDH}")])].concat();
        let r = g.run(hook, &Frame::http_v4(&with_drop).build()).unwrap();
        assert_eq!(r.verdict, Verdict::Drop, "{hook:?}");
        assert_eq!(g.count(R_MSISDN, action::REDACT).unwrap(), 1);
        assert_eq!(g.count(R_UIDH, action::DROP).unwrap(), 1);
    }
}

/// A header far into a large packet is found under the default cap (every head scanned to
/// its end): past byte 1,500 on both hooks (TC test runs take ~3.7 KB at most), and on XDP
/// past each 16 KiB scan window, up to the last one.
#[test]
fn header_deep_in_a_large_head_is_found() {
    let mut cases: Vec<(usize, Vec<Hook>)> = vec![(1600, Hook::ALL.to_vec())];
    cases.push((3000, Hook::ALL.to_vec()));
    for at in [9000, 20_000, 40_000, 60_000] {
        cases.push((at, vec![Hook::Xdp]));
    }
    for (at, hooks) in cases {
        let req = get_with_header_at(at, &[&format!("X-MSISDN: {MSISDN}")]);
        let input = Frame::http_v4(&req).build();
        for hook in hooks {
            let mut g = Guard::load(&policy()).unwrap();
            let r = g.run(hook, &input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "header at {at}, {hook:?}");
            assert_redacted(&format!("header at {at}"), hook, &input, &r.out, &[MSISDN]);
            assert_eq!(g.stats().unwrap().truncated, 0);
        }
    }
}

/// A head longer than `max_head_bytes` is not seen whole: under the default
/// (`incomplete_heads = "drop"`) the segment is dropped, counted and reported by an
/// event, with nothing of it out; under "pass" the part within the cap is handled and the
/// rest passes, counted and reported. A head within the cap is neither.
#[test]
fn a_head_longer_than_the_cap_follows_the_incomplete_policy() {
    let cap = 512;
    let early = get_with_header_at(
        100,
        &[&format!("X-MSISDN: {MSISDN}"), &"Cookie: x".repeat(60)],
    );
    let late = get_with_header_at(600, &[&format!("X-MSISDN: {MSISDN}")]);
    let fits = get(&[&format!("X-MSISDN: {MSISDN}")]);
    assert!(fits.len() < cap as usize && early.len() > cap as usize);
    for hook in Hook::ALL {
        for incomplete in [Incomplete::Drop, Incomplete::Pass] {
            let case = format!("{hook:?}, {}", incomplete.name());
            let mut g = Guard::load(&KernelPolicy {
                max_head_bytes: cap,
                incomplete,
                ..policy()
            })
            .unwrap();
            for (n, req) in [&early, &late].into_iter().enumerate() {
                let input = Frame::http_v4(req).build();
                let r = g.run(hook, &input).unwrap();
                let st = g.stats().unwrap();
                assert_eq!(st.truncated, n as u64 + 1, "{case}");
                assert_eq!(st.bytes, (n as u64 + 1) * u64::from(cap), "{case}");
                let ev = g.events().unwrap();
                let inc: Vec<_> = ev
                    .iter()
                    .filter(|e| e.rule_id == leakguard_common::INCOMPLETE_RULE_ID)
                    .collect();
                assert_eq!(inc.len(), 1, "{case}: one event for the head");
                if incomplete == Incomplete::Drop {
                    assert_eq!(r.verdict, Verdict::Drop, "{case}");
                    assert_eq!(inc[0].action, action::DROP);
                    assert_eq!(st.dropped_packets, n as u64 + 1, "{case}");
                } else {
                    assert_eq!(r.verdict, Verdict::Pass, "{case}");
                    assert_eq!(inc[0].action, action::COUNT);
                    if n == 0 {
                        assert_redacted("header before the cap", hook, &input, &r.out, &[MSISDN]);
                    } else {
                        assert_eq!(r.out, input, "{case}: past the cap nothing is seen");
                    }
                }
            }
            let r = g.run(hook, &Frame::http_v4(&fits).build()).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case}");
            assert!(find(&r.out, MSISDN.as_bytes()).is_none());
            assert_eq!(
                g.stats().unwrap().truncated,
                2,
                "{case}: a head within the cap is whole"
            );
        }
    }
}

/// What must pass untouched and uncounted.
#[test]
fn packets_that_must_pass_untouched() {
    let id = format!("X-MSISDN: {MSISDN}");
    let req = get(&[&id]);
    let body = format!("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\n{id}\r\n");
    let response = format!("HTTP/1.1 200 OK\r\n{id}\r\n\r\n");
    let http2 = format!("GET / HTTP/2.0\r\n{id}\r\n\r\n");
    let no_version = format!("GET /\r\n{id}\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tcp to 443", Frame::http_v4(&req).dport(443).build()),
        ("tcp to 22, ipv6", Frame::http_v6(&req).dport(22).build()),
        ("udp to 80", Frame::http_v4(&req).udp().build()),
        ("arp", arp()),
        (
            "identity header in a body",
            Frame::http_v4(body.as_bytes()).build(),
        ),
        (
            "a response, not a request",
            Frame::http_v4(response.as_bytes()).build(),
        ),
        (
            "HTTP/2.0 request line",
            Frame::http_v4(http2.as_bytes()).build(),
        ),
        (
            "request line without version",
            Frame::http_v4(no_version.as_bytes()).build(),
        ),
        (
            "binary on port 80",
            Frame::http_v4(&[0u8, 1, 2, 3, 0xff, 0x16, 3, 1]).build(),
        ),
        ("pure ACK", Frame::http_v4(b"").build()),
    ];
    let mut g = load();
    for (case, input) in &cases {
        for hook in Hook::ALL {
            let r = g.run(hook, input).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{case} on {hook:?}");
            assert_eq!(&r.out, input, "{case} on {hook:?}: modified");
        }
    }
    assert_eq!(counters_total(&g), 0);
    assert!(g.events().unwrap().is_empty());
    let s = g.stats().unwrap();
    assert_eq!(s.packets, (cases.len() * Hook::ALL.len()) as u64);
    // The body request is one head; the others never start one.
    assert_eq!(s.heads, Hook::ALL.len() as u64);
}

/// Bytes after the IP datagram (an Ethernet trailer, padding) are not the segment's: a
/// head left open at the datagram's end is not continued into them, whether the frame is
/// linear or (XDP, large) carries fragments, where the packet length takes a helper call.
#[test]
fn bytes_past_the_ip_datagram_are_never_scanned() {
    let trailer = format!("X-MSISDN: {MSISDN}\r\n\r\n");
    let short = "GET / HTTP/1.1\r\nHost: a\r\n".to_string();
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n",
        "p".repeat(5000)
    );
    for (head, hooks) in [(short, Hook::ALL.to_vec()), (long, vec![Hook::Xdp])] {
        let mut input = Frame::http_v4(head.as_bytes()).build();
        input.extend_from_slice(trailer.as_bytes());
        for hook in hooks {
            let mut g = Guard::load(&policy()).unwrap();
            let r = g.run(hook, &input).unwrap();
            let case = format!("{} B head on {hook:?}", head.len());
            assert_eq!(r.verdict, Verdict::Pass, "{case}");
            assert!(r.out == input, "{case}: the trailer was scanned");
            assert_eq!(counters_total(&g), 0, "{case}");
            assert_eq!(g.stats().unwrap().bytes, head.len() as u64, "{case}");
        }
    }
}

/// HTTP ports come from the map the daemon fills.
#[test]
fn http_ports_come_from_the_policy() {
    let req = get(&[&format!("X-MSISDN: {MSISDN}")]);
    let mut g = Guard::load(&KernelPolicy {
        ports: vec![8081],
        ..policy()
    })
    .unwrap();
    for hook in Hook::ALL {
        let on_80 = Frame::http_v4(&req).build();
        assert_eq!(
            g.run(hook, &on_80).unwrap().out,
            on_80,
            "{hook:?}: 80 is not configured"
        );
        let on_8081 = Frame::http_v4(&req).dport(8081).build();
        let r = g.run(hook, &on_8081).unwrap();
        assert_redacted("port 8081", hook, &on_8081, &r.out, &[MSISDN]);
    }
    assert_eq!(g.stats().unwrap().tcp_http, Hook::ALL.len() as u64);
    // Defaults: 80 and 8080.
    let mut g = load();
    let r = g
        .run(Hook::Xdp, &Frame::http_v4(&req).dport(8080).build())
        .unwrap();
    assert!(find(&r.out, MSISDN.as_bytes()).is_none());
}

/// Global counters: packets, TCP to an HTTP port, heads, lines, bytes.
#[test]
fn global_counters() {
    let req = get(&[&format!("X-ACR: {ACR}"), "X-Other: 1"]);
    let mut g = load();
    g.run(Hook::Xdp, &Frame::http_v4(&req).build()).unwrap();
    g.run(Hook::TcEgress, &arp()).unwrap();
    let s = g.stats().unwrap();
    assert_eq!(s.packets, 2);
    assert_eq!(s.tcp_http, 1);
    assert_eq!(s.heads, 1);
    // Host, User-Agent, X-ACR, X-Other, Accept.
    assert_eq!(s.lines, 5);
    // The scan stops at the first byte after the head (here: the segment's end).
    assert_eq!(s.bytes, req.len() as u64);
    assert_eq!(s.errors, 0);
}

/// Events name where and what matched, and never carry a byte of the value.
#[test]
fn events_describe_the_match_without_the_value() {
    let mut g = load();
    let req = get(&[&format!("X-MSISDN: {MSISDN}"), &format!("X-ACR: {ACR}")]);
    g.run(Hook::Xdp, &Frame::http_v4(&req).sport(40000).build())
        .unwrap();
    g.run(
        Hook::TcEgress,
        &Frame::http_v6(&req).dst_v6(TRUSTED_V6).build(),
    )
    .unwrap();
    let events = g.events().unwrap();
    assert_eq!(events.len(), 4);
    let e: &Event = &events[0];
    assert_eq!(
        (e.rule_id, e.action, e.hook, e.family),
        (R_MSISDN, action::REDACT, hook::XDP, FAMILY_IPV4)
    );
    assert_eq!(&e.saddr[..4], &CLIENT_V4);
    assert_eq!(&e.daddr[..4], &SERVER_V4);
    assert_eq!((e.sport, e.dport), (40000, 80));
    assert_eq!(
        e.name_len, 0,
        "a rule's event names its header by the rule id only"
    );
    assert_eq!(
        (events[1].rule_id, events[1].action),
        (R_ACR, action::COUNT)
    );
    let v6 = &events[2];
    assert_eq!(
        (v6.rule_id, v6.action, v6.hook, v6.family),
        (R_MSISDN, action::ALLOW, hook::TC_EGRESS, FAMILY_IPV6)
    );
    assert_eq!(v6.daddr, TRUSTED_V6);
    for ev in &events {
        // SAFETY: Event is plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(ev).cast::<u8>(), size_of::<Event>())
        };
        for v in VALUES {
            assert!(
                find(bytes, v.as_bytes()).is_none(),
                "an event carries a value"
            );
            assert!(
                find(bytes, &v.as_bytes()[..6]).is_none(),
                "an event carries part of a value"
            );
        }
    }
}

/// A redaction of a long value in a realistic request keeps every other byte.
#[test]
fn realistic_request_with_long_cookie() {
    let mut req = browser_get(1400);
    let at = find(&req, b"Cookie:").unwrap();
    let line = format!("X-Up-Calling-Line-ID: {MSISDN}\r\nX-UIDH-Like: {UIDH}\r\n");
    req.splice(at..at, line.bytes());
    for hook in Hook::ALL {
        let mut g = load();
        let input = Frame::http_v6(&req).build();
        let r = g.run(hook, &input).unwrap();
        assert_redacted("browser request", hook, &input, &r.out, &[MSISDN]);
        assert!(
            find(&r.out, UIDH.as_bytes()).is_some(),
            "X-UIDH-Like is not X-UIDH"
        );
    }
}

/// A header right after a long skipped line is read, wherever that line's LF falls: the
/// kernel skips a line eight bytes at a time, 256 bytes per call, and a line running past
/// one call's bytes must go on exactly where that call stopped. Three ways a line is
/// skipped: no rule starts with its first bytes, its name is no rule, it has no colon.
#[test]
fn a_header_after_a_long_skipped_line_is_read_wherever_that_line_ends() {
    let mut g = load();
    for lead in ["Cookie: ", "X-Forwarded-Host: ", "no colon "] {
        for len in 200..=600 {
            let req = format!(
                "GET / HTTP/1.1\r\n{lead}{}\r\nX-MSISDN: {MSISDN}\r\n\r\n",
                "q".repeat(len)
            );
            let case = format!("{lead:?} line of {len} value bytes");
            assert_passes_redacted(&mut g, &case, &req, &[MSISDN]);
        }
    }
}

/// The same for the request target, read eight bytes at a time, 256 per call: a header
/// after a request line whose target ends on every byte of every word, across calls.
#[test]
fn a_header_after_a_long_target_is_read_wherever_the_target_ends() {
    let mut g = load();
    for len in 1..=600 {
        let req = format!(
            "GET /{} HTTP/1.1\r\nX-MSISDN: {MSISDN}\r\n\r\n",
            "t".repeat(len)
        );
        let case = format!("target of {} bytes", len + 1);
        assert_passes_redacted(&mut g, &case, &req, &[MSISDN]);
    }
}

/// Values are overwritten eight bytes at a time: values of every length from 1 to 150
/// bytes, starting at every byte of a word, ended by CR LF or LF, are overwritten whole
/// (and nothing else) with a valid checksum, on every hook.
#[test]
fn values_of_every_length_and_alignment_are_fully_redacted() {
    let mut g = load();
    for shift in 0..8 {
        for len in 1..=150 {
            let value: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            for eol in ["\r\n", "\n"] {
                let req = format!(
                    "GET /{} HTTP/1.1{eol}X-MSISDN: {value}{eol}{eol}",
                    "s".repeat(shift)
                );
                let case = format!("value of {len} bytes, target shifted {shift}, {eol:?}");
                assert_passes_redacted(&mut g, &case, &req, &[&value]);
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

fn count_rules(names: &[String]) -> KernelPolicy {
    KernelPolicy {
        rules: names.iter().map(|n| rule(n, Action::Count, &[])).collect(),
        ..KernelPolicy::default()
    }
}

/// Every rule of a full table is found (the rule table's probing), and names that pass
/// the length/first/last prefilter without being rules are not.
#[test]
fn a_full_rule_table_finds_every_rule_and_nothing_else() {
    const RULES: usize = leakguard_common::MAX_RULES as usize - 1;
    let names: Vec<String> = (0..RULES).map(|i| format!("X-Id-{i:04}")).collect();
    let mut g = Guard::load(&count_rules(&names)).unwrap();
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

/// Match counters: in the interface's `MATCH_COUNTS` slot for rule ids below
/// `MATCH_ARRAY_RULES` once the interface has a slot; in the `MATCHES` hash otherwise.
#[test]
fn match_counters_by_slot_and_in_the_hash() {
    let high = leakguard_common::MATCH_ARRAY_RULES as usize;
    let names: Vec<String> = (0..=high).map(|i| format!("X-Rule-{i}")).collect();
    let mut g = Guard::load(&count_rules(&names)).unwrap();
    let frame = Frame::http_v4(&get(&["X-Rule-0: 1", &format!("X-Rule-{high}: 1")])).build();
    let run_all = |g: &mut Guard| {
        for hook in Hook::ALL {
            assert_eq!(g.run(hook, &frame).unwrap().verdict, Verdict::Pass);
        }
    };
    const SLOT: u32 = 5;
    let count = action::COUNT;
    run_all(&mut g);
    let events = g.events().unwrap();
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.ifindex == TEST_RUN_IFINDEX));
    let mut want_hash: Vec<_> = Hook::ALL
        .iter()
        .flat_map(|h| {
            [
                ((TEST_RUN_IFINDEX, h.id(), 0, count), 1),
                ((TEST_RUN_IFINDEX, h.id(), high as u32, count), 1),
            ]
        })
        .collect();
    want_hash.sort();
    let mut hash = g.match_hash().unwrap();
    hash.sort();
    assert_eq!(hash, want_hash, "no slot: every match in the hash");
    assert_eq!(g.match_array(SLOT).unwrap(), vec![]);

    g.give_slot(TEST_RUN_IFINDEX, SLOT).unwrap();
    run_all(&mut g);
    let mut array = g.match_array(SLOT).unwrap();
    array.sort();
    let mut want_array: Vec<_> = Hook::ALL.iter().map(|h| ((h.id(), 0, count), 1)).collect();
    want_array.sort();
    assert_eq!(array, want_array, "with a slot: rule 0 in the array");
    let mut hash = g.match_hash().unwrap();
    hash.sort();
    for ((k, n), (wk, wn)) in hash.iter().zip(&want_hash) {
        assert_eq!(k, wk);
        let moved = k.2 == high as u32;
        assert_eq!(
            *n,
            wn + u64::from(moved),
            "{k:?}: only the high rule id still in the hash"
        );
    }
    assert_eq!(
        g.match_array(SLOT + 1).unwrap(),
        vec![],
        "other slots untouched"
    );
}

/// A full event ring drops events, counts each dropped one, and never a counter: every
/// match is counted whether or not its event fit. Draining makes room again.
#[test]
fn a_full_event_ring_loses_events_not_counts() {
    let mut g = load();
    let frame = Frame::http_v4(&get(&[&format!("X-ACR: {ACR}")])).build();
    // Record size: an 8-byte header and a rule's event (the head), 8-aligned.
    let record = (8 + leakguard_common::EVENT_HEAD_BYTES).next_multiple_of(8);
    let capacity = leakguard_common::EVENT_RING_BYTES as usize / record;
    let runs = capacity + 100;
    for _ in 0..runs {
        assert_eq!(g.run(Hook::Xdp, &frame).unwrap().verdict, Verdict::Pass);
    }
    assert_eq!(g.count(R_ACR, action::COUNT).unwrap(), runs as u64);
    let s = g.stats().unwrap();
    let delivered = g.events().unwrap().len();
    assert_eq!(delivered as u64 + s.events_lost, runs as u64);
    assert!(
        (capacity - 1..=capacity).contains(&delivered),
        "the ring holds {capacity} events; {delivered} delivered"
    );
    // Drained: the next event fits.
    g.run(Hook::Xdp, &frame).unwrap();
    assert_eq!(g.events().unwrap().len(), 1);
    assert_eq!(g.stats().unwrap().events_lost, s.events_lost);
}

/// A rule's match sends the event head (the rule id names the header); a match of the
/// identity-number check sends the header name the number came under. Neither carries
/// any of the value.
#[test]
fn number_events_carry_the_header_name_rule_events_do_not() {
    let mut p = policy();
    p.msisdn = Some(leakguard_tests::corpus::number_check(Action::Redact));
    let mut g = Guard::load(&p).unwrap();
    let req = get(&[
        &format!("X-ACR: {ACR}"),
        &format!("X_Subscriber_No: {MSISDN}"),
    ]);
    g.run(Hook::TcEgress, &Frame::http_v4(&req).build())
        .unwrap();
    let events = g.events().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].rule_id, events[0].name_len), (R_ACR, 0));
    assert_eq!(events[0].name.name, [0; leakguard_common::MAX_NAME_LEN]);
    let n = &events[1];
    assert_eq!(n.rule_id, leakguard_common::MSISDN_RULE_ID);
    assert_eq!(n.action, action::REDACT);
    assert_eq!(&n.name.name[..n.name_len as usize], b"x-subscriber-no");
    assert!(n.name.name[n.name_len as usize..].iter().all(|&b| b == 0));
}
