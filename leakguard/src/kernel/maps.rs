//! The object's maps: their names, and the error of filling or reading them.

use aya::{maps::MapError, Ebpf};
use leakguard_common::{
    MAX_ALLOW_GROUPS, MAX_MSISDN_PREFIXES, MAX_RULES, MAX_SCAN_BYTES, MIN_HEAD_BYTES,
    MSISDN_MAX_DIGITS, RULE_PROBES,
};

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

pub(super) fn map_err(name: &'static str) -> impl FnOnce(MapError) -> ApplyError {
    move |source| ApplyError::Map { name, source }
}

pub(super) fn map<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, ApplyError> {
    ebpf.map_mut(name).ok_or(ApplyError::MissingMap(name))
}
