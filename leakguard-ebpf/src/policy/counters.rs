//! Match counters per interface, hook, rule and outcome: an array slot where the
//! interface has one and the rule id is low, a hash entry otherwise.

use aya_ebpf::bindings::BPF_NOEXIST;
use leakguard_common::{action, stats_index, MatchKey, MATCH_ARRAY_RULES};

use crate::{
    maps::{MATCHES, MATCH_COUNTS},
    state::PacketMeta,
};

/// The per-interface match counter: in the interface's `MATCH_COUNTS` entry when it has
/// a slot and the rule id is below `MATCH_ARRAY_RULES`, else in the `MATCHES` hash.
#[inline(always)]
pub fn count_match(pkt: &PacketMeta, rule_id: u32, outcome: u8, place: u8) {
    if pkt.slot != 0 && rule_id < MATCH_ARRAY_RULES {
        if let Some(c) = MATCH_COUNTS.get_ptr_mut(stats_index(pkt.slot, pkt.hook)) {
            let i = (rule_id as usize * action::OUTCOMES + usize::from(outcome))
                & (MATCH_ARRAY_RULES as usize * action::OUTCOMES - 1);
            // SAFETY: this CPU's value; the index is masked to the array's length.
            unsafe { (*c).n[i] += 1 };
            return;
        }
    }
    count_match_hash(pkt, rule_id, outcome, place);
}

/// The `MATCHES` hash counter. NOEXIST keeps a concurrent first insert on another CPU
/// from being overwritten.
#[inline(always)]
fn count_match_hash(pkt: &PacketMeta, rule_id: u32, outcome: u8, place: u8) {
    // Built as two words: a `MatchKey` literal clears its padding array with a call to
    // BPF's byte-at-a-time memset. Layout (little endian): ifindex, rule_id | hook,
    // outcome, place, zero padding.
    let words: [u64; 2] = [
        u64::from(pkt.ifindex) | (u64::from(rule_id) << 32),
        u64::from(pkt.hook) | (u64::from(outcome) << 8) | (u64::from(place) << 16),
    ];
    const _: () = assert!(core::mem::size_of::<MatchKey>() == 16);
    // SAFETY: `MatchKey` is repr(C), 16 bytes, align 4, all integers: any bits are valid.
    let key = unsafe { &*words.as_ptr().cast::<MatchKey>() };
    if let Some(c) = MATCHES.get_ptr_mut(key) {
        // SAFETY: this CPU's value of the entry.
        unsafe { *c += 1 };
    } else if MATCHES.insert(key, &1, u64::from(BPF_NOEXIST)).is_err() {
        if let Some(c) = MATCHES.get_ptr_mut(key) {
            // SAFETY: as above.
            unsafe { *c += 1 };
        }
    }
}
