//! Policy → kernel maps, and counters ← kernel maps.

use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    net::IpAddr,
};

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, MapData, MapError, PerCpuArray,
    },
    Ebpf,
};
use ipnet::IpNet;
use leakguard_common::{
    flow::prefix_entry, name, DigitKey, NameFilter, NameKey, PortSet, Rule as KRule, RuleCounters,
    RuleSlot, ScanConfig, Stats, FLOW_HINT_SLOTS, IGNORE_ACTION, MAX_ALLOW_GROUPS,
    MAX_MSISDN_PREFIXES, MAX_RULES, MAX_SCAN_BYTES, MIN_HEAD_BYTES, MSISDN_MAX_DIGITS,
    MSISDN_RULE_ID, NO_ALLOW_GROUP, RULE_PROBES, RULE_SLOTS,
};

use crate::policy::KernelPolicy;

/// Map names, as declared in `leakguard-ebpf/src/maps.rs`.
pub const MAP_ACTIVE: &str = "ACTIVE";
pub const MAP_LAYOUT: &str = "LAYOUT";
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_PORTS: &str = "PORTS";
pub const MAP_NAME_FILTER: &str = "NAME_FILTER";
pub const MAP_RULE_TABLE: &str = "RULE_TABLE";
/// The per-generation maps, indexed by generation.
pub const MAP_RULES: [&str; 2] = ["RULES_0", "RULES_1"];
pub const MAP_ALLOW_V4: [&str; 2] = ["ALLOW_V4_0", "ALLOW_V4_1"];
pub const MAP_ALLOW_V6: [&str; 2] = ["ALLOW_V6_0", "ALLOW_V6_1"];
pub const MAP_RULE_COUNTERS: &str = "RULE_COUNTERS";
pub const MAP_STATS: &str = "STATS";
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_SCRATCH: &str = "SCRATCH";
pub const MAP_IFSLOT: &str = "IFSLOT";
pub const MAP_MATCHES: &str = "MATCHES";
pub const MAP_MATCH_COUNTS: &str = "MATCH_COUNTS";
pub const MAP_MSISDN_PREFIX: [&str; 2] = ["MSISDN_PREFIX_0", "MSISDN_PREFIX_1"];
pub const MAP_FLOWS: &str = "FLOWS";
pub const MAP_FLOW_HINTS: &str = "FLOW_HINTS";

/// Every map of the object: all are pinned by the daemon.
pub const ALL_MAPS: &[&str] = &[
    MAP_ACTIVE,
    MAP_CONFIG,
    MAP_PORTS,
    MAP_NAME_FILTER,
    MAP_RULE_TABLE,
    MAP_RULES[0],
    MAP_RULES[1],
    MAP_ALLOW_V4[0],
    MAP_ALLOW_V4[1],
    MAP_ALLOW_V6[0],
    MAP_ALLOW_V6[1],
    MAP_RULE_COUNTERS,
    MAP_STATS,
    MAP_EVENTS,
    MAP_SCRATCH,
    MAP_IFSLOT,
    MAP_MATCHES,
    MAP_MATCH_COUNTS,
    MAP_MSISDN_PREFIX[0],
    MAP_MSISDN_PREFIX[1],
    MAP_FLOWS,
    MAP_FLOW_HINTS,
    MAP_LAYOUT,
];

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("header name {name:?} cannot be matched: {why}")]
    BadName { name: String, why: &'static str },
    #[error("header {0:?} has more than one rule (names compare case-insensitively, `_` = `-`)")]
    DuplicateRule(String),
    #[error("{0} rules, the kernel holds at most {MAX_RULES}")]
    TooManyRules(usize),
    #[error("{0} distinct allowlists, the kernel holds at most {MAX_ALLOW_GROUPS}")]
    TooManyAllowlists(usize),
    #[error("max_head_bytes = {0}: must be {MIN_HEAD_BYTES}..={MAX_SCAN_BYTES}")]
    ScanLimit(u32),
    #[error("port 0 is not a destination port")]
    PortZero,
    #[error("msisdn prefix {0:?}: must be 1 to {MSISDN_MAX_DIGITS} digits")]
    BadPrefix(String),
    #[error(
        "{0} msisdn prefixes, the kernel holds at most {MAX_MSISDN_PREFIXES} (with their starts)"
    )]
    TooManyPrefixes(usize),
    #[error("no seed of the rule table keeps every rule within {RULE_PROBES} slots of its home")]
    RuleTable,
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> ApplyError {
    move |source| ApplyError::Map { name, source }
}

