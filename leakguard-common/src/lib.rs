//! Layouts, limits and name rules shared by leakguard's kernel programs and user space.
//!
//! Every type here crosses the kernel/user boundary through a BPF map or the event ring,
//! so each is `#[repr(C)]`, has explicit padding and a size assertion, and uses integers
//! (never `bool` or Rust enums) for anything the other side writes.
#![no_std]

#[cfg(feature = "model")]
extern crate alloc;

pub mod b64;
pub mod csum;
pub mod flow;
pub mod limits;
pub mod maps;
#[cfg(feature = "model")]
pub mod model;
pub mod name;
pub mod swar;

pub use flow::{FlowKey, FlowState, Span};
pub use limits::*;

/// What a rule does with a request that carries its header. Stored as `u8` in [`Rule`].
pub mod action {
    /// Pass the packet; count the match.
    pub const COUNT: u8 = 0;
    /// Overwrite the value in place with [`crate::REDACT_FILLER`]; count.
    pub const REDACT: u8 = 1;
    /// Drop the packet; count.
    pub const DROP: u8 = 2;
    /// Not configurable: the outcome when the destination is on the rule's allowlist.
    pub const ALLOW: u8 = 3;
    /// Number of outcomes, the width of [`crate::RuleCounters`].
    pub const OUTCOMES: usize = 4;

    /// Name used in metrics and logs.
    #[must_use]
    pub const fn name(a: u8) -> &'static str {
        match a {
            COUNT => "count",
            REDACT => "redact",
            DROP => "drop",
            ALLOW => "allow",
            _ => "unknown",
        }
    }
}

/// Where a program runs. Stored in [`Event::hook`].
pub mod hook {
    pub const TC_EGRESS: u8 = 0;
    pub const TC_INGRESS: u8 = 1;
    pub const XDP: u8 = 2;

    #[must_use]
    pub const fn name(h: u8) -> &'static str {
        match h {
            TC_EGRESS => "tc-egress",
            TC_INGRESS => "tc-ingress",
            XDP => "xdp",
            _ => "unknown",
        }
    }
}

/// Key of the `RULES` hash map: a header name folded by [`name::fold`], zero padded.
/// 8-byte aligned so the kernel can clear it with eight word stores.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub name: [u8; MAX_NAME_LEN],
}
const _: () = assert!(core::mem::size_of::<NameKey>() == MAX_NAME_LEN);

/// Prefilter of rule names (array `NAME_FILTER`, an entry per policy generation): bit
/// [`name::filter_bit`]`(first, last)` of `by_len[len]` is set when some rule's folded name
/// has that length and first and last byte. A header line whose bit is clear cannot match,
/// and skips the hash lookup of its 64-byte key; most lines of a request (Host, Accept,
/// Cookie…) are such lines. Indexed by length up to 127 so a masked index stays in bounds.
///
/// `starts` answers earlier, at the start of a line, from its first two bytes: bit
/// [`name::start_bit`] is set when some rule's folded name begins with them. A line whose
/// two bytes no rule name begins with is skipped without reading its name, when the
/// identity-number check is off (with it on, every value is looked at).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameFilter {
    pub by_len: [u64; 128],
    pub starts: [u64; 64],
    /// Seed of [`name::hash`] for this generation's rule table (see [`RuleSlot`]).
    pub seed: u64,
}
const _: () = assert!(core::mem::size_of::<NameFilter>() == 1024 + 512 + 8);

impl NameFilter {
    pub const EMPTY: Self = Self {
        by_len: [0; 128],
        starts: [0; 64],
        seed: 0,
    };

    /// Adds a folded name (non-empty, at most `MAX_NAME_LEN` bytes).
    pub fn insert(&mut self, folded: &[u8]) {
        let (Some(&first), Some(&last)) = (folded.first(), folded.last()) else {
            return;
        };
        self.by_len[folded.len() & 127] |= 1 << name::filter_bit(first, last);
        if let [a, b, ..] = folded {
            let (word, bit) = name::start_bit(*a, *b);
            self.starts[word] |= bit;
        }
    }

    /// True when some name inserted begins with the folded bytes `a`, `b`.
    #[must_use]
    pub fn may_start(&self, a: u8, b: u8) -> bool {
        let (word, bit) = name::start_bit(a, b);
        self.starts[word] & bit != 0
    }
}

