//! A pure-Rust reference model of the kernel scanner, for differential tests only: the
//! same policy in, the same verdict, output bytes and counters out, written for clarity
//! rather than speed (byte at a time, no runs, no map memory).
//!
//! It covers the per-flow behaviour too: a [`ModelFlow`] is what the kernel keeps in its
//! `FLOWS` entry, and [`segment`] takes one TCP segment of the flow. The grammar and every
//! decision mirror `leakguard-ebpf/src/{guard,http}.rs`; where the two disagree, one of
//! them is wrong.
//!
//! The base64 form (`form::BASE64`) is read here from the rule in `b64`'s module doc,
//! character by character, without `b64::decide` (the kernel's reading, which this
//! checks): only the alphabet table (`b64::VALUE`) is shared.

use alloc::vec::Vec;

use crate::{
    action, b64,
    flow::{seq_lt, FlowState},
    form,
    name::{fold, start_bit, CLASS, C_CTL, C_TCHAR, C_WS},
    place, NameKey, MAX_METHOD_LEN, MAX_NAME_LEN, MAX_SCAN_BYTES, MAX_SPANS, MSISDN_MAX_DIGITS,
    MSISDN_MIN_DIGITS, MSISDN_RULE_ID, REDACT_FILLER, SCAN_WINDOW,
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

/// The identity-number check (`[msisdn]`).
#[derive(Clone, Debug)]
pub struct ModelMsisdn {
    /// Configured prefixes, as digit strings.
    pub prefixes: Vec<Vec<u8>>,
    pub action: u8,
    /// The destination is on the check's allowlist.
    pub allowed: bool,
    /// Folded names whose values are not checked.
    pub ignore: Vec<NameKey>,
    /// Runs of digits in the request target are checked too (`place::TARGET`).
    pub target: bool,
    /// And in `Cookie` values (`place::COOKIE`).
    pub cookies: bool,
    /// Header values are read for runs of digits too, not only whole
    /// (`place::INSIDE_VALUES`).
    pub inside_values: bool,
    /// Runs of digits are read for the hex form too (`form::HEX_ON`).
    pub hex: bool,
    /// The places runs are read in are read for the base64 form too (`form::B64_ON`).
    pub base64: bool,
}

#[derive(Clone, Debug)]
pub struct ModelPolicy {
    /// The cap on one request head (`scan.max_head_bytes`).
    pub max_head_bytes: u32,
    /// A head not seen whole is dropped (`scan.incomplete_heads = "drop"`), else passed.
    pub drop_incomplete: bool,
    pub rules: Vec<ModelRule>,
    pub msisdn: Option<ModelMsisdn>,
}

/// What the segment was to its flow (the kernel's packet classes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Started (or tried to start) a request.
    #[default]
    Head,
    /// Continued a head open at the end of the previous segment.
    Continuation,
    /// Neither: a body or not HTTP.
    Body,
    /// Resent bytes already scanned.
    Retransmission,
    /// Dropped: its bytes cannot be scanned in order.
    Unordered,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOutput {
    pub drop: bool,
    pub payload: Vec<u8>,
    /// (rule id, outcome) per match, in order; the number check counts as `MSISDN_RULE_ID`.
    pub matches: Vec<(u32, u8)>,
    /// Per identity number counted, in order: where it was and in what form
    /// (`place::with_form`), as its event says.
    pub places: Vec<u8>,
    pub heads: u64,
    pub lines: u64,
    pub malformed: u64,
    /// The head was not seen whole (`Stats::truncated`).
    pub truncated: bool,
    /// Dropped for that (`scan.incomplete_heads = "drop"`).
    pub incomplete_drop: bool,
    /// True when some byte was overwritten.
    pub redacted: bool,
    pub kind: Kind,
    /// Counted as a continuation (also for a retransmission that carries new head bytes).
    pub continuation: bool,
    /// Counted as a retransmission (resent bytes, even when then dropped).
    pub retransmission: bool,
    pub msisdn_values: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// A value checked for an identity number.
    Num,
    /// A `Cookie` value, or with `inside_values` any checked header value, read for runs
    /// of digits (the kernel's S_SKIP with F_COOKIE or F_VALUE_RUNS).
    Runs,
}

/// The state the kernel keeps for a flow between segments.
#[derive(Clone, Debug)]
pub struct ModelFlow {
    next_seq: u32,
    st: S,
    tok: u32,
    name: Vec<u8>,
    name_len: usize,
    /// F_REDACT: the current value (and its folds) is redacted.
    redacting: bool,
    /// The number check: value started, digits ended, digits so far, where it lies.
    num_val: bool,
    num_tail: bool,
    digits: Vec<u8>,
    num_start: u32,
    num_end: u32,
    /// In the request target: digits of a percent escape still to come before the run's
    /// number digits, and whether the last target byte was `%`.
    num_skip: u32,
    pct: bool,
    /// The value read for runs is a `Cookie` value (`place::COOKIE`; the kernel's
    /// F_COOKIE), not another header's (`place::HEADER`).
    cookie: bool,
    /// The hex form in a run (`form::HEX`): the run's number digits so far, whether the
    /// open pair's first digit is a 3, and the current stretch (pairs `3d`): its digits
    /// and its bytes `[hex_start, hex_end)`.
    raw: u32,
    hex_good: bool,
    hex: Vec<u8>,
    hex_start: u32,
    hex_end: u32,
    /// Sequence number of the open head's first byte.
    head_seq: u32,
    /// The last window ended inside a base64 stretch that may be a number, starred up to
    /// there; the next window stars what continues it (the kernel's F_B64_CUT).
    b64_cut: bool,
    /// The last window's last character, when in the alphabet in a place read for runs
    /// (the kernel's F_B64_LAST): the next window reads it before its first byte.
    b64_last: Option<u8>,
    /// Redacted runs, the kernel's ring (same merge and eviction rule).
    spans: FlowState,
}

impl ModelFlow {
    fn fresh(seq: u32) -> Self {
        let mut spans = FlowState::FRESH;
        spans.next_seq = seq;
        Self {
            next_seq: seq,
            st: S::Method,
            tok: 0,
            name: Vec::new(),
            name_len: 0,
            redacting: false,
            num_val: false,
            num_tail: false,
            digits: Vec::new(),
            num_start: 0,
            num_end: 0,
            num_skip: 0,
            pct: false,
            cookie: false,
            raw: 0,
            hex_good: false,
            hex: Vec::new(),
            hex_start: 0,
            hex_end: 0,
            head_seq: 0,
            b64_cut: false,
            b64_last: None,
            spans,
        }
    }

    fn open(&self) -> bool {
        !(self.st == S::Method && self.tok == 0)
    }

    /// Byte `seq` was redacted in an earlier segment (and is still remembered).
    fn remembered(&self, seq: u32) -> bool {
        let f = &self.spans;
        (0..f.nspans as usize).any(|j| {
            let s = f.spans[j];
            !seq_lt(seq, s.start) && seq_lt(seq, s.end)
        })
    }
}

/// A staged character at or past the window's end: not known yet.
const CUT: u8 = 0xFE;

/// What a base64 trigger reads (`b64::outcome`, with the digits and where they lie).
#[derive(Debug, PartialEq, Eq)]
enum Stretch {
    /// Not a trigger: the two groups before it and its group's first byte are not all
    /// digits.
    None,
    /// The byte that would end it is not known yet (the window ends in it).
    Cut,
    /// More than `MSISDN_MAX_DIGITS` digits, or not known to end within the bytes read.
    Long,
    /// Read whole: its digits, and the payload offsets `[first, end)` of the characters
    /// carrying their bits (the span).
    Taken {
        digits: Vec<u8>,
        first: usize,
        end: usize,
    },
}

/// A byte decoded from two base64 characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoded {
    /// An ASCII digit.
    Digit(u8),
    /// Anything else, or a character not in the alphabet (or before the window's scanned
    /// bytes).
    Other,
    /// A character at or past the window's end.
    Unknown,
}

