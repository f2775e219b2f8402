//! The state machine: the `bpf_loop` callback (`advance`), the run for the current state,
//! and `step` for a byte no run takes (a line or token boundary, a request-line byte).

use core::ffi::c_void;

use leakguard_common::{
    name::{fold, CLASS, C_CTL, C_TCHAR, C_WS},
    place, MAX_METHOD_LEN, MAX_NAME_LEN,
};

use leakguard_common::flow::parser::{
    F_REDACT, F_VALUE_RUNS, S_BLANK_CR, S_LINE_START, S_METHOD, S_NAME, S_NUM, S_OWS, S_SKIP,
    S_TARGET, S_VALUE, S_VERSION,
};

use crate::{
    maps::scratch,
    state::{window_index, Scratch},
    verifier::opaque,
};

use super::{
    header::{begin_line, name_run, on_header},
    line::end_head,
    number::{num_byte, num_run},
    redact::{ows_run, redact_byte, value_run},
    request_line::{request_line_run, MAJOR, VERSION_DONE, VERSION_PREFIX},
    skip::{no_rule_starts, skip_line, skip_lines},
};

/// `bpf_loop` callback: consumes bytes from `st.pos` and returns 1 when the window is
/// done or the scan must stop, 0 to be called again.
///
/// Verifier cost is kept linear by giving loops one job: a tight run of up to
/// `SCAN_CHUNK` bytes in one state (skipping a line, reading a name or a request-line
/// token, redacting a value), with one path per iteration. A run also takes the byte
/// that ends it when that is the expected one (the LF of a skipped line, the colon of a
/// name), so a header line costs two calls. Any other byte goes through the full state
/// machine, alone: a callback is a loop body to the verifier, which cannot prune inside
/// it, so branchy code must not be followed by more branchy code.
#[inline(never)]
pub(super) extern "C" fn advance(_idx: u32, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    let n = s.st.n;
    let pos = s.st.pos;
    if pos >= n {
        return 1;
    }
    let next = run(s, pos, n);
    if next != pos {
        if s.st.stop != 0 {
            s.st.stopped_at = next;
            return 1;
        }
        s.st.pos = next;
        return i64::from(next >= n);
    }
    // A byte no run takes: a line or token boundary, or a request-line byte.
    if !step(s, window_index(pos)) {
        s.st.stop = 1;
        s.st.stopped_at = pos + 1;
        return 1;
    }
    s.st.pos = pos + 1;
    i64::from(pos + 1 >= n)
}

/// The run for the current state: consumes the bytes that need no decision.
#[inline(always)]
fn run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.state == S_LINE_START && CLASS[usize::from(s.at(pos))] & C_TCHAR != 0 {
        if no_rule_starts(s, pos, n) {
            // No rule's name begins with this line's first two bytes: skip the line
            // without reading its name (the skip run below).
            skip_line(&mut s.st);
        } else {
            // A name starts here: set the line up and read the name in the same call.
            begin_line(&mut s.st);
        }
    }
    match s.st.f.state {
        S_SKIP => skip_lines(s, pos, n),
        S_NAME => name_run(s, pos, n),
        S_OWS => {
            let p = ows_run(s, pos, n);
            if p != pos {
                return p;
            }
            // The value starts here.
            s.st.f.state = S_VALUE;
            value_run(s, pos, n)
        }
        S_VALUE => value_run(s, pos, n),
        S_NUM => {
            if s.st.pkt.msisdn_on & place::INSIDE_VALUES != 0 {
                // `inside_values` (a name ended in `step`): the value is read for runs of
                // digits.
                s.st.f.state = S_SKIP;
                s.st.f.flags = F_VALUE_RUNS;
                return skip_lines(s, pos, n);
            }
            num_run(s, pos, n)
        }
        S_METHOD | S_TARGET | S_VERSION => request_line_run(s, pos, n),
        _ => pos,
    }
}