/// A slot of the kernel's rule table (`RULE_TABLE`: [`RULE_SLOTS`] per generation).
///
/// The table is open addressing over [`name::hash`] of the folded name, probed linearly
/// from slot [`name::slot`]`(hash, 0)`: every rule lies within [`RULE_PROBES`] slots of
/// its home (the daemon picks a generation's seed so that all do), and an empty slot
/// (`hash == 0`) ends a search early. A header name costs an 8-word hash and one array
/// load per probe, where a hash map hashes its 64-byte key with jhash; the name is
/// compared in full before a slot counts as a match.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSlot {
    pub hash: u64,
    pub name: NameKey,
    pub rule: Rule,
}
const _: () = assert!(core::mem::size_of::<RuleSlot>() == 8 + MAX_NAME_LEN + 8);

impl RuleSlot {
    pub const EMPTY: Self = Self {
        hash: 0,
        name: NameKey {
            name: [0; MAX_NAME_LEN],
        },
        rule: Rule {
            id: 0,
            action: 0,
            allow_group: 0,
            _pad: [0; 2],
        },
    };
}

/// Value of the `RULES` hash map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Index into `RULE_COUNTERS`; `< MAX_RULES`.
    pub id: u32,
    /// One of [`action`]'s configurable values.
    pub action: u8,
    /// Bit in the allowlist masks that stands for this rule's allowlist, or [`NO_ALLOW_GROUP`].
    pub allow_group: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<Rule>() == 8);

/// `Rule::allow_group` of a rule without an allowlist.
pub const NO_ALLOW_GROUP: u8 = 0xff;

/// Per-CPU counters of one rule, indexed by [`action`] outcome.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub outcomes: [u64; action::OUTCOMES],
}
const _: () = assert!(core::mem::size_of::<RuleCounters>() == 32);

/// Per-CPU counters per (attachment slot, hook): `STATS[stats_index(slot, hook)]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every packet the program ran on.
    pub packets: u64,
    /// IPv4/IPv6 TCP segments to a configured HTTP port.
    pub tcp_http: u64,
    /// Request lines recognised (heads started).
    pub heads: u64,
    /// Header lines scanned.
    pub lines: u64,
    /// Payload bytes run through the scanner.
    pub bytes: u64,
    /// Request heads the guard could not see whole: longer than `scan.max_head_bytes`, or
    /// still open where a segment's scan ends (`MAX_SCAN_BYTES`, a failed read). Dropped
    /// (and in `dropped_packets`) unless `scan.incomplete_heads = "pass"`.
    pub truncated: u64,
    /// Header lines that violate RFC 9112 (whitespace before the colon, no colon, obs-fold).
    pub malformed: u64,
    /// Non-first IP fragments, passed untouched (they carry no TCP header).
    pub fragments: u64,
    /// Packets whose payload was rewritten by `redact`.
    pub redacted_packets: u64,
    /// Packets dropped by `drop`.
    pub dropped_packets: u64,
    /// Match events that did not fit the ring buffer (the counters still moved).
    pub events_lost: u64,
    /// Helper failures (load/store/checksum); the packet passes unmodified or is dropped
    /// when a redaction could not be completed.
    pub errors: u64,
    /// HTTP-port segments that continued a head open in an earlier segment.
    pub continuations: u64,
    /// HTTP-port segments with payload that neither started nor continued a head (bodies,
    /// or anything that is not a request).
    pub bodies: u64,
    /// Segments that resent bytes already scanned (their redactions are repeated).
    pub retransmissions: u64,
    /// Segments dropped because their bytes could not be scanned in order: a gap inside
    /// an open head, or a retransmission of redactions no longer remembered. TCP resends.
    pub unordered_drops: u64,
    /// Values recognised as identity numbers by `[msisdn]` (under any header name).
    pub msisdn_values: u64,
}
const _: () = assert!(core::mem::size_of::<Stats>() == 17 * 8);

/// Value of `IFSLOT[ifindex % IFSLOT_ENTRIES]`: which counter slot an interface uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfSlot {
    pub ifindex: u32,
    /// `1..MAX_SLOTS`; 0 = no slot of its own.
    pub slot: u32,
}
const _: () = assert!(core::mem::size_of::<IfSlot>() == 8);

