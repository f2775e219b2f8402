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
    flow::{bcd_digit, prefix_covered, prefix_possible},
    name::{fold, start_bit, CLASS, C_CTL, C_TCHAR, C_WS, TFOLD},
    swar, FlowState, MAX_METHOD_LEN, MAX_NAME_LEN, MAX_SPANS, MSISDN_MAX_DIGITS, MSISDN_MIN_DIGITS,
    NO_ALLOW_GROUP, REDACT_FILLER, SCAN_CHUNK, SCAN_WINDOW,
};

use crate::{
    bound::{forget, opaque},
    maps::{NAME_FILTER, SCRATCH},
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
/// A value checked for an identity number (`[msisdn]`): header names without a rule.
const S_NUM: u32 = 9;

// `ScanState::flags`.
/// The value being read belongs to a `redact` rule (also covers obs-fold continuations).
const F_REDACT: u32 = 1;
/// S_NUM: the value has started (a `+` or a digit was read).
const F_NUM_VAL: u32 = 2;
/// S_NUM: the digits have ended; only whitespace and CR may come before the LF.
const F_NUM_TAIL: u32 = 4;

const VERSION_PREFIX: &[u8; 7] = b"HTTP/1.";
/// `tok` value once the version digit was read: only [CR] LF may follow.
const VERSION_DONE: u32 = 8;

const WINDOW_MASK: usize = SCAN_WINDOW - 1;

const _: () = assert!(S_METHOD == 0);
const _: () = assert!(core::mem::offset_of!(ScanState, pkt) % 8 == 0);

/// Scanner state, one per CPU (inside [`Scratch`]), reset for every segment; the
/// resumable part (`f`) comes from and goes back to the flow's `FLOWS` entry.
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
    /// The window holds redacted bytes and must be written back; `[dirty_lo, dirty_hi)`
    /// spans them (window positions).
    pub dirty: u32,
    pub dirty_lo: u32,
    pub dirty_hi: u32,
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
    /// TCP sequence number of the segment's first payload byte.
    pub seq: u32,
    /// Payload offset where scanning starts: bytes before it were scanned when first
    /// sent (a retransmission); only their redactions are repeated.
    pub start: u32,
    /// Old (already scanned) bytes in the current window, and the span being re-applied.
    pub old_n: u32,
    pub rj: u32,
    pub rpos: u32,
    /// Identity numbers found by the `[msisdn]` check in this segment.
    pub msisdn: u32,
    /// What the segment is to its flow (`guard::KIND_*`).
    pub kind: u32,
    /// Payload offset where scanning ends: the segment's end, or where the open head
    /// reaches `max_head_bytes` (or `MAX_SCAN_BYTES`).
    pub limit: u32,
    /// Payload offset up to which remembered redactions are repeated (resent bytes).
    pub refill_end: u32,
    /// Payload bytes the window loop visits.
    pub loop_end: u32,
    pub _pad: u32,
    /// One's-complement sums of the redacted bytes before and after, at their position
    /// parity in the segment: the TCP checksum update (RFC 1624).
    pub sum_old: u64,
    pub sum_new: u64,
    /// Parser state, partial header name and redaction memory of the flow.
    pub f: FlowState,
    pub pkt: policy::PacketMeta,
}

/// 8-byte aligned (map values are) so that `word` loads are aligned.
#[repr(C, align(8))]
pub struct Scratch {
    pub buf: [u8; SCAN_WINDOW],
    pub st: ScanState,
}

/// Window index of position `at`: masked into the window, with the mask applied to a
/// value LLVM cannot see through. Where LLVM knows `at < n <= SCAN_WINDOW` (from a loop
/// condition, a clamp) it deletes a plain mask, and a verifier that learns nothing from
/// comparing two registers (6.1's) then sees an unbounded index. Every window access goes
/// through here, so each bound is visible at the access on every kernel.
#[inline(always)]
pub fn window_index(at: u32) -> usize {
    opaque(at) as usize & WINDOW_MASK
}

