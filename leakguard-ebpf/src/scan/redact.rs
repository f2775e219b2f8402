//! Redaction in the window: a value overwritten with the filler eight bytes at a time,
//! the checksum weights of what was overwritten, and remembered redactions repeated on
//! resent bytes.

use core::ffi::c_void;

use leakguard_common::{
    name::{CLASS, C_WS},
    swar, MAX_SPANS, REDACT_FILLER, SCAN_CHUNK,
};

use leakguard_common::flow::parser::S_LINE_START;

use crate::{
    maps::scratch,
    state::{window_index, ScanState, Scratch},
    verifier::{forget, opaque},
};

use super::line::{after_lf, ends_on};

/// Skips the optional whitespace before a value; stops at its first other byte.
#[inline(always)]
pub(super) fn ows_run(s: &Scratch, pos: u32, n: u32) -> u32 {
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        // The class byte through `opaque`: LLVM knows the table and would otherwise test
        // `b == ' ' || b == '\t'`, two branches per iteration, which the verifier explores
        // as 2^64 paths.
        let class = opaque(u32::from(CLASS[usize::from(s.at(i))]));
        if i >= n || class & u32::from(C_WS) == 0 {
            break;
        }
        k += 1;
    }
    pos + k
}

/// Words a value run overwrites per call, at most (64 bytes, as `SCAN_CHUNK`), besides
/// the last, partial one.
pub(super) const VALUE_WORDS: u32 = SCAN_CHUNK / 8;

/// Overwrites value bytes up to the next CR or LF, eight at a time, and takes an LF or a
/// CR LF (a bare CR is left for `step`: it may be inside the value).
///
/// Whole aligned words of the window with no line end are overwritten in the loop (the
/// bytes before `pos` in the first kept as they are): its body has no branch but its
/// exits, one verifier path per iteration. The last word, cut by a line end or by the
/// window's end `n` (bytes past `n` are stale), is blended after the loop. The old
/// bytes' checksum weight (`swar::checksum_weight`: windows start at even payload
/// offsets, so an aligned word's even bytes are the high bytes of checksummed words)
/// goes to `filled`.
#[inline(always)]
pub(super) fn value_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    let mut sum_old = 0u64;
    let mut k = 0;
    while k < VALUE_WORDS {
        if w + 8 > n {
            break;
        }
        let x = s.word(w);
        if swar::line_end(x) & keep != 0 {
            break;
        }
        sum_old += fill_word(s, w, x, keep);
        keep = !0;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    let mut end = w;
    if k < VALUE_WORDS && w < n {
        // The last word: up to its first line end, and not past `n`. A line end is never
        // before `pos` (masked), and `n > pos`, so `end >= pos`.
        let x = s.word(w);
        let stop = swar::line_end(x) & keep;
        let upto = if stop != 0 { swar::first(stop) } else { 8 };
        let upto = upto.min(n - w);
        sum_old += fill_word(s, w, x, keep & swar::low_bytes(upto));
        end = w + upto;
    }
    let taken = end - pos;
    if taken != 0 {
        filled(&mut s.st, pos, taken, sum_old);
        s.st.f
            .note_span(s.st.seq.wrapping_add(s.st.win_off + pos), taken);
    }
    let end = forget(&mut s.st.pos, end);
    if ends_on(s, end, n, b'\n') {
        s.st.f.state = S_LINE_START;
        return after_lf(s, end + 1, n);
    }
    // CR LF ends the line here too, rather than a byte per call in `step`; a CR not
    // followed by LF (in this window) is left to `step`.
    if ends_on(s, end, n, b'\r') && ends_on(s, end + 1, n, b'\n') {
        s.st.f.state = S_LINE_START;
        return after_lf(s, end + 2, n);
    }
    end
}

/// Overwrites the bytes of window word `w` (whose value is `x`) that `m` selects with the
/// filler; returns the old bytes' checksum weight.
#[inline(always)]
pub(super) fn fill_word(s: &mut Scratch, w: u32, x: u64, m: u64) -> u64 {
    const FILLER: u64 = swar::ONES * REDACT_FILLER as u64;
    s.set_word(w, (x & !m) | (FILLER & m));
    swar::checksum_weight(x & m)
}

