//! The kernel programs under `BPF_PROG_TEST_RUN`: identity numbers in `Cookie` values
//! (`[msisdn]` with `cookies` on) and inside other header values (`inside_values`), both
//! read for runs of digits. A run of 9-15 digits with a configured prefix in any
//! cookie pair is overwritten digit for digit (`redact`), drops the request (`drop`) or is
//! counted (`count`), and named in its event (`cookie:NAME`); a `Cookie` rule or ignored
//! name wins, and look-alikes pass untouched.

use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::{action, place, MSISDN_RULE_ID};
use leakguard_tests::{
    corpus::number_check,
    guard::{Guard, Hook, Pooled, Verdict},
    http::{find, MSISDN},
    kernel::rule,
    packet::Frame,
};

fn policy(action: Action, cookies: bool) -> KernelPolicy {
    let mut m = number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.cookies = cookies;
    m.allow = vec!["198.51.100.0/24".parse().unwrap()];
    KernelPolicy {
        msisdn: Some(m),
        ..KernelPolicy::default()
    }
}

fn guard(action: Action, cookies: bool) -> Pooled {
    Guard::pooled(&policy(action, cookies)).unwrap()
}

fn request(cookie: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: example.com\r\nCookie: {cookie}\r\nAccept: */*\r\n\r\n")
}

fn starred(s: &str) -> String {
    s.replace(MSISDN, &"*".repeat(MSISDN.len()))
}

#[test]
fn a_number_in_any_cookie_pair_is_starred_at_every_alignment_and_length() {
    let mut g = guard(Action::Redact, true);
    let shapes = [
        "msisdn=447700900123",
        "sid=abc; msisdn=447700900123",
        "sid=abc; msisdn=447700900123; x=1",
        "a=1;msisdn=+447700900123",
        "tel=%2B447700900123; b=2",
        "u=447700900123@ims.example",
    ];
    let mut n = 0;
    for shape in shapes {
        // Before the number: 0 to 7 bytes (every alignment), and past the 128-byte call
        // limit of the line run.
        for lead in [0, 1, 2, 3, 4, 5, 6, 7, 250, 300, 1_000] {
            let cookie = format!("pad={}; {shape}", "z".repeat(lead));
            let req = request(&cookie);
            for hook in Hook::ALL {
                if hook != Hook::Xdp && req.len() > 1_000 {
                    continue; // a TC test run takes ~3.7 KB: fine, but keep it quick
                }
                let r = g
                    .run(hook, &Frame::http_v4(req.as_bytes()).build())
                    .unwrap();
                assert_eq!(r.verdict, Verdict::Pass);
                let at = find(&r.out, b"GET ").unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&r.out[at..]),
                    starred(&req),
                    "{shape} after {lead} on {hook:?}"
                );
                n += 1;
            }
        }
    }
    let ev = g.events().unwrap();
    assert_eq!(ev.len(), n);
    assert!(ev
        .iter()
        .all(|e| e.rule_id == MSISDN_RULE_ID && e.place == place::COOKIE));
}

#[test]
fn events_name_the_cookie_pair_never_a_digit() {
    let mut g = guard(Action::Count, true);
    for (cookie, name) in [
        ("sid=abc; msisdn=447700900123", "cookie:msisdn"),
        ("Tel_No=447700900123", "cookie:tel-no"),
        ("u12=447700900123", "cookie:u##"),
        ("sid=abc; 447700900123", "cookie"),
    ] {
        let r = g
            .run(
                Hook::TcEgress,
                &Frame::http_v4(request(cookie).as_bytes()).build(),
            )
            .unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        let ev = g.events().unwrap();
        assert_eq!(ev.len(), 1, "{cookie}");
        let got = &ev[0].name.name[..ev[0].name_len as usize];
        assert_eq!(String::from_utf8_lossy(got), name, "{cookie}");
        assert!(!got.iter().any(u8::is_ascii_digit));
        assert_eq!((ev[0].place, ev[0].action), (place::COOKIE, action::COUNT));
    }
}

#[test]
fn look_alikes_and_other_headers_pass_untouched() {
    let mut g = guard(Action::Drop, true);
    for cookie in [
        "_ga=GA1.1.1234567890.1700000000; _fbp=fb.1.1700000000000.123456789",
        "id=99001234567; n=44770090; m=4477009001234567",
        "d=2026/11/25; t=12:30:45",
    ] {
        let req = request(cookie);
        for hook in Hook::ALL {
            let r = g
                .run(hook, &Frame::http_v4(req.as_bytes()).build())
                .unwrap();
            assert_eq!(r.verdict, Verdict::Pass, "{cookie}");
        }
    }
    assert_eq!(g.events().unwrap().len(), 0);
    // Cookie-like pairs in another header are that header's value: read inside with
    // `inside_values` (the default: the event names the header), else only whole.
    let mut whole = {
        let mut p = policy(Action::Drop, true);
        p.msisdn.as_mut().unwrap().inside_values = false;
        Guard::pooled(&p).unwrap()
    };
    for name in ["X-Data", "Set-Cookie"] {
        let req = format!("GET / HTTP/1.1\r\n{name}: a=1; msisdn={MSISDN}\r\n\r\n");
        for hook in Hook::ALL {
            let frame = Frame::http_v4(req.as_bytes()).build();
            assert_eq!(
                g.run(hook, &frame).unwrap().verdict,
                Verdict::Drop,
                "{name}"
            );
            assert_eq!(
                whole.run(hook, &frame).unwrap().verdict,
                Verdict::Pass,
                "{name}"
            );
        }
        let ev = g.events().unwrap();
        let want = name.to_ascii_lowercase();
        assert!(ev
            .iter()
            .all(|e| e.place == place::HEADER
                && e.name.name[..e.name_len as usize] == *want.as_bytes()));
    }
}

#[test]
fn drop_count_allowlist_and_the_switches() {
    let req = request("sid=abc; msisdn=447700900123");
    let frame = Frame::http_v4(req.as_bytes()).build();
    let trusted = Frame::http_v4(req.as_bytes())
        .dst_v4([198, 51, 100, 7])
        .build();
    let mut drop = guard(Action::Drop, true);
    let mut off = guard(Action::Drop, false);
    let mut ruled = {
        let mut p = policy(Action::Drop, true);
        p.rules = vec![rule("Cookie", Action::Count, &[])];
        Guard::pooled(&p).unwrap()
    };
    let mut ignored = {
        let mut p = policy(Action::Drop, true);
        p.msisdn.as_mut().unwrap().ignore_headers = vec!["cookie".into()];
        Guard::pooled(&p).unwrap()
    };
    for hook in Hook::ALL {
        assert_eq!(drop.run(hook, &frame).unwrap().verdict, Verdict::Drop);
        assert_eq!(drop.run(hook, &trusted).unwrap().verdict, Verdict::Pass);
        // `cookies = false`, a rule for `Cookie`, or `Cookie` ignored: not read.
        assert_eq!(off.run(hook, &frame).unwrap().verdict, Verdict::Pass);
        assert_eq!(ruled.run(hook, &frame).unwrap().verdict, Verdict::Pass);
        assert_eq!(ignored.run(hook, &frame).unwrap().verdict, Verdict::Pass);
    }
    let actions: Vec<u8> = drop.events().unwrap().iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [action::DROP, action::ALLOW].repeat(Hook::ALL.len())
    );
    assert_eq!(off.events().unwrap().len(), 0);
    assert_eq!(ignored.events().unwrap().len(), 0);
    // The rule counted the header; no number was read.
    assert!(ruled.events().unwrap().iter().all(|e| e.rule_id == 0));
}

/// `inside_values`: a number inside a longer header value counts (`tel:`, `sip:`, an IMS
/// address, a URL in a `Referer`), starred digit for digit and named by the header; with
/// it off, only a value that is the number alone does, as before.
#[test]
fn numbers_inside_longer_header_values() {
    let mut inside = guard(Action::Redact, true);
    let mut whole = {
        let mut p = policy(Action::Redact, true);
        p.msisdn.as_mut().unwrap().inside_values = false;
        Guard::pooled(&p).unwrap()
    };
    let values = [
        "tel:+447700900123",
        "447700900123@ims.example",
        "sip:+447700900123;user=phone",
        "http://partner.example/?msisdn=447700900123",
        "id 447700900123 x",
    ];
    for v in values {
        let req = format!("GET / HTTP/1.1\r\nX-Id: {v}\r\nReferer: {v}\r\n\r\n");
        for hook in Hook::ALL {
            let frame = Frame::http_v4(req.as_bytes()).build();
            let r = inside.run(hook, &frame).unwrap();
            let at = find(&r.out, b"GET ").unwrap();
            assert_eq!(
                String::from_utf8_lossy(&r.out[at..]),
                starred(&req),
                "{v} {hook:?}"
            );
            let r = whole.run(hook, &frame).unwrap();
            assert!(find(&r.out, MSISDN.as_bytes()).is_some(), "{v}: whole only");
        }
    }
    let ev = inside.events().unwrap();
    assert_eq!(ev.len(), values.len() * 2 * Hook::ALL.len());
    assert!(ev.iter().all(|e| e.place == place::HEADER
        && matches!(&e.name.name[..e.name_len as usize], b"x-id" | b"referer")));
    assert_eq!(whole.events().unwrap().len(), 0);
    // Look-alikes inside values pass: a Unix time, a version, 16 digits, a date.
    let req =
        "GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 Chrome/126.0.6478.122 Build/1700000000\r\n\
               X-Req: 4477009001234567 2026-11-25T10:00:00Z\r\n\r\n";
    for hook in Hook::ALL {
        let r = inside
            .run(hook, &Frame::http_v4(req.as_bytes()).build())
            .unwrap();
        assert!(find(&r.out, req.as_bytes()).is_some());
    }
    assert_eq!(inside.events().unwrap().len(), 0);
}
