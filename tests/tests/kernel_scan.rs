//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`): what
//! the scanner reads. Header names and their variants; line ends, whitespace and folding;
//! pipelined requests; a header deep in a large head; heads longer than the cap; a header
//! after a long skipped line or a long request target, wherever that ends.

use leakguard::policy::{Incomplete, KernelPolicy};
use leakguard_common::action;
use leakguard_tests::{
    guard::{Guard, Hook, Verdict},
    http::{find, get, get_with_header_at, ACR, MSISDN, UIDH},
    kernel::{
        assert_passes_redacted, assert_redacted, counters_total, load, policy, LONG_NAME, R_ACR,
        R_CLID, R_LONG, R_MSISDN, R_UIDH,
    },
    packet::Frame,
};

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
            let mut g = Guard::pooled(&policy()).unwrap();
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
            let mut g = Guard::pooled(&KernelPolicy {
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
