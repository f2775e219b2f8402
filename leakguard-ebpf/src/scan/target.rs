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

use crate::{state::Scratch, verifier::forget};

use super::{
    base64::{lanes_from, prev_lanes},
    digits::number_call,
    line::end_token,
};

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
#[inline(always)]
pub(super) fn run_words<const TARGET: bool>(s: &mut Scratch, pos: u32, n: u32) -> (u32, u64, u64) {
    let mut w = pos & !7;
    let mut keep = lanes_from(s, pos);
    let mut prev = prev_lanes(s, w);
    let (mut stop, mut flag) = (0u64, 0u64);
    let mut k = 0;
    while k < RUN_WORDS {
        if w >= n {
            break;
        }
        let x = s.word(w);
        let m = swar::number_lanes(x, keep);
        flag = swar::number_flags(prev, m, keep);
        stop = if TARGET {
            swar::target_end(x)
        } else {
            swar::lf(x)
        } & keep;
        if stop | flag != 0 {
            break;
        }
        prev = m;
        keep |= swar::HIGHS;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    (w, stop, swar::flags_to_highs(flag))
}
