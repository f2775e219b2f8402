//! Every map of the programs. The daemon fills the policy maps; the counters and the event
//! ring are read by user space. Layouts live in `leakguard-common`.

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use leakguard_common::{
    DigitKey, FlowKey, FlowState, IfSlot, MatchCounts, MatchKey, NameFilter, NameKey, PortSet,
    Rule, RuleCounters, RuleSlot, ScanConfig, Stats, EVENT_RING_BYTES, FLOW_ENTRIES,
    FLOW_HINT_SLOTS, HOOKS, IFSLOT_ENTRIES, MAX_ALLOW_PREFIXES, MAX_MATCH_KEYS,
    MAX_MSISDN_PREFIXES, MAX_RULES, MAX_SLOTS, RULE_SLOTS,
};

use crate::state::Scratch;

// The policy is double-buffered so that a reload is atomic for every packet: the daemon
// writes the generation not in use, then flips `ACTIVE`; a packet reads `ACTIVE` once and
// sees one generation throughout. Arrays hold both generations (index = generation);
// hash maps and tries come in pairs.

/// The policy generation in use (0 or 1; one entry).
#[map]
pub static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// `MAP_LAYOUT_VERSION` of the daemon that made these maps (one entry; no program reads
/// it): a daemon with another version refuses the pins.
#[map]
pub static LAYOUT: Array<u64> = Array::with_max_entries(1, 0);

/// Scan settings per generation.
#[map]
pub static CONFIG: Array<ScanConfig> = Array::with_max_entries(2, 0);

/// HTTP destination ports per generation (a bitmap each).
#[map]
pub static PORTS: Array<PortSet> = Array::with_max_entries(2, 0);

/// Prefilter of the rule names per generation.
#[map]
pub static NAME_FILTER: Array<NameFilter> = Array::with_max_entries(2, 0);

/// Identity headers: folded name → rule, one map per generation. The daemon's record of
/// a generation's rules (ids stay with names across reloads and restarts); the programs
/// look rules up in `RULE_TABLE`, written from the same policy.
#[map]
pub static RULES_0: HashMap<NameKey, Rule> = HashMap::with_max_entries(MAX_RULES, 0);
#[map]
pub static RULES_1: HashMap<NameKey, Rule> = HashMap::with_max_entries(MAX_RULES, 0);

/// The rule table the programs search (`leakguard_common::RuleSlot`): `RULE_SLOTS` slots
/// per generation, generation `g` at `g * RULE_SLOTS`.
#[map]
pub static RULE_TABLE: Array<RuleSlot> = Array::with_max_entries(2 * RULE_SLOTS, 0);

/// Allowlists: destination prefix → mask of allow groups that trust it. User space stores,
/// for each prefix, the union with every shorter prefix that contains it, so the single
/// longest match carries every group that trusts the address.
#[map]
pub static ALLOW_V4_0: LpmTrie<[u8; 4], u64> =
    LpmTrie::with_max_entries(MAX_ALLOW_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);
#[map]
pub static ALLOW_V4_1: LpmTrie<[u8; 4], u64> =
    LpmTrie::with_max_entries(MAX_ALLOW_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);
#[map]
pub static ALLOW_V6_0: LpmTrie<[u8; 16], u64> =
    LpmTrie::with_max_entries(MAX_ALLOW_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);
#[map]
pub static ALLOW_V6_1: LpmTrie<[u8; 16], u64> =
    LpmTrie::with_max_entries(MAX_ALLOW_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Prefixes of identity numbers (`[msisdn] prefixes`) per generation; value unused.
#[map]
pub static MSISDN_PREFIX_0: LpmTrie<DigitKey, u8> =
    LpmTrie::with_max_entries(MAX_MSISDN_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);
#[map]
pub static MSISDN_PREFIX_1: LpmTrie<DigitKey, u8> =
    LpmTrie::with_max_entries(MAX_MSISDN_PREFIXES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Scanner state of flows whose head spans segments or whose redactions a
/// retransmission must repeat (see `leakguard_common::flow`). Fixed size, preallocated:
/// a full table evicts the least recently used flow.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

/// How many `FLOWS` entries may have a key that hashes to each counter
/// (`leakguard_common::flow::hint_slot`): a segment whose counter is zero has no entry,
/// and skips the flow-table lookup (most segments: heads within one segment never make
/// an entry). Never below the true count: raised before an insert, lowered after a
/// removal that found the entry; entries the LRU evicts leave their counts too high,
/// which costs lookups, never a missed entry. Shared by all CPUs (atomic updates).
/// One more entry than counters: the daemon's mark that the counters cover the flow table
/// (`leakguard::kernel::load::cover_flows`); no program reads it.
#[map]
pub static FLOW_HINTS: Array<u64> = Array::with_max_entries(FLOW_HINT_SLOTS + 1, 0);

/// Per-CPU counters per rule (index = `Rule::id`) and outcome.
#[map]
pub static RULE_COUNTERS: PerCpuArray<RuleCounters> = PerCpuArray::with_max_entries(MAX_RULES, 0);

/// Per-CPU counters per (attachment slot, hook).
#[map]
pub static STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_SLOTS * HOOKS, 0);

/// Interface → counter slot, indexed by `ifindex % IFSLOT_ENTRIES` (filled by the daemon).
#[map]
pub static IFSLOT: Array<IfSlot> = Array::with_max_entries(IFSLOT_ENTRIES, 0);

/// Match counters per (interface, hook, rule, outcome); entries appear on first match.
#[map]
pub static MATCHES: PerCpuHashMap<MatchKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_MATCH_KEYS, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Match counters per (slot, hook) for rule ids below `MATCH_ARRAY_RULES` (indexed like
/// `STATS`); the daemon reads the slots of guarded interfaces.
#[map]
pub static MATCH_COUNTS: PerCpuArray<MatchCounts> =
    PerCpuArray::with_max_entries(MAX_SLOTS * HOOKS, 0);

/// Match events.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Per-CPU scratch: the payload window being scanned and the scanner state. Too big for
/// the 512-byte stack; per-CPU because XDP/TC programs do not migrate mid-run.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The scratch of this CPU, ours for the whole program run, its `bpf_loop` callbacks and
/// global functions included: XDP and TC run with bottom halves disabled, so no other
/// program run on this CPU touches it before ours ends. None only if the lookup fails.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: as above: one program run at a time uses this CPU's value.
    SCRATCH.get_ptr_mut(0).map(|s| unsafe { &mut *s })
}
