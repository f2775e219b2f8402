//! The per-CPU scanner state every stage shares (`SCRATCH`): the payload window, the
//! parser state and what the policy needs to know of the segment. A leaf: it imports
//! only the shared layouts, so the stages that use it never import each other for it.

use leakguard_common::{flow::parser::S_METHOD, FlowState, SCAN_WINDOW};

use crate::{
    proto::Addr,
    verifier::{opaque, zero_words},
};

pub const WINDOW_MASK: usize = SCAN_WINDOW - 1;

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
    /// What the segment is to its flow (`flow::KIND_*`).
    pub kind: u32,
    /// Payload offset where scanning ends: the segment's end, or where the open head
    /// reaches `max_head_bytes` (or `MAX_SCAN_BYTES`).
    pub limit: u32,
    /// Payload offset up to which remembered redactions are repeated (resent bytes).
    pub refill_end: u32,
    /// Payload bytes the window loop visits.
    pub loop_end: u32,
    /// The segment's payload length and TCP checksum offset, kept here across the window
    /// loop and read back after it (`pipeline::scan`).
    pub payload_len: u32,
    pub csum_off: u32,
    /// `form::BASE64` while a base64 stretch is decided (`scan::base64`), else 0; in
    /// `leakguard_b64_cut`, the earliest start of a number open at the cut.
    pub b64: u32,
    /// One's-complement sums of the redacted bytes before and after, at their position
    /// parity in the segment: the TCP checksum update (RFC 1624).
    pub sum_old: u64,
    pub sum_new: u64,
    /// Parser state, partial header name and redaction memory of the flow.
    pub f: FlowState,
    pub pkt: PacketMeta,
    /// The characters around a base64 trigger, as `b64::VALUE`s (`scan::base64`); after
    /// `pkt`, so that `reset` does not clear them.
    pub b64_buf: [u8; 64],
    /// The run loops' `swar::lanes` `lead_add` (`scan::base64::lead_add`: the base64
    /// form on or off), set once per window (`leakguard_scan_window`) and read from here
    /// in each word: kept in a register, it made the loops' caller spill one more value,
    /// a frame 6.1's 512 bytes of call-chain stack do not have.
    pub lead_add: u64,
    /// The lanes (`swar::lanes`) of the word before where the next run loop
    /// (`scan::target::run_words`) goes on, left by a loop that reached its word limit
    /// and after a base64 trigger (`digits::number_call`), and taken (zeroed) by the next
    /// loop: a run or a base64 stretch going on there is seen whole. A loop starting a new
    /// place takes none (it reads no word more); lanes left where no loop goes on only
    /// raise flags the slow paths reject, never hide one.
    pub prev: u64,
    /// XDP's TCP checksum field, read and written back here (`Packet::update_l4_csum`).
    /// In map memory, not on the stack: stack bytes a helper wrote are state the verifier
    /// compares, and on 6.1 those of this one call kept the redacting path's states from
    /// merging with the others' after the window loop (XDP: 24K instructions more).
    pub csum_field: [u8; 8],
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
pub fn word_index(at: u32) -> usize {
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
    pub fn set_word(&mut self, at: u32, v: u64) {
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
        // SAFETY: the first WORDS * 8 bytes of `self` are integer fields, 8-byte aligned.
        unsafe { zero_words::<WORDS>(core::ptr::from_mut(self).cast()) };
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

/// What the policy needs to know about the segment being scanned.
#[repr(C)]
pub struct PacketMeta {
    pub ifindex: u32,
    pub hook: u8,
    pub family: u8,
    /// 1 once `allow_mask` holds the allowlist lookup for `daddr`.
    pub allow_known: u8,
    /// 1 for a self-test canary: acted on, but no rule counter, match counter or event.
    pub canary: u8,
    pub sport: u16,
    pub dport: u16,
    /// The policy generation this packet uses (read once from `ACTIVE`).
    pub gen: u32,
    /// The identity-number check of that generation: on, action, allowlist bit.
    pub msisdn_on: u8,
    pub msisdn_action: u8,
    pub msisdn_allow_group: u8,
    /// `ScanConfig::incomplete_action` of that generation.
    pub incomplete_action: u8,
    /// The interface's counter slot (0: none of its own; see `IFSLOT`).
    pub slot: u32,
    pub allow_mask: u64,
    pub saddr: Addr,
    pub daddr: Addr,
}
