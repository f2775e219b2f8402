//! The kernel programs under `BPF_PROG_TEST_RUN`: identity numbers in hex form
//! (`[msisdn] hex`, `form::HEX`): a number written as hex of its ASCII digits
//! (`343437373030393030313233` is 447700900123) wherever runs of digits are read (the
//! request target, cookies, header values read inside). Exactly the stretch of `3d` pairs
//! is overwritten, events and counters say `hex`, and look-alikes pass untouched.

use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::{action, form, place, MSISDN_RULE_ID};
use leakguard_tests::{
    corpus::{hex_of, number_check},
    guard::{Guard, Hook, Pooled, Verdict},
    http::{find, MSISDN},
    packet::Frame,
};

fn policy(action: Action, hex: bool) -> KernelPolicy {
    let mut m = number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.hex = hex;
    m.allow = vec!["198.51.100.0/24".parse().unwrap()];
    KernelPolicy {
        msisdn: Some(m),
        ..KernelPolicy::default()
    }
}

fn guard(action: Action, hex: bool) -> Pooled {
    Guard::pooled(&policy(action, hex)).unwrap()
}

/// A request with `target` and one header line `line`.
fn request(target: &str, line: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n{line}\r\nAccept: */*\r\n\r\n")
}

/// Hex of the number: 24 digits, every other one a 3.
fn hex_number() -> String {
    hex_of(MSISDN)
}

fn starred(s: &str) -> String {
    s.replace(&hex_number(), &"*".repeat(2 * MSISDN.len()))
}

/// Runs `req` on every hook and checks the bytes that come out.
fn check(g: &mut Guard, req: &str, want: &str, what: &str) {
    for hook in Hook::ALL {
        let r = g
            .run(hook, &Frame::http_v4(req.as_bytes()).build())
            .unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{what} on {hook:?}");
        let at = find(&r.out, b"GET ").expect("payload");
        assert_eq!(
            String::from_utf8_lossy(&r.out[at..at + want.len()]),
            want,
            "{what} on {hook:?}"
        );
    }
}

/// Where enrichment puts a hex number: (request target, header line, place).
fn carriers() -> Vec<(String, String, u8)> {
    let h = hex_number();
    let plus = hex_of(&format!("+{MSISDN}"));
    let uid = hex_of(&format!("uid{MSISDN}"));
    let ims = hex_of(&format!("{MSISDN}@ims"));
    vec![
        (format!("/p?uid={h}&x=1"), "X-A: b".into(), place::TARGET),
        (format!("/u/{h}/"), "X-A: b".into(), place::TARGET),
        (format!("/p?t={plus}"), "X-A: b".into(), place::TARGET),
        (format!("/p?t={uid}"), "X-A: b".into(), place::TARGET),
        (format!("/p?t={ims}"), "X-A: b".into(), place::TARGET),
        ("/".into(), format!("Cookie: sid=abc; u={h}"), place::COOKIE),
        ("/".into(), format!("Cookie: u={ims}; z=1"), place::COOKIE),
        ("/".into(), format!("X-Sub: id-{h}"), place::HEADER),
        ("/".into(), format!("X-Sub: {uid}"), place::HEADER),
    ]
}

#[test]
fn a_hex_number_is_overwritten_exactly_in_every_place_at_every_alignment() {
    let mut g = guard(Action::Redact, true);
    let cases = carriers();
    for (target, line, _) in &cases {
        for pad in 0..8 {
            let t = target.replacen('/', &format!("/{}", "p".repeat(pad)), 1);
            let l = line.replacen(": ", &format!(": {}", "q".repeat(pad)), 1);
            let req = request(&t, &l);
            check(&mut g, &req, &starred(&req), &req);
        }
    }
    let events = g.events().unwrap();
    assert_eq!(events.len(), cases.len() * 8 * Hook::ALL.len());
    for (i, e) in events.iter().enumerate() {
        let (_, _, want) = cases[i / (8 * Hook::ALL.len())];
        assert_eq!(e.rule_id, MSISDN_RULE_ID);
        assert_eq!(e.action, action::REDACT);
        assert_eq!(place::of(e.place), want, "event {i}");
        assert_eq!(form::of(e.place), form::HEX, "event {i}");
        let name = &e.name.name[..e.name_len as usize];
        assert!(!name.iter().any(u8::is_ascii_digit), "a digit in {name:?}");
    }
}

#[test]
fn a_decimal_number_is_still_decimal_in_events() {
    let mut g = guard(Action::Count, true);
    let req = request(&format!("/p?m={MSISDN}"), "Cookie: a=1");
    check(&mut g, &req, &req, "decimal");
    let e = g.events().unwrap();
    assert_eq!(e.len(), Hook::ALL.len());
    assert!(e
        .iter()
        .all(|e| e.place == place::with_form(place::TARGET, form::DECIMAL)));
}

#[test]
fn hex_look_alikes_pass_untouched_and_uncounted() {
    let mut g = guard(Action::Redact, true);
    let lines = [
        format!("Cookie: a={}", hex_of("331234567890")), // another prefix
        format!("Cookie: a={}", hex_of("44770090")),     // 8 digits
        format!("Cookie: a={}", hex_of("4477009001234567")), // 16 digits
        "Cookie: a=1234567890123456789012345".to_owned(), // a long decimal run
        format!("Cookie: a={}", hex_of("4477a00900123")), // a letter inside
        format!("X-Trace: {}", hex_of("Mozilla/5.0")),   // hex of text
    ];
    for l in &lines {
        let req = request("/", l);
        check(&mut g, &req, &req, l);
    }
    // A hex number in a body is not read.
    let body = format!("u={}", hex_number());
    let post = format!(
        "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for hook in Hook::ALL {
        let r = g
            .run(hook, &Frame::http_v4(post.as_bytes()).build())
            .unwrap();
        assert!(find(&r.out, body.as_bytes()).is_some(), "{hook:?}");
    }
    assert_eq!(g.events().unwrap().len(), 0);
}

#[test]
fn with_hex_off_only_decimal_counts() {
    let mut g = guard(Action::Drop, false);
    let h = hex_number();
    for (target, line) in [
        (format!("/p?uid={h}"), "X-A: b".to_owned()),
        ("/".to_owned(), format!("Cookie: u={h}")),
    ] {
        let req = request(&target, &line);
        check(&mut g, &req, &req, &req);
    }
    assert_eq!(g.events().unwrap().len(), 0);
    let req = request(&format!("/p?m={MSISDN}"), "X-A: b");
    let r = g
        .run(Hook::Xdp, &Frame::http_v4(req.as_bytes()).build())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
}

#[test]
fn drop_drops_count_counts_and_a_trusted_destination_gets_the_hex() {
    let req = request(&format!("/p?uid={}", hex_number()), "X-A: b");
    let mut drop = guard(Action::Drop, true);
    let mut count = guard(Action::Count, true);
    for hook in Hook::ALL {
        let frame = Frame::http_v4(req.as_bytes()).build();
        assert_eq!(drop.run(hook, &frame).unwrap().verdict, Verdict::Drop);
        let r = count.run(hook, &frame).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(find(&r.out, hex_number().as_bytes()).is_some());
        let trusted = Frame::http_v4(req.as_bytes())
            .dst_v4([198, 51, 100, 7])
            .build();
        let r = drop.run(hook, &trusted).unwrap();
        assert_eq!(r.verdict, Verdict::Pass, "{hook:?}");
    }
    let n = Hook::ALL.len();
    let actions: Vec<u8> = drop.events().unwrap().iter().map(|e| e.action).collect();
    assert_eq!(actions, [action::DROP, action::ALLOW].repeat(n));
    assert_eq!(count.events().unwrap().len(), n);
}

/// Hex numbers that a target or cookie run's call limit (128 bytes; 256 tried too) cuts, and two in one
/// run of digits: each is found whole.
#[test]
fn hex_cut_by_the_call_limit_or_back_to_back_is_found_whole() {
    let mut g = guard(Action::Redact, true);
    let h = hex_number();
    for lead in 220..270 {
        let t = format!("/{}?n={h}&z", "a".repeat(lead));
        let req = request(&t, "X-A: b");
        check(&mut g, &req, &starred(&req), &format!("target lead {lead}"));
        let l = format!("Cookie: {}={h}", "c".repeat(lead));
        let req = request("/", &l);
        check(&mut g, &req, &starred(&req), &format!("cookie lead {lead}"));
    }
    // Hex of `447…&447…`: one run of digits (`&` is 26), two numbers in it.
    let twice = request(&format!("/p?u={h}26{h}"), "X-A: b");
    check(&mut g, &twice, &starred(&twice), "twice");
    // Hex of `447…447…` is 24 digits in a row: too long to be a number.
    let joined = request(&format!("/p?u={h}{h}"), "X-A: b");
    check(&mut g, &joined, &joined, "joined");
    let n = g.events().unwrap().len();
    assert_eq!(n, (50 * 2 + 2) * Hook::ALL.len());
}