/// Key of the per-CPU `MATCHES` hash: a match counter per interface, hook, rule, outcome.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchKey {
    pub ifindex: u32,
    pub rule_id: u32,
    pub hook: u8,
    pub outcome: u8,
    /// [`place`] and [`form`] of an identity-number match ([`MSISDN_RULE_ID`],
    /// `place::with_form`); 0 for a rule's.
    pub place: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<MatchKey>() == 16);

/// Match counters of one (slot, hook) (per-CPU array `MATCH_COUNTS`, indexed like
/// `STATS`): `n[rule * OUTCOMES + outcome]` for rule ids below [`MATCH_ARRAY_RULES`].
/// One array load and an add per match, where the `MATCHES` hash, which keeps the rest
/// (larger rule ids, the identity-number check, interfaces without a slot of their own),
/// hashes a key and may insert.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchCounts {
    pub n: [u64; MATCH_ARRAY_RULES as usize * action::OUTCOMES],
}
const _: () = assert!(core::mem::size_of::<MatchCounts>() == 4096);

impl Default for MatchCounts {
    fn default() -> Self {
        Self {
            n: [0; MATCH_ARRAY_RULES as usize * action::OUTCOMES],
        }
    }
}

/// Index of `STATS` for a slot and hook.
#[must_use]
#[inline(always)]
pub const fn stats_index(slot: u32, hook: u8) -> u32 {
    (slot % MAX_SLOTS) * HOOKS + (hook as u32 % HOOKS)
}

/// Scan settings filled by the daemon (array `CONFIG`, an entry per policy generation).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// The cap on one request head, in bytes (`MIN_HEAD_BYTES..=MAX_SCAN_BYTES`).
    pub max_head_bytes: u32,
    /// 1 once the daemon has filled every map.
    pub ready: u8,
    /// 1 while the daemon hands the guard over from maps of another layout (see
    /// `leakguard/src/kernel/handover.rs`): a segment with no flow entry that does not
    /// start a request may continue a head the old programs saw begin, so it is a head
    /// not seen whole (`incomplete_action`). Was the high bytes of a `u32` `ready`:
    /// the layout is unchanged.
    pub handover: u8,
    pub _pad: [u8; 2],
    /// Digest of the policy the maps hold (shown by `leakguard status`).
    pub digest: u64,
    /// The identity-number check (`[msisdn]`): a bit (`1 << place`) per [`place`] it
    /// reads; 0 when it is off. (1, the headers alone, is what layouts up to 3 wrote.)
    pub msisdn_on: u8,
    /// Its [`action`] (count, redact or drop).
    pub msisdn_action: u8,
    /// Its allowlist bit, or [`NO_ALLOW_GROUP`].
    pub msisdn_allow_group: u8,
    /// What happens to a segment whose head the guard could not see whole:
    /// [`action::DROP`] (the default) or [`action::COUNT`] (pass it, counted).
    pub incomplete_action: u8,
    /// Counter index of the check in `RULE_COUNTERS` ([`MSISDN_RULE_ID`]).
    pub msisdn_rule_id: u32,
}
const _: () = assert!(core::mem::size_of::<ScanConfig>() == 24);

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            ready: 0,
            handover: 0,
            _pad: [0; 2],
            digest: 0,
            msisdn_on: 0,
            msisdn_action: action::COUNT,
            msisdn_allow_group: NO_ALLOW_GROUP,
            incomplete_action: action::DROP,
            msisdn_rule_id: MSISDN_RULE_ID,
        }
    }
}

/// Where in a request head the identity-number check found a number: the low four bits
/// of `MatchKey::place` and `Event::place` (the high four are its [`form`]), and the bit
/// `1 << place` of `ScanConfig::msisdn_on`.
pub mod place {
    /// A whole header value, under any name without a rule (the name is in the event).
    pub const HEADER: u8 = 0;
    /// A run of digits in the request target: a path segment or a query value (the event's
    /// name says `path` or `query:NAME`, digits of NAME shown as `#`).
    pub const TARGET: u8 = 1;
    /// A run of digits in a `Cookie` header's value (the event's name says `cookie:NAME`,
    /// the pair's name, digits as `#`; or `cookie` when the run has no pair name).
    pub const COOKIE: u8 = 2;
    /// Places there are.
    pub const COUNT: u8 = 3;

