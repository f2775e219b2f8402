//! Policy lookups for a complete header name: rule, allowlist, then counting and the
//! match event. Runs once per header line whose name is complete, never per byte.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, maps::lpm_trie::Key};
use leakguard_common::{
    action, name::filter_bit, Event, MatchKey, FAMILY_IPV4, MAX_NAME_LEN, NO_ALLOW_GROUP,
};

use crate::{
    http::ScanState,
    maps::{
        ALLOW_V4_0, ALLOW_V4_1, ALLOW_V6_0, ALLOW_V6_1, EVENTS, MATCHES, NAME_FILTER, RULES_0,
        RULES_1, RULE_COUNTERS,
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
    pub allow_mask: u64,
    pub saddr: Addr,
    pub daddr: Addr,
}

/// Looks the current header name up. On a match: counts it, emits an event and returns
/// the outcome (`ALLOW` when the destination is trusted by the rule).
#[inline(always)]
pub fn match_header(st: &mut ScanState) -> Option<u8> {
    // Cheap rejection first: one array load and a bit test instead of hashing 64 bytes.
    let len = st.name_len as usize;
    let first = st.name.name[0];
    let last = st.name.name[len.wrapping_sub(1) & (MAX_NAME_LEN - 1)];
    let gen = st.pkt.gen;
    let filter = NAME_FILTER.get(gen)?;
    if filter.by_len[len & 127] & (1 << filter_bit(first, last)) == 0 {
        return None;
    }
    // SAFETY: the value is copied out at once; rules are replaced, not mutated, by the daemon.
    let rule = unsafe {
        *if gen == 0 {
            RULES_0.get_ptr(&st.name)
        } else {
            RULES_1.get_ptr(&st.name)
        }?
    };
    let mut outcome = rule.action;
    if rule.allow_group != NO_ALLOW_GROUP && allowed(&mut st.pkt, rule.allow_group) {
        outcome = action::ALLOW;
    }
    if st.pkt.canary != 0 {
        return Some(outcome);
    }
    if let Some(c) = RULE_COUNTERS.get_ptr_mut(rule.id) {
        // SAFETY: per-CPU value; index masked to the array length.
        unsafe { (*c).outcomes[usize::from(outcome) & (action::OUTCOMES - 1)] += 1 };
    }
    count_match(&st.pkt, rule.id, outcome);
    if !emit(&st.pkt, rule.id, outcome) {
        st.events_lost += 1;
    }
    Some(outcome)
}

/// The per-interface match counter. Matches are rare, so a hash lookup here is cheap;
/// NOEXIST keeps a concurrent first insert on another CPU from being overwritten.
#[inline(always)]
fn count_match(pkt: &PacketMeta, rule_id: u32, outcome: u8) {
    let key = MatchKey {
        ifindex: pkt.ifindex,
        rule_id,
        hook: pkt.hook,
        outcome,
        _pad: [0; 6],
    };
    if let Some(c) = MATCHES.get_ptr_mut(&key) {
        // SAFETY: this CPU's value of the entry.
        unsafe { *c += 1 };
    } else if MATCHES.insert(&key, &1, u64::from(BPF_NOEXIST)).is_err() {
        if let Some(c) = MATCHES.get_ptr_mut(&key) {
            // SAFETY: as above.
            unsafe { *c += 1 };
        }
    }
}

/// True when the destination is on the allowlist `group`. One trie lookup per segment,
/// done only when a rule with an allowlist matched.
#[inline(always)]
fn allowed(pkt: &mut PacketMeta, group: u8) -> bool {
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

/// Sends the match event. Never carries a byte of the header value.
#[inline(always)]
fn emit(pkt: &PacketMeta, rule_id: u32, outcome: u8) -> bool {
    let Some(mut e) = EVENTS.reserve::<Event>(0) else {
        return false;
    };
    e.write(Event {
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ifindex: pkt.ifindex,
        rule_id,
        hook: pkt.hook,
        action: outcome,
        family: pkt.family,
        _pad: 0,
        sport: pkt.sport,
        dport: pkt.dport,
        saddr: pkt.saddr.0,
        daddr: pkt.daddr.0,
    });
    e.submit(0);
    true
}
