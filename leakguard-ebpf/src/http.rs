//! The request-head scanner: a byte-at-a-time state machine over the TCP payload.
//!
//! The payload is copied, a window of `SCAN_WINDOW` bytes at a time, into a per-CPU scratch
//! buffer and scanned there with masked indexes, so the verifier needs no per-byte packet
//! bounds proof. `bpf_loop` drives the scan `SCAN_CHUNK` bytes per callback: the callback
//! is verified once, whatever the payload length, and the state carried in `ScanState`
//! lets a header line run across chunk and window boundaries (and, later, segments).
//!
//! Grammar (RFC 9112 §2–5), as far as a guard needs it:
//!   request-line = method SP target SP "HTTP/1." DIGIT [CR] LF
//!   field-line   = name ":" OWS value [CR] LF      (name = 1*tchar, no space before ":")
//!   head end     = [CR] LF on its own
//! After a head the next bytes are tried as another request line (pipelining); anything
//! else is a body and ends the scan.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use leakguard_common::{
    action,
    name::{fold, CLASS, C_CTL, C_TCHAR, C_WS, FOLD},
    NameKey, MAX_METHOD_LEN, MAX_NAME_LEN, REDACT_FILLER, SCAN_CHUNK, SCAN_WINDOW,
};

use crate::{
    bound::{forget, opaque},
    maps::SCRATCH,
    policy,
};

// Parser states.
const S_METHOD: u32 = 0;
const S_TARGET: u32 = 1;
const S_VERSION: u32 = 2;
const S_LINE_START: u32 = 3;
const S_NAME: u32 = 4;
const S_SKIP: u32 = 5;
const S_VALUE: u32 = 6;
const S_BLANK_CR: u32 = 7;
/// Optional whitespace before a redacted value.
const S_OWS: u32 = 8;

// `ScanState::flags`.
/// The value being read belongs to a `redact` rule (also covers obs-fold continuations).
const F_REDACT: u32 = 1;

const VERSION_PREFIX: &[u8; 7] = b"HTTP/1.";
/// `tok` value once the version digit was read: only [CR] LF may follow.
const VERSION_DONE: u32 = 8;

const WINDOW_MASK: usize = SCAN_WINDOW - 1;

const _: () = assert!(S_METHOD == 0);
const _: () = assert!(core::mem::offset_of!(ScanState, pkt) % 8 == 0);

/// Scanner state, one per CPU (inside [`Scratch`]), reset for every segment.
#[repr(C)]
pub struct ScanState {
    /// Valid bytes in the window.
    pub n: u32,
    /// Next byte of the window to scan.
    pub pos: u32,
    /// Payload offset of the window's first byte.
    pub win_off: u32,
    /// Set when the scan must end: not a request, a body, or a drop verdict.
    pub stop: u32,
    /// Bytes consumed in the window when the scan stopped early.
    pub stopped_at: u32,
    pub state: u32,
    /// Length of the current request-line token, or position in the version.
    pub tok: u32,
    pub name_len: u32,
    pub flags: u32,
    /// The window holds redacted bytes and must be written back.
    pub dirty: u32,
    /// 1 when a `drop` rule matched.
    pub drop: u32,
    // Per-segment counts, flushed to STATS once.
    pub heads: u32,
    pub lines: u32,
    pub malformed: u32,
    pub events_lost: u32,
    pub redacted: u32,
    /// Window-loop results: payload bytes scanned, and helper failures.
    pub scanned: u32,
    pub load_failed: u32,
    pub store_failed: u32,
    pub _pad: u32,
    /// One's-complement sums of the redacted bytes before and after, at their position
    /// parity in the segment: the TCP checksum update (RFC 1624).
    pub sum_old: u64,
    pub sum_new: u64,
    pub pkt: policy::PacketMeta,
    /// The folded name of the current header line, zero padded: the `RULES` key.
    pub name: NameKey,
}

