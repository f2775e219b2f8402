//! Differential test: a seeded random corpus of requests, each in one segment, through the
//! real kernel programs (XDP and TC, `BPF_PROG_TEST_RUN`) and through the pure-Rust model;
//! verdicts, output bytes and counters must agree. The seed is printed;
//! `LEAKGUARD_SEED=N` replays it. (Requests cut into segments: `segments.rs`.)
//!
//! Then the model alone, by hand, on the base64 form of identity numbers
//! (`form::BASE64`): what `leakguard_common::b64`'s rule says it does.

use std::ops::Range;

use leakguard::policy::Action;
use leakguard_common::{
    action, form,
    model::{self, ModelOutput, ModelPolicy},
    place, MSISDN_RULE_ID, REDACT_FILLER, SCAN_WINDOW,
};
use leakguard_tests::{
    corpus::{
        b64_of, destination, hex_of, model_policy, policy, requests, vary_cap, Rng, MSISDN_ACTIONS,
    },
    diff::Differ,
    guard::Hook,
    http::MSISDN,
    packet::{Frame, SERVER_V4, TRUSTED_V4},
};

#[test]
fn kernel_and_model_agree_on_a_random_corpus() {
    let (mut rng, seed) = Rng::from_env();
    const CASES: usize = 400;
    // With `[msisdn]` on, header values read inside (the default) and whole.
    let configs = MSISDN_ACTIONS.iter().flat_map(|&a| {
        let modes: &[bool] = if a.is_some() { &[true, false] } else { &[true] };
        modes.iter().map(move |&inside| (a, inside))
    });
    for (msisdn, inside) in configs {
        let mut p = policy(msisdn);
        if let Some(m) = p.msisdn.as_mut() {
            m.inside_values = inside;
        }
        let mut d = Differ::new(&p);
        for case in 0..CASES {
            // Now and then, a small scan limit, to exercise truncation.
            vary_cap(&mut rng, &mut p, &mut d.g, 10, 200);
            let payload = requests(&mut rng);
            let dst = destination(&mut rng, 20);
            let pol = model_policy(&p, dst.into());
            let frame = Frame::http_v4(payload.as_bytes()).dst_v4(dst);
            let ctx = format!(
                "case {case}, msisdn {msisdn:?}, inside values {inside}, seed {seed}: {payload:?}"
            );
            // Each frame is a flow of its own (a new source port), per hook.
            let bytes = frame.build();
            for hook in [Hook::Xdp, Hook::TcEgress] {
                d.single(hook, &bytes, payload.as_bytes(), &pol, &ctx);
            }
            let _ = d.g.events();
        }
        println!(
            "{} kernel runs matched the model (msisdn {msisdn:?})",
            d.runs
        );
    }
}

/// Found by `cargo xtask fuzz`: the kernel's line-start table keeps 6 bits of each of a
/// line's first two bytes, so `xM…` reads like `x-…` (a rule name's start) and its name is
/// read — here found malformed (space before the colon). Kernel and model must agree.
#[test]
fn a_line_start_that_collides_with_a_rule_start_is_read() {
    let p = policy(None);
    let mut d = Differ::new(&p);
    let pol = model_policy(&p, SERVER_V4.into());
    let payload: &[u8] = b"GET /a HTTP/1.1\r\nxMOrder_id : 1\r\nzz : 2\r\n\r\n";
    for hook in [Hook::Xdp, Hook::TcEgress] {
        let frame = Frame::http_v4(payload).build();
        let out = d.single(hook, &frame, payload, &pol, "collision");
        // `xM…` collides and is read (malformed); `zz` starts no rule and is skipped.
        assert_eq!((out.lines, out.malformed), (2, 1), "{hook:?}");
    }
}

// The base64 form in the model alone.

/// The corpus policy under `action` (prefixes 44 and 447), base64 form on or off, for a
/// packet to `dst`.
fn b64_policy_to(action: Action, base64: bool, dst: [u8; 4]) -> ModelPolicy {
    let mut pol = model_policy(&policy(Some(action)), dst.into());
    pol.msisdn.as_mut().expect("number check").base64 = base64;
    pol
}

fn b64_policy(base64: bool) -> ModelPolicy {
    b64_policy_to(Action::Redact, base64, SERVER_V4)
}

/// `req` through the model, in one segment.
fn run(pol: &ModelPolicy, req: &str) -> ModelOutput {
    model::segment(&mut None, 1_000, req.as_bytes(), pol)
}

