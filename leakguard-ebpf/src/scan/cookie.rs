//! Identity numbers in a `Cookie` header's value (`[msisdn]`, `place::COOKIE`): a run of
//! digits in any pair (`Cookie: sid=abc; msisdn=447700900123`) is judged like a header
//! value's digits, at the byte that ends it (`digits.rs`). The line is skipped eight
//! bytes at a time, as a line without the check is, with the target's digit test added.

use leakguard_common::{
    flow::parser::{F_NUM_VAL, S_LINE_START},
    swar,
};

use crate::{state::Scratch, verifier::forget};

use super::{digits::number_call, line::after_lf, target::run_words};

/// The rest of a `Cookie` line (`F_COOKIE`): up to its LF, or to a word with a flagged
/// digit (then the run is read and decided by `digits::number_call`).
#[inline(always)]
pub(super) fn cookie_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut at = pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        let (w, stop, flag) = run_words::<false>(s, pos, n);
        let hit = stop | flag;
        if hit == 0 {
            // The call's words ran out (or the window did): go on from here.
            return w.min(n);
        }
        at = w + swar::first(hit);
        if at >= n {
            // No LF and no flag before the window's end (those past `n` are stale bytes).
            return n;
        }
        if flag & hit & hit.wrapping_neg() == 0 {
            // The LF: the line and its check end.
            s.st.f.state = S_LINE_START;
            s.st.f.flags = 0;
            return after_lf(s, at + 1, n);
        }
    }
    // A flagged byte, or a run continued from the last window, segment or call (as in
    // `target::target_scan`).
    let at = forget(&mut s.st.pos, at);
    number_call(s, at)
}