/// Window index of the aligned word holding position `at`. A plain mask: the word runs
/// (line skip, target, value) take `at` from a counter checked against the window's
/// length read from map memory, which LLVM cannot bound, so the mask stays; a barrier per
/// word cost the 16 KiB request a third of its time. The kernel matrix's verifier test
/// is what would catch a mask LLVM learned to drop here.
#[inline(always)]
fn word_index(at: u32) -> usize {
    at as usize & WINDOW_MASK & !7
}

impl Scratch {
    /// Window byte at position `at` (see `window_index`).
    #[inline(always)]
    pub fn at(&self, at: u32) -> u8 {
        self.buf[window_index(at)]
    }

    /// Overwrites the aligned 8-byte word of the window containing byte `at`.
    #[inline(always)]
    fn set_word(&mut self, at: u32, v: u64) {
        let off = word_index(at);
        // SAFETY: as in `word`.
        unsafe { core::ptr::write(self.buf.as_mut_ptr().add(off).cast::<u64>(), v) }
    }

    /// The aligned 8-byte word of the window containing byte `at`.
    #[inline(always)]
    pub fn word(&self, at: u32) -> u64 {
        let off = word_index(at);
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
        self.stop == 0 && !(self.f.state == S_METHOD && self.f.tok == 0)
    }
}

/// True when a flow's saved state is inside a head (a segment continues it).
#[inline(always)]
pub fn open_head(f: &FlowState) -> bool {
    !(f.state == S_METHOD && f.tok == 0)
}

/// Scans the `st.n` bytes of the window, from byte `from`.
#[inline(always)]
pub fn scan_window(s: &mut Scratch, from: u32) {
    s.st.pos = from;
    leakguard_scan_window();
}

/// The scan loop of a window, a global function. The verifier checks a global function
/// once, on its own, where it follows a static one (and the `bpf_loop` callbacks inside
/// it) again for every distinct caller state that reaches the call. Linux 6.1's verifier
/// marks every scalar of every frame precise once it tracks a value across a call, so
/// few caller states look alike there: the scan callback, followed per caller state, took
/// it past its 1,000,000-instruction limit. Behind this one call per window it is
/// checked once. (A global body per callback instead cost 2-6 ns per callback.)
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_scan_window() -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `advance`).
    let n = unsafe { (*s).st.n };
    // Every callback consumes at least one byte, so `n` callbacks always suffice; the
    // loop normally ends far sooner (the callback returns 1 at the window's end).
    // SAFETY: `advance` has the callback signature bpf_loop expects; it finds its state
    // through the per-CPU map, so no context pointer is passed.
    unsafe {
        bpf_loop(
            n,
            advance as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
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
        S_NUM => num_run(s, pos, n),
        S_METHOD | S_TARGET | S_VERSION => request_line_run(s, pos, n),
        _ => pos,
    }
}

/// The request line in one call where it fits: method, target and version runs in
/// sequence (each hands over to the next at its SP), then the line end. Each run is a
/// single-path loop whose exit position goes through map memory, so the sequence adds to
/// the verifier's work rather than multiplying it.
#[inline(always)]
fn request_line_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut p = pos;
    if s.st.f.state == S_METHOD {
        p = method_run(s, p, n);
    }
    if s.st.f.state == S_TARGET {
        p = target_run(s, p, n);
    }
    if s.st.f.state == S_VERSION && s.st.f.tok != VERSION_DONE {
        p = version_run(s, p, n);
    }
    if s.st.f.state == S_VERSION && s.st.f.tok == VERSION_DONE {
        // [CR] LF ends the request line (anything else is left to `step`).
        let at = if ends_on(s, p, n, b'\r') { p + 1 } else { p };
        if ends_on(s, at, n, b'\n') {
            s.st.heads += 1;
            s.st.f.state = S_LINE_START;
            s.st.f.flags = 0;
            return after_lf(s, at + 1, n);
        }
    }
    p
}

