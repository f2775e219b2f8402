//! Skipping: the rest of a line eight bytes at a time, and runs of lines no rule's name
//! can start.

use leakguard_common::{
    name::{start_bit, CLASS, C_TCHAR, TFOLD},
    swar,
};

use leakguard_common::flow::parser::{F_RUNS, S_LINE_START, S_SKIP};

use crate::{
    maps::NAME_FILTER,
    state::{ScanState, Scratch},
    verifier::forget,
};

use super::{cookie::cookie_run, line::after_lf};

/// Lines skipped in one callback, at most: a callback costs more than skipping a short
/// line, and most lines of a request are skipped.
pub(super) const SKIP_LINES: u32 = 8;

/// Skips the rest of this line, then up to `SKIP_LINES - 1` more that no rule's name can
/// start (`no_rule_starts`), in one callback. Each step is the same single-path skip run,
/// its position laundered through map memory, so the verifier's work adds up per line.
#[inline(always)]
pub(super) fn skip_lines(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.flags & F_RUNS != 0 {
        // A `Cookie` line or a header value read for runs of digits (with the check on,
        // no line after it is skipped unread here anyway).
        return cookie_run(s, pos, n);
    }
    let mut p = skip_run(s, pos, n);
    let mut k = 1;
    while k < SKIP_LINES {
        let p0 = forget(&mut s.st.pos, p);
        if s.st.f.state != S_LINE_START
            || p0 >= n
            || CLASS[usize::from(s.at(p0))] & C_TCHAR == 0
            || !no_rule_starts(s, p0, n)
        {
            break;
        }
        skip_line(&mut s.st);
        p = skip_run(s, p0, n);
        k += 1;
    }
    p
}

/// Words a skip run reads per call (256 bytes).
pub(super) const SKIP_WORDS: u32 = 32;

/// Skips the rest of a line, its LF included, eight bytes at a time.
///
/// Reads aligned words of the window (bytes before `pos` masked off) and finds an LF with
/// `swar::lf`, whose lowest set bit is exact. Bytes past `n` in the last word are stale:
/// an LF found there does not count.
#[inline(always)]
pub(super) fn skip_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    // Two words per iteration, one exit test for both: the loop's own bookkeeping (bounds,
    // counter) was a third of its cost. The second word may lie past `n` (stale bytes,
    // still inside the buffer): an LF found there does not count (below).
    let (mut lo, mut hi) = (0u64, 0u64);
    let mut k = 0;
    while k < SKIP_WORDS / 2 {
        if w >= n {
            break;
        }
        lo = swar::lf(s.word(w)) & keep;
        hi = swar::lf(s.word(w + 8));
        if lo | hi != 0 {
            break;
        }
        keep = !0;
        w += 16;
        k += 1;
    }
    // The first LF: in the first word if it has one, else in the second. With neither,
    // the loop ran out of words or of window, and `w` is the first byte not yet read
    // (the loop advances `w` only past words without an LF).
    let (w, hit) = if lo != 0 {
        (w, lo)
    } else if hi != 0 {
        (w + 8, hi)
    } else {
        (w, 0)
    };
    let w = forget(&mut s.st.pos, w);
    if hit != 0 {
        let lf = w + swar::first(hit);
        if lf < n {
            s.st.f.state = S_LINE_START;
            return after_lf(s, lf + 1, n);
        }
        // A stale LF past the window's end: every byte up to `n` was skipped. (Returning
        // `w` here would move the scan backwards, onto bytes already taken.)
        return n;
    }
    if w > n {
        n
    } else {
        w
    }
}

/// True when the line starting at `pos` cannot be a rule's header: its first two bytes,
/// folded, begin no rule name (`NameFilter::starts`). Only with the identity-number check
/// off (it reads every value) and both bytes in this window and tokens (a one-byte name,
/// or a line cut by the window, is read as usual).
#[inline(always)]
pub(super) fn no_rule_starts(s: &Scratch, pos: u32, n: u32) -> bool {
    if s.st.pkt.msisdn_on != 0 || pos + 1 >= n {
        return false;
    }
    let a = TFOLD[usize::from(s.at(pos))];
    let b = TFOLD[usize::from(s.at(pos + 1))];
    if b == 0 {
        return false;
    }
    let Some(f) = NAME_FILTER.get(s.st.pkt.gen) else {
        return false;
    };
    let (word, bit) = start_bit(a, b);
    f.starts[word & 63] & bit == 0
}

/// A header line that is skipped unread: counted, and no obs-fold continues its value.
#[inline(always)]
pub(super) fn skip_line(st: &mut ScanState) {
    st.lines += 1;
    st.f.flags = 0;
    st.f.state = S_SKIP;
}
