//! The decision on digits read by the identity-number check (`[msisdn]`), a header
//! value's or a run in the request target's: is it a number, and what is done with it.

use leakguard_common::{
    action,
    flow::{prefix_covered, prefix_possible},
    MSISDN_MAX_DIGITS, MSISDN_MIN_DIGITS,
};

use crate::{
    policy,
    state::{ScanState, Scratch},
};

use super::redact::{clamp_seq, fill_run};

/// True when the digits read (`num_*`) are an identity number: 9-15 of them, starting
/// with a configured prefix.
#[inline(always)]
pub(super) fn is_number(st: &ScanState) -> bool {
    is_number_of(st, st.f.num_len)
}

/// True when the first `len` digits of `num_bcd` are an identity number.
#[inline(always)]
pub(super) fn is_number_of(st: &ScanState, len: u32) -> bool {
    if !(MSISDN_MIN_DIGITS..=MSISDN_MAX_DIGITS).contains(&len) {
        return false;
    }
    matches!(policy::number_prefix(&st.pkt, st.f.num_bcd, len), Some(e) if prefix_covered(e))
}

/// An identity number ends at window position `end`: count it (event, counters) and act
/// (a redaction overwrites at most `MAX` bytes). Returns false when the segment is
/// dropped.
#[inline(always)]
pub(super) fn act_on_number<const MAX: u32>(s: &mut Scratch, end: u32) -> bool {
    let st = &mut s.st;
    match policy::match_number(st) {
        action::REDACT => {
            // The number's bytes in this window; those of earlier windows or segments were
            // overwritten there (see `number_pending`).
            let base = st.seq.wrapping_add(st.win_off);
            let from = clamp_seq(base, st.f.num_start, end);
            let to = clamp_seq(base, st.f.num_end, end);
            redact_span::<MAX>(s, from, to);
            true
        }
        action::DROP => {
            st.drop = 1;
            false
        }
        _ => true,
    }
}

/// Bytes a number in an encoded form has at most: 15 digits in hex, two characters
/// each (a base64 one has at most 21).
pub(super) const HEX_BYTES: u32 = 2 * MSISDN_MAX_DIGITS;

/// True when the `len` digits `bcd` may still be the start of an identity number.
#[inline(always)]
pub(super) fn possible(st: &ScanState, bcd: u64, len: u32) -> bool {
    matches!(policy::number_prefix(&st.pkt, bcd, len), Some(e) if prefix_possible(e, len))
}

/// Bytes of a number value: an optional `+` and at most `MSISDN_MAX_DIGITS` digits.
pub(super) const NUMBER_BYTES: u32 = MSISDN_MAX_DIGITS + 1;

/// Overwrites window bytes `[from, to)` (a number: at most `MAX` bytes) and remembers
/// them.
#[inline(always)]
pub(super) fn redact_span<const MAX: u32>(s: &mut Scratch, from: u32, to: u32) {
    if from >= to {
        return;
    }
    let end = fill_run::<MAX>(s, from, to);
    s.st.f
        .note_span(s.st.seq.wrapping_add(s.st.win_off + from), end - from);
}