/// Groups of four characters read before a trigger's and after it (`t - 20 .. t + 16`).
const B64_GROUPS_BACK: isize = 5;
const B64_GROUPS_FWD: isize = 3;

/// Reads the stretch around a base64 trigger at payload offset `t` of `p`, the window's
/// scanned bytes being `[lo, hi)` (`b64`'s rule, written plainly).
fn b64_stretch(p: &[u8], t: usize, lo: usize, hi: usize, last: Option<u8>) -> Stretch {
    // A character's 6-bit value, or `b64::NONE` / `CUT`; before `lo`, the last window's
    // last character when it is kept.
    let value = |at: isize| -> u8 {
        if at == lo as isize - 1 {
            last.unwrap_or(b64::NONE)
        } else if at < lo as isize {
            b64::NONE
        } else if at as usize >= hi {
            CUT
        } else {
            b64::VALUE[usize::from(p[at as usize])]
        }
    };
    // Byte `j` (0..3) of the group starting at `t + 4 g`: the 8 bits from bit `2 j` of
    // the 12 its characters `j` and `j + 1` carry.
    let decode = |g: isize, j: isize| -> Decoded {
        let at = t as isize + 4 * g + j;
        let (a, b) = (value(at), value(at + 1));
        // A known first character outside the alphabet ends the stream whatever
        // follows the window's end.
        if a == b64::NONE {
            return Decoded::Other;
        }
        if a == CUT || b == CUT {
            return Decoded::Unknown;
        }
        if b == b64::NONE {
            return Decoded::Other;
        }
        let pair = u32::from(a) << 6 | u32::from(b);
        let byte = (pair >> (4 - 2 * j)) as u8;
        if byte.is_ascii_digit() {
            Decoded::Digit(byte)
        } else {
            Decoded::Other
        }
    };
    // The bytes of the groups `t - 20` to `t + 12`, in order, with their first
    // character's offset from `t`.
    let bytes: Vec<(isize, Decoded)> = (-B64_GROUPS_BACK..=B64_GROUPS_FWD)
        .flat_map(|g| (0..3).map(move |j| (g, j)))
        .map(|(g, j)| (4 * g + j, decode(g, j)))
        .collect();
    let digit = |k: usize| matches!(bytes[k].1, Decoded::Digit(_));
    // The trigger's own group's first byte, and the two whole groups before it.
    let own = 3 * B64_GROUPS_BACK as usize;
    let need = own - 6..=own;
    if !need.clone().all(digit) {
        return Stretch::None;
    }
    // Back: the nearest byte that is not a digit; none in the three groups before: long.
    let Some(before) = (0..*need.start()).rev().find(|&k| !digit(k)) else {
        return Stretch::Long;
    };
    // Forward: the first byte after the trigger's that is not a digit.
    let Some(after) = (own + 1..bytes.len()).find(|&k| !digit(k)) else {
        return Stretch::Long;
    };
    let (start, stop) = (before + 1, after);
    if stop - start > MSISDN_MAX_DIGITS as usize {
        return Stretch::Long;
    }
    if bytes[stop].1 == Decoded::Unknown {
        return Stretch::Cut;
    }
    let digits = bytes[start..stop]
        .iter()
        .map(|&(_, d)| match d {
            Decoded::Digit(b) => b,
            _ => unreachable!("a stretch is digits"),
        })
        .collect();
    let at = |off: isize| (t as isize + off) as usize;
    Stretch::Taken {
        digits,
        first: at(bytes[start].0),
        end: at(bytes[stop - 1].0 + 2),
    }
}