/// The rule ids the kernel counts under, in the policy's rule order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleIds {
    pub by_rule: Vec<u32>,
}

/// The kernel form of a policy, computed without touching any map (so a bad policy is
/// refused before anything changes).
pub struct Compiled {
    pub config: ScanConfig,
    pub ports: Box<PortSet>,
    pub rules: Vec<(NameKey, KRule)>,
    pub name_filter: Box<NameFilter>,
    /// The generation's slots of `RULE_TABLE` (`RULE_SLOTS` of them).
    pub rule_table: Vec<RuleSlot>,
    pub allow_v4: Vec<(Key<[u8; 4]>, u64)>,
    pub allow_v6: Vec<(Key<[u8; 16]>, u64)>,
    /// The identity-number prefixes and every start of one (see `prefix_entry`).
    pub prefixes: Vec<(Key<DigitKey>, u8)>,
}

/// Validates a policy and computes its map contents.
pub fn compile(policy: &KernelPolicy) -> Result<Compiled, ApplyError> {
    compile_with_ids(policy, &StdHashMap::new())
}

/// [`compile`], keeping the counter id of every name already in the kernel (`existing`),
/// so a reload or an edited file never moves a header's counters to another header. New
/// names take ids no current rule uses, lowest first.
pub fn compile_with_ids(
    policy: &KernelPolicy,
    existing: &StdHashMap<NameKey, u32>,
) -> Result<Compiled, ApplyError> {
    let lim = policy.max_head_bytes;
    if !(MIN_HEAD_BYTES..=MAX_SCAN_BYTES).contains(&lim) {
        return Err(ApplyError::ScanLimit(lim));
    }
    let mut ports = Box::new(PortSet::EMPTY);
    for &p in &policy.ports {
        if p == 0 {
            return Err(ApplyError::PortZero);
        }
        ports.insert(p);
    }
    // One id is the identity-number check's.
    if policy.rules.len() > MAX_RULES as usize - 1 {
        return Err(ApplyError::TooManyRules(policy.rules.len()));
    }

    // One allow group per distinct allowlist.
    let mut groups: BTreeMap<Vec<IpNet>, u8> = BTreeMap::new();
    let mut rules = Vec::with_capacity(policy.rules.len());
    let mut seen = StdHashMap::new();
    let mut used: std::collections::HashSet<u32> = policy
        .rules
        .iter()
        .filter_map(|r| name::key(r.header.as_bytes()).ok())
        .filter_map(|k| existing.get(&k).copied())
        .chain([MSISDN_RULE_ID])
        .collect();
    let mut next_free = 0u32;
    for r in &policy.rules {
        let key = name::key(r.header.as_bytes()).map_err(|e| ApplyError::BadName {
            name: r.header.clone(),
            why: match e {
                name::NameError::Empty => "empty",
                name::NameError::TooLong => "longer than 64 bytes",
                name::NameError::NotToken(_) => {
                    "not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
                }
            },
        })?;
        if seen.insert(key, ()).is_some() {
            return Err(ApplyError::DuplicateRule(r.header.clone()));
        }
        let allow_group = allow_group(&mut groups, &r.allow)?;
        rules.push((
            key,
            KRule {
                id: match existing.get(&key) {
                    Some(&id) => id,
                    None => {
                        while used.contains(&next_free) {
                            next_free += 1;
                        }
                        used.insert(next_free);
                        next_free
                    }
                },
                action: r.action.kernel(),
                allow_group,
                _pad: [0; 2],
            },
        ));
    }

    let mut config = ScanConfig {
        max_head_bytes: lim,
        incomplete_action: policy.incomplete.kernel(),
        ready: 1,
        digest: digest(policy),
        ..ScanConfig::default()
    };
    let mut digit_prefixes = Vec::new();
    if let Some(m) = &policy.msisdn {
        config.msisdn_on = 1;
        config.msisdn_action = m.action.kernel();
        config.msisdn_allow_group = allow_group(&mut groups, &m.allow)?;
        digit_prefixes = prefix_entries(&m.prefixes)?;
        // Ignored names ride in the rules map with an action that counts nothing; a
        // name that has a rule is already exempt.
        for h in &m.ignore_headers {
            let key = name::key(h.as_bytes()).map_err(|_| ApplyError::BadName {
                name: h.clone(),
                why: "not an HTTP token of 1 to 64 bytes",
            })?;
            if seen.insert(key, ()).is_none() {
                rules.push((
                    key,
                    KRule {
                        id: MSISDN_RULE_ID,
                        action: IGNORE_ACTION,
                        allow_group: NO_ALLOW_GROUP,
                        _pad: [0; 2],
                    },
                ));
            }
        }
        if rules.len() > MAX_RULES as usize {
            return Err(ApplyError::TooManyRules(rules.len()));
        }
    }

    // The trie answers with the longest matching prefix only, so each stored prefix
    // carries the groups of every prefix that contains it.
    let mut prefixes: Vec<(IpNet, u64)> = Vec::new();
    for (list, &g) in &groups {
        for net in list {
            prefixes.push((*net, 1u64 << g));
        }
    }
    let mut masks: BTreeMap<IpNet, u64> = BTreeMap::new();
    for (net, _) in &prefixes {
        let mask = prefixes
            .iter()
            .filter(|(outer, _)| outer.contains(net))
            .fold(0, |m, (_, bit)| m | bit);
        masks.insert(*net, mask);
    }
    let mut name_filter = Box::new(NameFilter::EMPTY);
    for (key, _) in &rules {
        let len = key
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(key.name.len());
        name_filter.insert(&key.name[..len]);
    }
    let (seed, rule_table) = rule_table(&rules)?;
    name_filter.seed = seed;
    let mut allow_v4 = Vec::new();
    let mut allow_v6 = Vec::new();
    for (net, mask) in masks {
        match net.addr() {
            IpAddr::V4(a) => {
                allow_v4.push((Key::new(u32::from(net.prefix_len()), a.octets()), mask))
            }
            IpAddr::V6(a) => {
                allow_v6.push((Key::new(u32::from(net.prefix_len()), a.octets()), mask))
            }
        }
    }

    Ok(Compiled {
        config,
        prefixes: digit_prefixes,
        ports,
        rules,
        name_filter,
        rule_table,
        allow_v4,
        allow_v6,
    })
}

