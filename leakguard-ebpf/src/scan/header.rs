//! Header names: the two-byte prefilter that skips lines no rule can start, the name run,
//! and the lookup at the colon.

use leakguard_common::{
    action,
    name::{CLASS, C_WS, TFOLD},
    place, MAX_NAME_LEN, SCAN_CHUNK,
};

use leakguard_common::flow::parser::{
    F_REDACT, F_RUNS, F_VALUE_RUNS, S_NAME, S_NUM, S_OWS, S_SKIP,
};

use crate::{
    policy,
    state::{ScanState, Scratch},
    verifier::{forget, opaque, zero_words},
};

use super::{cookie::cookie_run, line::ends_on, number::starts_number, skip::skip_run};

/// A header line starts with a name byte.
#[inline(always)]
pub(super) fn begin_line(st: &mut ScanState) {
    st.lines += 1;
    // SAFETY: `NameKey` is MAX_NAME_LEN bytes, 8-byte aligned.
    unsafe { zero_words::<{ MAX_NAME_LEN / 8 }>(st.f.name.name.as_mut_ptr()) };
    st.f.name_len = 0;
    st.f.flags = 0;
    st.f.state = S_NAME;
}

/// Reads name bytes (tchars), folded into `st.f.name`; stops at the first other byte.
///
/// Like every run, the loop body has no branch but its exit tests: the verifier cannot
/// prune states inside a loop it is still exploring, so each extra branch would double
/// its work per iteration.
#[inline(always)]
pub(super) fn name_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let len = s.st.f.name_len;
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n {
            break;
        }
        // One table load tests and folds the byte (0: not a token byte).
        let folded = TFOLD[usize::from(s.at(i))];
        if folded == 0 {
            break;
        }
        // Past MAX_NAME_LEN the index wraps and garbles the key, harmlessly: such a name
        // is never looked up (`name_len` keeps counting).
        s.st.f.name.name[opaque(len + k) as usize & (MAX_NAME_LEN - 1)] = folded;
        k += 1;
    }
    s.st.f.name_len = len + k;
    let end = forget(&mut s.st.pos, pos + k);
    if ends_on(s, end, n, b':') {
        // The name is complete: look it up and act; the colon is consumed. A name longer
        // than any rule's cannot match.
        if s.st.f.name_len as usize > MAX_NAME_LEN {
            s.st.f.state = S_SKIP;
        } else if !on_header(s) {
            s.st.stop = 1;
            return end + 1;
        }
        // Most lines are not identity headers: skip the value in the same call. Only
        // single-path loops follow the branchy lookup, so the verifier's work adds up
        // rather than multiplying.
        let mut next = forget(&mut s.st.pos, end + 1);
        if s.st.f.state == S_NUM && s.st.pkt.msisdn_on & place::INSIDE_VALUES != 0 {
            // `inside_values`: the value is read for runs of digits, as a cookie's is.
            s.st.f.state = S_SKIP;
            s.st.f.flags = F_VALUE_RUNS;
        }
        if s.st.f.state == S_NUM {
            // Most values do not start with a digit or `+`: look at the first byte after
            // one optional space, and skip such a line at once. No loop here: a loop
            // after the branchy lookup would be explored once per path through it.
            let mut at = next;
            if at < n && CLASS[usize::from(s.at(at))] & C_WS != 0 {
                at += 1;
            }
            if at < n && !starts_number(s.at(at)) {
                s.st.f.state = S_SKIP;
            }
            next = forget(&mut s.st.pos, at);
        }
        if s.st.f.state == S_SKIP {
            if s.st.f.flags & F_RUNS != 0 {
                // A value read for runs of digits: in the same call too (a callback per
                // line cost the 600 B request about 100 ns).
                return cookie_run(s, next, n);
            }
            return skip_run(s, next, n);
        }
        return next;
    }
    end
}

/// The name of a header line is complete: look it up and act.
#[inline(always)]
pub(super) fn on_header(s: &mut Scratch) -> bool {
    let st = &mut s.st;
    st.f.state = S_SKIP;
    let Some(outcome) = policy::match_header(st) else {
        if st.pkt.msisdn_on != 0 {
            // No rule for this name: check the value for an identity number.
            st.f.state = S_NUM;
            st.f.flags = 0;
            st.f.num_len = 0;
            st.f.num_bcd = 0;
        }
        return true;
    };
    match outcome {
        action::REDACT => {
            // Redact every byte of the value (after OWS, up to CR/LF) in place, keeping
            // its length so TCP sequence space is untouched.
            st.f.flags = F_REDACT;
            st.f.state = S_OWS;
            true
        }
        action::DROP => {
            st.drop = 1;
            false
        }
        _ => true,
    }
}