/// Accounts for `k` bytes from window position `pos` overwritten with the filler, whose
/// old bytes sum (at their parity) to `sum_old`.
#[inline(always)]
pub(super) fn filled(st: &mut ScanState, pos: u32, k: u32, sum_old: u64) {
    // The filler's sum over the same positions: k bytes starting at parity `pos`.
    let first_high = u64::from(pos & 1 == 0);
    let highs = (u64::from(k) + first_high) / 2;
    let lows = u64::from(k) - highs;
    st.sum_old += sum_old;
    st.sum_new += u64::from(REDACT_FILLER) * ((highs << 8) + lows);
    mark_dirty(st, pos, pos + k);
    st.redacted = 1;
}

/// Window bytes `[lo, hi)` were overwritten.
#[inline(always)]
pub(super) fn mark_dirty(st: &mut ScanState, lo: u32, hi: u32) {
    if st.dirty == 0 || lo < st.dirty_lo {
        st.dirty_lo = lo;
    }
    if st.dirty == 0 || hi > st.dirty_hi {
        st.dirty_hi = hi;
    }
    st.dirty = 1;
}

/// Overwrites window bytes `[pos, end)` (at most `MAX` of them) with the filler;
/// returns where it stopped.
#[inline(always)]
pub(super) fn fill_run<const MAX: u32>(s: &mut Scratch, pos: u32, end: u32) -> u32 {
    let mut sum_old = 0u64;
    let mut k = 0;
    while k < MAX {
        let i = pos + k;
        if i >= end {
            break;
        }
        let idx = window_index(i);
        sum_old += u64::from(s.buf[idx]) << (((idx as u64 & 1) ^ 1) << 3);
        s.buf[idx] = REDACT_FILLER;
        k += 1;
    }
    if k != 0 {
        filled(&mut s.st, pos, k, sum_old);
    }
    pos + k
}

/// Window position of sequence number `seq`, clamped to `[0, max]`.
#[inline(always)]
pub(super) fn clamp_seq(base: u32, seq: u32, max: u32) -> u32 {
    let d = seq.wrapping_sub(base) as i32;
    if d < 0 {
        0
    } else if d as u32 > max {
        max
    } else {
        d as u32
    }
}

/// `bpf_loop` callback: repeats, on the `st.old_n` already-scanned bytes at the start of
/// the window, the redactions remembered in the flow's spans (a retransmission carries
/// the sender's original bytes). One span, up to `SCAN_CHUNK` bytes, per call.
#[inline(never)]
pub(super) extern "C" fn refill(_idx: u32, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    let j = s.st.rj;
    if j >= s.st.f.nspans || j >= MAX_SPANS as u32 {
        return 1;
    }
    let span = s.st.f.spans[j as usize % MAX_SPANS];
    let base = s.st.seq.wrapping_add(s.st.win_off);
    let old = s.st.old_n;
    let lo = clamp_seq(base, span.start, old);
    let hi = clamp_seq(base, span.end, old);
    let from = if s.st.rpos > lo { s.st.rpos } else { lo };
    if from >= hi {
        s.st.rj = j + 1;
        s.st.rpos = 0;
        return 0;
    }
    s.st.rpos = fill_run::<SCAN_CHUNK>(s, from, hi);
    0
}

/// Overwrites one value byte in the window and accounts for it in the checksum sums.
#[inline(always)]
pub(super) fn redact_byte(s: &mut Scratch, i: usize, old: u8) {
    s.st.f
        .note_span(s.st.seq.wrapping_add(s.st.win_off + i as u32), 1);
    s.buf[i] = REDACT_FILLER;
    // The window starts at an even payload offset and the TCP payload at an even offset
    // of the segment, so byte parity in the window is parity in the checksummed words.
    let shift = if i & 1 == 0 { 8 } else { 0 };
    s.st.sum_old += u64::from(old) << shift;
    s.st.sum_new += u64::from(REDACT_FILLER) << shift;
    mark_dirty(&mut s.st, i as u32, i as u32 + 1);
    s.st.redacted = 1;
}
