//! Identity numbers in a `Cookie` header's value (`[msisdn]`, `place::COOKIE`): a run of
//! digits in any pair (`Cookie: sid=abc; msisdn=447700900123`) is judged like a header
//! value's digits, at the byte that ends it (`digits.rs`). The line is skipped eight
//! bytes at a time, as a line without the check is, with the target's digit test added.

use leakguard_common::flow::parser::{F_NUM_VAL, S_LINE_START};

use crate::{state::Scratch, verifier::written};

use super::{
    digits::number_call,
    line::after_lf,
    runs::{leakguard_run_words, AT, FLAG, STOP},
};

/// The rest of a `Cookie` line (`F_COOKIE`): up to its LF, or to a word with a flagged
/// digit (then the run is read and decided by `digits::number_call`).
#[inline(always)]
pub(super) fn cookie_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.flags & F_NUM_VAL != 0 {
        // A run continued from the last window, segment or call.
        return number_call(s, pos);
    }
    s.st.pos = pos;
    let r = leakguard_run_words(0) as u32;
    written(s);
    let at = r & AT;
    if r & FLAG != 0 {
        return number_call(s, at);
    }
    if r & STOP == 0 {
        // The call's words ran out, or the window did: go on from here.
        return at;
    }
    // The LF: the line and its check end.
    s.st.f.state = S_LINE_START;
    s.st.f.flags = 0;
    after_lf(s, at + 1, n)
}
