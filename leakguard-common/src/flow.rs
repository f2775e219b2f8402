//! Per-flow scanner state, kept between the segments of one TCP flow in the `FLOWS` LRU
//! hash, so a request head that spans segments is scanned as one.
//!
//! A flow has an entry only while it needs one: its head is open at the end of a segment
//! (the next segment continues it), or it carries redactions that a retransmission must
//! repeat. Heads that fit in one segment never create an entry, so a full table (LRU
//! eviction) never changes how they are handled.

use crate::{NameKey, MAX_NAME_LEN, MAX_SPANS};

/// Key of `FLOWS`: one direction of a TCP connection, as seen by one hook of one
/// interface (the same connection guarded at two hooks is two independent scans).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IPv4 addresses use the first 4 bytes; network byte order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    pub ifindex: u32,
    pub hook: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);

/// The `FLOW_HINTS` counter of a flow: the key's eleven words (read as little-endian
/// `u32`s: the key is 4-byte aligned, and the verifier wants aligned stack reads) folded
/// by xor into one `u64`, even words low, odd words high, then mixed (two multiplies).
/// Cheap on purpose: it runs for every HTTP-port segment. Only speed depends on its
/// spread: keys that share a counter cost each other a `FLOWS` lookup, never a missed
/// entry. The kernel stores its keys a whole word at a time for these loads
/// (`flow::key` in the kernel crate).
///
/// Part of the pinned maps' layout: a new hash with old pinned counters would miss
/// entries, so changing it means bumping `MAP_LAYOUT_VERSION`.
#[inline(always)]
#[must_use]
pub fn hint_slot(key: &FlowKey) -> u32 {
    const WORDS: usize = core::mem::size_of::<FlowKey>() / 4;
    let words = core::ptr::from_ref(key).cast::<u32>();
    let (mut lo, mut hi) = (0u32, 0u32);
    let mut i = 0;
    while i < WORDS {
        // SAFETY: `FlowKey` is 44 bytes of plain integers, 4-byte aligned.
        let w = u32::from_le(unsafe { words.add(i).read() });
        if i % 2 == 0 {
            lo ^= w;
        } else {
            hi ^= w;
        }
        i += 1;
    }
    hint_mix(lo, hi)
}

/// The slot of the folded key: MurmurHash3's 64-bit finalizer (one multiply alone
/// leaves fields that differ in a few middle bits, a subscriber's address, on half the
/// slots).
#[inline(always)]
fn hint_mix(lo: u32, hi: u32) -> u32 {
    let mut h = u64::from(hi) << 32 | u64::from(lo);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32 & (crate::FLOW_HINT_SLOTS - 1)
}

/// The scanner's parser states and line flags, as `FlowState::state` and `flags` keep them
/// in the pinned flow table (so `MAP_LAYOUT_VERSION` covers them: a daemon never adopts
/// pins whose entries mean other states). 0 is the state of a fresh scan.
pub mod parser {
    /// Expecting, or reading, a request line's method (`tok` bytes of it so far).
    pub const S_METHOD: u32 = 0;
    pub const S_TARGET: u32 = 1;
    pub const S_VERSION: u32 = 2;
    /// The first byte of a header line (or the blank line that ends the head).
    pub const S_LINE_START: u32 = 3;
    pub const S_NAME: u32 = 4;
    /// The rest of a line that needs no look.
    pub const S_SKIP: u32 = 5;
    /// A value being redacted.
    pub const S_VALUE: u32 = 6;
    /// A CR at a line's start: the blank line's LF should follow.
    pub const S_BLANK_CR: u32 = 7;
    /// Optional whitespace before a redacted value.
    pub const S_OWS: u32 = 8;
    /// A value checked for an identity number (`[msisdn]`): header names without a rule.
    pub const S_NUM: u32 = 9;

