//! A seeded random corpus of request heads for the differential tests, and the policy
//! they run under, in both forms: the daemon's (`KernelPolicy`) and the model's.

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use ipnet::IpNet;
use leakguard::policy::{Action, KernelPolicy, Msisdn};
use leakguard_common::{
    model::{ModelMsisdn, ModelPolicy, ModelRule},
    name,
};

use crate::kernel::rule;

/// xorshift64*: small, deterministic, enough for a corpus.
pub struct Rng(pub u64);

impl Rng {
    /// From `LEAKGUARD_SEED` when set (to replay a failure), else from the clock. The
    /// seed is printed.
    #[must_use]
    pub fn from_env() -> (Self, u64) {
        let seed = std::env::var("LEAKGUARD_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("seed {seed} (replay with LEAKGUARD_SEED={seed})");
        (Self(seed), seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Names with a rule in [`policy`].
pub const NAMES: &[&str] = &[
    "X-MSISDN",
    "X-UIDH",
    "X-ACR",
    "X-Up-Calling-Line-ID",
    "MSISDN",
    "X-IMSI",
];
/// Names without one (some close to a rule's, one ignored by the number check).
pub const OTHER: &[&str] = &[
    "Host",
    "User-Agent",
    "Accept",
    "Cookie",
    "X-Forwarded-For",
    "X-MSISDN2",
    "MSISD",
    "Via",
    "X-Phone",
    "X-Order-Id",
    "Content-Length",
];

/// Every `[msisdn]` action [`policy`] is run under (`None`: the check off), in the order
/// the model fuzz target picks them by.
pub const MSISDN_ACTIONS: [Option<Action>; 4] = [
    Some(Action::Redact),
    Some(Action::Drop),
    Some(Action::Count),
    None,
];

/// The rules, and the `[msisdn]` check with `msisdn_action` (prefixes 44 and 447, values
/// of `X-Order-Id` ignored, 198.51.100.0/24 trusted).
#[must_use]
pub fn policy(msisdn_action: Option<Action>) -> KernelPolicy {
    KernelPolicy {
        rules: vec![
            rule("X-MSISDN", Action::Redact, &["198.51.100.0/24"]),
            rule("X-UIDH", Action::Drop, &[]),
            rule("X-ACR", Action::Count, &[]),
            rule("x_up_calling_line_id", Action::Redact, &[]),
            rule("MSISDN", Action::Redact, &["198.51.100.0/24"]),
            rule("X-IMSI", Action::Count, &[]),
        ],
        msisdn: msisdn_action.map(|action| Msisdn {
            prefixes: vec!["44".into(), "447".into()],
            action,
            ignore_headers: vec!["x_order_id".into()],
            allow: vec!["198.51.100.0/24".parse().unwrap()],
            request_target: true,
            cookies: true,
            inside_values: true,
            hex: true,
            base64: true,
        }),
        ..KernelPolicy::default()
    }
}

/// The bare identity-number check: prefix 44, no header ignored, no destination trusted.
#[must_use]
pub fn number_check(action: Action) -> Msisdn {
    Msisdn {
        prefixes: vec!["44".into()],
        action,
        ignore_headers: vec![],
        allow: vec![],
        request_target: true,
        cookies: true,
        inside_values: true,
        hex: true,
        base64: true,
    }
}

/// The model's view of `policy` for a packet to `dst`. Rule ids are the policy's order
/// (a fresh object assigns them so).
#[must_use]
pub fn model_policy(policy: &KernelPolicy, dst: std::net::IpAddr) -> ModelPolicy {
    let trusted = |allow: &[IpNet]| allow.iter().any(|n| n.contains(&dst));
    ModelPolicy {
        max_head_bytes: policy.max_head_bytes,
        drop_incomplete: policy.incomplete == leakguard::policy::Incomplete::Drop,
        rules: policy
            .rules
            .iter()
            .enumerate()
            .map(|(id, r)| ModelRule {
                key: name::key(r.header.as_bytes()).unwrap(),
                id: id as u32,
                action: r.action.kernel(),
                allowed: trusted(&r.allow),
            })
            .collect(),
        msisdn: policy.msisdn.as_ref().map(|m| ModelMsisdn {
            prefixes: m.prefixes.iter().map(|p| p.as_bytes().to_vec()).collect(),
            action: m.action.kernel(),
            allowed: trusted(&m.allow),
            ignore: m
                .ignore_headers
                .iter()
                .map(|h| name::key(h.as_bytes()).unwrap())
                .collect(),
            target: m.request_target,
            cookies: m.cookies,
            inside_values: m.inside_values,
            hex: m.hex,
            base64: m.base64,
        }),
    }
}

/// One of `names`, spelled as a gateway might (`spell`).
fn spelled(rng: &mut Rng, names: &[&str]) -> String {
    let base = *rng.pick(names);
    spell(rng, base)
}

/// A name as a gateway might spell it: case and `-`/`_` variants, sometimes mangled.
pub fn spell(rng: &mut Rng, base: &str) -> String {
    let mut s: String = base
        .chars()
        .map(|c| match rng.below(4) {
            0 => c.to_ascii_lowercase(),
            1 => c.to_ascii_uppercase(),
            2 if c == '-' => '_',
            _ => c,
        })
        .collect();
    match rng.below(20) {
        0 => s.push(' '),                          // whitespace before the colon
        1 => s.insert(1, '\u{7f}'),                // a non-token byte
        2 => s = format!("{s}{}", "x".repeat(60)), // too long
        _ => {}
    }
    s
}

/// A header value: identity numbers in several spellings, near misses, tokens, empties;
/// base64 of a number inside the value, and of a near miss (read only where values are
/// read for runs).
pub fn value(rng: &mut Rng) -> String {
    let core = match rng.below(15) {
        0 => "447700900123".to_owned(),
        1 => "+44 7700 900123".to_owned(),
        2 => "OTgxNTk2NzE0ZmFrZXRva2Vu".to_owned(),
        3 => String::new(),
        4 => "a\rb".to_owned(),
        5 => "+447700900123".to_owned(),
        6 => "4477009001234567".to_owned(), // 16 digits: too long
        7 => "44770090".to_owned(),         // 8 digits: too short
        8 => "331234567890".to_owned(),     // another country
        9 => "447700900123x".to_owned(),
        10 => "++447700900123".to_owned(),
        11 => format!("tel:{}", b64_of("447700900123", rng.chance(50))),
        12 => b64_of("tel:+447700900123", rng.chance(50)),
        13 => {
            let near = *rng.pick(&["44770090", "331234567890"]);
            b64_of(near, rng.chance(50))
        }
        _ => format!("4{}", rng.below(1_000_000_000)),
    };
    let lead = *rng.pick(&["", " ", "  ", "\t", " \t "]);
    let trail = *rng.pick(&["", "", " ", "\t", " \r"]);
    format!("{lead}{core}{trail}")
}

pub fn eol(rng: &mut Rng) -> &'static str {
    const EOLS: [&str; 4] = ["\r\n", "\r\n", "\r\n", "\n"];
    EOLS[rng.below(EOLS.len())]
}

/// A long request target (the kernel reads a target eight bytes at a time, 256 per call),
/// sometimes with a byte that ends the line early (a control, DEL); non-ASCII bytes are
/// target bytes.
fn long_target(rng: &mut Rng) -> String {
    let mut t = String::from("/");
    for _ in 0..1 + rng.below(300) {
        if rng.chance(3) {
            // A run of digits somewhere in the middle: the flagged digit lands on every
            // lane and across the 256-byte call limit.
            t.push_str(&number_part(rng));
            continue;
        }
        t.push(*rng.pick(&['a', '/', '?', '=', '%', '-', '~', '7', '4', '\u{e9}']));
    }
    if rng.chance(20) {
        let bad = *rng.pick(&['\u{7f}', '\t', '\u{1}', '\u{1f}']);
        let at = rng.below(t.len());
        let at = (0..=at).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0);
        t.insert(at, bad);
    }
    t
}

/// Digits as a request target may carry them: numbers with the prefix, in a path segment
/// or a query value, after `+`, `%2B` or an escape whose hex digits are digits (`%20`),
/// and near misses: 8 and 16 digits, another prefix, digit runs broken by `/` (which the
/// kernel's word test flags but its byte read rejects), a Unix time. Also the hex form
/// (`form::HEX`): hex of a number alone or inside other text (`uid447…`, `447…@ims`,
/// `+447…`), shifted by a digit so that its pairs do not line up, and hex look-alikes (too
/// few or too many digits, another prefix). And the base64 form (`form::BASE64`): base64
/// of a number at each alignment (after 0-3 bytes of lead-in), in either alphabet, padded,
/// unpadded or with `%3D` padding, followed by decimal digits, and base64 look-alikes
/// (too few or too many digits, another prefix, text, two numbers joined into 24 digits,
/// `MxxxNxxxOxxx`).
pub fn number_part(rng: &mut Rng) -> String {
    let n = *rng.pick(&["447700900123", "447", "4477009001", "447700900123456"]);
    let url = rng.chance(50);
    match rng.below(30) {
        22 => format!("?uid={}", b64_of(n, url)),
        23 => b64_of(&format!("uid{n}"), url),
        24 => b64_of(&format!("+{n}"), url),
        25 => format!(
            "?t={}",
            b64_of(&format!("id{n}"), false).replace('=', "%3D")
        ),
        26 => format!("={}&", b64_of(&format!("{n}@ims"), url)),
        27 => {
            let near: &&str = rng.pick(&[
                "44770090",
                "4477009001234567",
                "331234567890",
                "Mozilla/5.0 (X11)",
                "981596714faketoken",
            ]);
            b64_of(near, url)
        }
        28 => {
            if rng.chance(50) {
                "MxxxNxxxOxxxMxxxNxxx".to_owned()
            } else {
                format!("{}{}", b64_of(n, true), b64_of(n, true))
            }
        }
        29 => format!("{}{n}", b64_of(n, url)),
        14 => format!("?uid={}", hex_of(n)),
        15 => hex_of(&format!("uid{n}")),
        16 => hex_of(&format!("{n}@ims")),
        17 => hex_of(&format!("+{n}")),
        18 => format!("3{}", hex_of(n)),
        19 => {
            let near: &&str = rng.pick(&["44770090", "4477009001234567", "331234567890"]);
            hex_of(near)
        }
        20 => format!("{}{}", hex_of(n), hex_of(n)),
        0 => format!("/u/{n}/"),
        1 => format!("?msisdn={n}&x=1"),
        2 => format!("&tel=%2B{n}"),
        3 => format!("&tel=%2b{n}"),
        4 => format!("%20{n}"),
        5 => format!("%2{n}"),
        6 => "44770090".to_owned(),
        7 => "4477009001234567".to_owned(),
        8 => "331234567890".to_owned(),
        9 => "4477/0090/0123/44".to_owned(),
        10 => "?ts=1700000000".to_owned(),
        11 => format!("+{n}"),
        12 => format!("{}{n}", "4".repeat(rng.below(12))),
        _ => format!("4{}", rng.below(1_000_000_000)),
    }
}

/// Hex of `s`'s bytes, lowercase (`447` is `343437`).
#[must_use]
pub fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Base64 of `s`'s bytes: the standard alphabet padded with `=`, or (`url_safe`) the
/// URL-safe one unpadded, as tokens in URLs are. `447700900123` is `NDQ3NzAwOTAwMTIz`
/// in both; the alphabets differ only in characters that carry no digit's bits.
#[must_use]
pub fn b64_of(s: &str, url_safe: bool) -> String {
    if url_safe {
        URL_SAFE_NO_PAD.encode(s)
    } else {
        STANDARD.encode(s)
    }
}

/// A short request target, often with digits in it.
fn short_target(rng: &mut Rng) -> String {
    if rng.chance(50) {
        let mut t = String::from("/");
        for _ in 0..1 + rng.below(3) {
            t.push_str(&number_part(rng));
        }
        t
    } else {
        (*rng.pick(&["/", "/a/b?c=d", "http://example.com/x", "/\u{1}", "*"])).to_owned()
    }
}

/// A long header value (a cookie): its line is skipped over several kernel calls (256
/// bytes each) and ends at any byte of any word; sometimes a number sits at its end, in
/// decimal or base64 (after a run of base64 characters).
fn long_value(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 | 1 => "q".repeat(200 + rng.below(300)),
        2 => format!("sid={}; 447700900123", "z".repeat(rng.below(500))),
        _ => format!(
            "sid={}; u={}",
            "z".repeat(rng.below(500)),
            b64_of("447700900123", rng.chance(50))
        ),
    }
}

/// One request head (sometimes malformed, sometimes followed by a body).
pub fn request(rng: &mut Rng) -> String {
    let mut s = String::new();
    let method = *rng.pick(&[
        "GET", "POST", "HEAD", "PROPFIND", "get", "G E T", "GET", "GET",
    ]);
    // At most one long part per head, a target or a line, so that three pipelined heads
    // stay within what a TC test run takes (~3.7 KB).
    let long = rng.below(100);
    let target = if long < 15 {
        long_target(rng)
    } else {
        short_target(rng)
    };
    let version = *rng.pick(&["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/1.x"]);
    s.push_str(&format!("{method} {target} {version}{}", eol(rng)));
    let lines = rng.below(10);
    let long_line = ((15..30).contains(&long) && lines > 0).then(|| rng.below(lines));
    for i in 0..lines {
        if long_line == Some(i) {
            let v = long_value(rng);
            let (name, sep) = match rng.below(3) {
                0 => (spelled(rng, NAMES), ":"),
                1 => (spelled(rng, OTHER), ":"),
                _ => ("no colon".to_owned(), " "),
            };
            s.push_str(&format!("{name}{sep}{v}{}", eol(rng)));
            continue;
        }
        match rng.below(13) {
            0 => s.push_str(&format!(" folded continuation{}", eol(rng))),
            12 => {
                // A cookie with digits in its pairs (`[msisdn]` reads them).
                let name = *rng.pick(&["Cookie", "cookie", "COOKIE", "Cookies", "Set-Cookie"]);
                let mut v = String::from("sid=ab");
                for _ in 0..1 + rng.below(3) {
                    v.push_str("; ");
                    v.push_str(&number_part(rng));
                }
                s.push_str(&format!("{name}: {v}{}", eol(rng)));
            }
            1 => s.push_str(&format!("no colon here{}", eol(rng))),
            2..=5 => {
                let n = spelled(rng, NAMES);
                s.push_str(&format!("{n}:{}{}", value(rng), eol(rng)));
            }
            _ => {
                let n = spelled(rng, OTHER);
                s.push_str(&format!("{n}:{}{}", value(rng), eol(rng)));
            }
        }
    }
    if rng.chance(90) {
        s.push_str(eol(rng));
    }
    if rng.chance(15) {
        s.push_str("X-MSISDN: 447700900123\r\n\r\n"); // a body that looks like a header
    }
    s
}

/// Now and then (`percent`% of calls) a small head cap of 64 to 64 + `spread` bytes,
/// else the default: under a small cap, heads not seen whole are dropped, or passed when
/// the cap is odd. Writes the policy to `guard` when it changed.
pub fn vary_cap(
    rng: &mut Rng,
    p: &mut KernelPolicy,
    guard: &mut crate::guard::Guard,
    percent: u64,
    spread: usize,
) {
    let cap = if rng.chance(percent) {
        64 + rng.below(spread) as u32
    } else {
        leakguard_common::DEFAULT_MAX_HEAD_BYTES
    };
    let incomplete = if cap < 4096 && cap % 2 == 1 {
        leakguard::policy::Incomplete::Pass
    } else {
        leakguard::policy::Incomplete::Drop
    };
    if cap != p.max_head_bytes || incomplete != p.incomplete {
        p.max_head_bytes = cap;
        p.incomplete = incomplete;
        guard.set_policy(p).unwrap();
    }
}

/// One to three requests in a row (pipelined in one payload).
pub fn requests(rng: &mut Rng) -> String {
    let mut payload = String::new();
    for _ in 0..1 + rng.below(3) {
        payload.push_str(&request(rng));
    }
    payload
}

/// The destination: the trusted one `percent`% of the time, else the server.
pub fn destination(rng: &mut Rng, percent: u64) -> [u8; 4] {
    if rng.chance(percent) {
        crate::packet::TRUSTED_V4
    } else {
        crate::packet::SERVER_V4
    }
}

#[cfg(test)]
mod tests {
    use super::{request, Rng};

    /// Tests pipeline up to three heads into one frame and run it on TC too, whose test
    /// runs take at most ~3.7 KB of packet: the corpus must stay well under that (with
    /// room for the fuzzer's inserted bytes), while still producing long heads.
    #[test]
    fn three_pipelined_heads_fit_a_tc_test_run() {
        let mut rng = Rng(7);
        let (mut max, mut long) = (0, 0);
        for _ in 0..200_000 {
            let n: usize = (0..3).map(|_| request(&mut rng).len()).sum();
            max = max.max(n);
            long += usize::from(n > 1_500);
        }
        assert!(max < 3_000, "{max} bytes");
        assert!(long > 100, "only {long} heads over 1,500 bytes");
    }
}
