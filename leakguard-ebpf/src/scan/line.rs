//! Line ends: the bytes a run stops on, and the blank line that ends a head.

use leakguard_common::flow::parser::S_METHOD;

use crate::{
    state::{ScanState, Scratch},
    verifier::forget,
};

/// True when the run stopped on `byte` inside the window.
#[inline(always)]
pub(super) fn ends_on(s: &Scratch, end: u32, n: u32, byte: u8) -> bool {
    end < n && s.at(end) == byte
}

#[inline(always)]
pub(super) fn end_head(st: &mut ScanState) {
    // Pipelining: the next bytes may start another request.
    st.f.state = S_METHOD;
    st.f.tok = 0;
}

/// The byte after an LF that ended a line (the state is `S_LINE_START`): a blank line
/// ([CR] LF) ends the head here, in the same call, rather than a byte per call later.
#[inline(always)]
pub(super) fn after_lf(s: &mut Scratch, q: u32, n: u32) -> u32 {
    let q = forget(&mut s.st.pos, q);
    if ends_on(s, q, n, b'\n') {
        s.st.f.flags = 0;
        end_head(&mut s.st);
        return q + 1;
    }
    if ends_on(s, q, n, b'\r') && ends_on(s, q + 1, n, b'\n') {
        s.st.f.flags = 0;
        end_head(&mut s.st);
        return q + 2;
    }
    q
}

/// A request-line token (method or target) is complete at the SP after it: consume the SP
/// and go on to `next`.
#[inline(always)]
pub(super) fn end_token(s: &mut Scratch, end: u32, n: u32, next: u32) -> u32 {
    if s.st.f.tok > 0 && ends_on(s, end, n, b' ') {
        s.st.f.state = next;
        s.st.f.tok = 0;
        // No run of target digits is open (`F_NUM_VAL`) as the target starts.
        s.st.f.flags = 0;
        return end + 1;
    }
    end
}