/// The byte after an LF that ended a line (the state is `S_LINE_START`): a blank line
/// ([CR] LF) ends the head here, in the same call, rather than a byte per call later.
#[inline(always)]
fn after_lf(s: &mut Scratch, q: u32, n: u32) -> u32 {
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

/// Reads `HTTP/1.` and the minor version digit; any other byte is left to `step`, which
/// ends the scan on it.
#[inline(always)]
fn version_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.f.tok;
    let mut k = 0;
    while k < VERSION_PREFIX.len() as u32 {
        let i = pos + k;
        let t = tok + k;
        if i >= n || t >= VERSION_PREFIX.len() as u32 {
            break;
        }
        if s.at(i) != VERSION_PREFIX[t as usize & 7] {
            break;
        }
        k += 1;
    }
    s.st.f.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    if s.st.f.tok == VERSION_PREFIX.len() as u32 && end < n && s.at(end).is_ascii_digit() {
        s.st.f.tok = VERSION_DONE;
        return end + 1;
    }
    end
}

/// True when the line starting at `pos` cannot be a rule's header: its first two bytes,
/// folded, begin no rule name (`NameFilter::starts`). Only with the identity-number check
/// off (it reads every value) and both bytes in this window and tokens (a one-byte name,
/// or a line cut by the window, is read as usual).
#[inline(always)]
fn no_rule_starts(s: &Scratch, pos: u32, n: u32) -> bool {
    if s.st.pkt.msisdn_on != 0 || pos + 1 >= n {
        return false;
    }
    let a = TFOLD[usize::from(s.at(pos))];
    let b = TFOLD[usize::from(s.at(pos + 1))];
    if b == 0 {
        return false;
    }
    let Some(f) = NAME_FILTER.get(s.st.pkt.gen) else {
        return false;
    };
    let (word, bit) = start_bit(a, b);
    f.starts[word & 63] & bit == 0
}

/// A header line that is skipped unread: counted, and no obs-fold continues its value.
#[inline(always)]
fn skip_line(st: &mut ScanState) {
    st.lines += 1;
    st.f.flags = 0;
    st.f.state = S_SKIP;
}

/// Lines skipped in one callback, at most: a callback costs more than skipping a short
/// line, and most lines of a request are skipped.
const SKIP_LINES: u32 = 8;

/// Skips the rest of this line, then up to `SKIP_LINES - 1` more that no rule's name can
/// start (`no_rule_starts`), in one callback. Each step is the same single-path skip run,
/// its position laundered through map memory, so the verifier's work adds up per line.
#[inline(always)]
fn skip_lines(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut p = skip_run(s, pos, n);
    let mut k = 1;
    while k < SKIP_LINES {
        let p0 = forget(&mut s.st.pos, p);
        if s.st.f.state != S_LINE_START
            || p0 >= n
            || CLASS[usize::from(s.at(p0))] & C_TCHAR == 0
            || !no_rule_starts(s, p0, n)
        {
            break;
        }
        skip_line(&mut s.st);
        p = skip_run(s, p0, n);
        k += 1;
    }
    p
}

/// A header line starts with a name byte.
#[inline(always)]
fn begin_line(st: &mut ScanState) {
    st.lines += 1;
    // Eight word stores. A plain `= [0; 64]` becomes a call to a byte-at-a-time memset
    // on BPF; volatile stores cannot be merged back into one.
    let words = st.f.name.name.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < MAX_NAME_LEN / 8 {
        // SAFETY: `NameKey` is 64 bytes, 8-byte aligned.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
    st.f.name_len = 0;
    st.f.flags = 0;
    st.f.state = S_NAME;
}

/// Reads method bytes (tchars, up to `MAX_METHOD_LEN`), and the SP after them.
#[inline(always)]
fn method_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let tok = s.st.f.tok;
    // Where this head began (for `scan.max_head_bytes`): the method's first byte, `tok`
    // bytes back (in an earlier call or segment when it spans them). Stored on every call
    // rather than under `tok == 0`: a branch here costs the verifier a third more work.
    s.st.f.head_seq = s.st.seq.wrapping_add(s.st.win_off + pos).wrapping_sub(tok);
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        if i >= n || tok + k >= MAX_METHOD_LEN {
            break;
        }
        if CLASS[usize::from(s.at(i))] & C_TCHAR == 0 {
            break;
        }
        k += 1;
    }
    s.st.f.tok = tok + k;
    let end = forget(&mut s.st.pos, pos + k);
    end_token(s, end, n, S_TARGET)
}

