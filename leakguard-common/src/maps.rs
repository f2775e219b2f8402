//! The names of the kernel object's maps: the contract between the programs, which
//! declare them (`leakguard-ebpf/src/maps.rs`: a `#[map]` static's name is its
//! identifier), and user space, which opens and pins them by name. A test
//! (`tests/tests/contract.rs`) reads the built object and requires exactly these.

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