/// Seeds tried for the rule table. With `RULE_SLOTS = 4 × MAX_RULES` a full table fits
/// within `RULE_PROBES` for about two seeds in three, a small one for nearly every seed.
const RULE_SEEDS: u64 = 64;

/// The rule table of `rules` (see `RuleSlot`): the first seed, of a fixed sequence, for
/// which linear probing places every rule within `RULE_PROBES` slots of its home.
fn rule_table(rules: &[(NameKey, KRule)]) -> Result<(u64, Vec<RuleSlot>), ApplyError> {
    'seeds: for k in 0..RULE_SEEDS {
        // splitmix64 of k: well-spread seeds, the same on every run.
        let mut seed = k.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        seed = (seed ^ (seed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        seed = (seed ^ (seed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seed ^= seed >> 31;
        let mut table = vec![RuleSlot::EMPTY; RULE_SLOTS as usize];
        for (key, rule) in rules {
            let h = name::hash(key, seed);
            let Some(free) = (0..RULE_PROBES)
                .map(|p| name::slot(h, p) as usize)
                .find(|&i| table[i].hash == 0)
            else {
                continue 'seeds;
            };
            table[free] = RuleSlot {
                hash: h,
                name: *key,
                rule: *rule,
            };
        }
        return Ok((seed, table));
    }
    Err(ApplyError::RuleTable)
}

/// The allow group of an allowlist (one per distinct list), or `NO_ALLOW_GROUP`.
fn allow_group(groups: &mut BTreeMap<Vec<IpNet>, u8>, allow: &[IpNet]) -> Result<u8, ApplyError> {
    if allow.is_empty() {
        return Ok(NO_ALLOW_GROUP);
    }
    let mut list: Vec<IpNet> = allow.iter().map(IpNet::trunc).collect();
    list.sort();
    list.dedup();
    let next = groups.len();
    let g = *groups.entry(list).or_insert(next as u8);
    if groups.len() > MAX_ALLOW_GROUPS {
        return Err(ApplyError::TooManyAllowlists(groups.len()));
    }
    Ok(g)
}

/// Trie entries for identity-number prefixes: every prefix and every start of one, each
/// marked "covered" when a configured prefix is a start of it (so the longest match of a
/// number's digits answers both questions the kernel asks, see `leakguard_common::flow`).
pub fn prefix_entries(prefixes: &[String]) -> Result<Vec<(Key<DigitKey>, u8)>, ApplyError> {
    for p in prefixes {
        if p.is_empty()
            || p.len() > MSISDN_MAX_DIGITS as usize
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApplyError::BadPrefix(p.clone()));
        }
    }
    let mut starts: BTreeMap<&str, bool> = BTreeMap::new();
    for p in prefixes {
        for l in 1..=p.len() {
            starts.entry(&p[..l]).or_insert(false);
        }
    }
    if starts.len() > MAX_MSISDN_PREFIXES as usize {
        return Err(ApplyError::TooManyPrefixes(starts.len()));
    }
    Ok(starts
        .keys()
        .map(|s| {
            let covered = prefixes.iter().any(|p| s.starts_with(p.as_str()));
            let bcd = s.bytes().enumerate().fold(0u64, |acc, (i, b)| {
                acc | leakguard_common::flow::bcd_digit(b - b'0', i as u32)
            });
            (
                Key::new(4 * s.len() as u32, bcd.to_be_bytes()),
                prefix_entry(s.len() as u32, covered),
            )
        })
        .collect())
}

/// A digest of the kernel policy (FNV-1a over a canonical form), shown by `status` so an
/// operator can tell which policy is live.
#[must_use]
pub fn digest(policy: &KernelPolicy) -> u64 {
    let mut canon = format!(
        "ports={:?};max_head={};incomplete={};",
        policy.ports,
        policy.max_head_bytes,
        policy.incomplete.name()
    );
    for r in &policy.rules {
        let key = name::key(r.header.as_bytes())
            .map(|k| k.name)
            .unwrap_or([0; 64]);
        let len = key.iter().position(|&b| b == 0).unwrap_or(64);
        canon.push_str(&format!(
            "{}={};{:?};",
            String::from_utf8_lossy(&key[..len]),
            r.action.kernel(),
            r.allow
        ));
    }
    if let Some(m) = &policy.msisdn {
        let mut ignore: Vec<NameKey> = m
            .ignore_headers
            .iter()
            .filter_map(|h| name::key(h.as_bytes()).ok())
            .collect();
        ignore.sort_by_key(|k| k.name);
        canon.push_str(&format!(
            "msisdn={:?};{};{:?};{:?};",
            m.prefixes,
            m.action.kernel(),
            ignore.iter().map(key_name).collect::<Vec<_>>(),
            m.allow
        ));
    }
    canon.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, ApplyError> {
    ebpf.map_mut(name).ok_or(ApplyError::MissingMap(name))
}

/// Writes a policy into the loaded programs' maps, atomically for every packet: the
/// generation not in use is written completely, then `ACTIVE` flips to it in one store.
/// A packet reads `ACTIVE` once, so it sees the old policy or the new, never a mix.
pub fn apply(ebpf: &mut Ebpf, policy: &KernelPolicy) -> Result<RuleIds, ApplyError> {
    let active = active_gen_of(map(ebpf, MAP_ACTIVE)?)?;
    let existing: StdHashMap<NameKey, u32> = rules_of(map(ebpf, MAP_RULES[active as usize])?)?
        .into_iter()
        .filter(|(_, r)| r.action != IGNORE_ACTION)
        .map(|(k, r)| (k, r.id))
        .collect();
    let c = compile_with_ids(policy, &existing)?;
    let target = 1 - active;

    // Packets that read the old ACTIVE just before a previous flip may still be scanning
    // with `target`: give them a grace period before rewriting it (a program run lasts
    // microseconds).
    let mut config: Array<&mut MapData, ScanConfig> =
        Array::try_from(map(ebpf, MAP_CONFIG)?).map_err(map_err(MAP_CONFIG))?;
    if config.get(&target, 0).map_err(map_err(MAP_CONFIG))?.ready != 0 {
        grace();
    }
    config
        .set(target, c.config, 0)
        .map_err(map_err(MAP_CONFIG))?;

    let mut ports: Array<&mut MapData, PortSet> =
        Array::try_from(map(ebpf, MAP_PORTS)?).map_err(map_err(MAP_PORTS))?;
    ports.set(target, *c.ports, 0).map_err(map_err(MAP_PORTS))?;
    let mut filter: Array<&mut MapData, NameFilter> =
        Array::try_from(map(ebpf, MAP_NAME_FILTER)?).map_err(map_err(MAP_NAME_FILTER))?;
    filter
        .set(target, *c.name_filter, 0)
        .map_err(map_err(MAP_NAME_FILTER))?;

    // Every slot of the generation: a slot left from an older policy could otherwise
    // end a probe sequence too late (never too early: empty slots are written too).
    let mut table: Array<&mut MapData, RuleSlot> =
        Array::try_from(map(ebpf, MAP_RULE_TABLE)?).map_err(map_err(MAP_RULE_TABLE))?;
    for (i, slot) in c.rule_table.iter().enumerate() {
        table
            .set(target * RULE_SLOTS + i as u32, slot, 0)
            .map_err(map_err(MAP_RULE_TABLE))?;
    }

    let v4_name = MAP_ALLOW_V4[target as usize];
    let mut v4: LpmTrie<&mut MapData, [u8; 4], u64> =
        LpmTrie::try_from(map(ebpf, v4_name)?).map_err(map_err(v4_name))?;
    replace_trie(&mut v4, &c.allow_v4).map_err(map_err(v4_name))?;
    let v6_name = MAP_ALLOW_V6[target as usize];
    let mut v6: LpmTrie<&mut MapData, [u8; 16], u64> =
        LpmTrie::try_from(map(ebpf, v6_name)?).map_err(map_err(v6_name))?;
    replace_trie(&mut v6, &c.allow_v6).map_err(map_err(v6_name))?;

    let pre_name = MAP_MSISDN_PREFIX[target as usize];
    let mut pre: LpmTrie<&mut MapData, DigitKey, u8> =
        LpmTrie::try_from(map(ebpf, pre_name)?).map_err(map_err(pre_name))?;
    replace_trie(&mut pre, &c.prefixes).map_err(map_err(pre_name))?;

    let rules_name = MAP_RULES[target as usize];
    let mut rules: HashMap<&mut MapData, NameKey, KRule> =
        HashMap::try_from(map(ebpf, rules_name)?).map_err(map_err(rules_name))?;
    for (k, v) in &c.rules {
        rules.insert(k, v, 0).map_err(map_err(rules_name))?;
    }
    let keep: std::collections::HashSet<NameKey> = c.rules.iter().map(|(k, _)| *k).collect();
    let stale: Vec<NameKey> = rules
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keep.contains(k))
        .collect();
    for k in stale {
        rules.remove(&k).map_err(map_err(rules_name))?;
    }

    // The switch: one 4-byte store.
    let mut act: Array<&mut MapData, u32> =
        Array::try_from(map(ebpf, MAP_ACTIVE)?).map_err(map_err(MAP_ACTIVE))?;
    act.set(0, target, 0).map_err(map_err(MAP_ACTIVE))?;
    *LAST_FLIP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());

    Ok(RuleIds {
        by_rule: c.rules.iter().map(|(_, r)| r.id).collect(),
    })
}