/// Words a target run reads per call (256 bytes).
const TARGET_WORDS: u32 = 32;

/// Reads request-target bytes (anything but SP and controls) eight at a time, and the SP
/// after them: a target is the longest token of most requests (paths with query strings
/// run to hundreds of bytes), and a byte at a time it cost a tenth of a 600 B request.
///
/// Aligned words of the window, bytes before `pos` masked off; `swar::target_end` finds
/// the first byte that ends the target. Bytes past `n` in the last word are stale: a stop
/// found there only means every byte up to `n` was taken.
#[inline(always)]
fn target_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    let mut hit = 0u64;
    let mut k = 0;
    while k < TARGET_WORDS {
        if w >= n {
            break;
        }
        hit = swar::target_end(s.word(w)) & keep;
        if hit != 0 {
            break;
        }
        keep = !0;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    let end = if hit != 0 {
        (w + swar::first(hit)).min(n)
    } else {
        w.min(n)
    };
    // `end >= pos`: bytes below `pos` are masked off, `w > pos` once the loop has passed
    // the first word, and `pos < n`.
    s.st.f.tok += end - pos;
    end_token(s, end, n, S_VERSION)
}

/// True when the run stopped on `byte` inside the window.
#[inline(always)]
fn ends_on(s: &Scratch, end: u32, n: u32, byte: u8) -> bool {
    end < n && s.at(end) == byte
}

/// A request-line token (method or target) is complete at the SP after it: consume the SP
/// and go on to `next`.
#[inline(always)]
fn end_token(s: &mut Scratch, end: u32, n: u32, next: u32) -> u32 {
    if s.st.f.tok > 0 && ends_on(s, end, n, b' ') {
        s.st.f.state = next;
        s.st.f.tok = 0;
        return end + 1;
    }
    end
}

/// Words a skip run reads per call (256 bytes).
const SKIP_WORDS: u32 = 32;

/// Skips the rest of a line, its LF included, eight bytes at a time.
///
/// Reads aligned words of the window (bytes before `pos` masked off) and finds an LF with
/// `swar::lf`, whose lowest set bit is exact. Bytes past `n` in the last word are stale:
/// an LF found there does not count.
#[inline(always)]
fn skip_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    // Two words per iteration, one exit test for both: the loop's own bookkeeping (bounds,
    // counter) was a third of its cost. The second word may lie past `n` (stale bytes,
    // still inside the buffer): an LF found there does not count (below).
    let (mut lo, mut hi) = (0u64, 0u64);
    let mut k = 0;
    while k < SKIP_WORDS / 2 {
        if w >= n {
            break;
        }
        lo = swar::lf(s.word(w)) & keep;
        hi = swar::lf(s.word(w + 8));
        if lo | hi != 0 {
            break;
        }
        keep = !0;
        w += 16;
        k += 1;
    }
    // The first LF: in the first word if it has one, else in the second. With neither,
    // the loop ran out of words or of window, and `w` is the first byte not yet read
    // (the loop advances `w` only past words without an LF).
    let (w, hit) = if lo != 0 {
        (w, lo)
    } else if hi != 0 {
        (w + 8, hi)
    } else {
        (w, 0)
    };
    let w = forget(&mut s.st.pos, w);
    if hit != 0 {
        let lf = w + swar::first(hit);
        if lf < n {
            s.st.f.state = S_LINE_START;
            return after_lf(s, lf + 1, n);
        }
        // A stale LF past the window's end: every byte up to `n` was skipped. (Returning
        // `w` here would move the scan backwards, onto bytes already taken.)
        return n;
    }
    if w > n {
        n
    } else {
        w
    }
}

