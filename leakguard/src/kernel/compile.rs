//! Policy → map contents: the kernel form of a policy (rules and their counter ids, the
//! rule table, allowlists, number prefixes, the digest), computed without touching a map.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use aya::maps::lpm_trie::Key;
use ipnet::IpNet;
use leakguard_common::{
    flow::prefix_entry, name, DigitKey, NameFilter, NameKey, PortSet, Rule as KRule, RuleSlot,
    ScanConfig, COOKIE_ACTION, IGNORE_ACTION, MAX_ALLOW_GROUPS, MAX_MSISDN_PREFIXES, MAX_RULES,
    MAX_SCAN_BYTES, MIN_HEAD_BYTES, MSISDN_MAX_DIGITS, MSISDN_RULE_ID, NO_ALLOW_GROUP, RULE_PROBES,
    RULE_SLOTS,
};

use super::maps::ApplyError;
use crate::policy::KernelPolicy;

/// The kernel form of a policy, computed without touching any map (so a bad policy is
/// refused before anything changes).
pub struct Compiled {
    pub config: ScanConfig,
    pub ports: Box<PortSet>,
    pub rules: Vec<(NameKey, KRule)>,
    pub name_filter: Box<NameFilter>,
    /// The generation's slots of `RULE_TABLE` (`RULE_SLOTS` of them).
    pub rule_table: Vec<RuleSlot>,
    pub allow_v4: Vec<(Key<[u8; 4]>, u64)>,
    pub allow_v6: Vec<(Key<[u8; 16]>, u64)>,
    /// The identity-number prefixes and every start of one (see `prefix_entry`).
    pub prefixes: Vec<(Key<DigitKey>, u8)>,
}

/// Validates a policy and computes its map contents.
pub fn compile(policy: &KernelPolicy) -> Result<Compiled, ApplyError> {
    compile_with_ids(policy, &HashMap::new())
}

