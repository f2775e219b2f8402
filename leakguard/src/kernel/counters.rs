//! Counters ← maps: packets per interface slot and hook, matches per rule and outcome,
//! the flow table's size; summed over CPUs, from the loaded object or from a pin. (And a
//! slot's match counters zeroed when it is given to another interface.)

use aya::{
    maps::{HashMap, MapData, PerCpuArray},
    Ebpf,
};
use leakguard_common::{RuleCounters, Stats};

use super::maps::{
    map_err, ApplyError, MAP_FLOWS, MAP_MATCHES, MAP_MATCH_COUNTS, MAP_RULE_COUNTERS, MAP_STATS,
};

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

/// Match counters per (interface index, hook, rule, outcome, place and form), summed over
/// CPUs: a number's counts in header values, the request target and cookies, decimal,
/// hex and base64, stay apart.
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
    // The place byte holds the form in its high nibble: sorted by place, then form.
    out.sort_by_key(|(k, _)| {
        (
            k.ifindex,
            k.hook,
            k.rule_id,
            k.outcome,
            leakguard_common::place::of(k.place),
            leakguard_common::form::of(k.place),
        )
    });
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
