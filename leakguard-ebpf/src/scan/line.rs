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
