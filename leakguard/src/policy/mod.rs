//! What the policy means: the typed policy the kernel maps are built from, and the
//! built-in catalog of identity headers (`catalog`). The file an operator writes is
//! `crate::config`, which builds a [`KernelPolicy`]; nothing here reads it.

pub mod catalog;

use ipnet::IpNet;

/// What to do with a request carrying a rule's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Count,
    Redact,
    Drop,
}

impl Action {
    /// The value stored in the kernel's `Rule::action`.
    #[must_use]
    pub const fn kernel(self) -> u8 {
        match self {
            Self::Count => leakguard_common::action::COUNT,
            Self::Redact => leakguard_common::action::REDACT,
            Self::Drop => leakguard_common::action::DROP,
        }
    }
}

/// One identity header and what to do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Header name as configured (any case, `_` or `-`).
    pub header: String,
    pub action: Action,
    /// Trusted destinations: a match to one of them passes unchanged, counted as `allow`.
    pub allow: Vec<IpNet>,
}

/// The identity-number check (`[msisdn]`): a value that is, after optional whitespace
/// and an optional `+`, only 9 to 15 digits starting with one of `prefixes` is an identity
/// number, whatever the header name (except `ignore_headers` and names with a rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msisdn {
    /// Leading digits (country or network codes), 1 to 15 digits each.
    pub prefixes: Vec<String>,
    pub action: Action,
    /// Header names whose values are never checked (any case, `_` or `-`).
    pub ignore_headers: Vec<String>,
    /// Trusted destinations: a number sent to one of them passes, counted as `allow`.
    pub allow: Vec<IpNet>,
    /// Runs of digits in the request target (path and query) are checked too.
    pub request_target: bool,
}

/// What happens to a request head the guard could not see whole (`scan.incomplete_heads`):
/// longer than `scan.max_head_bytes`, or open where a segment's scan had to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Incomplete {
    /// Dropped (fail closed), counted and logged: the default.
    Drop,
    /// Passed unscanned past that point, counted and logged.
    Pass,
}

impl Incomplete {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Pass => "pass",
        }
    }

    /// The value stored in the kernel's `ScanConfig::incomplete_action`.
    #[must_use]
    pub const fn kernel(self) -> u8 {
        match self {
            Self::Drop => leakguard_common::action::DROP,
            Self::Pass => leakguard_common::action::COUNT,
        }
    }
}

/// Everything the kernel programs are configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPolicy {
    pub ports: Vec<u16>,
    /// The cap on one request head, in bytes; every head is scanned to its end up to it.
    pub max_head_bytes: u32,
    pub incomplete: Incomplete,
    pub rules: Vec<Rule>,
    /// Off when `None`.
    pub msisdn: Option<Msisdn>,
}

impl Default for KernelPolicy {
    fn default() -> Self {
        Self {
            ports: vec![80, 8080],
            max_head_bytes: leakguard_common::DEFAULT_MAX_HEAD_BYTES,
            incomplete: Incomplete::Drop,
            rules: Vec::new(),
            msisdn: None,
        }
    }
}
