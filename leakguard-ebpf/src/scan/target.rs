//! Identity numbers in the request target (`[msisdn]`, `place::TARGET`): a run of digits
//! in a path segment or a query value (`/u/447700900123/`, `?msisdn=447700900123`) is
//! judged like a header value's digits, at the byte that ends it (`digits.rs`).
//!
//! The target is read eight bytes at a time, as without the check; a word also yields
//! its digit mask, and a flagged digit hands the run to `digits::number_call`. A target
//! with no flag holds no number and costs a few more ALU operations per word.

use leakguard_common::flow::parser::{F_NUM_VAL, S_VERSION};

use crate::{state::Scratch, verifier::written};

use super::{
    digits::number_call,
    line::end_token,
    runs::{leakguard_run_words, AT, FLAG},
};

/// Words a target run reads per call (256 bytes), with the check or without it.
pub(super) const TARGET_WORDS: u32 = 32;

/// The target run with the number check on: target bytes eight at a time up to the SP
/// that ends the target, or up to a word with a flagged digit (then the run of digits is
/// read and decided by `leakguard_target_number`).
#[inline(always)]
pub(super) fn target_scan(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.flags & F_NUM_VAL != 0 {
        // A run continued from the last window, segment or call.
        return number_call(s, pos);
    }
    s.st.pos = pos;
    let r = leakguard_run_words(1) as u32;
    written(s);
    let at = r & AT;
    // `at >= pos`: bytes below `pos` are masked off.
    s.st.f.tok += at - pos;
    if r & FLAG != 0 {
        return number_call(s, at);
    }
    end_token(s, at, n, S_VERSION)
}
