//! The object's maps: their names, and the error of filling or reading them.

use aya::{maps::MapError, Ebpf};
use leakguard_common::{
    MAX_ALLOW_GROUPS, MAX_MSISDN_PREFIXES, MAX_RULES, MAX_SCAN_BYTES, MIN_HEAD_BYTES,
    MSISDN_MAX_DIGITS, RULE_PROBES,
};

pub use leakguard_common::maps::*;

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