/// [`compile`], keeping the counter id of every name already in the kernel (`existing`),
/// so a reload or an edited file never moves a header's counters to another header. New
/// names take ids no current rule uses, lowest first.
pub fn compile_with_ids(
    policy: &KernelPolicy,
    existing: &HashMap<NameKey, u32>,
) -> Result<Compiled, ApplyError> {
    let lim = policy.max_head_bytes;
    if !(MIN_HEAD_BYTES..=MAX_SCAN_BYTES).contains(&lim) {
        return Err(ApplyError::ScanLimit(lim));
    }
    let mut ports = Box::new(PortSet::EMPTY);
    for &p in &policy.ports {
        if p == 0 {
            return Err(ApplyError::PortZero);
        }
        ports.insert(p);
    }
    // One id is the identity-number check's.
    if policy.rules.len() > MAX_RULES as usize - 1 {
        return Err(ApplyError::TooManyRules(policy.rules.len()));
    }

    // One allow group per distinct allowlist.
    let mut groups: BTreeMap<Vec<IpNet>, u8> = BTreeMap::new();
    let mut rules = Vec::with_capacity(policy.rules.len());
    let mut seen = HashMap::new();
    let mut used: std::collections::HashSet<u32> = policy
        .rules
        .iter()
        .filter_map(|r| name::key(r.header.as_bytes()).ok())
        .filter_map(|k| existing.get(&k).copied())
        .chain([MSISDN_RULE_ID])
        .collect();
    let mut next_free = 0u32;
    for r in &policy.rules {
        let key = name::key(r.header.as_bytes()).map_err(|e| ApplyError::BadName {
            name: r.header.clone(),
            why: match e {
                name::NameError::Empty => "empty",
                name::NameError::TooLong => "longer than 64 bytes",
                name::NameError::NotToken(_) => {
                    "not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
                }
            },
        })?;
        if seen.insert(key, ()).is_some() {
            return Err(ApplyError::DuplicateRule(r.header.clone()));
        }
        let allow_group = allow_group(&mut groups, &r.allow)?;
        rules.push((
            key,
            KRule {
                id: match existing.get(&key) {
                    Some(&id) => id,
                    None => {
                        while used.contains(&next_free) {
                            next_free += 1;
                        }
                        used.insert(next_free);
                        next_free
                    }
                },
                action: r.action.kernel(),
                allow_group,
                _pad: [0; 2],
            },
        ));
    }

    let mut config = ScanConfig {
        max_head_bytes: lim,
        incomplete_action: policy.incomplete.kernel(),
        ready: 1,
        digest: digest(policy),
        ..ScanConfig::default()
    };
    let mut digit_prefixes = Vec::new();
    if let Some(m) = &policy.msisdn {
        config.msisdn_on = m.places();
        config.msisdn_action = m.action.kernel();
        config.msisdn_allow_group = allow_group(&mut groups, &m.allow)?;
        digit_prefixes = prefix_entries(&m.prefixes)?;
        // Ignored names ride in the rules map with an action that counts nothing; a
        // name that has a rule is already exempt.
        for h in &m.ignore_headers {
            let key = name::key(h.as_bytes()).map_err(|_| ApplyError::BadName {
                name: h.clone(),
                why: "not an HTTP token of 1 to 64 bytes",
            })?;
            if seen.insert(key, ()).is_none() {
                rules.push((
                    key,
                    KRule {
                        id: MSISDN_RULE_ID,
                        action: IGNORE_ACTION,
                        allow_group: NO_ALLOW_GROUP,
                        _pad: [0; 2],
                    },
                ));
            }
        }
        // `Cookie` values are read for runs of digits, unless `Cookie` has a rule or is
        // ignored (those came first). With cookies off while other values are read
        // inside, `Cookie` is ignored: off means not read.
        if m.cookies || m.inside_values {
            let key = name::key(b"cookie").expect("a token");
            if seen.insert(key, ()).is_none() {
                rules.push((
                    key,
                    KRule {
                        id: MSISDN_RULE_ID,
                        action: if m.cookies {
                            COOKIE_ACTION
                        } else {
                            IGNORE_ACTION
                        },
                        allow_group: NO_ALLOW_GROUP,
                        _pad: [0; 2],
                    },
                ));
            }
        }
        if rules.len() > MAX_RULES as usize {
            return Err(ApplyError::TooManyRules(rules.len()));
        }
    }

    // The trie answers with the longest matching prefix only, so each stored prefix
    // carries the groups of every prefix that contains it.
    let mut prefixes: Vec<(IpNet, u64)> = Vec::new();
    for (list, &g) in &groups {
        for net in list {
            prefixes.push((*net, 1u64 << g));
        }
    }
    let mut masks: BTreeMap<IpNet, u64> = BTreeMap::new();
    for (net, _) in &prefixes {
        let mask = prefixes
            .iter()
            .filter(|(outer, _)| outer.contains(net))
            .fold(0, |m, (_, bit)| m | bit);
        masks.insert(*net, mask);
    }
    let mut name_filter = Box::new(NameFilter::EMPTY);
    for (key, _) in &rules {
        let len = key
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(key.name.len());
        name_filter.insert(&key.name[..len]);
    }
    let (seed, rule_table) = rule_table(&rules)?;
    name_filter.seed = seed;
    let mut allow_v4 = Vec::new();
    let mut allow_v6 = Vec::new();
    for (net, mask) in masks {
        match net.addr() {
            IpAddr::V4(a) => {
                allow_v4.push((Key::new(u32::from(net.prefix_len()), a.octets()), mask))
            }
            IpAddr::V6(a) => {
                allow_v6.push((Key::new(u32::from(net.prefix_len()), a.octets()), mask))
            }
        }
    }

    Ok(Compiled {
        config,
        prefixes: digit_prefixes,
        ports,
        rules,
        name_filter,
        rule_table,
        allow_v4,
        allow_v6,
    })
}

/// Seeds tried for the rule table. With `RULE_SLOTS = 4 × MAX_RULES` a full table fits
/// within `RULE_PROBES` for about two seeds in three, a small one for nearly every seed.
const RULE_SEEDS: u64 = 64;