/// Reads name bytes (tchars), folded into `st.f.name`; stops at the first other byte.
///
/// Like every run, the loop body has no branch but its exit tests: the verifier cannot
/// prune states inside a loop it is still exploring, so each extra branch would double
/// its work per iteration.
#[inline(always)]
fn name_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
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
            return skip_run(s, next, n);
        }
        return next;
    }
    end
}

/// A value byte that may start an identity number.
#[inline(always)]
fn starts_number(b: u8) -> bool {
    b == b'+' || b.is_ascii_digit() || CLASS[usize::from(b)] & C_WS != 0
}

/// Reads the digits of a value checked for an identity number: the `+` or digit that
/// starts it, then up to `MSISDN_MAX_DIGITS + 1` digits (one more proves it too long).
/// Any other byte is left to `step`.
#[inline(always)]
fn num_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    if s.st.f.flags & F_NUM_TAIL != 0 {
        return pos;
    }
    let mut p = pos;
    if s.st.f.flags & F_NUM_VAL == 0 {
        let b = s.at(pos);
        if b != b'+' && !b.is_ascii_digit() {
            return pos;
        }
        s.st.f.flags |= F_NUM_VAL;
        let at = s.st.seq.wrapping_add(s.st.win_off + pos);
        s.st.f.num_start = at;
        s.st.f.num_end = at;
        if b == b'+' {
            p += 1;
            s.st.f.num_end = at.wrapping_add(1);
        }
    }
    let len = s.st.f.num_len;
    let mut bcd = 0u64;
    let mut k = 0;
    while k <= MSISDN_MAX_DIGITS {
        let i = p + k;
        if i >= n || len + k > MSISDN_MAX_DIGITS {
            break;
        }
        let b = s.at(i);
        if !b.is_ascii_digit() {
            break;
        }
        bcd |= bcd_digit(b - b'0', len + k);
        k += 1;
    }
    s.st.f.num_bcd |= bcd;
    s.st.f.num_len = len + k;
    s.st.f.num_end = s.st.f.num_end.wrapping_add(k);
    let end = forget(&mut s.st.pos, p + k);
    if s.st.f.num_len > MSISDN_MAX_DIGITS {
        // Too many digits: not an identity number.
        s.st.f.state = S_SKIP;
    }
    end
}

/// The LF of a value checked for an identity number: decide, and act.
#[inline(always)]
fn end_number(s: &mut Scratch, i: usize) -> bool {
    let st = &mut s.st;
    st.f.state = S_LINE_START;
    let len = st.f.num_len;
    if st.f.flags & F_NUM_VAL == 0 || !(MSISDN_MIN_DIGITS..=MSISDN_MAX_DIGITS).contains(&len) {
        return true;
    }
    let Some(entry) = policy::number_prefix(&st.pkt, st.f.num_bcd, len) else {
        return true;
    };
    if !prefix_covered(entry) {
        return true;
    }
    match policy::match_number(st) {
        action::REDACT => {
            // The value's bytes in this window; those of earlier windows or segments were
            // overwritten there (see `number_pending`).
            let base = st.seq.wrapping_add(st.win_off);
            let lf = i as u32;
            let from = clamp_seq(base, st.f.num_start, lf);
            let to = clamp_seq(base, st.f.num_end, lf);
            redact_span(s, from, to);
            true
        }
        action::DROP => {
            st.drop = 1;
            false
        }
        _ => true,
    }
}