/// 8-byte aligned (map values are) so that `word` loads are aligned.
#[repr(C, align(8))]
pub struct Scratch {
    pub buf: [u8; SCAN_WINDOW],
    pub st: ScanState,
}

impl Scratch {
    /// The aligned 8-byte word of the window containing byte `at`.
    #[inline(always)]
    fn word(&self, at: u32) -> u64 {
        let off = at as usize & WINDOW_MASK & !7;
        // SAFETY: `off + 8 <= SCAN_WINDOW` and `off` is a multiple of 8 from the 8-aligned
        // start of `buf`.
        unsafe { core::ptr::read(self.buf.as_ptr().add(off).cast::<u64>()) }
    }
}

impl ScanState {
    /// Resets for a new segment: every field before `pkt` is zero, which is also the
    /// initial parser state (`S_METHOD`). Word stores, volatile so that LLVM cannot merge
    /// them into a call to BPF's byte-at-a-time memset.
    #[inline(always)]
    pub fn reset(&mut self) {
        const WORDS: usize = core::mem::offset_of!(ScanState, pkt) / 8;
        let words = core::ptr::from_mut(self).cast::<u64>();
        let mut i = 0;
        while i < WORDS {
            // SAFETY: the first WORDS * 8 bytes of `self` are integer fields.
            unsafe { core::ptr::write_volatile(words.add(i), 0) };
            i += 1;
        }
    }

    /// True while a head is open: a request line was started and its blank line not seen.
    #[inline(always)]
    pub fn in_head(&self) -> bool {
        self.stop == 0 && !(self.state == S_METHOD && self.tok == 0)
    }
}

/// Scans the `st.n` bytes of the window, from `st.pos`.
#[inline(always)]
pub fn scan_window(s: &mut Scratch) {
    s.st.pos = 0;
    // Every callback consumes at least one byte, so `n` callbacks always suffice; the
    // loop normally ends far sooner (the callback returns 1 at the window's end).
    // SAFETY: `advance` has the callback signature bpf_loop expects; it finds its state
    // through the per-CPU map, so no context pointer is passed.
    unsafe {
        bpf_loop(
            s.st.n,
            advance as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
}

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
extern "C" fn advance(_idx: u32, _ctx: *mut c_void) -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: the per-CPU value is ours for the duration of the program run (XDP and TC
    // run with bottom halves disabled, so nothing else on this CPU touches it).
    let s = unsafe { &mut *s };
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
    if !step(s, pos as usize & WINDOW_MASK) {
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
    if s.st.state == S_LINE_START
        && CLASS[usize::from(s.buf[pos as usize & WINDOW_MASK])] & C_TCHAR != 0
    {
        // A name starts here: set the line up and read the name in the same call.
        begin_line(&mut s.st);
    }
    match s.st.state {
        S_SKIP => skip_run(s, pos, n),
        S_NAME => name_run(s, pos, n),
        S_OWS => {
            let p = ows_run(s, pos, n);
            if p != pos {
                return p;
            }
            // The value starts here.
            s.st.state = S_VALUE;
            value_run(s, pos, n)
        }
        S_VALUE => value_run(s, pos, n),
        S_METHOD => method_run(s, pos, n),
        S_VERSION => version_run(s, pos, n),
        S_TARGET => target_run(s, pos, n),
        _ => pos,
    }
}

/// Reads `HTTP/1.` and the minor version digit; any other byte is left to `step`, which
/// ends the scan on it.
#[inline(always)]
fn version_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.tok;
    let mut k = 0;
    while k < VERSION_PREFIX.len() as u32 {
        let i = pos + k;
        let t = tok + k;
        if i >= n || t >= VERSION_PREFIX.len() as u32 {
            break;
        }
        if s.buf[i as usize & WINDOW_MASK] != VERSION_PREFIX[t as usize & 7] {
            break;
        }
        k += 1;
    }
    s.st.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    if s.st.tok == VERSION_PREFIX.len() as u32
        && end < n
        && s.buf[end as usize & WINDOW_MASK].is_ascii_digit()
    {
        s.st.tok = VERSION_DONE;
        return end + 1;
    }
    end
}

/// A header line starts with a name byte.
#[inline(always)]
fn begin_line(st: &mut ScanState) {
    st.lines += 1;
    // Eight word stores. A plain `= [0; 64]` becomes a call to a byte-at-a-time memset
    // on BPF; volatile stores cannot be merged back into one.
    let words = st.name.name.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < MAX_NAME_LEN / 8 {
        // SAFETY: `NameKey` is 64 bytes, 8-byte aligned.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
    st.name_len = 0;
    st.flags = 0;
    st.state = S_NAME;
}

/// Reads method bytes (tchars, up to `MAX_METHOD_LEN`), and the SP after them.
#[inline(always)]
fn method_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.tok;
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n || tok + k >= MAX_METHOD_LEN {
            break;
        }
        if CLASS[usize::from(s.buf[i as usize & WINDOW_MASK])] & C_TCHAR == 0 {
            break;
        }
        k += 1;
    }
    s.st.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    end_token(s, end, n, S_TARGET)
}

/// Reads request-target bytes (anything but SP and controls), and the SP after them.
#[inline(always)]
fn target_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n {
            break;
        }
        let b = s.buf[i as usize & WINDOW_MASK];
        if b == b' ' || CLASS[usize::from(b)] & C_CTL != 0 {
            break;
        }
        k += 1;
    }
    s.st.tok += k;
    let end = forget(&mut s.st.pos, pos + k);
    end_token(s, end, n, S_VERSION)
}

