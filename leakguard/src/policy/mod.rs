//! What the policy means: the typed policy the kernel maps are built from, and the
//! built-in catalog of identity headers (`catalog`). The file an operator writes is
//! `crate::config`, which builds a [`KernelPolicy`]; nothing here reads it.

pub mod catalog;

use ipnet::IpNet;
use leakguard_common::{form, place};

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

/// The identity-number check (`[msisdn]`): a header value that is, after optional
/// whitespace and an optional `+`, only 9 to 15 digits starting with one of `prefixes` is
/// an identity number, whatever the header name (except `ignore_headers` and names with a
/// rule); with `request_target`, so is a run of 9 to 15 digits with such a prefix anywhere
/// in the request line's target (a path segment or a query value), and with `cookies`,
/// such a run in a `Cookie` header's value (a `Cookie` with a rule, or in
/// `ignore_headers`, follows that instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msisdn {
    /// Leading digits (country or network codes), 1 to 15 digits each.
    pub prefixes: Vec<String>,
    pub action: Action,
    /// Header names whose values are never checked (any case, `_` or `-`).
    pub ignore_headers: Vec<String>,
    /// Trusted destinations: a number sent to one of them passes, counted as `allow`.
    pub allow: Vec<IpNet>,
    /// The request target is read too (`msisdn.request_target`, on by default).
    pub request_target: bool,
    /// `Cookie` header values are read too (`msisdn.cookies`, on by default).
    pub cookies: bool,
    /// A run of digits inside a longer header value counts too (`tel:+447700900123`,
    /// `447700900123@ims.example`; `msisdn.inside_values`, on by default), not only a
    /// value that is the number alone.
    pub inside_values: bool,
    /// Runs of digits are read for the hex form of a number too (`343437…`, every digit
    /// `d` written `3d`; `msisdn.hex`, on by default).
    pub hex: bool,
    /// The same places are read for the base64 form of a number too (`NDQ3NzAw…`, the
    /// base64 of its ASCII digits, either alphabet, any alignment; `msisdn.base64`, on
    /// by default).
    pub base64: bool,
}

impl Msisdn {
    /// The places the check reads, as `ScanConfig::msisdn_on` holds them (a
    /// `place::bit` each): header values always, the request target and cookies when
    /// asked.
    #[must_use]
    pub const fn places(&self) -> u8 {
        let mut bits = place::bit(place::HEADER);
        if self.request_target {
            bits |= place::bit(place::TARGET);
        }
        if self.cookies {
            bits |= place::bit(place::COOKIE);
        }
        if self.inside_values {
            bits |= place::INSIDE_VALUES;
        }
        if self.hex {
            bits |= form::HEX_ON;
        }
        if self.base64 {
            bits |= form::B64_ON;
        }
        bits
    }

    /// Numbers in hex form are looked for: hex is on and some place is read for runs of
    /// digits (a value read whole is decimal only).
    #[must_use]
    pub const fn reads_hex(&self) -> bool {
        reads_form(self.places(), form::HEX)
    }

    /// Numbers in base64 form are looked for: base64 is on and some place is read for
    /// runs of digits (a value read whole is decimal only).
    #[must_use]
    pub const fn reads_b64(&self) -> bool {
        reads_form(self.places(), form::BASE64)
    }
}

/// The bits of `ScanConfig::msisdn_on` that have runs of digits read somewhere: the
/// request target, cookies, or header values read inside.
const RUN_BITS: u8 = place::bit(place::TARGET) | place::bit(place::COOKIE) | place::INSIDE_VALUES;

/// Whether a `ScanConfig::msisdn_on` has numbers in `f` looked for: decimal whenever the
/// check is on, hex and base64 each when asked (`form::HEX_ON`, `form::B64_ON`) and some
/// place is read for runs.
#[must_use]
pub const fn reads_form(bits: u8, f: u8) -> bool {
    match f {
        form::DECIMAL => bits != 0,
        form::HEX => bits & form::HEX_ON != 0 && bits & RUN_BITS != 0,
        form::BASE64 => bits & form::B64_ON != 0 && bits & RUN_BITS != 0,
        _ => false,
    }
}