/// A request with `target` and one header line `line`.
fn request(target: &str, line: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n{line}\r\nAccept: */*\r\n\r\n")
}

/// The characters of the base64 of `lead` bytes and then a number of `digits` digits
/// that carry the number's bits: its first byte's first character to its last byte's
/// second (byte `q` starts at character `4 (q / 3) + q % 3`).
fn span(lead: usize, digits: usize) -> Range<usize> {
    let char_of = |q: usize| 4 * (q / 3) + q % 3;
    char_of(lead)..char_of(lead + digits - 1) + 2
}

/// `req` with the characters `chars` of the first `enc` in it starred.
fn starred(req: &str, enc: &str, chars: Range<usize>) -> String {
    starred_spans(req, enc, &[chars])
}

fn starred_spans(req: &str, enc: &str, spans: &[Range<usize>]) -> String {
    let at = req.find(enc).expect("the base64 text is in the request");
    let mut b = req.as_bytes().to_vec();
    for i in spans.iter().flat_map(Clone::clone) {
        b[at + i] = REDACT_FILLER;
    }
    String::from_utf8(b).unwrap()
}

fn b64_at(p: u8) -> u8 {
    place::with_form(p, form::BASE64)
}

/// `req` comes out as `want`, with identity numbers counted (and redacted) at `places`.
fn expect(pol: &ModelPolicy, req: &str, want: &str, places: &[u8], what: &str) {
    let out = run(pol, req);
    assert!(!out.drop, "{what}: dropped");
    assert_eq!(String::from_utf8_lossy(&out.payload), want, "{what}");
    assert_eq!(out.places, places, "{what}: places");
    let n = places.len();
    assert_eq!(
        out.matches,
        vec![(MSISDN_RULE_ID, action::REDACT); n],
        "{what}"
    );
    assert_eq!(out.msisdn_values, n as u64, "{what}");
    // Redacted when a byte changed (a cut star counts nothing).
    assert_eq!(out.redacted, want != req, "{what}");
}

/// Where enrichment puts a base64 token: request target, header line and place, for
/// the base64 text `e`.
fn carriers(e: &str) -> [(String, String, u8); 5] {
    [
        (format!("/p?msisdn={e}&x=1"), "X-A: b".into(), place::TARGET),
        (format!("/u/{e}/x"), "X-A: b".into(), place::TARGET),
        (
            "/".into(),
            format!("Cookie: sid=abc; u={e}; z=1"),
            place::COOKIE,
        ),
        ("/".into(), format!("Cookie: u={e}"), place::COOKIE),
        ("/".into(), format!("X-Id: tel:{e}"), place::HEADER),
    ]
}

/// Numbers of 9 to 15 digits after 0 to 5 bytes of lead-in (every alignment), in both
/// alphabets: exactly the characters carrying the number's bits are starred, once; under
/// `count` (nothing starred, so every trigger of the number reads it again) still
/// counted once.
#[test]
fn model_stars_base64_numbers_exactly_where_runs_are_read() {
    let pol = b64_policy(true);
    let count = b64_policy_to(Action::Count, true, SERVER_V4);
    let mut cases = 0;
    for number in [MSISDN, "447700900", "4477009001234", "447700900123456"] {
        for lead in ["", "+", "id", "uid", "uid:", "tel:+"] {
            for url_safe in [false, true] {
                let e = b64_of(&format!("{lead}{number}"), url_safe);
                for (target, line, p) in carriers(&e) {
                    let req = request(&target, &line);
                    let want = starred(&req, &e, span(lead.len(), number.len()));
                    expect(&pol, &req, &want, &[b64_at(p)], &req);
                    let out = run(&count, &req);
                    assert_eq!(out.payload, req.as_bytes(), "{req}");
                    assert_eq!(out.matches, [(MSISDN_RULE_ID, action::COUNT)], "{req}");
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 4 * 6 * 2 * 5);
}

/// Padding: `=`, none, or escaped `%3D`: it ends the number and stays.
#[test]
fn model_base64_padding_is_left_and_ends_the_number() {
    let pol = b64_policy(true);
    let padded = b64_of("4477009001234", false);
    assert_eq!(padded, "NDQ3NzAwOTAwMTIzNA==");
    for e in [
        padded.clone(),
        padded.trim_end_matches('=').to_owned(),
        padded.replace('=', "%3D"),
    ] {
        let req = request(&format!("/p?u={e}"), "X-A: b");
        let want = req.replace(&e, &e.replacen("NDQ3NzAwOTAwMTIzNA", &"*".repeat(18), 1));
        expect(&pol, &req, &want, &[b64_at(place::TARGET)], &e);
    }
}

/// The alphabets differ in `+`/`-` and `/`/`_`, which never carry a digit's bits: the
/// same number is found in both, the lead-in's characters left.
#[test]
fn model_reads_both_base64_alphabets() {
    let pol = b64_policy(true);
    for lead in ["??>", "???"] {
        let std_e = b64_of(&format!("{lead}{MSISDN}"), false);
        let url_e = b64_of(&format!("{lead}{MSISDN}"), true);
        assert_ne!(std_e, url_e);
        assert!(std_e.contains(['+', '/']) && url_e.contains(['-', '_']));
        for e in [std_e, url_e] {
            for (target, line, p) in carriers(&e) {
                let req = request(&target, &line);
                let want = starred(&req, &e, 4..20);
                expect(&pol, &req, &want, &[b64_at(p)], &req);
            }
        }
    }
}

/// Two numbers in one base64 text, or two texts each padded, are two numbers; two
/// unpadded texts joined are the base64 of 24 digits: too long, as hex joined is.
#[test]
fn model_base64_numbers_back_to_back() {
    let pol = b64_policy(true);
    let t = place::TARGET;
    let two = b64_of(&format!("{MSISDN}&{MSISDN}"), false);
    let req = request(&format!("/p?u={two}"), "X-A: b");
    let want = starred_spans(&req, &two, &[span(0, 12), span(13, 12)]);
    let at = req.find(&two).unwrap();
    assert_eq!(
        &want[at..at + two.len()],
        "****************J*****************=="
    );
    expect(&pol, &req, &want, &[b64_at(t), b64_at(t)], "one text");
    let padded = b64_of("4477009001234", false).repeat(2);
    let req = request(&format!("/p?u={padded}"), "X-A: b");
    let want = req.replace("NDQ3NzAwOTAwMTIzNA", &"*".repeat(18));
    expect(&pol, &req, &want, &[b64_at(t), b64_at(t)], "two padded");
    let joined = b64_of(MSISDN, true).repeat(2);
    let req = request(&format!("/p?u={joined}"), &format!("Cookie: a={joined}"));
    expect(&pol, &req, &req, &[], "joined");
}

/// A base64 number and a decimal one touching: each is read in its own form.
#[test]
fn model_base64_and_decimal_side_by_side() {
    let pol = b64_policy(true);
    let e = b64_of(MSISDN, true);
    let (b, d) = (
        b64_at(place::TARGET),
        place::with_form(place::TARGET, form::DECIMAL),
    );
    let stars = |s: &str| "*".repeat(s.len());
    let req = request(&format!("/p?u={e}{MSISDN}&x"), "X-A: b");
    let want = req.replace(&format!("{e}{MSISDN}"), &stars(&format!("{e}{MSISDN}")));
    expect(&pol, &req, &want, &[b, d], "base64 then decimal");
    let req = request(&format!("/p?u={MSISDN}{e}&x"), "X-A: b");
    let want = req.replace(&format!("{MSISDN}{e}"), &stars(&format!("{MSISDN}{e}")));
    expect(&pol, &req, &want, &[d, b], "decimal then base64");
    // The span's last character can be a digit (`MTI1`: the base64 of `125`): it is
    // starred when the number is found, before the digits after it are read, so the run
    // of digits after the span starts after it (the scan reads the bytes it overwrote,
    // as the kernel reads its window's copy).
    let e = b64_of("447700900125", true);
    assert!(e.ends_with("MTI1"));
    let req = request(&format!("/p?u={e}447700900&x"), "X-A: b");
    let want = req.replace(&format!("{e}447700900"), &"*".repeat(16 + 9));
    expect(&pol, &req, &want, &[b, d], "the span's last digit");
    // Hex and decimal numbers are still counted once, in their form.
    let h = place::with_form(place::COOKIE, form::HEX);
    let req = request(
        &format!("/p?h={}&d={MSISDN}", hex_of(MSISDN)),
        &format!("Cookie: h={}", hex_of(MSISDN)),
    );
    let want = req
        .replace(&hex_of(MSISDN), &"*".repeat(24))
        .replace(MSISDN, &"*".repeat(12));
    let th = place::with_form(place::TARGET, form::HEX);
    expect(&pol, &req, &want, &[th, d, h], "hex and decimal");
}

/// What passes untouched and uncounted with the base64 form on.
#[test]
fn model_base64_look_alikes_pass() {
    let pol = b64_policy(true);
    let mut looks = vec![
        b64_of("44770090", false), // 8 digits
        b64_of("44770090", true),
        b64_of("4477009001234567", false), // 16 digits
        b64_of("4477009001234567", true),
        b64_of("331234567890", false), // another prefix
        b64_of("uid331234567890", true),
        b64_of("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", false), // text
        "MxxxNxxxOxxxMxxxNxxx".to_owned(),                                   // leads without digits
        "OTgxNTk2NzE0ZmFrZXRva2Vu".to_owned(), // 9 digits, prefix 98, then text
        b64_of(MSISDN, true).repeat(2),        // 24 digits
        hex_of("44770090"),
    ];
    // Session ids: random URL-safe tokens.
    let mut rng = Rng(0x5eed);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..300 {
        let len = 16 + rng.below(48);
        looks.push((0..len).map(|_| char::from(*rng.pick(ALPHABET))).collect());
    }
    for l in &looks {
        for (target, line) in [
            (format!("/p?sid={l}&y=1"), "X-A: b".to_owned()),
            (format!("/s/{l}"), "X-A: b".to_owned()),
            ("/".to_owned(), format!("Cookie: sid={l}; z=1")),
            ("/".to_owned(), format!("X-Trace: {l}")),
        ] {
            let req = request(&target, &line);
            expect(&pol, &req, &req, &[], &req);
        }
    }
    // In a body: not read.
    let body = format!("u={}", b64_of(MSISDN, false));
    let post = format!(
        "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    expect(&pol, &post, &post, &[], "body");
}

/// A value read whole (`inside_values = false`) is decimal only; cookies are still read.
#[test]
fn model_base64_not_in_a_value_read_whole() {
    let mut pol = b64_policy(true);
    pol.msisdn.as_mut().unwrap().inside_values = false;
    let e = b64_of(MSISDN, false);
    let req = request("/", &format!("X-Id: {e}"));
    expect(&pol, &req, &req, &[], "value read whole");
    let req = request("/", &format!("Cookie: u={e}"));
    let want = starred(&req, &e, 0..16);
    expect(&pol, &req, &want, &[b64_at(place::COOKIE)], "cookie");
}

/// With `base64 = false` every carrier passes; decimal numbers still count.
#[test]
fn model_base64_off_reads_none() {
    let pol = b64_policy(false);
    for lead in ["", "uid"] {
        let e = b64_of(&format!("{lead}{MSISDN}"), true);
        for (target, line, _) in carriers(&e) {
            let req = request(&target, &line);
            expect(&pol, &req, &req, &[], &req);
        }
    }
    let req = request(&format!("/p?m={MSISDN}"), "X-A: b");
    let want = req.replace(MSISDN, &"*".repeat(12));
    expect(
        &pol,
        &req,
        &want,
        &[place::with_form(place::TARGET, form::DECIMAL)],
        "decimal",
    );
}

/// `drop` drops, `count` counts and passes, a trusted destination gets it (allowed).
#[test]
fn model_base64_drop_count_and_allow() {
    let req = request(&format!("/p?u={}", b64_of(MSISDN, true)), "X-A: b");
    let out = run(&b64_policy_to(Action::Drop, true, SERVER_V4), &req);
    assert!(out.drop);
    assert_eq!(out.matches, [(MSISDN_RULE_ID, action::DROP)]);
    let out = run(&b64_policy_to(Action::Count, true, SERVER_V4), &req);
    assert_eq!((out.drop, out.payload), (false, req.as_bytes().to_vec()));
    assert_eq!(out.matches, [(MSISDN_RULE_ID, action::COUNT)]);
    let out = run(&b64_policy_to(Action::Redact, true, TRUSTED_V4), &req);
    assert_eq!((out.drop, out.payload), (false, req.as_bytes().to_vec()));
    assert_eq!(out.matches, [(MSISDN_RULE_ID, action::ALLOW)]);
    assert_eq!(out.places, [b64_at(place::TARGET)]);
}

/// A base64 number cut by a segment's or a window's end is read in pieces, each alone,
/// and under `redact` fails closed: a stretch open at the cut whose digits so far may
/// begin a number is starred up to the cut, and the characters that continue it after
/// (up to 20) too. A cut right after the number's first character (six bits of its
/// first digit, no byte known) leaves that character; the next window reads it kept and
/// finds the number whole (counted). Here 447700900123
/// never leaves a number, while `4474477009001` cut after its first group leaves
/// `4477009001` (10 digits, prefix 44) in the second piece, starred by the carry before
/// it is read (so not counted).
#[test]
fn model_base64_cut_by_a_segment_or_window_end_is_read_in_pieces() {
    let pol = b64_policy(true);
    let two_segments = |req: &str, cut: usize| {
        let mut flow = None;
        let a = model::segment(&mut flow, 5_000, &req.as_bytes()[..cut], &pol);
        let b = model::segment(&mut flow, 5_000 + cut as u32, &req.as_bytes()[cut..], &pol);
        assert!(!a.drop && !b.drop);
        let places = [a.places, b.places].concat();
        (
            String::from_utf8([a.payload, b.payload].concat()).unwrap(),
            places,
        )
    };
    let e = b64_of(MSISDN, true);
    let req = request(&format!("/p?u={e}&x=1"), "X-A: b");
    let at = req.find(&e).unwrap();
    let all = starred(&req, &e, 0..e.len());
    for cut in at + 1..at + e.len() {
        // Right after the first character (six bits of the first digit, no byte known):
        // the next segment reads it kept (F_B64_LAST), finds the number whole and stars
        // it from the cut on.
        let want = if cut == at + 1 {
            (starred(&req, &e, 1..e.len()), vec![b64_at(place::TARGET)])
        } else {
            (all.clone(), vec![])
        };
        assert_eq!(two_segments(&req, cut), want, "cut at {cut}");
    }
    let e = b64_of("4474477009001", false);
    assert_eq!(e, "NDQ3NDQ3NzAwOTAwMQ==");
    let req = request(&format!("/p?u={e}&x=1"), "X-A: b");
    let at = req.find(&e).unwrap();
    // Its first group (447) may begin a number: starred, and the rest after the cut,
    // which is then not read as a number (nothing is counted).
    let want = starred(&req, &e, 0..18);
    assert_eq!(two_segments(&req, at + 4), (want.clone(), vec![]));
    // Whole, it is one number of 13 digits.
    expect(
        &pol,
        &req,
        &starred(&req, &e, 0..18),
        &[b64_at(place::TARGET)],
        "whole",
    );
    // The same at a scan window's end inside one segment.
    let fill = SCAN_WINDOW - "GET /".len() - "?u=".len() - 4;
    let target = format!("/{}?u={e}&x=1", "a".repeat(fill));
    let req = request(&target, "X-A: b");
    assert_eq!(req.find(&e).unwrap() + 4, SCAN_WINDOW);
    expect(&pol, &req, &starred(&req, &e, 0..18), &[], "window");
    let e = b64_of(MSISDN, true);
    for back in 1..e.len() {
        let fill = SCAN_WINDOW - "GET /".len() - "?u=".len() - back;
        let req = request(&format!("/{}?u={e}&x=1", "a".repeat(fill)), "X-A: b");
        let (want, places) = if back == 1 {
            (starred(&req, &e, 1..e.len()), vec![b64_at(place::TARGET)])
        } else {
            (starred(&req, &e, 0..e.len()), vec![])
        };
        let what = format!("window cut {back} characters in");
        expect(&pol, &req, &want, &places, &what);
    }
}

/// The differential corpus (`corpus::requests`) holds base64 numbers and look-alikes
/// where runs are read: with the form on, the model counts some, never changes a byte
/// to anything but the filler, and reads the same request the same way twice.
#[test]
fn model_corpus_exercises_the_base64_form() {
    let mut rng = Rng(0xb64);
    let pol = b64_policy(true);
    let mut found = [0u64; place::COUNT as usize];
    for _ in 0..3_000 {
        let req = requests(&mut rng);
        let out = run(&pol, &req);
        assert_eq!(out, run(&pol, &req), "{req:?}");
        assert_eq!(out.payload.len(), req.len());
        for (a, b) in req.bytes().zip(&out.payload) {
            assert!(a == *b || *b == REDACT_FILLER, "{req:?}");
        }
        for &p in &out.places {
            if form::of(p) == form::BASE64 {
                found[usize::from(place::of(p))] += 1;
            }
        }
    }
    println!("base64 numbers in the corpus by place (header, target, cookie): {found:?}");
    assert!(found.iter().all(|&n| n > 0), "{found:?}");
}