    // `FlowState::flags`.
    /// The value being read belongs to a `redact` rule (also covers obs-fold continuations).
    pub const F_REDACT: u32 = 1;
    /// S_NUM: the value has started (a `+` or a digit was read). S_TARGET: a run of
    /// digits is open (`num_*` hold it; `num_skip` digits of a `%` escape still to come).
    pub const F_NUM_VAL: u32 = 2;
    /// S_NUM: the digits have ended; only whitespace and CR may come before the LF.
    pub const F_NUM_TAIL: u32 = 4;
    /// S_SKIP: the line is a `Cookie` header's value, read for runs of digits (`[msisdn]`,
    /// `place::COOKIE`); `F_NUM_VAL` and `num_*` hold an open run as in the target. An
    /// older program ignores it and skips the line.
    pub const F_COOKIE: u32 = 8;
    /// S_SKIP: the line is a header value read for runs of digits, a number inside a longer
    /// token counting too (`tel:+447700900123`; `[msisdn] inside_values`); events carry
    /// the header's name. An older program ignores it and skips the line.
    pub const F_VALUE_RUNS: u32 = 16;
    /// S_SKIP: the line is read for runs of digits (`F_COOKIE` or `F_VALUE_RUNS`).
    pub const F_RUNS: u32 = F_COOKIE | F_VALUE_RUNS;
    /// S_TARGET or a line read for runs: the last window ended inside a base64 stretch
    /// that may be an identity number (`b64::tail`); under `redact` its characters there
    /// were overwritten, and the next window overwrites those that continue it. An older
    /// program ignores it (and reads the rest alone).
    pub const F_B64_CUT: u32 = 32;
    /// S_TARGET or a line read for runs: the last window ended on a base64 character,
    /// whose value (6 bits) is kept from bit `B64_LAST_SHIFT`. The next window's base64
    /// reading (`b64::decide`) sees it before its first byte, so a number whose first
    /// digit's two characters a cut separates is read whole. An older program ignores it.
    pub const F_B64_LAST: u32 = 64;
    pub const B64_LAST_SHIFT: u32 = 8;

    const _: () = assert!(S_METHOD == 0, "an all-zero FlowState is a fresh scan");
}

/// Sequence numbers of a run of redacted bytes: `[start, end)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

/// Value of `FLOWS`, and the resumable part of the scanner state.
///
/// All zero is the state of a fresh scan (expecting a request line).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowState {
    /// Sequence number of the first payload byte after the last scanned segment.
    pub next_seq: u32,
    /// Parser state (the kernel's `S_*`; 0 = expecting a request line).
    pub state: u32,
    /// Length of the current request-line token, or position in the version.
    pub tok: u32,
    /// Bytes of the current header name (counts on past `MAX_NAME_LEN`).
    pub name_len: u32,
    /// `F_*` bits of the current header line.
    pub flags: u32,
    /// Value digits read so far by the identity-number check (`[msisdn]`).
    pub num_len: u32,
    /// Sequence numbers of the value's first byte (`+` or digit) and of the byte after
    /// its last digit: what a `redact` overwrites.
    pub num_start: u32,
    pub num_end: u32,
    /// Those digits, one per nibble, first digit in the highest nibble used.
    pub num_bcd: u64,
    /// The last redacted runs, a ring (`span_last` is the newest).
    pub spans: [Span; MAX_SPANS],
    pub span_last: u32,
    pub nspans: u32,
    /// 1 once a span was pushed out of the ring: redactions before `forgot_end` are no
    /// longer known, and a retransmission of such bytes is dropped (fail closed).
    pub forgot: u32,
    pub forgot_end: u32,
    /// Sequence number of the open head's first byte (its request line's): how many
    /// bytes the head has, against `scan.max_head_bytes`.
    pub head_seq: u32,
    /// S_TARGET: digits of an open run still to be read as a percent escape's (`%20447…`
    /// holds the number 447…), not as the number's.
    pub num_skip: u32,
    /// The folded name of the current header line, zero padded (a partial name when a
    /// segment ends inside it).
    pub name: NameKey,
}
const _: () = assert!(core::mem::size_of::<FlowState>() == 40 + 8 * MAX_SPANS + 24 + MAX_NAME_LEN);
// The handover's contract (leakguard/src/kernel/handover.rs): every map layout from 2 on
// keeps `FlowKey` whole and these three words first, with these meanings, so a daemon
// can carry a flow table of another layout over. Change them and no handover can.
const _: () = assert!(
    core::mem::offset_of!(FlowState, next_seq) == 0
        && core::mem::offset_of!(FlowState, state) == 4
        && core::mem::offset_of!(FlowState, tok) == 8
);

