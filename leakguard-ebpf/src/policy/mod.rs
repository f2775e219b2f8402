//! Policy lookups for a complete header name or a found number: rule, allowlist, then
//! counting and the match event. Runs once per header line whose name is complete, never
//! per byte.

mod counters;
mod events;

pub use events::emit;

use aya_ebpf::maps::lpm_trie::Key;
use leakguard_common::{
    action,
    flow::{
        parser::{F_COOKIE, S_TARGET},
        RAW_DIGITS,
    },
    form, is_rule_action,
    name::{self, filter_bit},
    place, NameKey, Rule, COOKIE_ACTION, FAMILY_IPV4, IGNORE_ACTION, MAX_NAME_LEN, MSISDN_RULE_ID,
    NO_ALLOW_GROUP, RULE_PROBES, RULE_SLOTS,
};

use crate::{
    maps::{
        ALLOW_V4_0, ALLOW_V4_1, ALLOW_V6_0, ALLOW_V6_1, MSISDN_PREFIX_0, MSISDN_PREFIX_1,
        NAME_FILTER, RULE_COUNTERS, RULE_TABLE,
    },
    state::{PacketMeta, ScanState},
};

use counters::count_match;

/// Looks the current header name up. On a match: counts it, emits an event and returns
/// the outcome (`ALLOW` when the destination is trusted by the rule).
#[inline(always)]
pub fn match_header(st: &mut ScanState) -> Option<u8> {
    // Cheap rejection first: one array load and a bit test instead of hashing 64 bytes.
    let len = st.f.name_len as usize;
    let first = st.f.name.name[0];
    let last = st.f.name.name[len.wrapping_sub(1) & (MAX_NAME_LEN - 1)];
    let gen = st.pkt.gen;
    let filter = NAME_FILTER.get(gen)?;
    if filter.by_len[len & 127] & (1 << filter_bit(first, last)) == 0 {
        return None;
    }
    let rule = find_rule(gen, name::hash(&st.f.name, filter.seed), &st.f.name)?;
    if !is_rule_action(rule.action) {
        // The number check's marker, not counted: an ignored name, or `Cookie`, whose
        // value is read for runs of digits (`scan/cookie.rs`). Set here, branch-free: a
        // branch on the outcome in `on_header` (inlined twice in the scan callback) cost
        // the callback 64 more bytes of stack, which Linux 6.1 does not have.
        st.f.flags = u32::from(rule.action == COOKIE_ACTION) * F_COOKIE;
        return Some(IGNORE_ACTION);
    }
    Some(found(st, rule.id, rule.action, rule.allow_group))
}

/// The rule of a folded name in generation `gen`'s rule table: linear probing from the
/// hash's home slot, at most `RULE_PROBES` slots, ended early by an empty one.
#[inline(always)]
fn find_rule(gen: u32, h: u64, name: &NameKey) -> Option<Rule> {
    let base = (gen & 1) * RULE_SLOTS;
    let mut k = 0;
    while k < RULE_PROBES {
        let slot = RULE_TABLE.get(base + name::slot(h, k))?;
        if slot.hash == 0 {
            return None;
        }
        if slot.hash == h && same_name(&slot.name, name) {
            return Some(slot.rule);
        }
        k += 1;
    }
    None
}

/// Compares two keys a word at a time (a slice compare would call BPF's bytewise memcmp).
#[inline(always)]
fn same_name(a: &NameKey, b: &NameKey) -> bool {
    let (a, b) = (a.name.as_ptr().cast::<u64>(), b.name.as_ptr().cast::<u64>());
    let mut diff = 0;
    let mut i = 0;
    while i < MAX_NAME_LEN / 8 {
        // SAFETY: both keys are 8-byte aligned and MAX_NAME_LEN bytes long.
        diff |= unsafe { core::ptr::read(a.add(i)) ^ core::ptr::read(b.add(i)) };
        i += 1;
    }
    diff == 0
}

/// A match of rule `id` (or of the identity-number check): the outcome after the
/// allowlist, counted, with an event.
#[inline(always)]
fn found(st: &mut ScanState, id: u32, act: u8, allow_group: u8) -> u8 {
    let mut outcome = act;
    if allow_group != NO_ALLOW_GROUP && allowed(&mut st.pkt, allow_group) {
        outcome = action::ALLOW;
    }
    if st.pkt.canary != 0 {
        return outcome;
    }
    if let Some(c) = RULE_COUNTERS.get_ptr_mut(id) {
        // SAFETY: per-CPU value; index masked to the array length.
        unsafe { (*c).outcomes[usize::from(outcome) & (action::OUTCOMES - 1)] += 1 };
    }
    count_match(&st.pkt, id, outcome, place_of(st, id));
    // Once the ring was found full, the segment's later matches do not ask again (the
    // query is a helper call on the ring's shared page): their events are lost too.
    if st.events_lost != 0 || !emit(st, id, outcome) {
        st.events_lost += 1;
    }
    outcome
}

/// Where a match of rule `id` was found ([`place`]) and in which [`form`]: a number read
/// in the request target is the target's, one in a `Cookie` line a cookie's; every other
/// match (rules', numbers in header values) a header's. A number is in hex form when its
/// run had more digits than a decimal number can (`RAW_DIGITS`): then `num_*` hold a hex
/// stretch (`scan::digits`).
#[inline(always)]
pub fn place_of(st: &ScanState, id: u32) -> u8 {
    let p = if st.f.state == S_TARGET {
        place::TARGET
    } else if st.f.flags & F_COOKIE != 0 {
        place::COOKIE
    } else {
        place::HEADER
    };
    // A base64 stretch is at most 15 digits, so never taken for hex.
    let hex = id == MSISDN_RULE_ID && st.f.num_len > RAW_DIGITS;
    place::with_form(p, if hex { form::HEX } else { st.b64 as u8 })
}

/// The value of the current header line is an identity number: count it and return
/// what to do.
#[inline(always)]
pub fn match_number(st: &mut ScanState) -> u8 {
    st.msisdn += 1;
    let group = st.pkt.msisdn_allow_group;
    found(st, MSISDN_RULE_ID, st.pkt.msisdn_action, group)
}

/// Longest match of a number's first `len` digits (`bcd`) in the prefix trie.
#[inline(always)]
pub fn number_prefix(pkt: &PacketMeta, bcd: u64, len: u32) -> Option<u8> {
    let key = Key::new(len * 4, bcd.to_be_bytes());
    if pkt.gen == 0 {
        MSISDN_PREFIX_0.get(&key)
    } else {
        MSISDN_PREFIX_1.get(&key)
    }
    .copied()
}

/// True when the destination is on the allowlist `group`. One trie lookup per segment,
/// done only when a rule with an allowlist matched.
#[inline(always)]
pub fn allowed(pkt: &mut PacketMeta, group: u8) -> bool {
    if pkt.allow_known == 0 {
        pkt.allow_mask = if pkt.family == FAMILY_IPV4 {
            let d = &pkt.daddr.0;
            let key = Key::new(32, [d[0], d[1], d[2], d[3]]);
            if pkt.gen == 0 {
                ALLOW_V4_0.get(&key)
            } else {
                ALLOW_V4_1.get(&key)
            }
            .copied()
            .unwrap_or(0)
        } else {
            let key = Key::new(128, pkt.daddr.0);
            if pkt.gen == 0 {
                ALLOW_V6_0.get(&key)
            } else {
                ALLOW_V6_1.get(&key)
            }
            .copied()
            .unwrap_or(0)
        };
        pkt.allow_known = 1;
    }
    pkt.allow_mask & (1u64 << (group & 63)) != 0
}