/// True when the run stopped on `byte` inside the window.
#[inline(always)]
fn ends_on(s: &Scratch, end: u32, n: u32, byte: u8) -> bool {
    end < n && s.buf[end as usize & WINDOW_MASK] == byte
}

/// A request-line token (method or target) is complete at the SP after it: consume the SP
/// and go on to `next`.
#[inline(always)]
fn end_token(s: &mut Scratch, end: u32, n: u32, next: u32) -> u32 {
    if s.st.tok > 0 && ends_on(s, end, n, b' ') {
        s.st.state = next;
        s.st.tok = 0;
        return end + 1;
    }
    end
}

/// Words a skip run reads per call (256 bytes).
const SKIP_WORDS: u32 = 32;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const LFS: u64 = ONES * b'\n' as u64;

/// Skips the rest of a line, its LF included, eight bytes at a time.
///
/// Reads aligned words of the window (bytes before `pos` masked off) and finds an LF with
/// the has-zero-byte test on `word ^ 0x0a0a…`, whose lowest set bit is exact. Bytes past
/// `n` in the last word are stale: an LF found there does not count.
#[inline(always)]
fn skip_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    // Little endian: byte j of a word is bits 8j..8j+8.
    let mut keep = !0u64 << ((pos & 7) * 8);
    let mut hit = 0u64;
    let mut k = 0;
    while k < SKIP_WORDS {
        if w >= n {
            break;
        }
        let x = s.word(w) ^ LFS;
        hit = x.wrapping_sub(ONES) & !x & HIGHS & keep;
        if hit != 0 {
            break;
        }
        keep = !0;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    if hit != 0 {
        let lf = w + (hit.trailing_zeros() >> 3);
        if lf < n {
            s.st.state = S_LINE_START;
            return lf + 1;
        }
    }
    if w > n {
        n
    } else {
        w
    }
}

