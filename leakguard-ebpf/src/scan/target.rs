//! Identity numbers in the request target (`[msisdn]`, `place::TARGET`): a run of digits
//! in a path segment or a query value (`/u/447700900123/`, `?msisdn=447700900123`) is
//! judged like a header value's digits, at the byte that ends it (`digits.rs`).
//!
//! The target is read eight bytes at a time, as without the check; a word also yields
//! its digit mask, and a flagged digit hands the run to `digits::number_call`. A target
//! with no flag holds no number and costs a few more ALU operations per word.

use leakguard_common::{
    flow::parser::{F_NUM_VAL, S_VERSION},
    swar,
};

use crate::{
    state::Scratch,
    verifier::{forget, opaque64},
};

use super::{digits::number_call, line::end_token};

/// Words a target run reads per call without the number check (256 bytes).
pub(super) const TARGET_WORDS: u32 = 32;

/// Words a run loop (target or line read for runs, with the number check) reads per call
/// (128 bytes): fewer than without the check, since 6.1's verifier walks each word of
/// the loop, which also tests for base64 triggers, and has little room left (design.md).
pub(super) const RUN_WORDS: u32 = 16;

/// The target run with the number check on: target bytes eight at a time up to the SP
/// that ends the target, or up to a word with a flagged digit (then the run of digits is
/// read and decided by `leakguard_target_number`).
#[inline(always)]
pub(super) fn target_scan(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut at = pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        let (w, stop, flag) = run_words::<true>(s, pos, n);
        let hit = stop | flag;
        // The first flagged byte: a stop's lowest flag is exact, and a digit's or a
        // lead's flags all are.
        at = if hit != 0 { w + swar::first(hit) } else { w };
        if at >= n {
            // No stop and no flag before the window's end (flags in the stale bytes past
            // `n` do not count): every byte up to `n` was taken.
            s.st.f.tok += n - pos;
            return n;
        }
        // `at >= pos`: bytes below `pos` are masked off.
        s.st.f.tok += at - pos;
        if flag & hit & hit.wrapping_neg() == 0 {
            return end_token(s, at, n, S_VERSION);
        }
    }
    // A flagged byte, or a run continued from the last window, segment or call: one
    // call site for both (through map memory, so that the verifier follows it once).
    let at = forget(&mut s.st.pos, at);
    number_call(s, at)
}

/// The run loops' words (the target's when `TARGET`, else a line read for runs): from
/// `pos` up to the first word with a byte that ends the place (`stop`: the target's SP
/// or control, or the line's LF) or a flagged one (`flag`: a digit closing nine, or a
/// base64 trigger, at bit 7), at most `RUN_WORDS` of them. Returns the word reached,
/// laundered through map memory, and both masks.
///
/// The first word is read before the loop: only it has bytes before `pos`, which neither
/// stop nor flag (their leads still count for a trigger after `pos`). The loop's words
/// then test every byte against masks that do not change, a few operations fewer a word.
/// The word before the first counts only where a loop goes on (`ScanState::prev`): a new
/// place (most calls: a header value) reads no word more.
#[inline(always)]
pub(super) fn run_words<const TARGET: bool>(s: &mut Scratch, pos: u32, n: u32) -> (u32, u64, u64) {
    let mut w = pos & !7;
    let (mut stop, mut flag, mut carry) = (0u64, 0u64, 0u64);
    if w < n {
        let start = swar::bytes_from(pos & 7) & swar::HIGHS;
        let x = s.word(w);
        let m = swar::lanes(x, s.st.lead_add) & (start | swar::LEADS);
        // The word before: its lanes where a loop goes on at `pos` (left for this call
        // only, taken below), else none. Through map memory, read where each use needs
        // it: held in a register, it took the scan callback's frame a slot over 6.1's
        // stack budget.
        // SAFETY: reads of a field of the per-CPU value.
        flag = swar::first_flags(
            || unsafe { core::ptr::read_volatile(&s.st.prev) },
            m,
            start >> 1,
        );
        // `x` laundered: else LLVM shares `!x` between both tests and keeps it live
        // across them, a slot more of frame.
        stop = ends::<TARGET>(opaque64(x)) & start;
        if stop | flag == 0 {
            let mut prev = m;
            w += 8;
            let mut k = 1;
            while k < RUN_WORDS {
                // No test against `n` here: words past it hold stale bytes, whose stops
                // and flags both callers take for the window's end (one register and
                // one compare fewer a word; the loop still ends within `RUN_WORDS`).
                let x = s.word(w);
                // SAFETY: a field of the per-CPU value (see `ScanState::lead_add`).
                let m = swar::lanes(x, unsafe { core::ptr::read_volatile(&s.st.lead_add) });
                flag = swar::number_flags(prev, m);
                stop = ends::<TARGET>(x);
                if stop | flag != 0 {
                    break;
                }
                prev = m;
                w += 8;
                k += 1;
            }
            if k == RUN_WORDS {
                // The word limit: the next call goes on at `w`, after these lanes.
                carry = prev;
            }
        }
    }
    // Taken: what the next call finds is this call's to leave.
    // SAFETY: a field of the per-CPU value; after the reads above.
    unsafe { core::ptr::write_volatile(&mut s.st.prev, carry) };
    let w = forget(&mut s.st.pos, w);
    (w, stop, swar::flags_to_highs(flag))
}

/// The bytes that end a run loop's place: the target's SP or control, or the line's LF.
#[inline(always)]
fn ends<const TARGET: bool>(x: u64) -> u64 {
    if TARGET {
        swar::target_end(x)
    } else {
        swar::lf(x)
    }
}