    /// The metric label and log word of a place.
    #[must_use]
    pub const fn name(place: u8) -> &'static str {
        match place {
            HEADER => "header",
            TARGET => "target",
            COOKIE => "cookie",
            _ => "unknown",
        }
    }

    /// Not a place: the bit of `ScanConfig::msisdn_on` that has header values read for
    /// runs of digits (a number inside a longer token counts: `tel:+447700900123`,
    /// `447700900123@ims.example`) rather than only whole.
    pub const INSIDE_VALUES: u8 = 0x80;

    /// `ScanConfig::msisdn_on` with these places on.
    #[must_use]
    pub const fn bit(place: u8) -> u8 {
        1 << place
    }

    /// The place of a `MatchKey::place` or `Event::place` byte.
    #[must_use]
    pub const fn of(byte: u8) -> u8 {
        byte & 15
    }

    /// The `MatchKey::place` / `Event::place` byte of a number in `place` in `form`.
    #[must_use]
    pub const fn with_form(place: u8, form: u8) -> u8 {
        place | form << 4
    }
}

/// How an identity number was written where it was found: the high four bits of
/// `MatchKey::place` and `Event::place` (see [`place::with_form`]).
pub mod form {
    /// Decimal digits: `447700900123`.
    pub const DECIMAL: u8 = 0;
    /// Hex of the ASCII digits, inside a run of digits: `343437373030393030313233` (every
    /// digit `d` written `3d`).
    pub const HEX: u8 = 1;
    /// Base64 of the ASCII digits, standard or URL-safe alphabet, at any alignment:
    /// `NDQ3NzAwOTAwMTIz` (see `b64`).
    pub const BASE64: u8 = 2;
    /// Forms there are.
    pub const COUNT: u8 = 3;

    /// Not a form: the bit of `ScanConfig::msisdn_on` that has runs of digits (request
    /// target, cookies, values read inside) read for the hex form too.
    pub const HEX_ON: u8 = 0x40;
    /// Not a form: the bit of `ScanConfig::msisdn_on` that has runs of digits' places read
    /// for the base64 form too.
    pub const B64_ON: u8 = 0x20;

    /// The form of a `MatchKey::place` or `Event::place` byte.
    #[must_use]
    pub const fn of(byte: u8) -> u8 {
        byte >> 4
    }

    /// The metric label and log word of a form.
    #[must_use]
    pub const fn name(form: u8) -> &'static str {
        match form {
            DECIMAL => "decimal",
            HEX => "hex",
            BASE64 => "base64",
            _ => "unknown",
        }
    }
}

/// `RULE_COUNTERS` index and `Event::rule_id` of the identity-number check: the last id,
/// never given to a header rule (rules take the lowest free ids).
pub const MSISDN_RULE_ID: u32 = MAX_RULES - 1;

/// `Event::rule_id` of a request head the guard could not see whole (no rule counter:
/// `Stats::truncated` counts them); its action is `DROP` or `COUNT` (passed).
pub const INCOMPLETE_RULE_ID: u32 = u32::MAX;

/// Key of the `MSISDN_PREFIX` LPM tries: decimal digits as nibbles, first digit in the
/// high nibble of byte 0; the prefix length is 4 bits per digit.
pub type DigitKey = [u8; 8];

/// `Rule::action` of a name listed in `[msisdn] ignore_headers`: not a rule (nothing is
/// counted), but the identity-number check skips the header's values.
pub const IGNORE_ACTION: u8 = 0xfe;

/// `Rule::action` of `Cookie` while `[msisdn]` reads cookies (and no rule or ignored name
/// is `Cookie`): not a rule either; the value is read for runs of digits
/// (`place::COOKIE`). Found by the lookup every header name gets anyway, so no other
/// name pays for it.
pub const COOKIE_ACTION: u8 = 0xfd;

/// True for the action of an operator's rule, false for the number check's markers
/// ([`IGNORE_ACTION`], [`COOKIE_ACTION`]).
#[must_use]
pub const fn is_rule_action(a: u8) -> bool {
    a < COOKIE_ACTION
}

/// Set of HTTP destination ports (array `PORTS`, an entry per policy generation): bit `p`
/// set = scan port `p`.
/// One array lookup and a bit test per TCP segment, whatever the number of ports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSet {
    pub bits: [u64; 1024],
}
const _: () = assert!(core::mem::size_of::<PortSet>() == 65536 / 8);