/// The base64 stretch open at a cut at payload offset `hi` in the phase whose last group
/// has `k` characters before it (scanned bytes from `lo`): its digits and the offset of
/// its first character, or `None` when the last character is outside the alphabet or
/// the last byte known is not a digit. Reads back at most the five groups before the
/// partial one (the kernel stages 24 characters): a stretch filling them all is as long
/// as they are.
fn b64_tail(p: &[u8], k: usize, lo: usize, hi: usize) -> Option<(Vec<u8>, usize)> {
    let value = |at: isize| -> u8 {
        if at < lo as isize || at >= hi as isize {
            b64::NONE
        } else {
            b64::VALUE[usize::from(p[at as usize])]
        }
    };
    if value(hi as isize - 1) == b64::NONE {
        return None;
    }
    // The known bytes of the phase, last first: the partial group's (k - 1 of them),
    // then five whole groups'.
    let g0 = hi as isize - k as isize;
    let mut bytes = Vec::new();
    for j in (0..k.saturating_sub(1) as isize).rev() {
        bytes.push((g0 + j, j));
    }
    for g in 1..=5isize {
        for j in (0..3isize).rev() {
            bytes.push((g0 - 4 * g + j, j));
        }
    }
    let mut digits = Vec::new();
    let mut first = 0;
    for (at, j) in bytes {
        let (a, b) = (value(at), value(at + 1));
        if a == b64::NONE || b == b64::NONE {
            break;
        }
        let byte = ((u32::from(a) << 6 | u32::from(b)) >> (4 - 2 * j)) as u8;
        if !byte.is_ascii_digit() {
            break;
        }
        digits.push(byte);
        first = at as usize;
    }
    if digits.is_empty() {
        return None;
    }
    digits.reverse();
    Some((digits, first))
}

/// The longest-match answers of the prefix trie, computed directly from the prefixes.
fn covered(prefixes: &[Vec<u8>], digits: &[u8]) -> bool {
    prefixes.iter().any(|p| digits.starts_with(p))
}

fn possible(prefixes: &[Vec<u8>], digits: &[u8]) -> bool {
    covered(prefixes, digits) || prefixes.iter().any(|p| p.starts_with(digits))
}

struct Scan<'a> {
    pol: &'a ModelPolicy,
    out: ModelOutput,
    f: ModelFlow,
    seq: u32,
    stopped: bool,
    /// Payload offset where scanning of the current window ends (the kernel's `n`).
    win_end: usize,
    /// Payload offset of the window's first byte.
    win_start: usize,
    /// And where its scanning began: bytes before were scanned before, if at all (the kernel's
    /// `old_n`). The base64 form reads no character before it.
    scan_lo: usize,
    /// No base64 trigger before this payload offset (`b64` rule: after a stretch read
    /// whole, one before its span's last character). Reset at each window.
    b64_resume: usize,
}