/// The forms of a `ScanConfig::msisdn_on`, in words, for `check-config` and `status`:
/// those read, then those not (`decimal, hex, base64` or `decimal; off: hex, base64`).
/// "off" when the check is.
#[must_use]
pub fn forms_text(bits: u8) -> String {
    let (on, off): (Vec<u8>, Vec<u8>) = (0..form::COUNT).partition(|&f| reads_form(bits, f));
    if on.is_empty() {
        return "off".into();
    }
    let names = |fs: &[u8]| {
        fs.iter()
            .map(|&f| form::name(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = names(&on);
    if !off.is_empty() {
        s.push_str("; off: ");
        s.push_str(&names(&off));
    }
    s
}

/// The places of a `ScanConfig::msisdn_on`, in words, for `check-config` and `status`:
/// those read, then those not (`header values, request target (path and query), cookies`,
/// or `header values; off: request target, cookies`). "off" when none is.
#[must_use]
pub fn places_text(bits: u8) -> String {
    let word = |p: u8| match p {
        place::HEADER => "header values",
        place::TARGET => "request target (path and query)",
        place::COOKIE => "cookies",
        _ => "unknown place",
    };
    let short = |p: u8| match p {
        place::HEADER => "header values",
        place::TARGET => "request target",
        place::COOKIE => "cookies",
        _ => "unknown place",
    };
    let (on, off): (Vec<u8>, Vec<u8>) = (0..place::COUNT).partition(|&p| bits & place::bit(p) != 0);
    if on.is_empty() {
        return "off".into();
    }
    let mut s = on.iter().map(|&p| word(p)).collect::<Vec<_>>().join(", ");
    if !off.is_empty() {
        s.push_str("; off: ");
        s.push_str(&off.iter().map(|&p| short(p)).collect::<Vec<_>>().join(", "));
    }
    s
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

#[cfg(test)]
mod tests {
    use super::{forms_text, places_text};
    use leakguard_common::place::{bit, COOKIE, HEADER, TARGET};

    /// Hex and base64 are read only where runs of digits are: asked for with every such
    /// place off, they are off; each is on or off by its own bit.
    #[test]
    fn forms_in_words() {
        use leakguard_common::{
            form::{B64_ON, HEX_ON},
            place::INSIDE_VALUES,
        };
        assert_eq!(forms_text(0), "off");
        assert_eq!(forms_text(bit(HEADER)), "decimal; off: hex, base64");
        assert_eq!(
            forms_text(bit(HEADER) | HEX_ON | B64_ON),
            "decimal; off: hex, base64"
        );
        for runs in [bit(TARGET), bit(COOKIE), INSIDE_VALUES] {
            let on = bit(HEADER) | runs;
            assert_eq!(forms_text(on | HEX_ON | B64_ON), "decimal, hex, base64");
            assert_eq!(forms_text(on | HEX_ON), "decimal, hex; off: base64");
            assert_eq!(forms_text(on | B64_ON), "decimal, base64; off: hex");
            assert_eq!(forms_text(on), "decimal; off: hex, base64");
        }
    }

    #[test]
    fn places_in_words() {
        assert_eq!(places_text(0), "off");
        assert_eq!(
            places_text(bit(HEADER)),
            "header values; off: request target, cookies"
        );
        assert_eq!(
            places_text(bit(HEADER) | bit(TARGET)),
            "header values, request target (path and query); off: cookies"
        );
        assert_eq!(
            places_text(bit(HEADER) | bit(TARGET) | bit(COOKIE)),
            "header values, request target (path and query), cookies"
        );
        assert_eq!(
            places_text(bit(HEADER) | bit(COOKIE)),
            "header values, cookies; off: request target"
        );
        assert_eq!(
            places_text(bit(TARGET)),
            "request target (path and query); off: header values, cookies"
        );
    }
}