impl FlowState {
    pub const FRESH: Self = Self {
        next_seq: 0,
        state: 0,
        tok: 0,
        name_len: 0,
        flags: 0,
        num_len: 0,
        num_start: 0,
        num_end: 0,
        num_bcd: 0,
        spans: [Span { start: 0, end: 0 }; MAX_SPANS],
        span_last: 0,
        nspans: 0,
        forgot: 0,
        forgot_end: 0,
        head_seq: 0,
        num_skip: 0,
        name: NameKey {
            name: [0; MAX_NAME_LEN],
        },
    };

    /// Records that the bytes at sequence numbers `[start, start + len)` were redacted:
    /// extends the newest span when the run continues it, else starts a new one (pushing
    /// the oldest out when the ring is full).
    #[inline(always)]
    pub fn note_span(&mut self, start: u32, len: u32) {
        let last = self.span_last as usize % MAX_SPANS;
        if self.nspans != 0 && self.spans[last].end == start {
            self.spans[last].end = start.wrapping_add(len);
            return;
        }
        // Slots fill from 0; once full, the slot after the newest holds the oldest.
        let next = if (self.nspans as usize) < MAX_SPANS {
            self.nspans as usize % MAX_SPANS
        } else {
            (self.span_last as usize + 1) % MAX_SPANS
        };
        if self.nspans as usize == MAX_SPANS {
            self.forgot = 1;
            self.forgot_end = self.spans[next].end;
        } else {
            self.nspans += 1;
        }
        self.spans[next] = Span {
            start,
            end: start.wrapping_add(len),
        };
        self.span_last = next as u32;
    }
}

/// `a < b` in sequence space (RFC 1982 style, within 2^31).
#[must_use]
#[inline(always)]
pub const fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Value of an entry of the `MSISDN_PREFIX` tries. The tries hold every configured
/// prefix and every shorter start of one, so the longest match of a number's digits says
/// both whether a configured prefix starts it and whether its digits so far could
/// still become such a number.
#[must_use]
#[inline(always)]
pub const fn prefix_entry(len: u32, covered: bool) -> u8 {
    ((len as u8) << 1) | covered as u8
}

/// True when the longest match `entry` of `digits` digits says a configured prefix
/// starts them.
#[must_use]
#[inline(always)]
pub const fn prefix_covered(entry: u8) -> bool {
    entry & 1 != 0
}

/// True when the digits read so far (`digits`, longest match `entry`) may still be the
/// start of an identity number: a configured prefix starts them, or they are the start
/// of a configured prefix.
#[must_use]
#[inline(always)]
pub const fn prefix_possible(entry: u8, digits: u32) -> bool {
    prefix_covered(entry) || (entry >> 1) as u32 == digits
}

/// `digit` placed as the `index`-th (0-based) digit of a [`crate::DigitKey`] read as a
/// big-endian u64.
#[must_use]
#[inline(always)]
pub const fn bcd_digit(digit: u8, index: u32) -> u64 {
    ((digit & 15) as u64) << ((60u32.wrapping_sub(index.wrapping_mul(4))) & 63)
}

/// Digits of a run that `num_bcd` holds one per nibble: one more is too many for a decimal
/// number, and from there on `num_*` hold the run's hex stretch instead (`form::HEX`).
pub const RAW_DIGITS: u32 = 16;