impl Scan<'_> {
    fn at(&self, i: usize) -> u32 {
        self.seq.wrapping_add(i as u32)
    }

    fn redact(&mut self, i: usize) {
        self.out.payload[i] = REDACT_FILLER;
        self.out.redacted = true;
        let s = self.at(i);
        self.f.spans.note_span(s, 1);
    }

    /// Overwrites the bytes with sequence numbers in `[from, to)` inside `[lo, hi)`
    /// (payload offsets), remembered as one run.
    fn redact_range(&mut self, from: u32, to: u32, lo: usize, hi: usize) {
        let clamp = |s: u32| -> usize {
            let d = s.wrapping_sub(self.at(lo)) as i32;
            if d < 0 {
                lo
            } else {
                (lo + d as usize).min(hi)
            }
        };
        let (a, b) = (clamp(from), clamp(to));
        if a >= b {
            return;
        }
        for i in a..b {
            self.out.payload[i] = REDACT_FILLER;
        }
        self.out.redacted = true;
        let s = self.at(a);
        self.f.spans.note_span(s, (b - a) as u32);
    }

    fn match_outcome(&mut self, id: u32, act: u8, allowed: bool) -> u8 {
        let outcome = if allowed { action::ALLOW } else { act };
        self.out.matches.push((id, outcome));
        outcome
    }

    /// The name of a header line is complete (the colon was read).
    fn on_header(&mut self) {
        self.f.st = S::Skip;
        if self.f.name_len > MAX_NAME_LEN {
            return;
        }
        let mut key = NameKey {
            name: [0; MAX_NAME_LEN],
        };
        key.name[..self.f.name.len()].copy_from_slice(&self.f.name);
        if let Some(r) = self.pol.rules.iter().find(|r| r.key == key).copied() {
            match self.match_outcome(r.id, r.action, r.allowed) {
                action::REDACT => {
                    self.f.redacting = true;
                    self.f.st = S::Ows;
                }
                action::DROP => {
                    self.out.drop = true;
                    self.stopped = true;
                }
                _ => {}
            }
            return;
        }
        if let Some(m) = &self.pol.msisdn {
            if m.ignore.contains(&key) {
                return;
            }
            let cookie = self.f.name == b"cookie";
            if cookie && !m.cookies && m.inside_values {
                // Cookies off: not read, though other values are read inside.
                return;
            }
            if (m.cookies && cookie) || m.inside_values {
                self.f.st = S::Runs;
                self.f.cookie = m.cookies && cookie;
                self.f.num_val = false;
                self.f.pct = false;
                return;
            }
            self.f.st = S::Num;
            self.f.redacting = false;
            self.f.num_val = false;
            self.f.num_tail = false;
            self.f.digits.clear();
        }
    }

    /// The digits read (`num_*`) end at payload byte `i` (window from `lo`): an identity
    /// number when 9-15 digits start with a configured prefix; then act.
    fn decide(&mut self, i: usize, lo: usize) {
        let f = &self.f;
        let (on, digits, from, to) = (f.num_val, f.digits.clone(), f.num_start, f.num_end);
        self.decide_digits(on, &digits, (from, to), (lo, i), form::DECIMAL);
    }

    /// A hex stretch ends at payload byte `i` (window from `lo`): an identity number in
    /// hex form when its 9-15 digits start with a configured prefix; then act.
    fn decide_hex(&mut self, i: usize, lo: usize) {
        let on = self.pol.msisdn.as_ref().is_some_and(|m| m.hex);
        let f = &self.f;
        let (digits, from, to) = (f.hex.clone(), f.hex_start, f.hex_end);
        self.decide_digits(on, &digits, (from, to), (lo, i), form::HEX);
    }

    /// Where a number read now lies (`place::*`), as its event says.
    fn place(&self) -> u8 {
        match self.f.st {
            S::Target => place::TARGET,
            S::Runs if self.f.cookie => place::COOKIE,
            _ => place::HEADER,
        }
    }

    /// `digits` in form `form`, in the bytes with sequence numbers `[seq.0, seq.1)`, are
    /// read (payload bytes `[win.0, win.1)` may be overwritten): when `on`, 9-15 of them
    /// and starting with a configured prefix, an identity number: count it and act.
    fn decide_digits(
        &mut self,
        on: bool,
        digits: &[u8],
        seq: (u32, u32),
        win: (usize, usize),
        form: u8,
    ) {
        let m = self.pol.msisdn.as_ref().expect("number check on");
        let n = digits.len() as u32;
        if on
            && (MSISDN_MIN_DIGITS..=MSISDN_MAX_DIGITS).contains(&n)
            && covered(&m.prefixes, digits)
        {
            let (act, allowed) = (m.action, m.allowed);
            self.out.msisdn_values += 1;
            self.out.places.push(place::with_form(self.place(), form));
            match self.match_outcome(MSISDN_RULE_ID, act, allowed) {
                action::REDACT => self.redact_range(seq.0, seq.1, win.0, win.1),
                action::DROP => {
                    self.out.drop = true;
                    self.stopped = true;
                }
                _ => {}
            }
        }
    }

    /// A number digit of a run (after any escape) at payload byte `i`, for the hex form:
    /// digits pair up from the run's start; a pair whose first digit is not 3 ends the
    /// stretch (decided here) and the next starts after it.
    fn hex_digit(&mut self, i: usize, lo: usize) {
        let (b, at) = (self.out.payload[i], self.at(i));
        if self.f.raw == 0 {
            self.f.hex.clear();
            self.f.hex_start = at;
            self.f.hex_end = at;
        }
        if self.f.raw.is_multiple_of(2) {
            self.f.hex_good = b == b'3';
            if !self.f.hex_good {
                self.decide_hex(i, lo);
                let f = &mut self.f;
                f.hex.clear();
                f.hex_start = at.wrapping_add(2);
                f.hex_end = f.hex_start;
            }
        } else if self.f.hex_good {
            self.f.hex.push(b);
            self.f.hex_end = at.wrapping_add(1);
        }
        self.f.raw += 1;
    }

    /// True when runs of digits in the request target are checked.
    fn target_check(&self) -> bool {
        self.pol.msisdn.as_ref().is_some_and(|m| m.target)
    }

    /// A byte of a place where runs are read (the request target, a value read for
    /// runs), for the number check: its decimal and hex form, then the base64 form with
    /// the byte as a trigger. Returns true when the byte was a digit (it is a target byte
    /// like any other: nothing else to do).
    fn target_byte(&mut self, i: usize, lo: usize) -> bool {
        let digit = self.run_byte(i, lo);
        self.b64_trigger(i);
        digit
    }

    /// A digit extends the run (or starts one; right after `%` its first two digits are
    /// the escape's), any other byte ends it and is decided. Returns true for a digit.
    fn run_byte(&mut self, i: usize, lo: usize) -> bool {
        let b = self.out.payload[i];
        let at = self.at(i);
        if b.is_ascii_digit() {
            let f = &mut self.f;
            if !f.num_val {
                f.num_val = true;
                f.digits.clear();
                f.num_skip = if f.pct { 2 } else { 0 };
                f.num_start = at;
                f.num_end = at;
                f.raw = 0;
                f.hex.clear();
            }
            f.pct = false;
            f.tok += 1;
            if f.num_skip > 0 {
                f.num_skip -= 1;
                f.num_start = at.wrapping_add(1);
                f.num_end = f.num_start;
                return true;
            }
            if f.digits.len() as u32 <= MSISDN_MAX_DIGITS {
                f.digits.push(b);
                f.num_end = at.wrapping_add(1);
            }
            self.hex_digit(i, lo);
            return true;
        }
        if self.f.num_val {
            self.decide(i, lo);
            self.decide_hex(i, lo);
            self.f.num_val = false;
        }
        self.f.pct = b == b'%';
        false
    }

    /// Payload byte `t` of a place where runs are read, as a base64 trigger (`b64`'s
    /// rule): the stretch around it, when read whole, is decided, and no trigger is
    /// looked at again before its span's last character. A stretch cut by the window's
    /// end (`Stretch::Cut`), too long, or not around `t` does nothing.
    fn b64_trigger(&mut self, t: usize) {
        let on = self.pol.msisdn.as_ref().is_some_and(|m| m.base64);
        // The kernel's word lanes start at the window's first byte: a trigger needs its
        // leads 8 bytes back inside the window.
        if !on || self.stopped || t < self.b64_resume || t < self.win_start + 8 {
            return;
        }
        let (lo, hi) = (self.scan_lo, self.win_end);
        let Stretch::Taken { digits, first, end } =
            b64_stretch(&self.out.payload, t, lo, hi, self.f.b64_last)
        else {
            return;
        };
        self.b64_resume = end - 1;
        let seq = (self.at(first), self.at(end));
        self.decide_digits(true, &digits, seq, (lo, hi), form::BASE64);
    }

    /// One byte of a value checked for an identity number.
    fn num_byte(&mut self, i: usize, lo: usize) {
        let b = self.out.payload[i];
        if b == b'\n' {
            // Decided in the value (its place), then the line ends.
            self.decide(i, lo);
            self.f.st = S::LineStart;
            return;
        }
        let ws = CLASS[usize::from(b)] & C_WS != 0;
        if !self.f.num_val {
            if b == b'+' || b.is_ascii_digit() {
                self.f.num_val = true;
                self.f.num_start = self.at(i);
                self.f.num_end = self.at(i);
                if b == b'+' {
                    self.f.num_end = self.at(i + 1);
                    return;
                }
            } else {
                if !ws {
                    self.f.st = S::Skip;
                }
                return;
            }
        }
        if b.is_ascii_digit() && !self.f.num_tail {
            self.f.digits.push(b);
            self.f.num_end = self.at(i + 1);
            if self.f.digits.len() as u32 > MSISDN_MAX_DIGITS {
                self.f.st = S::Skip;
            }
        } else if ws || b == b'\r' {
            self.f.num_tail = true;
        } else {
            self.f.st = S::Skip;
        }
    }

    /// At the end of a window: a number that may still be an identity number under
    /// `redact` is overwritten as far as it goes. Not a base64 stretch: one cut by the
    /// window's end does nothing, and the next window reads what follows alone (`b64`'s
    /// rule: a number so cut may pass).
    fn number_pending(&mut self, lo: usize, hi: usize) {
        let Some(m) = &self.pol.msisdn else {
            return;
        };
        let place =
            self.f.st == S::Num || self.f.st == S::Runs || (self.f.st == S::Target && m.target);
        if self.stopped || !place || !self.f.num_val || m.action != action::REDACT {
            return;
        }
        if m.allowed {
            return;
        }
        let n = self.f.digits.len() as u32;
        if n <= MSISDN_MAX_DIGITS && (n == 0 || possible(&m.prefixes, &self.f.digits)) {
            let (from, to) = (self.f.num_start, self.f.num_end);
            self.redact_range(from, to, lo, hi);
            return;
        }
        // The hex stretch so far, in a run.
        let n = self.f.hex.len() as u32;
        if self.f.st == S::Num
            || !m.hex
            || n == 0
            || n > MSISDN_MAX_DIGITS
            || !possible(&m.prefixes, &self.f.hex)
        {
            return;
        }
        let (from, to) = (self.f.hex_start, self.f.hex_end);
        self.redact_range(from, to, lo, hi);
    }

    /// At a window's end (`b64_tail`, the kernel's `leakguard_b64_cut`): under `redact`,
    /// in a place read for runs, a base64 stretch open at the cut in any phase whose 1-15
    /// digits may begin a number is starred from its first character to the cut, and
    /// the next window stars what continues it.
    fn b64_cut(&mut self, hi: usize) {
        let Some(m) = &self.pol.msisdn else {
            return;
        };
        let place = self.f.st == S::Runs || (self.f.st == S::Target && m.target);
        if self.stopped || !place || !m.base64 {
            return;
        }
        let lo = self.scan_lo;
        self.f.b64_last = None;
        if hi <= lo {
            return;
        }
        let last = b64::VALUE[usize::from(self.out.payload[hi - 1])];
        if last == b64::NONE {
            return;
        }
        self.f.b64_last = Some(last);
        if m.action != action::REDACT || m.allowed {
            return;
        }
        let mut from = hi;
        for k in 0..4 {
            if let Some((digits, first)) = b64_tail(&self.out.payload, k, lo, hi) {
                if digits.len() <= MSISDN_MAX_DIGITS as usize && possible(&m.prefixes, &digits) {
                    from = from.min(first);
                }
            }
        }
        if from < hi {
            let (a, b) = (self.at(from), self.at(hi));
            self.redact_range(a, b, lo, hi);
            self.f.b64_cut = true;
        }
    }

    /// The first characters of a window after a cut that left `b64_cut`: up to 20 of
    /// the alphabet from `from` (payload offset) are starred.
    fn b64_carry(&mut self, from: usize, hi: usize) {
        self.f.b64_cut = false;
        let end = (from..hi.min(from + 20))
            .find(|&i| b64::VALUE[usize::from(self.out.payload[i])] == b64::NONE)
            .unwrap_or(hi.min(from + 20));
        let (a, b) = (self.at(from), self.at(end));
        self.redact_range(a, b, from, hi);
    }

    /// The kernel's line-start prefilter (`NameFilter::starts`) for a line starting at
    /// payload byte `i`: both bytes scanned in this window, tokens, and no rule name
    /// begins with them folded; never with the number check on.
    fn no_rule_starts(&self, i: usize) -> bool {
        if self.pol.msisdn.is_some() || i + 1 >= self.win_end {
            return false;
        }
        let b = self.out.payload[i + 1];
        if CLASS[usize::from(b)] & C_TCHAR == 0 {
            return false;
        }
        // The kernel's table keeps 6 bits of each byte: a pair that collides with a rule's
        // is read like one (`-` and `m` share theirs, say), so the model compares the same
        // bits.
        let want = start_bit(fold(self.out.payload[i]), fold(b));
        !self
            .pol
            .rules
            .iter()
            .any(|r| r.key.name[1] != 0 && start_bit(r.key.name[0], r.key.name[1]) == want)
    }

    /// One byte of the state machine (`lo`: payload offset of the byte's window).
    fn byte(&mut self, i: usize, lo: usize) {
        let b = self.out.payload[i];
        let class = CLASS[usize::from(b)];
        let skip_line = self.f.st == S::LineStart && class & C_TCHAR != 0 && self.no_rule_starts(i);
        let at = self.at(i);
        if self.f.st == S::Target && self.target_check() && self.target_byte(i, lo) {
            return;
        }
        if self.f.st == S::Runs {
            // A `Cookie` or other header value: runs of digits as in the target, to the LF.
            self.target_byte(i, lo);
            if !self.stopped && b == b'\n' {
                self.f.st = S::LineStart;
            }
            return;
        }
        if self.stopped {
            return;
        }
        let f = &mut self.f;
        match f.st {
            S::Method => {
                if f.tok == 0 {
                    // A request line starts here: its head's first byte.
                    f.head_seq = at;
                }
                if class & C_TCHAR != 0 && f.tok < MAX_METHOD_LEN {
                    f.tok += 1;
                } else if b == b' ' && f.tok > 0 {
                    f.st = S::Target;
                    f.tok = 0;
                    f.num_val = false;
                    f.pct = false;
                } else if (b == b'\r' || b == b'\n') && f.tok == 0 {
                    // Empty lines before a request line are skipped, as servers do.
                } else {
                    self.stopped = true;
                }
            }
            // Leniency as servers': more SPs between the parts, any major version,
            // anything after the version's digits up to the LF.
            S::Target => {
                if b == b' ' {
                    if f.tok > 0 {
                        f.st = S::Version;
                        f.tok = 0;
                    }
                } else if class & C_CTL == 0 {
                    f.tok += 1;
                } else {
                    self.stopped = true;
                }
            }
            S::Version => {
                const PREFIX: &[u8] = b"HTTP/1.";
                if f.tok == 0 && b == b' ' {
                } else if (f.tok as usize) < PREFIX.len() {
                    if b == PREFIX[f.tok as usize] || (f.tok == 5 && b.is_ascii_digit()) {
                        f.tok += 1;
                    } else {
                        self.stopped = true;
                    }
                } else if f.tok as usize == PREFIX.len() {
                    if b.is_ascii_digit() {
                        f.tok += 1;
                    } else {
                        self.stopped = true;
                    }
                } else if b == b'\n' {
                    self.out.heads += 1;
                    f.st = S::LineStart;
                    f.redacting = false;
                }
            }
            S::LineStart => {
                if skip_line {
                    // No rule's name begins with the line's first two bytes (and the
                    // number check is off): skipped unread, as the kernel does.
                    self.out.lines += 1;
                    f.redacting = false;
                    f.st = S::Skip;
                } else if class & C_TCHAR != 0 {
                    self.out.lines += 1;
                    f.name.clear();
                    f.name.push(fold(b));
                    f.name_len = 1;
                    f.redacting = false;
                    f.st = S::Name;
                } else if b == b'\r' {
                    f.redacting = false;
                    f.st = S::BlankCr;
                } else if b == b'\n' {
                    f.redacting = false;
                    f.st = S::Method;
                    f.tok = 0;
                } else {
                    self.out.lines += 1;
                    self.out.malformed += 1;
                    // An obs-fold line continues a redacted value: redact it too.
                    f.st = if class & C_WS != 0 && f.redacting {
                        S::Ows
                    } else {
                        S::Skip
                    };
                }
            }
            S::Name => {
                if class & C_TCHAR != 0 {
                    if f.name_len < MAX_NAME_LEN {
                        f.name.push(fold(b));
                    }
                    f.name_len += 1;
                } else if b == b':' {
                    self.on_header();
                } else {
                    self.out.malformed += 1;
                    f.st = if b == b'\n' { S::LineStart } else { S::Skip };
                }
            }
            S::Skip => {
                if b == b'\n' {
                    f.st = S::LineStart;
                }
            }
            S::Ows | S::Value => {
                if b == b'\n' {
                    f.st = S::LineStart;
                } else if f.st == S::Ows && class & C_WS != 0 {
                    // Leading whitespace is not part of the value.
                } else {
                    f.st = S::Value;
                    if b != b'\r' {
                        self.redact(i);
                    }
                }
            }
            S::BlankCr => {
                if b == b'\n' {
                    f.st = S::Method;
                    f.tok = 0;
                } else {
                    self.out.malformed += 1;
                    f.st = S::Skip;
                }
            }
            S::Num => self.num_byte(i, lo),
            S::Runs => unreachable!("such a byte is taken above"),
        }
    }
}

