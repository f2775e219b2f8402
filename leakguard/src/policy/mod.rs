//! The policy: the file an operator writes (`file`), the built-in catalog of identity
//! headers (`catalog`), and the typed policy the kernel maps are built from.

pub mod catalog;
pub mod file;

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

/// Everything the kernel programs are configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPolicy {
    pub ports: Vec<u16>,
    pub max_payload_bytes: u32,
    pub rules: Vec<Rule>,
}

impl Default for KernelPolicy {
    fn default() -> Self {
        Self {
            ports: vec![80, 8080],
            max_payload_bytes: leakguard_common::DEFAULT_MAX_PAYLOAD_BYTES,
            rules: Vec::new(),
        }
    }
}
