//! Writing a policy into the maps as double-buffered generations, and reading the
//! generation in use back (`status`).

use std::collections::HashMap as StdHashMap;

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, MapData, MapError,
    },
    Ebpf,
};
use leakguard_common::{
    is_rule_action, DigitKey, NameFilter, NameKey, PortSet, Rule as KRule, RuleSlot, ScanConfig,
    RULE_SLOTS,
};

use super::{
    compile::compile_with_ids,
    maps::{
        map, map_err, ApplyError, MAP_ACTIVE, MAP_ALLOW_V4, MAP_ALLOW_V6, MAP_CONFIG,
        MAP_MSISDN_PREFIX, MAP_NAME_FILTER, MAP_PORTS, MAP_RULES, MAP_RULE_TABLE,
    },
};
use crate::policy::KernelPolicy;

/// The rule ids the kernel counts under, in the policy's rule order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleIds {
    pub by_rule: Vec<u32>,
}

/// Writes a policy into the loaded programs' maps, atomically for every packet: the
/// generation not in use is written completely, then `ACTIVE` flips to it in one store.
/// A packet reads `ACTIVE` once, so it sees the old policy or the new, never a mix.
pub fn apply(ebpf: &mut Ebpf, policy: &KernelPolicy) -> Result<RuleIds, ApplyError> {
    let active = active_gen_of(map(ebpf, MAP_ACTIVE)?)?;
    let existing: StdHashMap<NameKey, u32> = rules_of(map(ebpf, MAP_RULES[active as usize])?)?
        .into_iter()
        .filter(|(_, r)| is_rule_action(r.action))
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

/// The rules of one generation's `RULES_*` map, by id.
pub fn rules_of(m: &aya::maps::Map) -> Result<Vec<(NameKey, KRule)>, ApplyError> {
    let h: HashMap<&MapData, NameKey, KRule> =
        HashMap::try_from(m).map_err(map_err(MAP_RULES[0]))?;
    let mut out: Vec<(NameKey, KRule)> = h.iter().filter_map(Result::ok).collect();
    out.sort_by_key(|(_, r)| r.id);
    Ok(out)
}

/// One generation's scan configuration, from any handle of `CONFIG`.
pub fn config_of(m: &aya::maps::Map, gen: u32) -> Result<ScanConfig, ApplyError> {
    let a: Array<&MapData, ScanConfig> = Array::try_from(m).map_err(map_err(MAP_CONFIG))?;
    a.get(&gen, 0).map_err(map_err(MAP_CONFIG))
}
