//! Every limit of the data path, used by both the kernel programs and the daemon.

/// Longest header name that can match a rule. RFC 9110 sets no limit; real identity
/// headers are under 40 bytes. A longer name is simply not an identity header.
pub const MAX_NAME_LEN: usize = 64;

/// Rules (identity header names) the kernel can hold: size of `RULES` and `RULE_COUNTERS`.
pub const MAX_RULES: u32 = 4096;

/// Slots of the kernel's rule table per generation (`RuleSlot`): a power of two, four
/// times `MAX_RULES`, so that linear probing keeps every rule within `RULE_PROBES` of its
/// home slot for nearly every seed.
pub const RULE_SLOTS: u32 = 4 * MAX_RULES;
/// Slots a rule-table lookup probes at most.
pub const RULE_PROBES: u32 = 8;
/// Distinct allowlists: each is one bit of the `u64` mask stored in the allowlist tries.
pub const MAX_ALLOW_GROUPS: usize = 64;

/// Prefixes per address family in the allowlist tries.
pub const MAX_ALLOW_PREFIXES: u32 = 16384;

/// Payload bytes of one segment the scanner can visit: a GSO super-packet on TC egress
/// (64 KiB less headers). A head still open past it (a BIG TCP segment) was not seen
/// whole.
pub const MAX_SCAN_BYTES: u32 = 65536;
/// Default and upper bound of `scan.max_head_bytes`, the cap on one request head (request
/// line to blank line, across segments): every head is scanned to its end up to it. No
/// common server takes a larger head (nginx 4 × 8 KiB, HAProxy 16 KiB, Squid 64 KiB);
/// one larger is not seen whole and follows `scan.incomplete_heads` (drop by default).
pub const DEFAULT_MAX_HEAD_BYTES: u32 = MAX_SCAN_BYTES;
/// Below this a request line and one header do not fit; the policy refuses smaller caps.
pub const MIN_HEAD_BYTES: u32 = 64;

/// The payload is copied into a per-CPU scratch window of this size and scanned there
/// with masked indexes (the verifier then needs no per-byte packet bounds proof).
/// A power of two. 16 KiB: the verifier re-checks the scan callback once per window
/// iteration, so few large windows verify much faster than many small ones; per-CPU
/// map values are capped at 32 KiB.
pub const SCAN_WINDOW: usize = 16384;
/// Windows per packet: `MAX_SCAN_BYTES / SCAN_WINDOW`, the bound of the window loop.
pub const MAX_WINDOWS: u32 = MAX_SCAN_BYTES / SCAN_WINDOW as u32;
/// Bytes per `bpf_loop` callback: the inner loop is verified once per callback
/// (64 simulated iterations), and the per-callback overhead is spread over 64 bytes.
pub const SCAN_CHUNK: u32 = 64;

/// Longest HTTP method token accepted on a request line (`MKCALENDAR` is 10; generous).
pub const MAX_METHOD_LEN: u32 = 24;

/// 802.1Q / 802.1ad tags parsed before giving up (QinQ = 2).
pub const MAX_VLAN_TAGS: usize = 2;

/// IPv6 extension headers walked before giving up on a packet (it then passes).
pub const MAX_IPV6_EXT_HEADERS: usize = 6;

/// Attachments with counters of their own (`STATS` has `MAX_SLOTS * HOOKS` entries).
/// Slot 0 collects interfaces that have none (see `IFSLOT_ENTRIES`).
pub const MAX_SLOTS: u32 = 32;
/// The `STATS` slot of self-test canaries: never an interface's, never exported.
pub const CANARY_SLOT: u32 = MAX_SLOTS - 1;
/// Marks a self-test canary: `__sk_buff.mark` on TC; on XDP, the first 4 bytes of the
/// frame's metadata (`data_meta`). A canary is handled exactly like traffic but counted
/// only in `CANARY_SLOT`: no rule counters, match counters or events move.
pub const CANARY_MAGIC: u32 = 0x4c47_5354; // "LGST"

/// Hooks a program can report (`hook::*`).
pub const HOOKS: u32 = 3;
/// `IFSLOT` is indexed by `ifindex % IFSLOT_ENTRIES`: one array load per packet finds the
/// counters of its interface; an interface whose index collides with another attached
/// one counts in slot 0 (the daemon logs it).
pub const IFSLOT_ENTRIES: u32 = 1024;
/// Rule ids counted per (slot, hook) in the `MATCH_COUNTS` array; ids from here on, and
/// interfaces without a slot, count in the `MATCHES` hash. The daemon gives ids lowest
/// first, so a policy of up to this many rules counts every match in the array.
pub const MATCH_ARRAY_RULES: u32 = 128;
/// Distinct (interface, hook, rule, outcome) match counters.
pub const MAX_MATCH_KEYS: u32 = 16384;

/// Flows the `FLOWS` LRU hash tracks at once: flows with a request head open across
/// segments, or with redactions a retransmission must repeat. The least recently used
/// entry is evicted when full; heads within one segment never need an entry.
/// Memory: key and value (`FlowKey`, `FlowState`) plus the kernel's per-element
/// overhead, preallocated; the README states the measured figure.
pub const FLOW_ENTRIES: u32 = 65536;
/// Counters of `FLOW_HINTS`: how many `FLOWS` entries may have keys that hash to each
/// (`flow::hint_slot`). A power of two; 512 KiB of `u64`s (BPF's atomics are 64-bit
/// here), as much memory as the flow table's bucket array a lookup would touch.
pub const FLOW_HINT_SLOTS: u32 = 65536;
/// Redacted runs remembered per flow for retransmissions (a ring).
pub const MAX_SPANS: usize = 4;

/// The identity-number check (`[msisdn]`): a value of 9 to 15 digits after optional
/// whitespace and an optional `+` (E.164 numbers have at most 15 digits). Such a value is
/// an identity number only when it starts with a configured prefix (a country or
/// network code), which keeps lengths, counters and timestamps out.
pub const MSISDN_MIN_DIGITS: u32 = 9;
pub const MSISDN_MAX_DIGITS: u32 = 15;
/// Prefixes of identity numbers (`[msisdn] prefixes`), per generation.
pub const MAX_MSISDN_PREFIXES: u32 = 1024;

/// Size of the match-event ring buffer (bytes, a power of two and page multiple).
pub const EVENT_RING_BYTES: u32 = 256 * 1024;

/// What the pinned maps mean: their layouts, and the hashes that place entries in them
/// (`name::hash` for `RULE_TABLE`, `flow::hint_slot` for `FLOW_HINTS`). Bumped whenever
/// one changes; a daemon refuses pins of another version (`leakguard detach` first),
/// since its programs would misread them. 2: the rule hash of parallel multiplies.
/// 3: `FlowState::head_seq` (heads capped as a whole, not per segment).
pub const MAP_LAYOUT_VERSION: u64 = 3;

/// Byte written over every byte of a redacted value. `*` is a valid field-vchar and a
/// token char, so the request stays well formed.
pub const REDACT_FILLER: u8 = b'*';

const _: () = assert!(SCAN_WINDOW.is_power_of_two());
const _: () = assert!(RULE_SLOTS.is_power_of_two());
const _: () = assert!(FLOW_HINT_SLOTS.is_power_of_two());
const _: () = assert!((SCAN_WINDOW as u32).is_multiple_of(SCAN_CHUNK));
const _: () = assert!(MAX_SCAN_BYTES.is_multiple_of(SCAN_WINDOW as u32));
