//! Identity numbers (`[msisdn]`): the digits of a value checked under any header name,
//! the decision at its line's end, and a number cut by a window or segment end.

use leakguard_common::{
    action,
    flow::{bcd_digit, hex_tail, prefix_possible, RAW_DIGITS},
    form,
    name::{CLASS, C_WS},
    place, MSISDN_MAX_DIGITS, NO_ALLOW_GROUP,
};

use leakguard_common::flow::parser::{
    F_NUM_TAIL, F_NUM_VAL, F_RUNS, S_LINE_START, S_NUM, S_SKIP, S_TARGET,
};

use crate::{
    maps::scratch,
    policy,
    state::{ScanState, Scratch},
    verifier::{forget, written},
};

use super::{
    base64::leakguard_b64_cut,
    decide::{act_on_number, is_number, possible, redact_span, HEX_BYTES, NUMBER_BYTES},
    digits::{run_digits, run_pending},
    redact::clamp_seq,
};

/// A value byte that may start an identity number.
#[inline(always)]
pub(super) fn starts_number(b: u8) -> bool {
    b == b'+' || b.is_ascii_digit() || CLASS[usize::from(b)] & C_WS != 0
}

/// Reads the digits of a value checked for an identity number: the `+` or digit that
/// starts it, then up to `MSISDN_MAX_DIGITS + 1` digits (one more proves it too long).
/// Any other byte is left to `step`.
#[inline(always)]
pub(super) fn num_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.flags & F_NUM_TAIL != 0 {
        return pos;
    }
    let mut p = pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        let b = s.at(pos);
        if b != b'+' && !b.is_ascii_digit() {
            return pos;
        }
        s.st.f.flags |= F_NUM_VAL;
        let at = s.st.seq.wrapping_add(s.st.win_off + pos);
        s.st.f.num_start = at;
        s.st.f.num_end = at;
        if b == b'+' {
            p += 1;
            s.st.f.num_end = at.wrapping_add(1);
        }
    }
    let len = s.st.f.num_len;
    let mut bcd = 0u64;
    let mut k = 0;
    while k <= MSISDN_MAX_DIGITS {
        let i = p + k;
        if i >= n || len + k > MSISDN_MAX_DIGITS {
            break;
        }
        let b = s.at(i);
        if !b.is_ascii_digit() {
            break;
        }
        bcd |= bcd_digit(b - b'0', len + k);
        k += 1;
    }
    s.st.f.num_bcd |= bcd;
    s.st.f.num_len = len + k;
    s.st.f.num_end = s.st.f.num_end.wrapping_add(k);
    let end = forget(&mut s.st.pos, p + k);
    if s.st.f.num_len > MSISDN_MAX_DIGITS {
        // Too many digits: not an identity number.
        s.st.f.state = S_SKIP;
    }
    end
}

/// The LF of a value checked for an identity number: decide, and act.
#[inline(always)]
pub(super) fn end_number(s: &mut Scratch, i: usize) -> bool {
    s.st.f.state = S_LINE_START;
    if s.st.f.flags & F_NUM_VAL == 0 || !is_number(&s.st) {
        return true;
    }
    act_on_number::<NUMBER_BYTES>(s, i as u32)
}

/// A byte of a value checked for an identity number that `num_run` did not take.
#[inline(always)]
pub(super) fn num_byte(s: &mut Scratch, i: usize, b: u8, class: u8) -> bool {
    if b == b'\n' {
        return end_number(s, i);
    }
    let f = &mut s.st.f;
    if f.flags & F_NUM_VAL == 0 {
        // Whitespace before the value; anything else is not a number.
        if class & C_WS == 0 {
            f.state = S_SKIP;
        }
    } else if class & C_WS != 0 || b == b'\r' {
        f.flags |= F_NUM_TAIL;
    } else {
        f.state = S_SKIP;
    }
    true
}

/// At the end of a window (or segment): a value that may still become an identity number
/// under `redact` is overwritten now, as far as it goes; the bytes will have left before
/// the rest of the value shows whether it is one. (A value that turns out not to be one
/// keeps these bytes overwritten: the cost of never letting part of a number out.)
///
/// A global function, called once per window: its keys and spills live in its own frame,
/// not the window callback's, which on Linux 6.1 leaves room in the 512 bytes of stack
/// for the scan callback's call to `leakguard_target_number`.
#[inline(always)]
pub fn number_pending(s: &mut Scratch) {
    // Nothing to do unless a value or the target is being checked: most windows end in a
    // skipped line or a body, and the call would cost them.
    let st = &s.st;
    if st.stop == 0
        && st.pkt.msisdn_on != 0
        && (st.f.state == S_NUM || st.f.state == S_TARGET || st.f.flags & F_RUNS != 0)
    {
        leakguard_number_pending();
        written(s);
        // Its own global, called from here rather than from the one above: 6.1's 512
        // bytes of stack do not hold both frames one inside the other.
        leakguard_b64_cut();
        written(s);
    }
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_number_pending() -> i64 {
    let Some(s) = scratch() else {
        return 0;
    };
    if s.st.stop != 0 {
        return 0;
    }
    let runs = (s.st.f.state == S_TARGET && s.st.pkt.msisdn_on & place::bit(place::TARGET) != 0)
        || (s.st.f.state == S_SKIP && s.st.f.flags & F_RUNS != 0);
    pending(s, runs);
    0
}

#[inline(always)]
fn pending(s: &mut Scratch, runs: bool) {
    if runs {
        // Digits at the window's end open a run the next window or segment continues.
        run_pending(s);
    }
    let st = &mut s.st;
    if !(st.f.state == S_NUM || runs)
        || st.f.flags & F_NUM_VAL == 0
        || st.pkt.msisdn_action != action::REDACT
    {
        return;
    }
    // A trusted destination gets the number as it is.
    let group = st.pkt.msisdn_allow_group;
    if group != NO_ALLOW_GROUP && policy::allowed(&mut st.pkt, group) {
        return;
    }
    let len = st.f.num_len;
    let base = st.seq.wrapping_add(st.win_off);
    let n = st.n;
    if len <= MSISDN_MAX_DIGITS && (len == 0 || possible(st, st.f.num_bcd, len)) {
        let from = clamp_seq(base, st.f.num_start, n);
        let to = clamp_seq(base, st.f.num_end, n);
        redact_span::<NUMBER_BYTES>(s, from, to);
        return;
    }
    if !runs || st.pkt.msisdn_on & form::HEX_ON == 0 {
        return;
    }
    // The run's hex stretch so far: in its first `RAW_DIGITS` digits, or (past them) in
    // `num_*` themselves.
    let (bcd, start, end, digits) = if len <= RAW_DIGITS {
        let (bcd, first, pairs) = hex_tail(st.f.num_bcd, len);
        let start = st.f.num_start.wrapping_add(2 * first);
        (bcd, start, start.wrapping_add(2 * pairs), pairs)
    } else {
        (st.f.num_bcd, st.f.num_start, st.f.num_end, run_digits(st))
    };
    if digits == 0 || digits > MSISDN_MAX_DIGITS || !possible(st, bcd, digits) {
        return;
    }
    let from = clamp_seq(base, start, n);
    let to = clamp_seq(base, end, n);
    redact_span::<HEX_BYTES>(s, from, to);
}