/// The rule table of `rules` (see `RuleSlot`): the first seed, of a fixed sequence, for
/// which linear probing places every rule within `RULE_PROBES` slots of its home.
fn rule_table(rules: &[(NameKey, KRule)]) -> Result<(u64, Vec<RuleSlot>), ApplyError> {
    'seeds: for k in 0..RULE_SEEDS {
        // splitmix64 of k: well-spread seeds, the same on every run.
        let mut seed = k.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        seed = (seed ^ (seed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        seed = (seed ^ (seed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seed ^= seed >> 31;
        let mut table = vec![RuleSlot::EMPTY; RULE_SLOTS as usize];
        for (key, rule) in rules {
            let h = name::hash(key, seed);
            let Some(free) = (0..RULE_PROBES)
                .map(|p| name::slot(h, p) as usize)
                .find(|&i| table[i].hash == 0)
            else {
                continue 'seeds;
            };
            table[free] = RuleSlot {
                hash: h,
                name: *key,
                rule: *rule,
            };
        }
        return Ok((seed, table));
    }
    Err(ApplyError::RuleTable)
}

/// The allow group of an allowlist (one per distinct list), or `NO_ALLOW_GROUP`.
fn allow_group(groups: &mut BTreeMap<Vec<IpNet>, u8>, allow: &[IpNet]) -> Result<u8, ApplyError> {
    if allow.is_empty() {
        return Ok(NO_ALLOW_GROUP);
    }
    let mut list: Vec<IpNet> = allow.iter().map(IpNet::trunc).collect();
    list.sort();
    list.dedup();
    let next = groups.len();
    let g = *groups.entry(list).or_insert(next as u8);
    if groups.len() > MAX_ALLOW_GROUPS {
        return Err(ApplyError::TooManyAllowlists(groups.len()));
    }
    Ok(g)
}

/// Trie entries for identity-number prefixes: every prefix and every start of one, each
/// marked "covered" when a configured prefix is a start of it (so the longest match of a
/// number's digits answers both questions the kernel asks, see `leakguard_common::flow`).
pub fn prefix_entries(prefixes: &[String]) -> Result<Vec<(Key<DigitKey>, u8)>, ApplyError> {
    for p in prefixes {
        if p.is_empty()
            || p.len() > MSISDN_MAX_DIGITS as usize
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApplyError::BadPrefix(p.clone()));
        }
    }
    let mut starts: BTreeMap<&str, bool> = BTreeMap::new();
    for p in prefixes {
        for l in 1..=p.len() {
            starts.entry(&p[..l]).or_insert(false);
        }
    }
    if starts.len() > MAX_MSISDN_PREFIXES as usize {
        return Err(ApplyError::TooManyPrefixes(starts.len()));
    }
    Ok(starts
        .keys()
        .map(|s| {
            let covered = prefixes.iter().any(|p| s.starts_with(p.as_str()));
            let bcd = s.bytes().enumerate().fold(0u64, |acc, (i, b)| {
                acc | leakguard_common::flow::bcd_digit(b - b'0', i as u32)
            });
            (
                Key::new(4 * s.len() as u32, bcd.to_be_bytes()),
                prefix_entry(s.len() as u32, covered),
            )
        })
        .collect())
}

/// A digest of the kernel policy (FNV-1a over a canonical form), shown by `status` so an
/// operator can tell which policy is live.
#[must_use]
pub fn digest(policy: &KernelPolicy) -> u64 {
    let mut canon = format!(
        "ports={:?};max_head={};incomplete={};",
        policy.ports,
        policy.max_head_bytes,
        policy.incomplete.name()
    );
    for r in &policy.rules {
        let key = name::key(r.header.as_bytes())
            .map(|k| k.name)
            .unwrap_or([0; 64]);
        let len = key.iter().position(|&b| b == 0).unwrap_or(64);
        canon.push_str(&format!(
            "{}={};{:?};",
            String::from_utf8_lossy(&key[..len]),
            r.action.kernel(),
            r.allow
        ));
    }
    if let Some(m) = &policy.msisdn {
        let mut ignore: Vec<NameKey> = m
            .ignore_headers
            .iter()
            .filter_map(|h| name::key(h.as_bytes()).ok())
            .collect();
        ignore.sort_by_key(|k| k.name);
        canon.push_str(&format!(
            "msisdn={:?};{};{:?};{:?};",
            m.prefixes,
            m.action.kernel(),
            ignore.iter().map(key_name).collect::<Vec<_>>(),
            m.allow
        ));
        // Only when on: a check of header values alone keeps the digest it had before
        // the request target could be read (it does what it did then).
        if m.request_target {
            canon.push_str("msisdn_target;");
        }
        // Likewise cookies: off, a file has the digest it had before they could be read.
        if m.cookies {
            canon.push_str("msisdn_cookie;");
        }
        // And numbers inside longer header values.
        if m.inside_values {
            canon.push_str("msisdn_inside;");
        }
        // And the hex form, which is read only where runs of digits are: a check that
        // reads header values whole does what it did before hex, hex on or not.
        if m.reads_hex() {
            canon.push_str("msisdn_hex;");
        }
        // And the base64 form, read in the same places: likewise only where runs are.
        if m.reads_b64() {
            canon.push_str("msisdn_b64;");
        }
    }
    canon.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A folded name key as text.
#[must_use]
pub fn key_name(k: &NameKey) -> String {
    let len = k.name.iter().position(|&b| b == 0).unwrap_or(k.name.len());
    String::from_utf8_lossy(&k.name[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Rule};

    fn rule(h: &str, allow: &[&str]) -> Rule {
        Rule {
            header: h.into(),
            action: Action::Redact,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    /// The kernel's search, in user space: the slot of `key`, if any.
    fn find(table: &[RuleSlot], seed: u64, key: &NameKey) -> Option<usize> {
        let h = name::hash(key, seed);
        (0..RULE_PROBES)
            .map(|k| name::slot(h, k) as usize)
            .take_while(|&i| table[i].hash != 0)
            .find(|&i| table[i].hash == h && table[i].name == *key)
    }

    #[test]
    fn rule_table_holds_every_rule_within_the_probe_limit() {
        for n in [0usize, 1, 30, MAX_RULES as usize - 1] {
            let rules: Vec<(NameKey, KRule)> = (0..n)
                .map(|i| {
                    let key = name::key(format!("X-Header-{i}").as_bytes()).unwrap();
                    let r = KRule {
                        id: i as u32,
                        action: 0,
                        allow_group: NO_ALLOW_GROUP,
                        _pad: [0; 2],
                    };
                    (key, r)
                })
                .collect();
            let (seed, table) = rule_table(&rules).unwrap();
            assert_eq!(table.len(), RULE_SLOTS as usize);
            assert_eq!(table.iter().filter(|s| s.hash != 0).count(), n);
            for (key, r) in &rules {
                let i = find(&table, seed, key).expect("every rule is found");
                assert_eq!(table[i].rule, *r);
            }
            let other = name::key(b"X-Header-none").unwrap();
            assert_eq!(find(&table, seed, &other), None);
            // The same rules give the same table: a reload writes what is there.
            assert_eq!(rule_table(&rules).unwrap().0, seed);
        }
    }

    #[test]
    fn nested_prefixes_carry_every_group() {
        let p = KernelPolicy {
            rules: vec![
                rule("X-MSISDN", &["198.51.100.0/24"]),
                rule("X-UIDH", &["198.51.0.0/16", "2001:db8::/32"]),
            ],
            ..KernelPolicy::default()
        };
        let c = compile(&p).unwrap();
        let g0 = c.rules[0].1.allow_group;
        let g1 = c.rules[1].1.allow_group;
        assert_ne!(g0, g1);
        let find = |len: u32| {
            c.allow_v4
                .iter()
                .find(|(k, _)| k.prefix_len() == len)
                .unwrap()
                .1
        };
        // The /24 lies inside the /16: an address in it is trusted by both rules.
        assert_eq!(find(24), (1 << g0) | (1 << g1));
        assert_eq!(find(16), 1 << g1);
        assert_eq!(c.allow_v6.len(), 1);
    }

    /// What the policy file accepts compiles into kernel maps.
    #[test]
    fn a_valid_file_compiles() {
        let c = crate::config::parse(
            std::path::Path::new("test.toml"),
            crate::config::EXAMPLE_FILE,
        )
        .unwrap();
        compile(&c.kernel).unwrap();
    }

    #[test]
    fn refuses_bad_policies() {
        let dup = KernelPolicy {
            rules: vec![rule("X-MSISDN", &[]), rule("x_msisdn", &[])],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&dup), Err(ApplyError::DuplicateRule(_))));
        let bad = KernelPolicy {
            rules: vec![rule("X MSISDN", &[])],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&bad), Err(ApplyError::BadName { .. })));
        let small = KernelPolicy {
            max_head_bytes: 10,
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&small), Err(ApplyError::ScanLimit(10))));
        let zero = KernelPolicy {
            ports: vec![0],
            ..KernelPolicy::default()
        };
        assert!(matches!(compile(&zero), Err(ApplyError::PortZero)));
    }
}
