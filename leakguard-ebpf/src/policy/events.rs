//! Match events through the `EVENTS` ring: where and what matched, never a byte of the
//! value.

use aya_ebpf::bindings::BPF_RB_AVAIL_DATA;
use leakguard_common::{Event, EVENT_HEAD_BYTES, EVENT_RING_BYTES, MAX_NAME_LEN, MSISDN_RULE_ID};

use crate::{maps::EVENTS, state::ScanState, verifier::copy_words};

/// This object's build id (see `leakguard_common::build_id`); an immediate in the code,
/// so two builds with different ids are two different programs to the kernel.
const BUILD: u32 = leakguard_common::build_id(option_env!("LEAKGUARD_EBPF_BUILD"));

/// Ring-buffer space a rule's event takes: the 8-byte record header and the event head.
const EVENT_RECORD_BYTES: u64 = 8 + EVENT_HEAD_BYTES as u64;

const _: () = assert!(EVENT_RECORD_BYTES == 64);

/// Sends the match event. A rule's match sends the head only (the rule id names the
/// header); the identity-number check's sends the header name too. Never a byte of the
/// value.
#[inline(always)]
pub fn emit(st: &ScanState, rule_id: u32, outcome: u8) -> bool {
    // A full ring (matches outrunning the daemon's drain) is seen without the ring's
    // lock, which a reserve takes even to fail. The kernel refuses a record unless the
    // data after it stays under the ring's size: with 64-byte records the ring takes
    // 4,095, not 4,096. Racy by design: a drain right after the query costs one lost
    // event, counted like any other.
    if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) + EVENT_RECORD_BYTES
        >= u64::from(EVENT_RING_BYTES)
    {
        return false;
    }
    // One reservation per branch: the verifier needs a reservation's size constant on
    // every path, so the two sizes cannot share one call.
    if rule_id == MSISDN_RULE_ID {
        // The whole event: the header name the number came under.
        let Some(mut e) = EVENTS.reserve_bytes(core::mem::size_of::<Event>(), 0) else {
            return false;
        };
        let ev = e.as_mut_ptr().cast::<Event>();
        // SAFETY: the reservation is a whole `Event`, 8-byte aligned; the name is copied
        // a word at a time (volatile: a 64-byte copy would become BPF's bytewise memcpy).
        unsafe {
            fill_head(ev, st, rule_id, outcome);
            (*ev).name_len = st.f.name_len.min(MAX_NAME_LEN as u32);
            copy_words::<{ MAX_NAME_LEN / 8 }>(
                (*ev).name.name.as_mut_ptr(),
                st.f.name.name.as_ptr(),
            );
        }
        e.submit(0);
    } else {
        // The head only: the rule id names the header.
        let Some(mut e) = EVENTS.reserve_bytes(EVENT_HEAD_BYTES, 0) else {
            return false;
        };
        let ev = e.as_mut_ptr().cast::<Event>();
        // SAFETY: the reservation holds every field before `name`, 8-byte aligned; only
        // those are written.
        unsafe {
            fill_head(ev, st, rule_id, outcome);
            (*ev).name_len = 0;
        }
        e.submit(0);
    }
    true
}

/// Writes every field of the event head but `name_len`.
///
/// # Safety
/// `ev` must point to at least `EVENT_HEAD_BYTES` writable bytes, 8-byte aligned.
#[inline(always)]
unsafe fn fill_head(ev: *mut Event, st: &ScanState, rule_id: u32, outcome: u8) {
    let pkt = &st.pkt;
    // SAFETY: per the contract; every field written lies before `name`.
    unsafe {
        (*ev).ifindex = pkt.ifindex;
        (*ev).rule_id = rule_id;
        (*ev).hook = pkt.hook;
        (*ev).action = outcome;
        (*ev).family = pkt.family;
        (*ev).place = super::place_of(st, rule_id);
        (*ev).sport = pkt.sport;
        (*ev).dport = pkt.dport;
        copy_words::<2>((*ev).saddr.as_mut_ptr(), pkt.saddr.0.as_ptr());
        copy_words::<2>((*ev).daddr.as_mut_ptr(), pkt.daddr.0.as_ptr());
        (*ev).build = BUILD;
    }
}