/// A byte of a value checked for an identity number that `num_run` did not take.
#[inline(always)]
fn num_byte(s: &mut Scratch, i: usize, b: u8, class: u8) -> bool {
    if b == b'\n' {
        return end_number(s, i);
    }
    let f = &mut s.st.f;
    if f.flags & F_NUM_VAL == 0 {
        // Whitespace before the value; anything else is not a number.
        if class & C_WS == 0 {
            f.state = S_SKIP;
        }
    } else if class & C_WS != 0 || b == b'\r' {
        f.flags |= F_NUM_TAIL;
    } else {
        f.state = S_SKIP;
    }
    true
}

/// Bytes of a number value: an optional `+` and at most `MSISDN_MAX_DIGITS` digits.
const NUMBER_BYTES: u32 = MSISDN_MAX_DIGITS + 1;

/// Overwrites window bytes `[from, to)` (a number: at most 16 bytes) and remembers them.
#[inline(always)]
fn redact_span(s: &mut Scratch, from: u32, to: u32) {
    if from >= to {
        return;
    }
    let end = fill_run::<NUMBER_BYTES>(s, from, to);
    s.st.f
        .note_span(s.st.seq.wrapping_add(s.st.win_off + from), end - from);
}

/// At the end of a window (or segment): a value that may still become an identity number
/// under `redact` is overwritten now, as far as it goes; the bytes will have left before
/// the rest of the value shows whether it is one. (A value that turns out not to be one
/// keeps these bytes overwritten: the cost of never letting part of a number out.)
#[inline(always)]
pub fn number_pending(s: &mut Scratch) {
    let st = &mut s.st;
    if st.stop != 0
        || st.f.state != S_NUM
        || st.f.flags & F_NUM_VAL == 0
        || st.pkt.msisdn_action != action::REDACT
    {
        return;
    }
    // A trusted destination gets the number as it is.
    let group = st.pkt.msisdn_allow_group;
    if group != NO_ALLOW_GROUP && policy::allowed(&mut st.pkt, group) {
        return;
    }
    let len = st.f.num_len;
    if len > MSISDN_MAX_DIGITS {
        return;
    }
    if len > 0 {
        match policy::number_prefix(&st.pkt, st.f.num_bcd, len) {
            Some(e) if prefix_possible(e, len) => {}
            _ => return,
        }
    }
    let base = st.seq.wrapping_add(st.win_off);
    let n = st.n;
    let from = clamp_seq(base, st.f.num_start, n);
    let to = clamp_seq(base, st.f.num_end, n);
    redact_span(s, from, to);
}

/// Skips the optional whitespace before a value; stops at its first other byte.
#[inline(always)]
fn ows_run(s: &Scratch, pos: u32, n: u32) -> u32 {
    let mut k = 0;
    while k < SCAN_CHUNK {
        let i = pos + k;
        // The class byte through `opaque`: LLVM knows the table and would otherwise test
        // `b == ' ' || b == '\t'`, two branches per iteration, which the verifier explores
        // as 2^64 paths.
        let class = opaque(u32::from(CLASS[usize::from(s.at(i))]));
        if i >= n || class & u32::from(C_WS) == 0 {
            break;
        }
        k += 1;
    }
    pos + k
}

/// Words a value run overwrites per call, at most (64 bytes, as `SCAN_CHUNK`), besides
/// the last, partial one.
const VALUE_WORDS: u32 = SCAN_CHUNK / 8;