/// One byte of the state machine. Returns false to stop the scan.
#[inline(always)]
fn step(s: &mut Scratch, i: usize) -> bool {
    let b = s.buf[i];
    let class = CLASS[usize::from(b)];
    if s.st.f.state == S_NUM {
        return num_byte(s, i, b, class);
    }
    let st = &mut s.st;
    match st.f.state {
        // Hot states first: most bytes of a head are inside values that need no work.
        S_SKIP => {
            if b == b'\n' {
                st.f.state = S_LINE_START;
            }
        }
        S_VALUE | S_OWS => {
            // `value_run` stops at CR and LF. A CR is left as it is and the value goes
            // on (a bare CR inside a value must not end the redaction early).
            if b == b'\n' {
                st.f.state = S_LINE_START;
            } else if b != b'\r' {
                redact_byte(s, i, b);
            }
        }
        S_NAME => {
            if class & C_TCHAR != 0 {
                let len = st.f.name_len as usize;
                if len < MAX_NAME_LEN {
                    st.f.name.name[opaque(len as u32) as usize & (MAX_NAME_LEN - 1)] = fold(b);
                }
                // Counts past MAX_NAME_LEN so a longer name never matches a prefix.
                st.f.name_len += 1;
            } else if b == b':' {
                if st.f.name_len as usize <= MAX_NAME_LEN {
                    return on_header(s);
                }
                st.f.state = S_SKIP;
            } else {
                // Whitespace before the colon (RFC 9112 §5.1), a line without a colon,
                // or a non-token byte: invalid, never matched.
                st.malformed += 1;
                st.f.state = if b == b'\n' { S_LINE_START } else { S_SKIP };
            }
        }
        S_LINE_START => {
            if class & C_TCHAR != 0 {
                begin_line(st);
                st.f.name.name[0] = fold(b);
                st.f.name_len = 1;
            } else if b == b'\r' {
                st.f.state = S_BLANK_CR;
            } else if b == b'\n' {
                end_head(st);
            } else {
                st.lines += 1;
                st.malformed += 1;
                if class & C_WS != 0 && st.f.flags & F_REDACT != 0 {
                    // obs-fold (RFC 9112 §5.2): the line continues the previous value,
                    // which was being redacted; redact this part too.
                    st.f.state = S_OWS;
                } else {
                    st.f.state = S_SKIP;
                }
                return true;
            }
            st.f.flags = 0;
        }
        S_BLANK_CR => {
            if b == b'\n' {
                end_head(st);
            } else {
                st.malformed += 1;
                st.f.state = S_SKIP;
            }
        }
        S_METHOD => {
            if class & C_TCHAR != 0 && st.f.tok < MAX_METHOD_LEN {
                st.f.tok += 1;
            } else if b == b' ' && st.f.tok > 0 {
                st.f.state = S_TARGET;
                st.f.tok = 0;
            } else if (b == b'\r' || b == b'\n') && st.f.tok == 0 {
                // Empty lines before a request line: servers skip them (RFC 9112 §2.2),
                // and old clients sent one after a POST body, so the next request's
                // segment may start with CR LF.
            } else {
                // Not a request line: not HTTP, or a body after a head.
                return false;
            }
        }
        // What servers read past in a request line is read past here too, or a head they
        // take would pass unscanned: more than one SP between its parts, any major
        // version, and anything after the version's digits up to the line's end.
        S_TARGET => {
            if b == b' ' {
                if st.f.tok > 0 {
                    st.f.state = S_VERSION;
                    st.f.tok = 0;
                }
            } else if class & C_CTL == 0 {
                st.f.tok += 1;
            } else {
                return false;
            }
        }
        _ => {
            // S_VERSION
            let t = st.f.tok;
            if t == 0 && b == b' ' {
                // More SPs before the version.
            } else if (t as usize) < VERSION_PREFIX.len() {
                if b != VERSION_PREFIX[t as usize & 7] && !(t == MAJOR && b.is_ascii_digit()) {
                    return false;
                }
                st.f.tok += 1;
            } else if t == VERSION_PREFIX.len() as u32 {
                if !b.is_ascii_digit() {
                    return false;
                }
                st.f.tok = VERSION_DONE;
            } else if b == b'\n' {
                st.heads += 1;
                st.f.state = S_LINE_START;
                st.f.flags = 0;
            }
        }
    }
    true
}