/// Time of the last `ACTIVE` flip in this process.
static LAST_FLIP: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
/// How long packets that picked the old generation may still be running, with a wide
/// margin: XDP and TC programs run for microseconds.
const GRACE: std::time::Duration = std::time::Duration::from_millis(50);

fn grace() {
    let last = *LAST_FLIP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = last {
        if let Some(rest) = GRACE.checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// The policy generation in use, from any handle of `ACTIVE`.
pub fn active_gen_of(m: &aya::maps::Map) -> Result<u32, ApplyError> {
    let a: Array<&MapData, u32> = Array::try_from(m).map_err(map_err(MAP_ACTIVE))?;
    Ok(a.get(&0, 0).map_err(map_err(MAP_ACTIVE))? & 1)
}

fn replace_trie<K: aya::Pod + Ord, V: aya::Pod>(
    trie: &mut LpmTrie<&mut MapData, K, V>,
    entries: &[(Key<K>, V)],
) -> Result<(), MapError> {
    for (k, v) in entries {
        trie.insert(k, v, 0)?;
    }
    let keep: Vec<(u32, K)> = entries
        .iter()
        .map(|(k, _)| (k.prefix_len(), k.data()))
        .collect();
    let stale: Vec<Key<K>> = trie
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keep.contains(&(k.prefix_len(), k.data())))
        .collect();
    for k in stale {
        trie.remove(&k)?;
    }
    Ok(())
}

/// `FLOW_HINTS[FLOW_HINT_SLOTS]` once the counters are known to cover every `FLOWS` entry.
pub const HINTS_COVER: u64 = u64::from_le_bytes(*b"lg-hints");

/// Makes the flow table's hints (`FLOW_HINTS`, see the kernel's `flows` module) cover it
/// before any program of this object runs. Called once per load, with whether the flow
/// table was reused from the pins.
///
/// Counters that have covered the table since it was made carry the mark. Without the
/// mark and with a new flow table, both are empty: the counters are exact. Without the
/// mark over a reused table (a start that stopped between making the counters and
/// marking them, or a counter pin removed by hand), entries may exist that no counter
/// counts: every counter is raised to at least 1, which makes every segment look the
/// table up (the cost before hints) until `leakguard detach`. Returns true then. (Pins
/// from before hints have an older `MAP_LAYOUT_VERSION` and are refused before this.)
pub fn cover_flows(ebpf: &mut Ebpf, flows_reused: bool) -> Result<bool, ApplyError> {
    let mut hints: Array<&mut MapData, u64> =
        Array::try_from(map(ebpf, MAP_FLOW_HINTS)?).map_err(map_err(MAP_FLOW_HINTS))?;
    if hints
        .get(&FLOW_HINT_SLOTS, 0)
        .map_err(map_err(MAP_FLOW_HINTS))?
        == HINTS_COVER
    {
        return Ok(false);
    }
    if flows_reused {
        for i in 0..FLOW_HINT_SLOTS {
            if hints.get(&i, 0).map_err(map_err(MAP_FLOW_HINTS))? == 0 {
                hints.set(i, 1, 0).map_err(map_err(MAP_FLOW_HINTS))?;
            }
        }
    }
    hints
        .set(FLOW_HINT_SLOTS, HINTS_COVER, 0)
        .map_err(map_err(MAP_FLOW_HINTS))?;
    Ok(flows_reused)
}

/// Entries in the flow table (one key walk: the kernel keeps no count for a hash map).
pub fn flow_count(m: &aya::maps::Map) -> Result<u64, ApplyError> {
    let flows: HashMap<&MapData, leakguard_common::FlowKey, leakguard_common::FlowState> =
        HashMap::try_from(m).map_err(map_err(MAP_FLOWS))?;
    Ok(flows.keys().filter(Result::is_ok).count() as u64)
}

/// Global counters summed over CPUs.
pub fn stats(ebpf: &Ebpf) -> Result<Stats, ApplyError> {
    stats_of(
        ebpf.map(MAP_STATS)
            .ok_or(ApplyError::MissingMap(MAP_STATS))?,
    )
}

/// [`stats`] from any handle of the map (loaded object or pin): every slot and hook.
pub fn stats_of(m: &aya::maps::Map) -> Result<Stats, ApplyError> {
    Ok(stats_by_slot(m)?
        .iter()
        .fold(Stats::default(), |acc, (_, _, s)| sum_stats(&acc, s)))
}

/// Counters per (slot, hook), summed over CPUs; entries that saw no packet are left out.
pub fn stats_by_slot(m: &aya::maps::Map) -> Result<Vec<(u32, u8, Stats)>, ApplyError> {
    let a: PerCpuArray<&MapData, Stats> = PerCpuArray::try_from(m).map_err(map_err(MAP_STATS))?;
    let mut out = Vec::new();
    // The canary slot holds the self-test's packets, not traffic.
    for slot in (0..leakguard_common::MAX_SLOTS).filter(|&s| s != leakguard_common::CANARY_SLOT) {
        for hook in 0..leakguard_common::HOOKS as u8 {
            let idx = leakguard_common::stats_index(slot, hook);
            let per_cpu = a.get(&idx, 0).map_err(map_err(MAP_STATS))?;
            let s = per_cpu
                .iter()
                .fold(Stats::default(), |acc, s| sum_stats(&acc, s));
            if s.packets != 0 {
                out.push((slot, hook, s));
            }
        }
    }
    Ok(out)
}

/// The `MATCH_COUNTS` of counter slot `slot`, summed over CPUs, as (hook, rule id,
/// outcome, count) for every non-zero counter.
pub fn match_counts_of(
    m: &aya::maps::Map,
    slot: u32,
) -> Result<Vec<(u8, u32, u8, u64)>, ApplyError> {
    let a: PerCpuArray<&MapData, leakguard_common::MatchCounts> =
        PerCpuArray::try_from(m).map_err(map_err(MAP_MATCH_COUNTS))?;
    let mut out = Vec::new();
    for hook in 0..leakguard_common::HOOKS as u8 {
        let idx = leakguard_common::stats_index(slot, hook);
        let per_cpu = a.get(&idx, 0).map_err(map_err(MAP_MATCH_COUNTS))?;
        const OUTCOMES: usize = leakguard_common::action::OUTCOMES;
        for i in 0..leakguard_common::MATCH_ARRAY_RULES as usize * OUTCOMES {
            let n: u64 = per_cpu.iter().map(|c| c.n[i]).sum();
            if n != 0 {
                out.push((hook, (i / OUTCOMES) as u32, (i % OUTCOMES) as u8, n));
            }
        }
    }
    Ok(out)
}

/// Zeroes the `MATCH_COUNTS` of counter slot `slot` (a slot newly given to an interface).
pub fn clear_match_counts(m: &mut aya::maps::Map, slot: u32) -> anyhow::Result<()> {
    let mut a: PerCpuArray<&mut MapData, leakguard_common::MatchCounts> = PerCpuArray::try_from(m)?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    for hook in 0..leakguard_common::HOOKS as u8 {
        let zero = aya::maps::PerCpuValues::try_from(vec![
            leakguard_common::MatchCounts::default();
            cpus
        ])?;
        a.set(leakguard_common::stats_index(slot, hook), zero, 0)?;
    }
    Ok(())
}

/// Match counters per (interface index, hook, rule, outcome), summed over CPUs.
pub fn matches_of(
    m: &aya::maps::Map,
) -> Result<Vec<(leakguard_common::MatchKey, u64)>, ApplyError> {
    let h: aya::maps::PerCpuHashMap<&MapData, leakguard_common::MatchKey, u64> =
        aya::maps::PerCpuHashMap::try_from(m).map_err(map_err(MAP_MATCHES))?;
    let mut out: Vec<_> = h
        .iter()
        .filter_map(Result::ok)
        .map(|(k, v)| (k, v.iter().sum()))
        .collect();
    out.sort_by_key(|(k, _)| (k.ifindex, k.hook, k.rule_id, k.outcome));
    Ok(out)
}

fn sum_stats(a: &Stats, b: &Stats) -> Stats {
    Stats {
        packets: a.packets + b.packets,
        tcp_http: a.tcp_http + b.tcp_http,
        heads: a.heads + b.heads,
        lines: a.lines + b.lines,
        bytes: a.bytes + b.bytes,
        truncated: a.truncated + b.truncated,
        malformed: a.malformed + b.malformed,
        fragments: a.fragments + b.fragments,
        redacted_packets: a.redacted_packets + b.redacted_packets,
        dropped_packets: a.dropped_packets + b.dropped_packets,
        events_lost: a.events_lost + b.events_lost,
        errors: a.errors + b.errors,
        continuations: a.continuations + b.continuations,
        bodies: a.bodies + b.bodies,
        retransmissions: a.retransmissions + b.retransmissions,
        unordered_drops: a.unordered_drops + b.unordered_drops,
        msisdn_values: a.msisdn_values + b.msisdn_values,
    }
}

/// Counters of one rule summed over CPUs, indexed by `leakguard_common::action` outcome.
pub fn rule_counters(ebpf: &Ebpf, rule_id: u32) -> Result<RuleCounters, ApplyError> {
    rule_counters_of(
        ebpf.map(MAP_RULE_COUNTERS)
            .ok_or(ApplyError::MissingMap(MAP_RULE_COUNTERS))?,
        rule_id,
    )
}

/// [`rule_counters`] from any handle of the map.
pub fn rule_counters_of(m: &aya::maps::Map, rule_id: u32) -> Result<RuleCounters, ApplyError> {
    let a: PerCpuArray<&MapData, RuleCounters> =
        PerCpuArray::try_from(m).map_err(map_err(MAP_RULE_COUNTERS))?;
    let per_cpu = a.get(&rule_id, 0).map_err(map_err(MAP_RULE_COUNTERS))?;
    let mut sum = RuleCounters::default();
    for c in per_cpu.iter() {
        for (s, v) in sum.outcomes.iter_mut().zip(c.outcomes) {
            *s += v;
        }
    }
    Ok(sum)
}

/// The rules of one generation's `RULES_*` map, by id.
pub fn rules_of(m: &aya::maps::Map) -> Result<Vec<(NameKey, KRule)>, ApplyError> {
    let h: HashMap<&MapData, NameKey, KRule> =
        HashMap::try_from(m).map_err(map_err(MAP_RULES[0]))?;
    let mut out: Vec<(NameKey, KRule)> = h.iter().filter_map(Result::ok).collect();
    out.sort_by_key(|(_, r)| r.id);
    Ok(out)
}

/// A folded name key as text.
#[must_use]
pub fn key_name(k: &NameKey) -> String {
    let len = k.name.iter().position(|&b| b == 0).unwrap_or(k.name.len());
    String::from_utf8_lossy(&k.name[..len]).into_owned()
}

/// One generation's scan configuration, from any handle of `CONFIG`.
pub fn config_of(m: &aya::maps::Map, gen: u32) -> Result<ScanConfig, ApplyError> {
    let a: Array<&MapData, ScanConfig> = Array::try_from(m).map_err(map_err(MAP_CONFIG))?;
    a.get(&gen, 0).map_err(map_err(MAP_CONFIG))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Rule};

    fn rule(h: &str, allow: &[&str]) -> Rule {
        Rule {
            header: h.into(),
            action: Action::Redact,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    /// The kernel's search, in user space: the slot of `key`, if any.
    fn find(table: &[RuleSlot], seed: u64, key: &NameKey) -> Option<usize> {
        let h = name::hash(key, seed);
        (0..RULE_PROBES)
            .map(|k| name::slot(h, k) as usize)
            .take_while(|&i| table[i].hash != 0)
            .find(|&i| table[i].hash == h && table[i].name == *key)
    }

    #[test]
    fn rule_table_holds_every_rule_within_the_probe_limit() {
        for n in [0usize, 1, 30, MAX_RULES as usize - 1] {
            let rules: Vec<(NameKey, KRule)> = (0..n)
                .map(|i| {
                    let key = name::key(format!("X-Header-{i}").as_bytes()).unwrap();
                    let r = KRule {
                        id: i as u32,
                        action: 0,
                        allow_group: NO_ALLOW_GROUP,
                        _pad: [0; 2],
                    };
                    (key, r)
                })
                .collect();
            let (seed, table) = rule_table(&rules).unwrap();
            assert_eq!(table.len(), RULE_SLOTS as usize);
            assert_eq!(table.iter().filter(|s| s.hash != 0).count(), n);
            for (key, r) in &rules {
                let i = find(&table, seed, key).expect("every rule is found");
                assert_eq!(table[i].rule, *r);
            }
            let other = name::key(b"X-Header-none").unwrap();
            assert_eq!(find(&table, seed, &other), None);
            // The same rules give the same table: a reload writes what is there.
            assert_eq!(rule_table(&rules).unwrap().0, seed);
        }
    }

    #[test]
    fn nested_prefixes_carry_every_group() {
        let p = KernelPolicy {
            rules: vec![
                rule("X-MSISDN", &["198.51.100.0/24"]),
                rule("X-UIDH", &["198.51.0.0/16", "2001:db8::/32"]),
            ],
            ..KernelPolicy::default()
        };
        let c = compile(&p).unwrap();
        let g0 = c.rules[0].1.allow_group;
        let g1 = c.rules[1].1.allow_group;
        assert_ne!(g0, g1);
        let find = |len: u32| {
            c.allow_v4
                .iter()
                .find(|(k, _)| k.prefix_len() == len)
                .unwrap()
                .1
        };
        // The /24 lies inside the /16: an address in it is trusted by both rules.
        assert_eq!(find(24), (1 << g0) | (1 << g1));
        assert_eq!(find(16), 1 << g1);
        assert_eq!(c.allow_v6.len(), 1);
    }

    /// What the policy file accepts compiles into kernel maps: rules, allowlists of both
    /// families, and the catalog behind them.
    #[test]
    fn a_valid_file_compiles() {
        let text = r#"
[[attach]]
interface = "eth1"
hook = "tc-egress"

[scan]
builtin_catalog = "count"

[[rule]]
header = "x_msisdn"
action = "redact"
allow = ["198.51.100.0/24", "2001:db8:100::/48", "203.0.113.7"]

[[rule]]
header = "X-Operator-Sub"
action = "drop"
"#;
        let c = crate::config::parse(std::path::Path::new("test.toml"), text).unwrap();
        compile(&c.kernel).unwrap();
    }

    #[test]
    fn refuses_bad_policies() {
        let dup = KernelPolicy {
            rules: vec![rule("X-MSISDN", &[]), rule("x_msisdn", &[])],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&dup), Err(ApplyError::DuplicateRule(_))));
        let bad = KernelPolicy {
            rules: vec![rule("X MSISDN", &[])],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&bad), Err(ApplyError::BadName { .. })));
        let small = KernelPolicy {
            max_head_bytes: 10,
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&small), Err(ApplyError::ScanLimit(10))));
        let zero = KernelPolicy {
            ports: vec![0],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&zero), Err(ApplyError::PortZero)));
    }
}
