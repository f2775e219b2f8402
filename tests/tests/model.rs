//! Differential test: a seeded random corpus of requests through the real kernel programs
//! (XDP and TC, `BPF_PROG_TEST_RUN`) and through the pure-Rust model; verdicts, output
//! bytes and counters must agree. The seed is printed; `LEAKGUARD_SEED=N` replays it.

use ipnet::IpNet;
use leakguard::policy::{Action, KernelPolicy, Rule};
use leakguard_common::{
    model::{self, ModelRule},
    name,
};
use leakguard_tests::{
    guard::{Guard, Hook, Verdict},
    packet::{tcp_checksum_ok, tcp_payload, Frame, TRUSTED_V4},
};

/// xorshift64*: small, deterministic, enough for a corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const NAMES: &[&str] = &[
    "X-MSISDN",
    "X-UIDH",
    "X-ACR",
    "X-Up-Calling-Line-ID",
    "MSISDN",
    "X-IMSI",
];
const OTHER: &[&str] = &[
    "Host",
    "User-Agent",
    "Accept",
    "Cookie",
    "X-Forwarded-For",
    "X-MSISDN2",
    "MSISD",
    "Via",
];

fn policy() -> KernelPolicy {
    let r = |h: &str, action, allow: &[&str]| Rule {
        header: h.into(),
        action,
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
    };
    KernelPolicy {
        max_payload_bytes: 4096,
        rules: vec![
            r("X-MSISDN", Action::Redact, &["198.51.100.0/24"]),
            r("X-UIDH", Action::Drop, &[]),
            r("X-ACR", Action::Count, &[]),
            r("x_up_calling_line_id", Action::Redact, &[]),
            r("MSISDN", Action::Redact, &["198.51.100.0/24"]),
            r("X-IMSI", Action::Count, &[]),
        ],
        ..KernelPolicy::default()
    }
}

/// A name as a gateway might spell it: case and `-`/`_` variants, sometimes mangled.
fn spell(rng: &mut Rng, base: &str) -> String {
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

fn value(rng: &mut Rng) -> String {
    let core = match rng.below(5) {
        0 => "447700900123".to_owned(),
        1 => "+44 7700 900123".to_owned(),
        2 => "OTgxNTk2NzE0ZmFrZXRva2Vu".to_owned(),
        3 => String::new(),
        _ => "a\rb".to_owned(),
    };
    let lead = *rng.pick(&["", " ", "  ", "\t", " \t "]);
    let trail = *rng.pick(&["", "", " ", "\t"]);
    format!("{lead}{core}{trail}")
}

fn eol(rng: &mut Rng) -> &'static str {
    const EOLS: [&str; 4] = ["\r\n", "\r\n", "\r\n", "\n"];
    EOLS[rng.below(EOLS.len())]
}

fn request(rng: &mut Rng) -> String {
    let mut s = String::new();
    let method = *rng.pick(&[
        "GET", "POST", "HEAD", "PROPFIND", "get", "G E T", "GET", "GET",
    ]);
    let target = *rng.pick(&["/", "/a/b?c=d", "http://example.com/x", "/\u{1}", "*"]);
    let version = *rng.pick(&["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/1.x"]);
    s.push_str(&format!("{method} {target} {version}{}", eol(rng)));
    for _ in 0..rng.below(10) {
        match rng.below(12) {
            0 => s.push_str(&format!(" folded continuation{}", eol(rng))),
            1 => s.push_str(&format!("no colon here{}", eol(rng))),
            2..=5 => {
                let base = *rng.pick(NAMES);
                let n = spell(rng, base);
                s.push_str(&format!("{n}:{}{}", value(rng), eol(rng)));
            }
            _ => {
                let base = *rng.pick(OTHER);
                let n = spell(rng, base);
                s.push_str(&format!("{n}: {}{}", value(rng), eol(rng)));
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

fn model_rules(policy: &KernelPolicy, trusted: bool) -> Vec<ModelRule> {
    let dst = std::net::IpAddr::from(TRUSTED_V4);
    policy
        .rules
        .iter()
        .enumerate()
        .map(|(id, r)| ModelRule {
            key: name::key(r.header.as_bytes()).unwrap(),
            id: id as u32,
            action: r.action.kernel(),
            allowed: trusted && r.allow.iter().any(|n: &IpNet| n.contains(&dst)),
        })
        .collect()
}

#[test]
fn kernel_and_model_agree_on_a_random_corpus() {
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
    let mut rng = Rng(seed);
    let mut p = policy();
    let mut g = Guard::load(&p).unwrap();
    const CASES: usize = 1500;
    let mut compared = 0;
    for case in 0..CASES {
        // Now and then, a small scan limit, to exercise truncation.
        let limit = if rng.chance(10) {
            64 + rng.below(200) as u32
        } else {
            4096
        };
        if limit != p.max_payload_bytes {
            p.max_payload_bytes = limit;
            g.set_policy(&p).unwrap();
        }
        let mut payload = String::new();
        for _ in 0..1 + rng.below(3) {
            payload.push_str(&request(&mut rng));
        }
        let trusted = rng.chance(20);
        let frame = if trusted {
            Frame::http_v4(payload.as_bytes()).dst_v4(TRUSTED_V4)
        } else {
            Frame::http_v4(payload.as_bytes())
        }
        .build();
        let want = model::scan(payload.as_bytes(), limit, &model_rules(&p, trusted));
        for hook in [Hook::Xdp, Hook::TcEgress] {
            let before: Vec<[u64; 4]> = (0..6).map(|id| g.counters(id).unwrap().outcomes).collect();
            let stats_before = g.stats().unwrap();
            let r = g.run(hook, &frame).unwrap();
            let ctx = format!("case {case} on {hook:?}, seed {seed}: {payload:?}");
            assert_eq!(r.verdict == Verdict::Drop, want.drop, "verdict, {ctx}");
            if !want.drop {
                assert_eq!(tcp_payload(&r.out).unwrap(), want.payload, "bytes, {ctx}");
                assert!(tcp_checksum_ok(&r.out), "checksum, {ctx}");
            }
            let mut want_counts = before.clone();
            for (id, outcome) in &want.matches {
                want_counts[*id as usize][usize::from(*outcome)] += 1;
            }
            let after: Vec<[u64; 4]> = (0..6).map(|id| g.counters(id).unwrap().outcomes).collect();
            assert_eq!(after, want_counts, "rule counters, {ctx}");
            let s = g.stats().unwrap();
            assert_eq!(s.heads - stats_before.heads, want.heads, "heads, {ctx}");
            assert_eq!(s.lines - stats_before.lines, want.lines, "lines, {ctx}");
            assert_eq!(
                s.malformed - stats_before.malformed,
                want.malformed,
                "malformed, {ctx}"
            );
            assert_eq!(
                s.truncated - stats_before.truncated,
                u64::from(want.truncated),
                "truncated, {ctx}"
            );
            compared += 1;
        }
        let _ = g.events();
    }
    println!("{compared} kernel runs matched the model");
}
