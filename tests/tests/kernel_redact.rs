//! The kernel programs under `BPF_PROG_TEST_RUN` (see `leakguard_tests::kernel`): what
//! redaction writes. A value is overwritten whole, whatever its length and alignment, with
//! every other byte kept and the TCP checksum valid.

use leakguard_tests::{
    guard::Hook,
    http::{browser_get, find, MSISDN, UIDH},
    kernel::{assert_passes_redacted, assert_redacted, load},
    packet::Frame,
};

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
