//! A pure-Rust reference model of the kernel scanner, for differential tests only: the
//! same policy in, the same verdict, output bytes and counters out, written for clarity
//! rather than speed (byte at a time, no windows, no runs).
//!
//! The grammar and every decision mirror `leakguard-ebpf/src/http.rs`; where the two
//! disagree, one of them is wrong.

use alloc::vec::Vec;

use crate::{
    action,
    name::{fold, CLASS, C_CTL, C_TCHAR, C_WS},
    NameKey, MAX_METHOD_LEN, MAX_NAME_LEN, REDACT_FILLER,
};

/// A rule as the model needs it: `allowed` says whether this packet's destination is on
/// the rule's allowlist (the caller decides, per packet).
#[derive(Clone, Copy, Debug)]
pub struct ModelRule {
    pub key: NameKey,
    pub id: u32,
    pub action: u8,
    pub allowed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOutput {
    pub drop: bool,
    pub payload: Vec<u8>,
    /// (rule id, outcome) per match, in order.
    pub matches: Vec<(u32, u8)>,
    pub heads: u64,
    pub lines: u64,
    pub malformed: u64,
    pub truncated: bool,
    /// True when some byte was overwritten.
    pub redacted: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum S {
    Method,
    Target,
    Version,
    LineStart,
    Name,
    Skip,
    Ows,
    Value,
    BlankCr,
}

/// Scans one TCP payload the way the programs do.
#[must_use]
pub fn scan(payload: &[u8], max_payload_bytes: u32, rules: &[ModelRule]) -> ModelOutput {
    let mut out = ModelOutput {
        payload: payload.to_vec(),
        ..ModelOutput::default()
    };
    // A segment whose first byte cannot start a method is not looked at.
    match payload.first() {
        Some(&b) if CLASS[usize::from(b)] & C_TCHAR != 0 => {}
        _ => return out,
    }
    let limit = payload.len().min(max_payload_bytes as usize);
    let mut st = S::Method;
    let mut tok = 0u32;
    let mut name: Vec<u8> = Vec::new();
    let mut name_len = 0usize;
    let mut redacting = false; // F_REDACT: the current value (and its folds) is redacted
    let mut stopped = false;

    let mut i = 0;
    while i < limit {
        let b = payload[i];
        let class = CLASS[usize::from(b)];
        match st {
            S::Method => {
                if class & C_TCHAR != 0 && tok < MAX_METHOD_LEN {
                    tok += 1;
                } else if b == b' ' && tok > 0 {
                    st = S::Target;
                    tok = 0;
                } else {
                    stopped = true;
                }
            }
            S::Target => {
                if b == b' ' && tok > 0 {
                    st = S::Version;
                    tok = 0;
                } else if b != b' ' && class & C_CTL == 0 {
                    tok += 1;
                } else {
                    stopped = true;
                }
            }
            S::Version => {
                const PREFIX: &[u8] = b"HTTP/1.";
                if (tok as usize) < PREFIX.len() {
                    if b == PREFIX[tok as usize] {
                        tok += 1;
                    } else {
                        stopped = true;
                    }
                } else if tok as usize == PREFIX.len() {
                    if b.is_ascii_digit() {
                        tok += 1;
                    } else {
                        stopped = true;
                    }
                } else if b == b'\n' {
                    out.heads += 1;
                    st = S::LineStart;
                    redacting = false;
                } else if b != b'\r' {
                    stopped = true;
                }
            }
            S::LineStart => {
                if class & C_TCHAR != 0 {
                    out.lines += 1;
                    name.clear();
                    name.push(fold(b));
                    name_len = 1;
                    redacting = false;
                    st = S::Name;
                } else if b == b'\r' {
                    redacting = false;
                    st = S::BlankCr;
                } else if b == b'\n' {
                    redacting = false;
                    st = S::Method;
                    tok = 0;
                } else {
                    out.lines += 1;
                    out.malformed += 1;
                    // An obs-fold line continues a redacted value: redact it too.
                    st = if class & C_WS != 0 && redacting {
                        S::Ows
                    } else {
                        S::Skip
                    };
                }
            }
            S::Name => {
                if class & C_TCHAR != 0 {
                    if name_len < MAX_NAME_LEN {
                        name.push(fold(b));
                    }
                    name_len += 1;
                } else if b == b':' {
                    st = S::Skip;
                    if name_len <= MAX_NAME_LEN {
                        let mut key = NameKey {
                            name: [0; MAX_NAME_LEN],
                        };
                        key.name[..name.len()].copy_from_slice(&name);
                        if let Some(r) = rules.iter().find(|r| r.key == key) {
                            let outcome = if r.allowed { action::ALLOW } else { r.action };
                            out.matches.push((r.id, outcome));
                            match outcome {
                                action::REDACT => {
                                    redacting = true;
                                    st = S::Ows;
                                }
                                action::DROP => {
                                    out.drop = true;
                                    stopped = true;
                                }
                                _ => {}
                            }
                        }
                    }
                } else {
                    out.malformed += 1;
                    st = if b == b'\n' { S::LineStart } else { S::Skip };
                }
            }
            S::Skip => {
                if b == b'\n' {
                    st = S::LineStart;
                }
            }
            S::Ows | S::Value => {
                if b == b'\n' {
                    st = S::LineStart;
                } else if st == S::Ows && class & C_WS != 0 {
                    // Leading whitespace is not part of the value.
                } else {
                    st = S::Value;
                    if b != b'\r' {
                        out.payload[i] = REDACT_FILLER;
                        out.redacted = true;
                    }
                }
            }
            S::BlankCr => {
                if b == b'\n' {
                    st = S::Method;
                    tok = 0;
                } else {
                    out.malformed += 1;
                    st = S::Skip;
                }
            }
        }
        if stopped {
            break;
        }
        i += 1;
    }
    let in_head = !(stopped || (st == S::Method && tok == 0));
    out.truncated = in_head && limit < payload.len();
    if out.drop {
        // A dropped packet leaves nothing; what it would have carried does not matter.
        out.payload = payload.to_vec();
        out.redacted = false;
    }
    out
}
