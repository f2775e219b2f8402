//! Policy lookups for a complete header name: rule, allowlist, then counting and the
//! match event. Runs once per header line whose name is complete, never per byte.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA},
    maps::lpm_trie::Key,
};
use leakguard_common::{
    action,
    name::{self, filter_bit},
    stats_index, Event, MatchKey, NameKey, Rule, EVENT_HEAD_BYTES, EVENT_RING_BYTES, FAMILY_IPV4,
    IGNORE_ACTION, MATCH_ARRAY_RULES, MAX_NAME_LEN, MSISDN_RULE_ID, NO_ALLOW_GROUP, RULE_PROBES,
    RULE_SLOTS,
};

use crate::{
    http::ScanState,
    maps::{
        ALLOW_V4_0, ALLOW_V4_1, ALLOW_V6_0, ALLOW_V6_1, EVENTS, MATCHES, MATCH_COUNTS,
        MSISDN_PREFIX_0, MSISDN_PREFIX_1, NAME_FILTER, RULE_COUNTERS, RULE_TABLE,
    },
    parse::Addr,
};

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
    if rule.action == IGNORE_ACTION {
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
    count_match(&st.pkt, id, outcome);
    // Once the ring was found full, the segment's later matches do not ask again (the
    // query is a helper call on the ring's shared page): their events are lost too.
    if st.events_lost != 0 || !emit(st, id, outcome) {
        st.events_lost += 1;
    }
    outcome
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

/// The per-interface match counter: in the interface's `MATCH_COUNTS` entry when it has
/// a slot and the rule id is below `MATCH_ARRAY_RULES`, else in the `MATCHES` hash.
#[inline(always)]
fn count_match(pkt: &PacketMeta, rule_id: u32, outcome: u8) {
    if pkt.slot != 0 && rule_id < MATCH_ARRAY_RULES {
        if let Some(c) = MATCH_COUNTS.get_ptr_mut(stats_index(pkt.slot, pkt.hook)) {
            let i = (rule_id as usize * action::OUTCOMES + usize::from(outcome))
                & (MATCH_ARRAY_RULES as usize * action::OUTCOMES - 1);
            // SAFETY: this CPU's value; the index is masked to the array's length.
            unsafe { (*c).n[i] += 1 };
            return;
        }
    }
    count_match_hash(pkt, rule_id, outcome);
}

/// The `MATCHES` hash counter. NOEXIST keeps a concurrent first insert on another CPU
/// from being overwritten.
#[inline(always)]
fn count_match_hash(pkt: &PacketMeta, rule_id: u32, outcome: u8) {
    // Built as two words: a `MatchKey` literal clears its padding array with a call to
    // BPF's byte-at-a-time memset. Layout (little endian): ifindex, rule_id | hook,
    // outcome, zero padding.
    let words: [u64; 2] = [
        u64::from(pkt.ifindex) | (u64::from(rule_id) << 32),
        u64::from(pkt.hook) | (u64::from(outcome) << 8),
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
        (*ev)._pad = 0;
        (*ev).sport = pkt.sport;
        (*ev).dport = pkt.dport;
        copy_words::<2>((*ev).saddr.as_mut_ptr(), pkt.saddr.0.as_ptr());
        copy_words::<2>((*ev).daddr.as_mut_ptr(), pkt.daddr.0.as_ptr());
        (*ev).build = BUILD;
    }
}

/// Copies `N` 8-byte words, volatile so LLVM cannot turn it into a call to BPF's
/// byte-at-a-time memcpy/memmove.
///
/// # Safety
/// Both pointers must be valid and 8-byte aligned for `N` words.
#[inline(always)]
unsafe fn copy_words<const N: usize>(dst: *mut u8, src: *const u8) {
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    let mut i = 0;
    while i < N {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}
