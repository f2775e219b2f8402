//! The kernel programs under `BPF_PROG_TEST_RUN`: identity numbers in base64 form
//! (`[msisdn] base64`, `form::BASE64`): the base64 of a number's ASCII digits, in either
//! alphabet, at any alignment (`NDQ3NzAwOTAwMTIz` is 447700900123), wherever runs of
//! digits are read. Exactly the characters carrying the number's bits are overwritten,
//! events and counters say `base64`, and look-alikes pass untouched.

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use leakguard::policy::{Action, KernelPolicy};
use leakguard_common::{action, form, place, MSISDN_RULE_ID};
use leakguard_tests::{
    corpus::number_check,
    guard::{Guard, Hook, Pooled, Verdict},
    http::{find, MSISDN},
    packet::Frame,
};

fn policy(action: Action, base64: bool) -> KernelPolicy {
    let mut m = number_check(action);
    m.prefixes = vec!["44".into(), "447".into()];
    m.base64 = base64;
    m.allow = vec!["198.51.100.0/24".parse().unwrap()];
    KernelPolicy {
        msisdn: Some(m),
        ..KernelPolicy::default()
    }
}

fn guard(action: Action, base64: bool) -> Pooled {
    Guard::pooled(&policy(action, base64)).unwrap()
}

/// A request with `target` and one header line `line`.
fn request(target: &str, line: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n{line}\r\nAccept: */*\r\n\r\n")
}

/// `lead`, the number and `tail` in base64 (`url`: the URL-safe alphabet, unpadded),
/// and the same text with the characters carrying the number's bits starred.
fn encoded(lead: &str, tail: &str, url: bool) -> (String, String) {
    let raw = format!("{lead}{MSISDN}{tail}");
    let enc = if url {
        URL_SAFE_NO_PAD.encode(&raw)
    } else {
        STANDARD.encode(&raw)
    };
    let (d0, d1) = (lead.len(), lead.len() + MSISDN.len());
    let first = 4 * (d0 / 3) + d0 % 3;
    let last = d1 - 1;
    let end = 4 * (last / 3) + last % 3 + 2;
    let mut starred = enc.clone().into_bytes();
    starred[first..end].fill(b'*');
    (enc, String::from_utf8(starred).unwrap())
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

/// Lead-ins and tails around the number: every alignment, and bytes that make `+`, `/`
/// (standard) or `-`, `_` (URL-safe) characters next to it.
const AROUND: [(&str, &str); 6] = [
    ("", ""),
    ("x", "@ims"),
    ("uid", ";"),
    ("+", ""),
    ("\u{3e}?", "\u{3f}\u{3f}"),
    ("tel:", "~~"),
];

/// Where enrichment puts a base64 number: (request target, header line, place), with
/// `{}` for the encoded text.
const CARRIERS: [(&str, &str, u8); 5] = [
    ("/p?uid={}&x=1", "X-A: b", place::TARGET),
    ("/u/{}/", "X-A: b", place::TARGET),
    ("/", "Cookie: sid=abc; u={}", place::COOKIE),
    ("/", "Cookie: u={}; z=1", place::COOKIE),
    ("/", "X-Sub: id {}", place::HEADER),
];

#[test]
fn a_base64_number_is_overwritten_exactly_in_every_place_at_every_alignment() {
    let mut g = guard(Action::Redact, true);
    let mut want_places = Vec::new();
    for (target, line, p) in CARRIERS {
        for (lead, tail) in AROUND {
            for url in [false, true] {
                let (enc, star) = encoded(lead, tail, url);
                for pad in 0..4 {
                    let pad = "q".repeat(pad);
                    let t = target.replace("{}", &format!("{pad}{enc}"));
                    let l = line.replace("{}", &format!("{pad}{enc}"));
                    let ts = target.replace("{}", &format!("{pad}{star}"));
                    let ls = line.replace("{}", &format!("{pad}{star}"));
                    let req = request(&t, &l);
                    check(&mut g, &req, &request(&ts, &ls), &req);
                    want_places.push(p);
                }
            }
        }
    }
    let events = g.events().unwrap();
    assert_eq!(events.len(), want_places.len() * Hook::ALL.len());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.rule_id, MSISDN_RULE_ID);
        assert_eq!(e.action, action::REDACT);
        assert_eq!(
            place::of(e.place),
            want_places[i / Hook::ALL.len()],
            "event {i}"
        );
        assert_eq!(form::of(e.place), form::BASE64, "event {i}");
        let name = &e.name.name[..e.name_len as usize];
        assert!(!name.iter().any(u8::is_ascii_digit), "a digit in {name:?}");
    }
}

#[test]
fn base64_look_alikes_pass_untouched_and_uncounted() {
    let mut g = guard(Action::Redact, true);
    let enc = |s: &str| STANDARD.encode(s);
    let values = [
        enc("44770090"),         // 8 digits
        enc("4477009001234567"), // 16 digits
        enc("331234567890"),     // another prefix
        enc("Mozilla/5.0 (X11; Linux x86_64)"),
        "MxxxNxxxOxxxMxxxNxxxOxxx".into(),
        "dGhpcyBpcyBhIHNlc3Npb24gaWQgMTIzNDU2Nzg".into(),
        crate_hex(),
    ];
    for v in &values {
        let req = request(&format!("/p?v={v}"), &format!("Cookie: s={v}"));
        check(&mut g, &req, &req, v);
    }
    // In a body: not a head.
    let body = format!(
        "GET /f HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n{}",
        enc(MSISDN)
    );
    check(&mut g, &body, &body, "body");
    assert_eq!(g.events().unwrap().len(), 0);
}

fn crate_hex() -> String {
    // Hex of 7 digits: a run of digits, never a trigger.
    leakguard_tests::corpus::hex_of("4477009")
}

#[test]
fn the_switch_the_actions_and_the_allowlist() {
    let (enc, star) = encoded("", "", false);
    let req = request(&format!("/p?m={enc}"), "Cookie: a=1");
    // Off: untouched and uncounted.
    let mut g = guard(Action::Redact, false);
    check(&mut g, &req, &req, "off");
    assert_eq!(g.events().unwrap().len(), 0);
    // Count: untouched, counted as base64 in the target.
    let mut g = guard(Action::Count, true);
    check(&mut g, &req, &req, "count");
    let e = g.events().unwrap();
    assert_eq!(e.len(), Hook::ALL.len());
    assert!(e
        .iter()
        .all(|e| e.place == place::with_form(place::TARGET, form::BASE64)));
    // Drop.
    let mut g = guard(Action::Drop, true);
    for hook in Hook::ALL {
        let r = g
            .run(hook, &Frame::http_v4(req.as_bytes()).build())
            .unwrap();
        assert_eq!(r.verdict, Verdict::Drop, "{hook:?}");
    }
    // A trusted destination gets it as it is.
    let mut g = guard(Action::Redact, true);
    for hook in Hook::ALL {
        let f = Frame::http_v4(req.as_bytes())
            .dst_v4([198, 51, 100, 7])
            .build();
        let r = g.run(hook, &f).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(find(&r.out, enc.as_bytes()).is_some(), "{hook:?}");
    }
    // Two in one token, and decimal digits right after one; joined, two are one stretch
    // of 24 digits, too long to be a number (as in hex).
    let mut g = guard(Action::Redact, true);
    let two = request(
        &format!("/p?a={enc}.{enc}&b={enc}123456789&c={enc}{enc}"),
        "X-A: b",
    );
    let want = request(
        &format!("/p?a={star}.{star}&b={star}123456789&c={enc}{enc}"),
        "X-A: b",
    );
    check(&mut g, &two, &want, "back to back");
}

/// A run loop reads 128 bytes a call (`RUN_WORDS`) and goes on in the next with the last
/// word's lanes; after a trigger that began no number it goes on past it with the lanes
/// of the word before. A number, decimal or base64, that begins before either point and
/// ends after it is found whole: at every offset across the first call's end, in every
/// place, and right after a look-alike trigger (`MxxxNxxxO`).
#[test]
fn a_number_across_a_run_loops_call_or_after_a_look_alike_is_found_whole() {
    let mut g = guard(Action::Redact, true);
    let (enc, star) = encoded("", "", false);
    let stars = "*".repeat(MSISDN.len());
    for (number, starred) in [(enc.as_str(), star.as_str()), (MSISDN, stars.as_str())] {
        for fill in 96..140 {
            for before in ["", "MxxxNxxxO", "MxxxNxxxOx"] {
                let f = "a".repeat(fill);
                let (t, l) = (
                    format!("/p?x={f}{before}{number}&y=1"),
                    format!("X-Sub: {f}{before}{number};"),
                );
                let (ts, ls) = (
                    format!("/p?x={f}{before}{starred}&y=1"),
                    format!("X-Sub: {f}{before}{starred};"),
                );
                let c = format!("Cookie: s={f}{before}{number}");
                let cs = format!("Cookie: s={f}{before}{starred}");
                check(&mut g, &request(&t, &l), &request(&ts, &ls), &t);
                check(&mut g, &request("/", &c), &request("/", &cs), &c);
                // Drained as it goes: the ring holds fewer events than the whole test.
                let events = g.events().unwrap();
                assert_eq!(events.len(), 3 * Hook::ALL.len(), "{t}");
                assert!(events.iter().all(|e| e.rule_id == MSISDN_RULE_ID), "{t}");
            }
        }
    }
}