/// Reads name bytes (tchars), folded into `st.name`; stops at the first other byte.
///
/// Like every run, the loop body has no branch but its exit tests: the verifier cannot
/// prune states inside a loop it is still exploring, so each extra branch would double
/// its work per iteration.
#[inline(always)]
fn name_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let len = s.st.name_len;
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n {
            break;
        }
        let b = s.buf[i as usize & WINDOW_MASK];
        if CLASS[usize::from(b)] & C_TCHAR == 0 {
            break;
        }
        // Past MAX_NAME_LEN the index wraps and garbles the key, harmlessly: such a name
        // is never looked up (`name_len` keeps counting).
        s.st.name.name[opaque(len + k) as usize & (MAX_NAME_LEN - 1)] = FOLD[usize::from(b)];
        k += 1;
    }
    s.st.name_len = len + k;
    let end = forget(&mut s.st.pos, pos + k);
    if ends_on(s, end, n, b':') {
        // The name is complete: look it up and act; the colon is consumed. A name longer
        // than any rule's cannot match.
        if s.st.name_len as usize > MAX_NAME_LEN {
            s.st.state = S_SKIP;
        } else if !on_header(s) {
            s.st.stop = 1;
            return end + 1;
        }
        // Most lines are not identity headers: skip the value in the same call. Only the
        // single-path skip loop follows the branchy lookup, so the verifier's work adds up
        // rather than multiplying.
        let next = forget(&mut s.st.pos, end + 1);
        if s.st.state == S_SKIP {
            return skip_run(s, next, n);
        }
        return next;
    }
    end
}

/// Skips the optional whitespace before a value; stops at its first other byte.
#[inline(always)]
fn ows_run(s: &Scratch, pos: u32, n: u32) -> u32 {
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n || CLASS[usize::from(s.buf[i as usize & WINDOW_MASK])] & C_WS == 0 {
            break;
        }
        k += 1;
    }
    pos + k
}

/// Overwrites value bytes up to the next CR or LF, and takes an LF (a CR is left for
/// `step`: it may be a bare CR inside the value).
///
/// Every byte the run takes is overwritten: no choice inside the loop, which LLVM would
/// turn into a branch and the verifier into a second path per iteration. The checksum
/// parity is arithmetic.
#[inline(always)]
fn value_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut sum_old = 0u64;
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n {
            break;
        }
        let idx = i as usize & WINDOW_MASK;
        let old = s.buf[idx];
        if old == b'\n' || old == b'\r' {
            break;
        }
        s.buf[idx] = REDACT_FILLER;
        // The window starts at an even payload offset and the TCP payload at an even
        // offset of the segment: even window index = high byte of a checksummed word.
        sum_old += u64::from(old) << (((idx as u64 & 1) ^ 1) << 3);
        k += 1;
    }
    if k != 0 {
        // The filler's sum over the same positions: k bytes starting at parity `pos`.
        let first_high = u64::from(pos & 1 == 0);
        let highs = (u64::from(k) + first_high) / 2;
        let lows = u64::from(k) - highs;
        s.st.sum_old += sum_old;
        s.st.sum_new += u64::from(REDACT_FILLER) * ((highs << 8) + lows);
        s.st.dirty = 1;
        s.st.redacted = 1;
    }
    let end = forget(&mut s.st.pos, pos + k);
    if ends_on(s, end, n, b'\n') {
        s.st.state = S_LINE_START;
        return end + 1;
    }
    end
}