/// Overwrites value bytes up to the next CR or LF, eight at a time, and takes an LF or a
/// CR LF (a bare CR is left for `step`: it may be inside the value).
///
/// Whole aligned words of the window with no line end are overwritten in the loop (the
/// bytes before `pos` in the first kept as they are): its body has no branch but its
/// exits, one verifier path per iteration. The last word, cut by a line end or by the
/// window's end `n` (bytes past `n` are stale), is blended after the loop. The old
/// bytes' checksum weight (`swar::checksum_weight`: windows start at even payload
/// offsets, so an aligned word's even bytes are the high bytes of checksummed words)
/// goes to `filled`.
#[inline(always)]
fn value_run(s: &mut Scratch, pos: u32, n: u32) -> u32 {
    let mut w = pos & !7;
    let mut keep = swar::bytes_from(pos & 7);
    let mut sum_old = 0u64;
    let mut k = 0;
    while k < VALUE_WORDS {
        if w + 8 > n {
            break;
        }
        let x = s.word(w);
        if swar::line_end(x) & keep != 0 {
            break;
        }
        sum_old += fill_word(s, w, x, keep);
        keep = !0;
        w += 8;
        k += 1;
    }
    let w = forget(&mut s.st.pos, w);
    let mut end = w;
    if k < VALUE_WORDS && w < n {
        // The last word: up to its first line end, and not past `n`. A line end is never
        // before `pos` (masked), and `n > pos`, so `end >= pos`.
        let x = s.word(w);
        let stop = swar::line_end(x) & keep;
        let upto = if stop != 0 { swar::first(stop) } else { 8 };
        let upto = upto.min(n - w);
        sum_old += fill_word(s, w, x, keep & swar::low_bytes(upto));
        end = w + upto;
    }
    let taken = end - pos;
    if taken != 0 {
        filled(&mut s.st, pos, taken, sum_old);
        s.st.f
            .note_span(s.st.seq.wrapping_add(s.st.win_off + pos), taken);
    }
    let end = forget(&mut s.st.pos, end);
    if ends_on(s, end, n, b'\n') {
        s.st.f.state = S_LINE_START;
        return after_lf(s, end + 1, n);
    }
    // CR LF ends the line here too, rather than a byte per call in `step`; a CR not
    // followed by LF (in this window) is left to `step`.
    if ends_on(s, end, n, b'\r') && ends_on(s, end + 1, n, b'\n') {
        s.st.f.state = S_LINE_START;
        return after_lf(s, end + 2, n);
    }
    end
}

/// Overwrites the bytes of window word `w` (whose value is `x`) that `m` selects with the
/// filler; returns the old bytes' checksum weight.
#[inline(always)]
fn fill_word(s: &mut Scratch, w: u32, x: u64, m: u64) -> u64 {
    const FILLER: u64 = swar::ONES * REDACT_FILLER as u64;
    s.set_word(w, (x & !m) | (FILLER & m));
    swar::checksum_weight(x & m)
}

/// Accounts for `k` bytes from window position `pos` overwritten with the filler, whose
/// old bytes sum (at their parity) to `sum_old`.
#[inline(always)]
fn filled(st: &mut ScanState, pos: u32, k: u32, sum_old: u64) {
    // The filler's sum over the same positions: k bytes starting at parity `pos`.
    let first_high = u64::from(pos & 1 == 0);
    let highs = (u64::from(k) + first_high) / 2;
    let lows = u64::from(k) - highs;
    st.sum_old += sum_old;
    st.sum_new += u64::from(REDACT_FILLER) * ((highs << 8) + lows);
    mark_dirty(st, pos, pos + k);
    st.redacted = 1;
}

/// Window bytes `[lo, hi)` were overwritten.
#[inline(always)]
fn mark_dirty(st: &mut ScanState, lo: u32, hi: u32) {
    if st.dirty == 0 || lo < st.dirty_lo {
        st.dirty_lo = lo;
    }
    if st.dirty == 0 || hi > st.dirty_hi {
        st.dirty_hi = hi;
    }
    st.dirty = 1;
}

/// Overwrites window bytes `[pos, end)` (at most `MAX` of them) with the filler;
/// returns where it stopped.
#[inline(always)]
fn fill_run<const MAX: u32>(s: &mut Scratch, pos: u32, end: u32) -> u32 {
    let mut sum_old = 0u64;
    let mut k = 0;
    while k < MAX {
        let i = pos + k;
        if i >= end {
            break;
        }
        let idx = window_index(i);
        sum_old += u64::from(s.buf[idx]) << (((idx as u64 & 1) ^ 1) << 3);
        s.buf[idx] = REDACT_FILLER;
        k += 1;
    }
    if k != 0 {
        filled(&mut s.st, pos, k, sum_old);
    }
    pos + k
}