/// One TCP segment of a flow (`flow`: the flow's saved state, `None` when the kernel has
/// no entry for it), as the programs handle it. Updates `flow` like the kernel updates
/// its entry.
#[must_use]
pub fn segment(
    flow: &mut Option<ModelFlow>,
    seq: u32,
    payload: &[u8],
    pol: &ModelPolicy,
) -> ModelOutput {
    let mut out = ModelOutput {
        payload: payload.to_vec(),
        ..ModelOutput::default()
    };
    let len = payload.len();
    if len == 0 {
        return out;
    }
    let had_entry = flow.is_some();
    // Scan from `start`; repeat remembered redactions before `refill_end`.
    let mut start = 0usize;
    let mut refill_end = 0usize;
    // A resent segment outside a head: scanned afresh, the flow left as it was.
    let mut rescan = false;
    let f = match flow.clone() {
        None => {
            // Without saved state a segment must start a request line.
            let b = payload[0];
            if CLASS[usize::from(b)] & C_TCHAR == 0 && b != b'\r' && b != b'\n' {
                out.kind = Kind::Body;
                return out;
            }
            ModelFlow::fresh(seq)
        }
        Some(mut f) => {
            let open = f.open();
            let delta = f.next_seq.wrapping_sub(seq) as i32;
            if delta < 0 {
                if open {
                    out.kind = Kind::Unordered;
                    out.drop = true;
                    return out;
                }
                f.next_seq = seq;
            } else if delta > 0 {
                out.kind = Kind::Retransmission;
                out.retransmission = true;
                if f.spans.forgot != 0
                    && seq_lt(seq, f.spans.forgot_end)
                    && (open || seq != f.head_seq)
                {
                    out.kind = Kind::Unordered;
                    out.drop = true;
                    return out;
                }
                refill_end = (delta as usize).min(len);
                if open {
                    start = refill_end;
                } else {
                    rescan = true;
                    f.st = S::Method;
                    f.tok = 0;
                }
            }
            if open && start < len {
                out.continuation = true;
                if delta == 0 {
                    out.kind = Kind::Continuation;
                }
            }
            f
        }
    };
    // A head is scanned to its end, up to `max_head_bytes` in all (a continued head has
    // used some), and no segment past MAX_SCAN_BYTES.
    let cap = pol.max_head_bytes.min(MAX_SCAN_BYTES) as usize;
    let room = if f.open() {
        let used = seq.wrapping_add(start as u32).wrapping_sub(f.head_seq) as usize;
        cap.saturating_sub(used)
    } else {
        cap
    };
    let limit = len.min(start + room).min(MAX_SCAN_BYTES as usize);
    let end = limit.max(refill_end);
    let mut sc = Scan {
        pol,
        out,
        f,
        seq,
        stopped: false,
        win_end: 0,
        win_start: 0,
        scan_lo: 0,
        b64_resume: 0,
    };

    // Window by window, as the kernel copies them.
    let clamp = |at: usize, off: usize, n: usize| at.saturating_sub(off).min(n);
    let mut off = 0;
    while off < end {
        let n = (end - off).min(SCAN_WINDOW);
        // Bytes sent before: repeat the remembered redactions.
        for i in off..off + clamp(refill_end, off, n) {
            if sc.f.remembered(sc.at(i)) {
                sc.out.payload[i] = REDACT_FILLER;
                sc.out.redacted = true;
            }
        }
        let (from, scan_end) = (clamp(start, off, n), clamp(limit, off, n));
        sc.win_end = off + scan_end;
        sc.scan_lo = off + from;
        sc.win_start = off;
        sc.b64_resume = 0;
        if from < scan_end {
            if sc.f.b64_cut {
                sc.b64_carry(off + from, off + scan_end);
            }
            for i in off + from..off + scan_end {
                sc.byte(i, off);
                if sc.stopped {
                    break;
                }
            }
            if sc.out.drop {
                break;
            }
            sc.number_pending(off, off + scan_end);
            sc.b64_cut(off + scan_end);
        }
        if sc.stopped {
            break;
        }
        off += n;
    }

    let Scan {
        mut out,
        mut f,
        stopped,
        ..
    } = sc;
    let open = !stopped && f.open();
    out.truncated = (open && limit < len) || (end > MAX_SCAN_BYTES as usize && f.spans.nspans != 0);
    if out.truncated && pol.drop_incomplete && !out.drop {
        // Fail closed: nothing of a head not seen whole leaves; the flow stays as it was.
        out.drop = true;
        out.incomplete_drop = true;
    }
    if matches!(out.kind, Kind::Head) && !out.continuation && out.heads == 0 && !open {
        out.kind = Kind::Body;
    }
    if out.drop {
        // A dropped packet leaves nothing, and the flow stays as it was.
        out.payload = payload.to_vec();
        out.redacted = false;
        return out;
    }
    if (!had_entry && !open && f.spans.nspans == 0) || rescan {
        return out;
    }
    if !open {
        f.st = S::Method;
        f.tok = 0;
        f.redacting = false;
        f.num_val = false;
        f.num_tail = false;
        f.name_len = 0;
        f.digits.clear();
        f.num_skip = 0;
        f.pct = false;
    }
    let end = seq.wrapping_add(len as u32);
    if seq_lt(f.next_seq, end) {
        f.next_seq = end;
    }
    let keep = !out.truncated && (open || f.spans.nspans != 0);
    *flow = if keep { Some(f) } else { None };
    out
}

