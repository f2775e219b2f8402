//! A segment in its flow: where it stands against the flow's saved state (next in
//! sequence, continuing an open head, resent), and the state saved for the next one.

use leakguard_common::{flow::seq_lt, FlowKey, FlowState, Stats};

use crate::{
    maps::FLOWS,
    state::{open_head, Scratch},
    verifier::copy_words,
};

use super::table;

/// `ScanState::kind`: what the segment is to its flow.
pub const KIND_NEW: u32 = 0;

/// The flow has an entry: the segment comes next in sequence, outside a head.
pub const KIND_NEXT: u32 = 1;

/// The flow has an entry: the segment continues its open head.
pub const KIND_CONT: u32 = 2;

/// The flow has an entry, its head is open, and the segment resends bytes before it.
pub const KIND_RESENT: u32 = 3;

/// The flow has an entry, no head is open, and the segment resends bytes: scanned
/// afresh, the entry left unchanged.
pub const KIND_RESCAN: u32 = 4;

/// Places the segment in its flow from the flow's saved state: the scanner state to
/// resume, and where scanning starts. Returns false when the segment must be dropped.
#[inline(always)]
pub fn resume(
    s: &mut Scratch,
    e: *mut FlowState,
    seq: u32,
    payload_len: u32,
    stats: &mut Stats,
) -> bool {
    copy_flow(&mut s.st.f, e.cast_const());
    s.st.kind = KIND_NEXT;
    let open = open_head(&s.st.f);
    let delta = s.st.f.next_seq.wrapping_sub(seq) as i32;
    if delta < 0 {
        if open {
            // Bytes of the head are missing (lost or reordered before this hook): what
            // this segment continues is unknown. Fail closed; TCP resends.
            stats.unordered_drops += 1;
            return false;
        }
        s.st.f.next_seq = seq;
        return true;
    }
    if delta > 0 {
        stats.retransmissions += 1;
        if s.st.f.forgot != 0 && seq_lt(seq, s.st.f.forgot_end) && (open || seq != s.st.f.head_seq)
        {
            // Redactions of these bytes are no longer remembered: never resend them
            // unredacted. (A resend from the last head's request line, that head
            // complete, is scanned afresh below and needs none: a head with more
            // redacted values than the ring holds still gets through when resent whole.)
            stats.unordered_drops += 1;
            return false;
        }
        // Resent bytes get the redactions they got when first sent...
        s.st.refill_end = (delta as u32).min(payload_len);
        if open {
            // ...and the head goes on after them.
            s.st.kind = KIND_RESENT;
            s.st.start = s.st.refill_end;
        } else {
            // ...and, outside a head, the segment is scanned afresh like one of a flow
            // without state (it may fill a gap, or hold a request start); the flow's
            // state is left as it is.
            s.st.kind = KIND_RESCAN;
            s.st.f.state = 0;
            s.st.f.tok = 0;
            return true;
        }
    }
    if open && s.st.start < payload_len {
        stats.continuations += 1;
        if delta == 0 {
            s.st.kind = KIND_CONT;
        }
    }
    true
}

/// Copies a flow state word by word (volatile: a plain copy of this size becomes a call
/// to BPF's byte-at-a-time memcpy).
#[inline(always)]
fn copy_flow(dst: *mut FlowState, src: *const FlowState) {
    const WORDS: usize = core::mem::size_of::<FlowState>() / 8;
    // SAFETY: both point to 8-aligned `FlowState`s of WORDS words.
    unsafe { copy_words::<WORDS>(dst.cast(), src.cast()) };
}

/// Keeps the flow's state for its next segment when it needs one: a head still open, or
/// redactions a retransmission must repeat. Otherwise the entry (if any) goes.
///
/// A head redacted within one segment keeps an entry too: TCP may resend any part of it
/// (a wire segment of a GSO skb lost after the hook, a GRO-merged segment resent alone),
/// and a part that starts inside the head has no request line to be recognised by.
#[inline(always)]
pub fn save_flow(s: &mut Scratch, key: &FlowKey, end_seq: u32, open: bool, truncated: bool) {
    // SAFETY: a field of the per-CPU value.
    let kind = unsafe { core::ptr::read_volatile(&s.st.kind) };
    let had_entry = kind != KIND_NEW;
    // SAFETY: a field of the per-CPU value.
    let spans = unsafe { core::ptr::read_volatile(&s.st.f.nspans) };
    if s.st.pkt.canary != 0 || (!had_entry && !open && spans == 0) || kind == KIND_RESCAN {
        // The common case: a head within one segment, nothing redacted, no entry before
        // or after.
        return;
    }
    let entry = if had_entry {
        FLOWS.get_ptr_mut(key)
    } else {
        None
    };
    let f = &mut s.st.f;
    if !open {
        // Back to "expecting a request line". Volatile: five adjacent zero stores would
        // be merged into a call to BPF's byte-at-a-time memset.
        // SAFETY: fields of the per-CPU value.
        unsafe {
            core::ptr::write_volatile(&mut f.state, 0);
            core::ptr::write_volatile(&mut f.tok, 0);
            core::ptr::write_volatile(&mut f.flags, 0);
            core::ptr::write_volatile(&mut f.name_len, 0);
            core::ptr::write_volatile(&mut f.num_len, 0);
        }
    }
    if seq_lt(f.next_seq, end_seq) {
        f.next_seq = end_seq;
    }
    // A head passed unseen past its cap (`incomplete_heads = "pass"`) cannot be
    // continued: the rest of this segment was not read.
    let keep = !truncated && (open || f.nspans != 0);
    match entry {
        Some(e) if keep => copy_flow(e, f),
        Some(_) => table::remove(key),
        None if keep => table::insert(key, f),
        None => {}
    }
}