/// The hex stretch that ends the first `len` digits of a run (`bcd`, at most
/// [`RAW_DIGITS`] of them): the last pairs of digits `(2p, 2p + 1)` whose first digit is 3
/// (`343437…` is hex of `447…`). Returns the stretch's digits (the pairs' second digits,
/// placed as [`bcd_digit`]s), its first pair and how many pairs it has. A pair still open
/// (an odd `len`) is not in it; if its first digit is not a 3 it ended the stretch, and
/// the stretch is empty (starting after that pair).
///
/// Branch-light and loop-free: it runs in the kernel's number functions, whose frames
/// must stay small on Linux 6.1. Digits `2p, 2p + 1` are byte `p` of `bcd` counted from
/// the top, so a pair starts with 3 when its byte's high nibble is 3.
#[must_use]
#[inline(always)]
pub const fn hex_tail(bcd: u64, len: u32) -> (u64, u32, u32) {
    let len = if len > RAW_DIGITS { RAW_DIGITS } else { len };
    let pairs = len / 2;
    if len & 1 == 1 && (bcd >> ((64 - 4 * len) & 63)) & 15 != 3 {
        return (0, pairs + 1, 0);
    }
    if pairs == 0 {
        return (0, 0, 0);
    }
    // The last pair in the lowest byte; zero bytes (not pairs of 3) come in above.
    let v = bcd >> ((8 * (8 - pairs)) & 63);
    let t = (v & 0xf0f0_f0f0_f0f0_f0f0) ^ 0x3030_3030_3030_3030;
    // 0x80 in each byte whose pair does not start with 3.
    let bad = ((t >> 4) + 0x7f7f_7f7f_7f7f_7f7f) & 0x8080_8080_8080_8080;
    let count = if bad == 0 {
        pairs
    } else {
        crate::swar::first(bad)
    };
    let first = pairs - count;
    // The pairs' second digits, packed: pair 0's in the top nibble of 32 bits.
    let mut d = bcd & 0x0f0f_0f0f_0f0f_0f0f;
    d = (d | (d >> 4)) & 0x00ff_00ff_00ff_00ff;
    d = (d | (d >> 8)) & 0x0000_ffff_0000_ffff;
    d = (d | (d >> 16)) & 0x0000_0000_ffff_ffff;
    let out = (d << 32) << ((4 * first) & 31);
    let keep = !(u64::MAX >> ((4 * count) & 63));
    (out & keep, first, count)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::HashSet, vec::Vec};

    use super::*;

    fn bcd_of(digits: &[u8]) -> u64 {
        digits
            .iter()
            .enumerate()
            .fold(0, |b, (i, d)| b | bcd_digit(d - b'0', i as u32))
    }

    /// The stretch found by reading pairs one by one, as the kernel reads past 16 digits.
    fn tail_by_pairs(digits: &[u8]) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        let mut first = 0;
        for (p, pair) in digits.chunks(2).enumerate() {
            if pair[0] != b'3' {
                out.clear();
                first = p as u32 + 1;
            } else if pair.len() == 2 {
                out.push(pair[1]);
            }
        }
        (out, first)
    }

    #[test]
    fn hex_tail_is_the_last_pairs_starting_with_three() {
        // Every run of up to 16 digits over {3, 4, 7} and a few others, by a seeded walk.
        let alphabet = b"3347";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 17) as usize;
            let digits: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (4 + 2 * i)) & 3) as usize])
                .collect();
            let (bcd, first, pairs) = hex_tail(bcd_of(&digits), len as u32);
            let (want, want_first) = tail_by_pairs(&digits);
            assert_eq!(
                (first, pairs as usize),
                (want_first, want.len()),
                "{digits:?}"
            );
            assert_eq!(bcd, bcd_of(&want), "{digits:?}");
        }
        assert_eq!(
            hex_tail(bcd_of(b"3434373730303930"), 16),
            (bcd_of(b"44770090"), 0, 8)
        );
        assert_eq!(hex_tail(bcd_of(b"7569643434"), 10).1, 3);
    }

    /// Flows of a gateway differ in a few bits (source port, the subscriber's address):
    /// the hint counters spread them about as well as random slots would (10,000 keys in
    /// 65,536 slots: 9,270 distinct expected).
    #[test]
    fn hint_slots_spread_flows_that_differ_in_port_or_address() {
        let base = FlowKey {
            saddr: [10, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [203, 0, 113, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sport: 0,
            dport: 80,
            ifindex: 3,
            hook: 0,
            family: 4,
            _pad: [0; 2],
        };
        let by_port = (0..10_000u16).map(|p| FlowKey {
            sport: 20_000 + p,
            ..base
        });
        let by_addr = (0..10_000u16).map(|a| {
            let mut k = FlowKey {
                sport: 40_000,
                ..base
            };
            k.saddr[2..4].copy_from_slice(&a.to_be_bytes());
            k
        });
        for (what, keys) in [
            ("port", by_port.collect::<Vec<_>>()),
            ("address", by_addr.collect()),
        ] {
            let slots: HashSet<u32> = keys.iter().map(hint_slot).collect();
            assert!(slots.iter().all(|&s| s < crate::FLOW_HINT_SLOTS));
            assert!(slots.len() > 9_000, "by {what}: {} distinct", slots.len());
        }
    }

    /// `hint_slot` as its comment defines it, the key's words composed from the fields: the kernel's keys and
    /// pinned counters of earlier builds depend on the value staying this.
    fn hint_slot_of_fields(key: &FlowKey) -> u32 {
        let word =
            |a: &[u8; 16], i: usize| u32::from_le_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        let (s, d) = (&key.saddr, &key.daddr);
        let ports = u32::from(key.sport) | u32::from(key.dport) << 16;
        let tail = u32::from_le_bytes([key.hook, key.family, key._pad[0], key._pad[1]]);
        let lo = word(s, 0) ^ word(s, 8) ^ word(d, 0) ^ word(d, 8) ^ ports ^ tail;
        let hi = word(s, 4) ^ word(s, 12) ^ word(d, 4) ^ word(d, 12) ^ key.ifindex;
        hint_mix(lo, hi)
    }

    #[test]
    fn hint_slot_hashes_every_field_as_documented() {
        // Random keys: every byte of every field counts, in its documented place.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..100_000 {
            let r = [next(), next(), next(), next(), next(), next()];
            let b = |i: usize| r[i / 8].to_le_bytes()[i % 8];
            let key = FlowKey {
                saddr: core::array::from_fn(b),
                daddr: core::array::from_fn(|i| b(16 + i)),
                sport: r[4] as u16,
                dport: (r[4] >> 16) as u16,
                ifindex: (r[4] >> 32) as u32,
                hook: r[5] as u8,
                family: (r[5] >> 8) as u8,
                _pad: [(r[5] >> 16) as u8, (r[5] >> 24) as u8],
            };
            assert_eq!(hint_slot(&key), hint_slot_of_fields(&key), "{key:?}");
        }
    }

    #[test]
    fn spans_merge_runs_and_forget_the_oldest() {
        let mut f = FlowState::FRESH;
        f.note_span(100, 3);
        f.note_span(103, 2); // continues the run
        assert_eq!(
            (f.nspans, f.spans[0]),
            (
                1,
                Span {
                    start: 100,
                    end: 105
                }
            )
        );
        for k in 1..MAX_SPANS as u32 {
            f.note_span(200 * k, 1);
        }
        assert_eq!((f.nspans, f.forgot), (MAX_SPANS as u32, 0));
        // One more pushes [100, 105) out.
        f.note_span(5000, 4);
        assert_eq!((f.forgot, f.forgot_end), (1, 105));
        let live = f.spans;
        assert!(live.contains(&Span {
            start: 5000,
            end: 5004
        }));
        assert!(!live.contains(&Span {
            start: 100,
            end: 105
        }));
        // Wrapping sequence numbers.
        let mut g = FlowState::FRESH;
        g.note_span(u32::MAX - 1, 4);
        assert_eq!(
            g.spans[0],
            Span {
                start: u32::MAX - 1,
                end: 2
            }
        );
        assert!(seq_lt(u32::MAX - 1, 2) && !seq_lt(2, u32::MAX - 1));
    }

    #[test]
    fn digit_keys_and_prefix_entries() {
        // "447" as nibbles, first digit highest.
        let bcd = bcd_digit(4, 0) | bcd_digit(4, 1) | bcd_digit(7, 2);
        assert_eq!(bcd.to_be_bytes()[..2], [0x44, 0x70]);
        assert!(prefix_covered(prefix_entry(2, true)));
        assert!(prefix_possible(prefix_entry(3, false), 3));
        assert!(!prefix_possible(prefix_entry(2, false), 3));
    }
}