/// One byte of the state machine. Returns false to stop the scan.
#[inline(always)]
fn step(s: &mut Scratch, i: usize) -> bool {
    let b = s.buf[i];
    let class = CLASS[usize::from(b)];
    let st = &mut s.st;
    match st.state {
        // Hot states first: most bytes of a head are inside values that need no work.
        S_SKIP => {
            if b == b'\n' {
                st.state = S_LINE_START;
            }
        }
        S_VALUE | S_OWS => {
            // `value_run` stops at CR and LF. A CR is left as it is and the value goes
            // on (a bare CR inside a value must not end the redaction early).
            if b == b'\n' {
                st.state = S_LINE_START;
            } else if b != b'\r' {
                redact_byte(s, i, b);
            }
        }
        S_NAME => {
            if class & C_TCHAR != 0 {
                let len = st.name_len as usize;
                if len < MAX_NAME_LEN {
                    st.name.name[opaque(len as u32) as usize & (MAX_NAME_LEN - 1)] = fold(b);
                }
                // Counts past MAX_NAME_LEN so a longer name never matches a prefix.
                st.name_len += 1;
            } else if b == b':' {
                if st.name_len as usize <= MAX_NAME_LEN {
                    return on_header(s);
                }
                st.state = S_SKIP;
            } else {
                // Whitespace before the colon (RFC 9112 §5.1), a line without a colon,
                // or a non-token byte: invalid, never matched.
                st.malformed += 1;
                st.state = if b == b'\n' { S_LINE_START } else { S_SKIP };
            }
        }
        S_LINE_START => {
            if class & C_TCHAR != 0 {
                begin_line(st);
                st.name.name[0] = fold(b);
                st.name_len = 1;
            } else if b == b'\r' {
                st.state = S_BLANK_CR;
            } else if b == b'\n' {
                end_head(st);
            } else {
                st.lines += 1;
                st.malformed += 1;
                if class & C_WS != 0 && st.flags & F_REDACT != 0 {
                    // obs-fold (RFC 9112 §5.2): the line continues the previous value,
                    // which was being redacted; redact this part too.
                    st.state = S_OWS;
                } else {
                    st.state = S_SKIP;
                }
                return true;
            }
            st.flags = 0;
        }
        S_BLANK_CR => {
            if b == b'\n' {
                end_head(st);
            } else {
                st.malformed += 1;
                st.state = S_SKIP;
            }
        }
        S_METHOD => {
            if class & C_TCHAR != 0 && st.tok < MAX_METHOD_LEN {
                st.tok += 1;
            } else if b == b' ' && st.tok > 0 {
                st.state = S_TARGET;
                st.tok = 0;
            } else {
                // Not a request line: not HTTP, or a body after a head.
                return false;
            }
        }
        S_TARGET => {
            if b == b' ' && st.tok > 0 {
                st.state = S_VERSION;
                st.tok = 0;
            } else if b != b' ' && class & C_CTL == 0 {
                st.tok += 1;
            } else {
                return false;
            }
        }
        _ => {
            // S_VERSION
            let t = st.tok;
            if (t as usize) < VERSION_PREFIX.len() {
                if b != VERSION_PREFIX[t as usize & 7] {
                    return false;
                }
                st.tok += 1;
            } else if t == VERSION_PREFIX.len() as u32 {
                if !b.is_ascii_digit() {
                    return false;
                }
                st.tok = VERSION_DONE;
            } else if b == b'\n' {
                st.heads += 1;
                st.state = S_LINE_START;
                st.flags = 0;
            } else if b != b'\r' {
                return false;
            }
        }
    }
    true
}

#[inline(always)]
fn end_head(st: &mut ScanState) {
    // Pipelining: the next bytes may start another request.
    st.state = S_METHOD;
    st.tok = 0;
}

/// The name of a header line is complete: look it up and act.
#[inline(always)]
fn on_header(s: &mut Scratch) -> bool {
    let st = &mut s.st;
    st.state = S_SKIP;
    let Some(outcome) = policy::match_header(st) else {
        return true;
    };
    match outcome {
        action::REDACT => {
            // Redact every byte of the value (after OWS, up to CR/LF) in place, keeping
            // its length so TCP sequence space is untouched.
            st.flags = F_REDACT;
            st.state = S_OWS;
            true
        }
        action::DROP => {
            st.drop = 1;
            false
        }
        _ => true,
    }
}

/// Overwrites one value byte in the window and accounts for it in the checksum sums.
#[inline(always)]
fn redact_byte(s: &mut Scratch, i: usize, old: u8) {
    s.buf[i] = REDACT_FILLER;
    // The window starts at an even payload offset and the TCP payload at an even offset
    // of the segment, so byte parity in the window is parity in the checksummed words.
    let shift = if i & 1 == 0 { 8 } else { 0 };
    s.st.sum_old += u64::from(old) << shift;
    s.st.sum_new += u64::from(REDACT_FILLER) << shift;
    s.st.dirty = 1;
    s.st.redacted = 1;
}
