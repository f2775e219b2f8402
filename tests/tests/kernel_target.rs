//! The kernel programs under `BPF_PROG_TEST_RUN`: identity numbers in the request target
//! (`[msisdn]` with `request_target` on). A run of 9-15 digits with a configured prefix in
//! a path segment or a query value is overwritten digit for digit (`redact`), drops the
//! request (`drop`) or is counted (`count`), and named in its event (`path`,
//! `query:NAME`); look-alikes pass untouched.

use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::{action, place, MSISDN_RULE_ID};
use leakguard_tests::{
    corpus::number_check,
    guard::{Guard, Hook, Pooled, Verdict},
    http::{find, MSISDN},
    packet::Frame,
};

fn guard(action: Action, target: bool) -> Pooled {
    let mut m = number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.request_target = target;
    m.allow = vec!["198.51.100.0/24".parse().unwrap()];
    let p = KernelPolicy {
        msisdn: Some(m),
        ..KernelPolicy::default()
    };
    Guard::pooled(&p).unwrap()
}

fn request(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// `target` with every byte of the number (`MSISDN` at its first occurrence after
/// `skip` bytes) overwritten.
fn redacted(target: &str, skip: usize) -> String {
    let at = skip + target[skip..].find(MSISDN).unwrap();
    format!(
        "{}{}{}",
        &target[..at],
        "*".repeat(MSISDN.len()),
        &target[at + MSISDN.len()..]
    )
}

/// Targets that carry the number, and the byte offset from which to find it (past the
/// `%20`'s digits, say).
const CARRIERS: &[(&str, usize)] = &[
    ("/u/447700900123/", 0),
    ("/landing?msisdn=447700900123&x=1", 0),
    ("/landing?msisdn=447700900123", 0),
    ("/l?tel=%2B447700900123", 0),
    ("/l?tel=%2b447700900123&a=b", 0),
    ("/l?tel=+447700900123", 0),
    ("/l?tel=%20447700900123", 0),
    ("/447700900123", 0),
    ("http://partner.example/sub/447700900123?x=1", 0),
    ("/a;jsessionid=447700900123", 0),
    ("/u-447700900123.html", 0),
];

#[test]
fn every_place_of_a_number_in_the_target_is_redacted_digit_for_digit() {
    let mut g = guard(Action::Redact, true);
    for &(target, skip) in CARRIERS {
        // At every alignment of the number within a word.
        for pad in 0..8 {
            let t = format!(
                "/{}{}",
                "p".repeat(pad),
                &target[usize::from(target.starts_with('/'))..]
            );
            let t = if target.starts_with("http") {
                target.to_owned()
            } else {
                t
            };
            let req = request(&t);
            let want = request(&redacted(&t, skip));
            for hook in Hook::ALL {
                let frame = Frame::http_v4(&req).build();
                let r = g.run(hook, &frame).unwrap();
                assert_eq!(r.verdict, Verdict::Pass, "{t} on {hook:?}");
                let at = find(&r.out, b"GET ").expect("payload");
                assert_eq!(
                    String::from_utf8_lossy(&r.out[at..at + want.len()]),
                    String::from_utf8_lossy(&want),
                    "{t} on {hook:?}"
                );
            }
        }
    }
    // Every one counted under the check, each an event naming its place.
    let events = g.events().unwrap();
    assert_eq!(events.len(), CARRIERS.len() * 8 * Hook::ALL.len());
    assert!(events.iter().all(|e| e.rule_id == MSISDN_RULE_ID
        && e.place == place::TARGET
        && e.action == action::REDACT));
}

#[test]
fn events_name_the_path_or_the_query_parameter_never_a_digit_of_the_value() {
    let mut g = guard(Action::Count, true);
    let cases: &[(&str, &str)] = &[
        ("/u/447700900123/", "path"),
        ("/x?msisdn=447700900123&y=2", "query:msisdn"),
        ("/x?a=1&Tel_No=%2B447700900123", "query:tel-no"),
        ("/x?u12=447700900123", "query:u##"),
        ("/x?447700900123", "query"),
        ("/x?u447700900124=1", "query"),
        ("447700900123", "path"),
    ];
    for (target, name) in cases {
        let r = g
            .run(Hook::TcEgress, &Frame::http_v4(&request(target)).build())
            .unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        let ev = g.events().unwrap();
        assert_eq!(ev.len(), 1, "{target}");
        let e = &ev[0];
        let got = &e.name.name[..e.name_len as usize];
        assert_eq!(String::from_utf8_lossy(got), *name, "{target}");
        assert!(
            !got.iter().any(u8::is_ascii_digit),
            "{target}: a digit in the name"
        );
        assert_eq!((e.place, e.action), (place::TARGET, action::COUNT));
    }
}

#[test]
fn look_alikes_pass_untouched_and_uncounted() {
    let mut g = guard(Action::Redact, true);
    let targets = [
        "/order?id=99001234567",             // no configured prefix
        "/x?n=44770090",                     // 8 digits
        "/x?n=4477009001234567",             // 16 digits
        "/2026/11/25/447/700/900/123",       // flagged words, short runs
        "/x?ts=1700000000&v=2",              // a Unix time
        "/x?n=44%2077009001",                // an escape breaks the run
        "/x?id=%34%34%37%37%30%30%39%30%30", // escaped digits are not read
        "/img/4477-0090-0123.png",
    ];
    for t in targets {
        let req = request(t);
        for hook in Hook::ALL {
            let frame = Frame::http_v4(&req).build();
            let r = g.run(hook, &frame).unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{t}");
            assert!(
                find(&r.out, t.as_bytes()).is_some(),
                "{t} changed on {hook:?}"
            );
        }
    }
    // A number in a POST body is not a target's.
    let body = format!("msisdn={MSISDN}");
    let post = format!(
        "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for hook in Hook::ALL {
        let r = g
            .run(hook, &Frame::http_v4(post.as_bytes()).build())
            .unwrap();
        assert!(find(&r.out, body.as_bytes()).is_some());
    }
    assert_eq!(g.events().unwrap().len(), 0);
}

#[test]
fn drop_drops_count_counts_and_a_trusted_destination_gets_the_number() {
    let req = request("/landing?msisdn=447700900123&x=1");
    let mut drop = guard(Action::Drop, true);
    let mut count = guard(Action::Count, true);
    for hook in Hook::ALL {
        let frame = Frame::http_v4(&req).build();
        assert_eq!(
            drop.run(hook, &frame).unwrap().verdict,
            Verdict::Drop,
            "{hook:?}"
        );
        let r = count.run(hook, &frame).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(find(&r.out, MSISDN.as_bytes()).is_some());
        // The allowlist of the check applies as for headers.
        let trusted = Frame::http_v4(&req).dst_v4([198, 51, 100, 7]).build();
        let r = drop.run(hook, &trusted).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{hook:?}");
        assert!(find(&r.out, MSISDN.as_bytes()).is_some());
    }
    let actions =
        |g: &mut Guard| -> Vec<u8> { g.events().unwrap().iter().map(|e| e.action).collect() };
    let n = Hook::ALL.len();
    let mut want = vec![];
    for _ in 0..n {
        want.extend([action::DROP, action::ALLOW]);
    }
    assert_eq!(actions(&mut drop), want);
    assert_eq!(actions(&mut count), vec![action::COUNT; n]);
}

#[test]
fn with_request_target_off_the_target_is_not_read() {
    let mut g = guard(Action::Drop, false);
    let req = request("/landing?msisdn=447700900123&x=1");
    for hook in Hook::ALL {
        let r = g.run(hook, &Frame::http_v4(&req).build()).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{hook:?}");
    }
    assert_eq!(g.events().unwrap().len(), 0);
    // Header values are still checked.
    let req = format!("GET / HTTP/1.1\r\nX-Sub: {MSISDN}\r\n\r\n");
    let r = g
        .run(Hook::Xdp, &Frame::http_v4(req.as_bytes()).build())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
}

/// A number whose run begins past the bytes a target run reads per call (two calls of
/// 128), and one right at that limit: every run is seen whole, wherever the limit cuts it.
#[test]
fn a_number_cut_by_the_target_runs_call_limit_is_seen_whole() {
    let mut g = guard(Action::Redact, true);
    for lead in 240..280 {
        let t = format!("/{}?n={MSISDN}&z", "a".repeat(lead));
        let req = request(&t);
        let want = request(&redacted(&t, 0));
        for hook in Hook::ALL {
            let r = g.run(hook, &Frame::http_v4(&req).build()).unwrap();
            let at = find(&r.out, b"GET ").unwrap();
            assert_eq!(
                &r.out[at..at + want.len()],
                &want[..],
                "lead {lead} {hook:?}"
            );
        }
    }
}