impl PortSet {
    pub const EMPTY: Self = Self { bits: [0; 1024] };

    pub fn insert(&mut self, port: u16) {
        self.bits[usize::from(port >> 6)] |= 1 << (port & 63);
    }

    #[must_use]
    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }
}

/// Address family in [`Event::family`].
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// One match, sent through the `EVENTS` ring buffer. Carries where and what matched,
/// never a byte of the header value.
///
/// A rule's match sends only the head (`EVENT_HEAD_BYTES`: with the ring's 8-byte record
/// header, one cache line): the rule id names the header. A match of the identity-number
/// check sends the whole event, with the header name the number came under. Read either
/// with [`Event::from_record`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub ifindex: u32,
    pub rule_id: u32,
    /// [`hook`] value.
    pub hook: u8,
    /// [`action`] outcome (`ALLOW` when the destination is trusted).
    pub action: u8,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// [`place`] and [`form`] of an identity-number match (`place::with_form`); 0 for a
    /// rule's.
    pub place: u8,
    /// Ports in host byte order.
    pub sport: u16,
    pub dport: u16,
    /// IPv4 addresses use the first 4 bytes; network byte order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Bytes of `name` used (0 in a rule's event: the name is not sent).
    pub name_len: u32,
    /// The build of the program that sent the event ([`build_id`]): shows which program
    /// was enforcing, across upgrades.
    pub build: u32,
    /// The header name as the scanner folded it (lowercase, `_` as `-`), zero padded:
    /// how a match of the identity-number check tells the operator which header carried
    /// the number. Never a byte of the value. Not sent for a rule's match.
    pub name: NameKey,
}
const _: () = assert!(core::mem::size_of::<Event>() == 56 + MAX_NAME_LEN);

/// Bytes of an [`Event`] a rule's match sends: every field before `name`.
pub const EVENT_HEAD_BYTES: usize = core::mem::offset_of!(Event, name);
const _: () = assert!(EVENT_HEAD_BYTES == 56);

impl Event {
    /// The event in a ring-buffer record: a head (`name` zero) or a whole event. `None`
    /// for any other length.
    #[must_use]
    pub fn from_record(record: &[u8]) -> Option<Self> {
        if record.len() != EVENT_HEAD_BYTES && record.len() != core::mem::size_of::<Self>() {
            return None;
        }
        let mut e = Self {
            ifindex: 0,
            rule_id: 0,
            hook: 0,
            action: 0,
            family: 0,
            place: 0,
            sport: 0,
            dport: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            name_len: 0,
            build: 0,
            name: NameKey {
                name: [0; MAX_NAME_LEN],
            },
        };
        // SAFETY: `Event` is repr(C) and made of integers only (any bytes are a valid
        // value); `record.len()` bytes fit in it (checked above).
        unsafe {
            core::ptr::copy_nonoverlapping(
                record.as_ptr(),
                core::ptr::from_mut(&mut e).cast::<u8>(),
                record.len(),
            );
        }
        if record.len() == EVENT_HEAD_BYTES {
            e.name_len = 0;
        }
        Some(e)
    }
}

/// The build id compiled into a kernel object: `LEAKGUARD_EBPF_BUILD` (a decimal `u32`)
/// when the object was built, 0 when unset. Packagers number their builds; the tests build
/// a second object with another id to prove an upgrade in place.
#[must_use]
pub const fn build_id(env: Option<&str>) -> u32 {
    let Some(s) = env else { return 0 };
    let b = s.as_bytes();
    let mut n: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "LEAKGUARD_EBPF_BUILD must be decimal digits"
        );
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are `#[repr(C)]`, made only of integers and integer arrays, with
    // explicit padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::Rule {}
    unsafe impl aya::Pod for super::RuleCounters {}
    unsafe impl aya::Pod for super::Stats {}
    unsafe impl aya::Pod for super::ScanConfig {}
    unsafe impl aya::Pod for super::PortSet {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::NameFilter {}
    unsafe impl aya::Pod for super::RuleSlot {}
    unsafe impl aya::Pod for super::MatchCounts {}
    unsafe impl aya::Pod for super::IfSlot {}
    unsafe impl aya::Pod for super::MatchKey {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
}