/// Window position of sequence number `seq`, clamped to `[0, max]`.
#[inline(always)]
fn clamp_seq(base: u32, seq: u32, max: u32) -> u32 {
    let d = seq.wrapping_sub(base) as i32;
    if d < 0 {
        0
    } else if d as u32 > max {
        max
    } else {
        d as u32
    }
}

/// `bpf_loop` callback: repeats, on the `st.old_n` already-scanned bytes at the start of
/// the window, the redactions remembered in the flow's spans (a retransmission carries
/// the sender's original bytes). One span, up to `SCAN_CHUNK` bytes, per call.
#[inline(never)]
extern "C" fn refill(_idx: u32, _ctx: *mut c_void) -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU value, ours for the program run (see `advance`).
    let s = unsafe { &mut *s };
    let j = s.st.rj;
    if j >= s.st.f.nspans || j >= MAX_SPANS as u32 {
        return 1;
    }
    let span = s.st.f.spans[j as usize % MAX_SPANS];
    let base = s.st.seq.wrapping_add(s.st.win_off);
    let old = s.st.old_n;
    let lo = clamp_seq(base, span.start, old);
    let hi = clamp_seq(base, span.end, old);
    let from = if s.st.rpos > lo { s.st.rpos } else { lo };
    if from >= hi {
        s.st.rj = j + 1;
        s.st.rpos = 0;
        return 0;
    }
    s.st.rpos = fill_run::<SCAN_CHUNK>(s, from, hi);
    0
}

/// Repeats the flow's remembered redactions on the first `old` bytes of the window.
#[inline(always)]
pub fn refill_window(s: &mut Scratch, old: u32) {
    s.st.old_n = old;
    s.st.rj = 0;
    s.st.rpos = 0;
    leakguard_refill_window();
}

/// The refill loop of a window, a global function checked once (see
/// `leakguard_scan_window`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leakguard_refill_window() -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU value, ours for the program run (see `advance`).
    let old = unsafe { (*s).st.old_n };
    // Each call fills up to SCAN_CHUNK bytes or moves to the next span.
    // SAFETY: `refill` has the callback signature; its state is in the per-CPU map.
    unsafe {
        bpf_loop(
            old / SCAN_CHUNK + 2 * MAX_SPANS as u32 + 1,
            refill as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
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
            } else {
                // Not a request line: not HTTP, or a body after a head.
                return false;
            }
        }
        S_TARGET => {
            if b == b' ' && st.f.tok > 0 {
                st.f.state = S_VERSION;
                st.f.tok = 0;
            } else if b != b' ' && class & C_CTL == 0 {
                st.f.tok += 1;
            } else {
                return false;
            }
        }
        _ => {
            // S_VERSION
            let t = st.f.tok;
            if (t as usize) < VERSION_PREFIX.len() {
                if b != VERSION_PREFIX[t as usize & 7] {
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
    st.f.state = S_METHOD;
    st.f.tok = 0;
}

/// The name of a header line is complete: look it up and act.
#[inline(always)]
fn on_header(s: &mut Scratch) -> bool {
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

/// Overwrites one value byte in the window and accounts for it in the checksum sums.
#[inline(always)]
fn redact_byte(s: &mut Scratch, i: usize, old: u8) {
    s.st.f
        .note_span(s.st.seq.wrapping_add(s.st.win_off + i as u32), 1);
    s.buf[i] = REDACT_FILLER;
    // The window starts at an even payload offset and the TCP payload at an even offset
    // of the segment, so byte parity in the window is parity in the checksummed words.
    let shift = if i & 1 == 0 { 8 } else { 0 };
    s.st.sum_old += u64::from(old) << shift;
    s.st.sum_new += u64::from(REDACT_FILLER) << shift;
    mark_dirty(&mut s.st, i as u32, i as u32 + 1);
    s.st.redacted = 1;
}