/// Scans one segment of a flow without saved state (a request in one segment).
#[must_use]
pub fn scan(payload: &[u8], max_head_bytes: u32, rules: &[ModelRule]) -> ModelOutput {
    let pol = ModelPolicy {
        max_head_bytes,
        drop_incomplete: true,
        rules: rules.to_vec(),
        msisdn: None,
    };
    segment(&mut None, 1_000_000, payload, &pol)
}

const _: () = assert!(MAX_SPANS >= 1);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{format, vec::Vec};

    use super::{b64, b64_stretch, Stretch};
    use crate::{flow::bcd_digit, MSISDN_MAX_DIGITS};

    /// The model's reading of a trigger against the kernel's (`b64::decide`), on text
    /// made to hold base64 digits often: both must say the same about every byte.
    #[test]
    fn the_models_base64_reading_agrees_with_b64_decide() {
        // Characters that start, continue and end base64 groups of digits, and others.
        const POOL: &[u8] = b"MNOLDTjzAEIMQUYcgkwxyz012345NDQ3OTAwMTIz=%&;/+_-. \r\n";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let numbers = [
            "NDQ3NzAwOTAwMTIz",
            "dWlkNDQ3NzAwOTAwMTIz",
            "KzQ0NzcwMDkwMDEyMw==",
            "NDQ3NzAwOTAwMTIzNDU2Nw==",
            "NDQ3NzAwOTAwMTIzJjQ0NzcwMDkwMDEyMw==",
        ];
        let (mut taken, mut cut) = (0, 0);
        for _ in 0..20_000 {
            let mut text: Vec<u8> = (0..next(40)).map(|_| POOL[next(POOL.len())]).collect();
            let at = next(text.len() + 1);
            let n = numbers[next(numbers.len())].as_bytes();
            let n = &n[next(4)..n.len() - next(4)];
            text.splice(at..at, n.iter().copied());
            let len = text.len();
            let lo = next(len.min(12) + 1);
            let hi = len - next((len - lo).min(12) + 1);
            for t in lo..hi {
                let mut c = [b64::NONE; 64];
                for (k, v) in c.iter_mut().enumerate().take(b64::STAGED as usize) {
                    let i = t as isize + k as isize - b64::BACK as isize;
                    *v = if i < lo as isize {
                        b64::NONE
                    } else if i as usize >= hi {
                        // The kernel stages what its window holds there; `known` says
                        // where that stops being the payload.
                        b64::NONE
                    } else {
                        b64::VALUE[usize::from(text[i as usize])]
                    };
                }
                let known = (hi + b64::BACK as usize - t) as u32;
                let k = b64::decide(&mut c, known, |x| x);
                let m = b64_stretch(&text, t, lo, hi, None);
                let ctx = format!("{:?} at {t}, [{lo}, {hi})", std::str::from_utf8(&text));
                match m {
                    Stretch::None => assert_eq!(k.outcome, b64::outcome::NONE, "{ctx}"),
                    Stretch::Cut => assert_eq!(k.outcome, b64::outcome::CUT, "{ctx}"),
                    Stretch::Long => assert_eq!(k.outcome, b64::outcome::LONG, "{ctx}"),
                    Stretch::Taken { digits, first, end } => {
                        assert_eq!(k.outcome, b64::outcome::TAKEN, "{ctx}");
                        assert_eq!(k.digits as usize, digits.len(), "{ctx}");
                        assert!(digits.len() <= MSISDN_MAX_DIGITS as usize);
                        let bcd = digits
                            .iter()
                            .enumerate()
                            .fold(0, |a, (i, d)| a | bcd_digit(d - b'0', i as u32));
                        assert_eq!(k.bcd, bcd, "{ctx}");
                        // Staged indexes from `t - BACK`, payload offsets.
                        let at = |s: u32| t as isize + s as isize - b64::BACK as isize;
                        assert_eq!((at(k.first), at(k.end)), (first as isize, end as isize));
                        taken += 1;
                    }
                }
                cut += usize::from(k.outcome == b64::outcome::CUT);
            }
        }
        // The text exercised both.
        assert!(taken > 1000 && cut > 100, "{taken} taken, {cut} cut");
    }
}
