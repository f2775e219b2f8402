//! The policy file (TOML): parsing and validation into a [`Config`].
//!
//! Every error names the file, line and column, the key and the offending value, and what
//! was expected. Unknown keys are errors. Header *values* never appear in a policy, so no
//! identity data can reach a message from here.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;
use leakguard_common::{name, MAX_NAME_LEN, MAX_RULES, MAX_SCAN_BYTES, MIN_HEAD_BYTES};
use serde::Deserialize;
use toml::Spanned;

use super::{
    Attach, Config, ConfigError, Hook, NetNs, Origin, DEFAULT_METRICS, DEFAULT_PIN_PATH, NETNS_DIR,
};
use crate::policy::{catalog::CATALOG, Action, Incomplete, KernelPolicy, Msisdn, Rule};

const DEFAULT_SELFTEST: Duration = Duration::from_secs(60);
const SELFTEST_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86400));
/// Linux IFNAMSIZ less the terminating NUL.
const MAX_IFNAME: usize = 15;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    daemon: DaemonToml,
    #[serde(default)]
    metrics: MetricsToml,
    #[serde(default)]
    attach: Vec<AttachToml>,
    #[serde(default)]
    scan: ScanToml,
    #[serde(default)]
    rule: Vec<RuleToml>,
    msisdn: Option<MsisdnToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsisdnToml {
    #[serde(default)]
    prefixes: Option<Spanned<Vec<Spanned<String>>>>,
    action: Option<Spanned<String>>,
    #[serde(default)]
    ignore_headers: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    /// Read the request line's target (path and query) too; on unless turned off.
    request_target: Option<bool>,
    /// Read `Cookie` header values too; on unless turned off.
    cookies: Option<bool>,
    /// A number inside a longer header value counts too; on unless turned off.
    inside_values: Option<bool>,
    /// Runs of digits are read for the hex form of a number too; on unless turned off.
    hex: Option<bool>,
    /// The same places are read for the base64 form of a number too; on unless turned
    /// off.
    base64: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DaemonToml {
    pin_path: Option<Spanned<String>>,
    selftest_interval: Option<Spanned<String>>,
    watch_policy: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsToml {
    listen: Option<Spanned<String>>,
    web_config: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachToml {
    interface: Spanned<String>,
    hook: Spanned<String>,
    netns: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanToml {
    ports: Option<Spanned<Vec<Spanned<i64>>>>,
    max_head_bytes: Option<Spanned<i64>>,
    incomplete_heads: Option<Spanned<String>>,
    /// Before heads were scanned whole: a per-segment limit. Accepted, ignored, warned.
    max_payload_bytes: Option<Spanned<i64>>,
    builtin_catalog: Option<Spanned<String>>,
}

/// What `ScanToml` yields.
struct Scan {
    ports: Vec<u16>,
    max_head_bytes: u32,
    incomplete: Incomplete,
    catalog: Option<Action>,
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    header: Spanned<String>,
    action: Spanned<String>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

pub(super) fn parse_with(
    path: &Path,
    text: &str,
    need_attach: bool,
) -> Result<Config, ConfigError> {
    let p = Parser {
        path,
        text,
        need_attach,
    };
    let file: FileToml = toml::from_str(text).map_err(|e| ConfigError {
        path: path.to_owned(),
        at: e.span().map(|s| line_col_of(text, s.start)),
        message: e.span().map_or_else(
            || e.message().trim().to_owned(),
            |s| name_the_key(text, s.start, e.message().trim()),
        ),
    })?;
    p.validate(file)
}

/// A type error from the TOML reader names no key ("invalid type: map, expected a
/// sequence"): the key is put in front, read from the line the error points at, with
/// the fix for the usual slip between a table and a list of tables.
fn name_the_key(text: &str, offset: usize, message: &str) -> String {
    if !message.starts_with("invalid ") {
        return message.to_owned();
    }
    let before = &text[..offset.min(text.len())];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| -> Option<String> {
        let l = l.split('#').next()?.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    };
    if let Some(name) = header(line) {
        return if line.starts_with("[[") {
            format!("[[{name}]]: {message}; [{name}] is one table: write [{name}]")
        } else if message.ends_with("expected a sequence") {
            format!("[{name}]: {message}; [{name}] is a list of tables: write [[{name}]] for each")
        } else {
            format!("[{name}]: {message}")
        };
    }
    let Some((key, _)) = line.split_once('=') else {
        return message.to_owned();
    };
    let key = key.trim();
    let section = text[..start].lines().rev().find_map(header);
    match section {
        Some(sec) => format!("{sec}.{key}: {message}"),
        None => format!("{key}: {message}"),
    }
}

pub(super) fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    /// `[[attach]]` is required (not for `audit`, which attaches nothing).
    need_attach: bool,
}

impl Parser<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            at: Some(line_col_of(self.text, span.start)),
            message: message.into(),
        }
    }

    fn err_nowhere(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            at: None,
            message: message.into(),
        }
    }

    fn validate(&self, f: FileToml) -> Result<Config, ConfigError> {
        let pin_path = match &f.daemon.pin_path {
            None => PathBuf::from(DEFAULT_PIN_PATH),
            Some(s) => {
                let p = PathBuf::from(s.get_ref());
                if !p.is_absolute() || s.get_ref().contains("..") {
                    return Err(self.err(
                        s.span(),
                        format!(
                            "daemon.pin_path = {:?}: must be an absolute path without `..`",
                            s.get_ref()
                        ),
                    ));
                }
                p
            }
        };
        let selftest_interval = match &f.daemon.selftest_interval {
            None => DEFAULT_SELFTEST,
            Some(s) => {
                let d = humantime::parse_duration(s.get_ref()).map_err(|e| {
                    self.err(
                        s.span(),
                        format!(
                            "daemon.selftest_interval = {:?}: {e} (write e.g. \"60s\" or \"5m\")",
                            s.get_ref()
                        ),
                    )
                })?;
                if d < SELFTEST_RANGE.0 || d > SELFTEST_RANGE.1 {
                    return Err(self.err(
                        s.span(),
                        format!(
                            "daemon.selftest_interval = {:?}: must be between 1s and 24h",
                            s.get_ref()
                        ),
                    ));
                }
                d
            }
        };
        let metrics_listen = match &f.metrics.listen {
            None => DEFAULT_METRICS.parse().expect("valid default"),
            Some(s) => s.get_ref().parse::<SocketAddr>().map_err(|_| {
                self.err(
                    s.span(),
                    format!(
                        "metrics.listen = {:?}: expected ADDRESS:PORT, e.g. \"127.0.0.1:9717\"",
                        s.get_ref()
                    ),
                )
            })?,
        };
        let metrics_web = match &f.metrics.web_config {
            None => None,
            Some(s) => Some(self.web_config(s)?),
        };

        let attach = self.attach(&f.attach)?;
        let mut scan = self.scan(&f.scan)?;
        let (rules, origin) = self.rules(&f.rule, scan.catalog)?;
        let msisdn = match &f.msisdn {
            Some(m) => self.msisdn(m, &mut scan.warnings)?,
            None => None,
        };
        if let Some(m) = &msisdn {
            // Ignored names share the kernel's rule table.
            if rules.len() + m.ignore_headers.len() > MAX_RULES as usize {
                return Err(self.err_nowhere(format!(
                    "{} rules and {} msisdn.ignore_headers: the kernel holds at most {MAX_RULES} names",
                    rules.len(),
                    m.ignore_headers.len()
                )));
            }
        }
        Ok(Config {
            pin_path,
            selftest_interval,
            watch_policy: f.daemon.watch_policy.unwrap_or(true),
            metrics_listen,
            metrics_web,
            attach,
            kernel: KernelPolicy {
                ports: scan.ports,
                max_head_bytes: scan.max_head_bytes,
                incomplete: scan.incomplete,
                rules,
                msisdn,
            },
            origin,
            warnings: scan.warnings,
        })
    }

    /// The web-config file, read and checked whole (its certificate and key files too):
    /// a file the listener could not honour stops the daemon and `check-config` alike.
    fn web_config(&self, s: &Spanned<String>) -> Result<crate::http::WebConfig, ConfigError> {
        let p = Path::new(s.get_ref());
        if !p.is_absolute() {
            return Err(self.err(
                s.span(),
                format!(
                    "metrics.web_config = {:?}: must be an absolute path",
                    s.get_ref()
                ),
            ));
        }
        crate::http::webconfig::load(p).map_err(|e| {
            self.err(
                s.span(),
                format!("metrics.web_config = {:?}: {e}", s.get_ref()),
            )
        })
    }

    fn attach(&self, list: &[AttachToml]) -> Result<Vec<Attach>, ConfigError> {
        if list.is_empty() && self.need_attach {
            return Err(self.err_nowhere(
                "no [[attach]] section: name at least one interface and hook to guard",
            ));
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for a in list {
            let name = a.interface.get_ref();
            if name.is_empty()
                || name.len() > MAX_IFNAME
                || name.contains(['/', ':'])
                || name.chars().any(char::is_whitespace)
                || name == "."
                || name == ".."
            {
                return Err(self.err(
                    a.interface.span(),
                    format!("attach.interface = {name:?}: not an interface name (1-15 bytes, no '/', ':' or spaces)"),
                ));
            }
            let hook = match a.hook.get_ref().as_str() {
                "tc-egress" => Hook::TcEgress,
                "tc-ingress" => Hook::TcIngress,
                "xdp" => Hook::Xdp,
                other => {
                    return Err(self.err(
                        a.hook.span(),
                        format!("attach.hook = {other:?}: expected \"tc-egress\", \"tc-ingress\" or \"xdp\""),
                    ))
                }
            };
            let netns = match &a.netns {
                None => None,
                Some(v) => Some(self.netns(v)?),
            };
            let entry = Attach {
                interface: name.clone(),
                hook,
                netns,
            };
            if !seen.insert((entry.label(), hook)) {
                return Err(self.err(
                    a.interface.span(),
                    format!("attach: {} {} is listed twice", entry.label(), hook.name()),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// `attach.netns`: a name under /run/netns (as `ip netns` makes them), or an
    /// absolute path to a namespace file; `/run/netns/NAME` is the name NAME.
    fn netns(&self, v: &Spanned<String>) -> Result<NetNs, ConfigError> {
        let raw = v.get_ref();
        let name = raw
            .strip_prefix(NETNS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .filter(|n| !n.contains('/'))
            .unwrap_or(raw);
        let ok = if name.starts_with('/') {
            !name.contains("..") && name.len() > 1
        } else {
            !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains('/')
                && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
        };
        if !ok {
            return Err(self.err(
                v.span(),
                format!(
                    "attach.netns = {raw:?}: expected a network namespace name (as `ip netns list` shows) or an absolute path to one, e.g. \"/run/netns/gw\""
                ),
            ));
        }
        Ok(NetNs {
            name: name.to_owned(),
        })
    }

    fn scan(&self, s: &ScanToml) -> Result<Scan, ConfigError> {
        let ports = match &s.ports {
            None => vec![80, 8080],
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(
                        self.err(list.span(), "scan.ports = []: name at least one HTTP port")
                    );
                }
                let mut ports = Vec::new();
                for p in list.get_ref() {
                    let v = *p.get_ref();
                    if !(1..=65535).contains(&v) {
                        return Err(
                            self.err(p.span(), format!("scan.ports: {v} is not a port (1-65535)"))
                        );
                    }
                    if ports.contains(&(v as u16)) {
                        return Err(self.err(p.span(), format!("scan.ports: {v} is listed twice")));
                    }
                    ports.push(v as u16);
                }
                ports
            }
        };
        let max = match &s.max_head_bytes {
            None => leakguard_common::DEFAULT_MAX_HEAD_BYTES,
            Some(v) => {
                let n = *v.get_ref();
                if n < i64::from(MIN_HEAD_BYTES) || n > i64::from(MAX_SCAN_BYTES) {
                    return Err(self.err(
                        v.span(),
                        format!("scan.max_head_bytes = {n}: must be {MIN_HEAD_BYTES}..={MAX_SCAN_BYTES}"),
                    ));
                }
                n as u32
            }
        };
        let incomplete = match &s.incomplete_heads {
            None => Incomplete::Drop,
            Some(v) => match v.get_ref().as_str() {
                "drop" => Incomplete::Drop,
                "pass" => Incomplete::Pass,
                other => {
                    return Err(self.err(
                        v.span(),
                        format!("scan.incomplete_heads = {other:?}: expected \"drop\" or \"pass\""),
                    ))
                }
            },
        };
        let mut warnings = Vec::new();
        if let Some(v) = &s.max_payload_bytes {
            let (line, col) = line_col_of(self.text, v.span().start);
            warnings.push(format!(
                "{}:{line}:{col}: scan.max_payload_bytes = {} is ignored: every request head is \
                 now scanned to its end, up to scan.max_head_bytes ({max}); remove the key",
                self.path.display(),
                v.get_ref()
            ));
        }
        let catalog = match &s.builtin_catalog {
            None => Some(Action::Count),
            Some(v) if v.get_ref() == "off" => None,
            Some(v) => Some(parse_action(v.get_ref()).ok_or_else(|| {
                self.err(
                    v.span(),
                    format!("scan.builtin_catalog = {:?}: expected \"count\", \"redact\", \"drop\" or \"off\"", v.get_ref()),
                )
            })?),
        };
        Ok(Scan {
            ports,
            max_head_bytes: max,
            incomplete,
            catalog,
            warnings,
        })
    }

    fn rules(
        &self,
        list: &[RuleToml],
        catalog: Option<Action>,
    ) -> Result<(Vec<Rule>, Vec<Origin>), ConfigError> {
        let mut rules = Vec::new();
        let mut origin = Vec::new();
        let mut seen: HashMap<leakguard_common::NameKey, String> = HashMap::new();
        for r in list {
            let header = r.header.get_ref();
            let key = name::key(header.as_bytes()).map_err(|e| {
                let why = match e {
                    name::NameError::Empty => "empty".to_owned(),
                    name::NameError::TooLong => format!("longer than {MAX_NAME_LEN} bytes"),
                    name::NameError::NotToken(i) => format!(
                        "byte {} ({:?}) is not allowed in a header name (letters, digits, !#$%&'*+-.^_`|~)",
                        i + 1,
                        header[i..].chars().next().unwrap_or('?')
                    ),
                };
                self.err(r.header.span(), format!("rule.header = {header:?}: {why}"))
            })?;
            if let Some(first) = seen.insert(key, header.clone()) {
                return Err(self.err(
                    r.header.span(),
                    format!("rule.header = {header:?}: a rule for {first:?} exists (names compare case-insensitively, '_' = '-')"),
                ));
            }
            let action = parse_action(r.action.get_ref()).ok_or_else(|| {
                self.err(
                    r.action.span(),
                    format!(
                        "rule.action = {:?}: expected \"count\", \"redact\" or \"drop\"",
                        r.action.get_ref()
                    ),
                )
            })?;
            let allow = self.allow_list("rule.allow", &r.allow)?;
            rules.push(Rule {
                header: header.clone(),
                action,
                allow,
            });
            origin.push(Origin::File);
        }
        if let Some(action) = catalog {
            for e in CATALOG {
                let key = name::key(e.header.as_bytes()).expect("catalog names are valid");
                if seen.contains_key(&key) {
                    continue;
                }
                rules.push(Rule {
                    header: e.header.to_owned(),
                    action,
                    allow: Vec::new(),
                });
                origin.push(Origin::Catalog);
            }
        }
        // One id of the kernel's table is the identity-number check's.
        let max = MAX_RULES as usize - 1;
        if rules.len() > max {
            return Err(self.err_nowhere(format!(
                "{} rules (with the catalog): the kernel holds at most {max}",
                rules.len()
            )));
        }
        let lists: HashSet<Vec<IpNet>> = rules
            .iter()
            .filter(|r| !r.allow.is_empty())
            .map(|r| {
                let mut l = r.allow.clone();
                l.sort();
                l
            })
            .collect();
        if lists.len() > leakguard_common::MAX_ALLOW_GROUPS {
            return Err(self.err_nowhere(format!(
                "{} distinct allow lists: at most {} (rules with the same list share one)",
                lists.len(),
                leakguard_common::MAX_ALLOW_GROUPS
            )));
        }
        Ok((rules, origin))
    }
}

impl Parser<'_> {
    /// Trusted destinations: addresses or prefixes without host bits.
    fn allow_list(&self, key: &str, list: &[Spanned<String>]) -> Result<Vec<IpNet>, ConfigError> {
        let mut allow = Vec::new();
        for a in list {
            let s = a.get_ref();
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    self.err(
                        a.span(),
                        format!(
                            "{key}: {s:?} is not an address or prefix (e.g. \"198.51.100.0/24\")"
                        ),
                    )
                })?;
            if net != net.trunc() {
                return Err(self.err(
                    a.span(),
                    format!(
                        "{key}: {s:?} has host bits set; did you mean \"{}\"?",
                        net.trunc()
                    ),
                ));
            }
            allow.push(net);
        }
        Ok(allow)
    }

    /// `[msisdn]`: off unless `action` is set; then `prefixes` is required. A one-digit
    /// prefix is allowed with a warning: it takes every value of 9 to 15 digits that starts
    /// with it for a number, and the Unix timestamps in seconds and milliseconds many
    /// headers (and URLs and cookies, when they are read) carry start with 1. Every
    /// place is read unless the file turns it off (`request_target = false`,
    /// `cookies = false`).
    fn msisdn(
        &self,
        m: &MsisdnToml,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Msisdn>, ConfigError> {
        let Some(action) = &m.action else {
            // Prefixes without an action: the operator meant the check on. Off is what
            // the file says, so it stays off, but not silently.
            if let Some(list) = &m.prefixes {
                let (line, col) = line_col_of(self.text, list.span().start);
                warnings.push(format!(
                    "{}:{line}:{col}: msisdn.prefixes is set but msisdn.action is not: the \
                     identity-number check is off; add action = \"count\", \"redact\" or \
                     \"drop\" to turn it on",
                    self.path.display()
                ));
            }
            return Ok(None);
        };
        let act = parse_action(action.get_ref()).ok_or_else(|| {
            self.err(
                action.span(),
                format!(
                    "msisdn.action = {:?}: expected \"count\", \"redact\" or \"drop\"",
                    action.get_ref()
                ),
            )
        })?;
        let Some(list) = &m.prefixes else {
            return Err(self.err(
                action.span(),
                "msisdn.prefixes is missing: list the leading digits of your subscribers' numbers, e.g. [\"44\", \"447\"]",
            ));
        };
        if list.get_ref().is_empty() {
            return Err(self.err(
                list.span(),
                "msisdn.prefixes = []: name at least one prefix",
            ));
        }
        let request_target = m.request_target.unwrap_or(true);
        let cookies = m.cookies.unwrap_or(true);
        let inside_values = m.inside_values.unwrap_or(true);
        let hex = m.hex.unwrap_or(true);
        let base64 = m.base64.unwrap_or(true);
        let mut prefixes: Vec<String> = Vec::new();
        for p in list.get_ref() {
            let v = p.get_ref();
            if v.is_empty()
                || v.len() > leakguard_common::MSISDN_MAX_DIGITS as usize
                || !v.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(self.err(
                    p.span(),
                    format!(
                        "msisdn.prefixes: {v:?} is not 1 to {} digits (no '+' or spaces)",
                        leakguard_common::MSISDN_MAX_DIGITS
                    ),
                ));
            }
            if prefixes.contains(v) {
                return Err(self.err(p.span(), format!("msisdn.prefixes: {v:?} is listed twice")));
            }
            if v.len() == 1 {
                let (line, col) = line_col_of(self.text, p.span().start);
                // A URL's and a cookie's timestamps and ids are digit runs too
                // (`?t=1733083278`, `Cookie: _ga=GA1.1.123.1733083278`): cookies are
                // full of them.
                let target = match (request_target, cookies) {
                    (true, true) => {
                        ", and so is every run of 9 to 15 digits in a request target or a \
                         cookie that starts with it (a 10-digit Unix timestamp in a URL or a \
                         cookie starts with 1, and cookies are full of them)"
                    }
                    (true, false) => {
                        ", and so is every run of 9 to 15 digits in a request target that \
                         starts with it (a 10-digit Unix timestamp in a URL starts with 1)"
                    }
                    (false, true) => {
                        ", and so is every run of 9 to 15 digits in a cookie that starts \
                         with it (a 10-digit Unix timestamp starts with 1, and cookies are \
                         full of them)"
                    }
                    (false, false) => "",
                };
                warnings.push(format!(
                    "{}:{line}:{col}: msisdn.prefixes: {v:?} is one digit: every header value of \
                     9 to 15 digits that starts with it is taken for an identity number \
                     (timestamps, order numbers, ...){target}; list your subscribers' ranges \
                     instead (country code and mobile prefix, e.g. \"{v}202555\")",
                    self.path.display()
                ));
            }
            prefixes.push(v.clone());
        }
        let mut seen = HashSet::new();
        let mut ignore_headers = Vec::new();
        for h in &m.ignore_headers {
            let name = h.get_ref();
            let key = name::key(name.as_bytes()).map_err(|_| {
                self.err(
                    h.span(),
                    format!("msisdn.ignore_headers: {name:?} is not a header name (1 to {MAX_NAME_LEN} token bytes)"),
                )
            })?;
            if !seen.insert(key) {
                return Err(self.err(
                    h.span(),
                    format!("msisdn.ignore_headers: {name:?} is listed twice (names compare case-insensitively, '_' = '-')"),
                ));
            }
            ignore_headers.push(name.clone());
        }
        Ok(Some(Msisdn {
            prefixes,
            action: act,
            ignore_headers,
            allow: self.allow_list("msisdn.allow", &m.allow)?,
            request_target,
            cookies,
            inside_values,
            hex,
            base64,
        }))
    }
}

fn parse_action(s: &str) -> Option<Action> {
    match s {
        "count" => Some(Action::Count),
        "redact" => Some(Action::Redact),
        "drop" => Some(Action::Drop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, EXAMPLE_FILE};

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("test.toml"), text)
    }

    #[test]
    fn good_file_and_effective_policy() {
        let c = parse_str(EXAMPLE_FILE).unwrap();
        assert_eq!(c.pin_path, PathBuf::from("/sys/fs/bpf/lg-test"));
        assert_eq!(c.selftest_interval, Duration::from_secs(300));
        assert_eq!(c.attach.len(), 2);
        assert_eq!(c.attach[1].hook, Hook::Xdp);
        assert_eq!(c.kernel.ports, vec![80, 8080, 8000]);
        assert_eq!(c.kernel.max_head_bytes, 8192);
        assert_eq!(c.kernel.incomplete, Incomplete::Pass);
        assert!(c.warnings.is_empty());
        // File rules first; the catalog fills in the rest, except X-MSISDN (overridden).
        assert_eq!(c.kernel.rules[0].header, "x_msisdn");
        assert_eq!(c.kernel.rules[0].allow.len(), 3);
        assert_eq!(c.kernel.rules[1].action, Action::Drop);
        assert_eq!(c.kernel.rules.len(), 2 + CATALOG.len() - 1);
        assert!(c.kernel.rules[2..]
            .iter()
            .all(|r| r.action == Action::Count));
        assert!(!c.kernel.rules[2..].iter().any(|r| r.header == "X-MSISDN"));
        assert!(c.origin[2..].iter().all(|o| *o == Origin::Catalog));
    }

    #[test]
    fn defaults() {
        let c = parse_str("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n").unwrap();
        assert_eq!(c.pin_path, PathBuf::from(DEFAULT_PIN_PATH));
        assert_eq!(c.metrics_listen, DEFAULT_METRICS.parse().unwrap());
        assert_eq!(c.selftest_interval, Duration::from_secs(60));
        assert_eq!(c.kernel.ports, vec![80, 8080]);
        assert_eq!(c.kernel.max_head_bytes, 65536);
        assert_eq!(
            c.kernel.incomplete,
            Incomplete::Drop,
            "fail closed by default"
        );
        assert_eq!(c.kernel.rules.len(), CATALOG.len());
        let off = parse_str(
            "[[attach]]\ninterface = \"eth0\"\nhook = \"xdp\"\n[scan]\nbuiltin_catalog = \"off\"\n",
        )
        .unwrap();
        assert!(off.kernel.rules.is_empty());
    }

    /// The per-segment limit of files from before heads were scanned whole (the shipped
    /// default file had `max_payload_bytes = 4096`): accepted, so an upgrade starts, but
    /// ignored, with a warning naming the place, so heads are still scanned whole.
    #[test]
    fn the_old_scan_limit_is_ignored_with_a_warning() {
        let c = parse_str(
            "[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[scan]\nmax_payload_bytes = 4096\n",
        )
        .unwrap();
        assert_eq!(c.kernel.max_head_bytes, 65536);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with("test.toml:5:21: scan.max_payload_bytes = 4096 is ignored")
        );
        assert!(c
            .describe()
            .contains(&format!("warning: {}", c.warnings[0])));
    }

    /// The reader's type errors name the key, and the table / list-of-tables slip its fix.
    #[test]
    fn type_errors_name_the_key() {
        let attach = "[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n";
        let msg = |text: &str| parse_str(text).unwrap_err().to_string();
        let m = msg("[attach]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n");
        assert!(
            m.starts_with("test.toml:1:1: [attach]: invalid type"),
            "{m}"
        );
        assert!(m.ends_with("write [[attach]] for each"), "{m}");
        let m = msg(&format!("{attach}[[msisdn]]\naction = \"count\"\n"));
        assert!(
            m.contains("[[msisdn]]: invalid type") && m.ends_with("write [msisdn]"),
            "{m}"
        );
        let m = msg(&format!("{attach}[scan]\nports = \"80\"  # http\n"));
        assert!(
            m.contains(":5:9: scan.ports: invalid type: string \"80\""),
            "{m}"
        );
        let m = msg(&format!(
            "{attach}[[rule]]\nheader = \"X-MSISDN\"\naction = \"count\"\nallow = \"10.0.0.0/8\"\n"
        ));
        assert!(m.contains("rule.allow: invalid type"), "{m}");
        let m = msg("[[attach]]\ninterface = 5\nhook = \"tc-egress\"\n");
        assert!(m.contains("attach.interface: invalid type: integer"), "{m}");
        // Errors that name their key already are left as they are.
        let m = msg(&format!("{attach}foo = 1\n"));
        assert!(m.contains(":4:1: unknown field `foo`"), "{m}");
    }

    /// Prefixes without an action leave the check off, as the file says, and say so.
    #[test]
    fn prefixes_without_an_action_are_warned_about() {
        let base = "[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\n";
        let c = parse_str(&format!("{base}prefixes = [\"44\"]\n")).unwrap();
        assert!(c.kernel.msisdn.is_none());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0]
                .starts_with("test.toml:5:12: msisdn.prefixes is set but msisdn.action is not"),
            "{:?}",
            c.warnings
        );
        assert!(c
            .describe()
            .contains(&format!("warning: {}", c.warnings[0])));
        // An empty section, or none, says nothing.
        assert!(parse_str(base).unwrap().warnings.is_empty());
    }

    /// A one-digit prefix would take timestamps for numbers: allowed, with a warning
    /// naming its place; longer prefixes get none.
    #[test]
    fn a_one_digit_prefix_is_warned_about() {
        let file = |prefixes: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [{prefixes}]\n")
        };
        let c = parse_str(&file("\"44\", \"1\"")).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("test.toml:6:19: msisdn.prefixes: \"1\" is one digit"),
            "{:?}",
            c.warnings
        );
        assert!(c
            .describe()
            .contains(&format!("warning: {}", c.warnings[0])));
        assert!(parse_str(&file("\"44\", \"1202\""))
            .unwrap()
            .warnings
            .is_empty());
        // The request target and cookies (read by default) have timestamps too: the
        // warning names each place read, and not one that is off.
        let places = |extra: &str| {
            let c = parse_str(&format!("{}{extra}", file("\"1\""))).unwrap();
            assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
            let w = &c.warnings[0];
            (w.contains("request target"), w.contains("cookie"))
        };
        assert_eq!(places(""), (true, true), "{:?}", c.warnings);
        assert_eq!(places("request_target = false\n"), (false, true));
        assert_eq!(places("cookies = false\n"), (true, false));
        assert_eq!(
            places("request_target = false\ncookies = false\n"),
            (false, false)
        );
    }

    /// `msisdn.request_target`: on unless the file turns it off; the kernel is told by a
    /// bit per place, and the digest tells the two apart.
    #[test]
    fn the_request_target_is_read_unless_turned_off() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [\"44\"]\n{extra}")
        };
        let bits = |c: &Config| {
            crate::kernel::compile::compile(&c.kernel)
                .unwrap()
                .config
                .msisdn_on
                & !(leakguard_common::place::INSIDE_VALUES
                    | leakguard_common::form::HEX_ON
                    | leakguard_common::form::B64_ON)
        };
        let header = leakguard_common::place::bit(leakguard_common::place::HEADER);
        let target = leakguard_common::place::bit(leakguard_common::place::TARGET);
        let cookie = leakguard_common::place::bit(leakguard_common::place::COOKIE);
        let default = parse_str(&file("")).unwrap();
        assert!(default.kernel.msisdn.as_ref().unwrap().request_target);
        assert_eq!(bits(&default), header | target | cookie);
        let on = parse_str(&file("request_target = true\n")).unwrap();
        assert_eq!(on.kernel, default.kernel);
        let off = parse_str(&file("request_target = false\n")).unwrap();
        assert!(!off.kernel.msisdn.as_ref().unwrap().request_target);
        assert_eq!(bits(&off), header | cookie);
        assert_ne!(
            crate::kernel::compile::digest(&on.kernel),
            crate::kernel::compile::digest(&off.kernel)
        );
    }

    /// `msisdn.inside_values`: on unless the file turns it off; the kernel is told by a
    /// bit of its own, and the digest changes only when it is on.
    #[test]
    fn numbers_inside_values_count_unless_turned_off() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [\"44\"]\n{extra}")
        };
        let inside = |c: &Config| {
            crate::kernel::compile::compile(&c.kernel)
                .unwrap()
                .config
                .msisdn_on
                & leakguard_common::place::INSIDE_VALUES
                != 0
        };
        let default = parse_str(&file("")).unwrap();
        assert!(default.kernel.msisdn.as_ref().unwrap().inside_values && inside(&default));
        let off = parse_str(&file("inside_values = false\n")).unwrap();
        assert!(!off.kernel.msisdn.as_ref().unwrap().inside_values && !inside(&off));
        let d = |c: &Config| crate::kernel::compile::digest(&c.kernel);
        assert_ne!(d(&default), d(&off));
        assert!(parse_str(&file("inside_values = 1\n")).is_err());
    }

    /// `msisdn.hex`: on unless the file turns it off; the kernel is told by a bit of its
    /// own, and the digest changes only when it is on where runs of digits are read (a
    /// file that reads header values whole only keeps its digest: hex is not read there).
    #[test]
    fn the_hex_form_is_read_unless_turned_off() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [\"44\"]\n{extra}")
        };
        let hex = |c: &Config| {
            crate::kernel::compile::compile(&c.kernel)
                .unwrap()
                .config
                .msisdn_on
                & leakguard_common::form::HEX_ON
                != 0
        };
        let d = |c: &Config| crate::kernel::compile::digest(&c.kernel);
        let default = parse_str(&file("")).unwrap();
        assert!(default.kernel.msisdn.as_ref().unwrap().hex && hex(&default));
        let on = parse_str(&file(
            "hex = true
",
        ))
        .unwrap();
        assert_eq!(on.kernel, default.kernel);
        let off = parse_str(&file(
            "hex = false
",
        ))
        .unwrap();
        assert!(!off.kernel.msisdn.as_ref().unwrap().hex && !hex(&off));
        assert_ne!(d(&default), d(&off));
        // Only the places read for runs turned off, header values read whole: hex or not,
        // the check does the same, and the digest says so.
        let whole = "request_target = false\ncookies = false\ninside_values = false\n";
        let whole_hex = parse_str(&file(whole)).unwrap();
        let whole_decimal = parse_str(&file(&format!("{whole}hex = false\n"))).unwrap();
        assert_eq!(d(&whole_hex), d(&whole_decimal));
        // Any one place read for runs is enough for hex to count.
        for place in ["request_target", "cookies", "inside_values"] {
            let others = whole.replace(&format!("{place} = false\n"), "");
            let on = parse_str(&file(&others)).unwrap();
            let off = parse_str(&file(&format!("{others}hex = false\n"))).unwrap();
            assert_ne!(d(&on), d(&off), "{place}");
        }
        let e = parse_str(&file("hex = \"yes\"\n")).unwrap_err().to_string();
        assert!(e.contains("test.toml:7:7") && e.contains("boolean"), "{e}");
    }

    /// `msisdn.base64`: as `msisdn.hex`, on unless the file turns it off; the kernel is
    /// told by a bit of its own, and the digest changes only when it is on where runs of
    /// digits are read (a file that reads header values whole only keeps its digest).
    /// Hex and base64 are apart: each off alone is a policy of its own.
    #[test]
    fn the_base64_form_is_read_unless_turned_off() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [\"44\"]\n{extra}")
        };
        let on_bits = |c: &Config| {
            crate::kernel::compile::compile(&c.kernel)
                .unwrap()
                .config
                .msisdn_on
        };
        let b64 = |c: &Config| on_bits(c) & leakguard_common::form::B64_ON != 0;
        let d = |c: &Config| crate::kernel::compile::digest(&c.kernel);
        let default = parse_str(&file("")).unwrap();
        assert!(default.kernel.msisdn.as_ref().unwrap().base64 && b64(&default));
        let on = parse_str(&file("base64 = true\n")).unwrap();
        assert_eq!(on.kernel, default.kernel);
        let off = parse_str(&file("base64 = false\n")).unwrap();
        assert!(!off.kernel.msisdn.as_ref().unwrap().base64 && !b64(&off));
        // Only its own bit goes: hex stays on.
        assert_eq!(
            on_bits(&off),
            on_bits(&default) & !leakguard_common::form::B64_ON
        );
        assert_ne!(d(&default), d(&off));
        let hex_off = parse_str(&file("hex = false\n")).unwrap();
        let both_off = parse_str(&file("hex = false\nbase64 = false\n")).unwrap();
        let all = [&default, &off, &hex_off, &both_off].map(d);
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "{all:x?}");
        }
        // Only the places read for runs turned off, header values read whole: base64 or
        // not, the check does the same, and the digest says so.
        let whole = "request_target = false\ncookies = false\ninside_values = false\n";
        let whole_b64 = parse_str(&file(whole)).unwrap();
        let whole_decimal = parse_str(&file(&format!("{whole}base64 = false\n"))).unwrap();
        assert_eq!(d(&whole_b64), d(&whole_decimal));
        // Any one place read for runs is enough for base64 to count.
        for place in ["request_target", "cookies", "inside_values"] {
            let others = whole.replace(&format!("{place} = false\n"), "");
            let on = parse_str(&file(&others)).unwrap();
            let off = parse_str(&file(&format!("{others}base64 = false\n"))).unwrap();
            assert_ne!(d(&on), d(&off), "{place}");
        }
        let e = parse_str(&file("base64 = \"yes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("test.toml:7:10") && e.contains("boolean"), "{e}");
    }

    /// `msisdn.cookies`: on unless the file turns it off, a bit of its own for the
    /// kernel; the digest tells on from off, and a file that turns off every place but
    /// header values keeps the digest it had before the request target and cookies
    /// could be read.
    #[test]
    fn cookies_are_read_unless_turned_off() {
        use leakguard_common::place::{bit, COOKIE, HEADER, TARGET};
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n[msisdn]\naction = \"redact\"\nprefixes = [\"44\"]\n{extra}")
        };
        let bits = |c: &Config| {
            crate::kernel::compile::compile(&c.kernel)
                .unwrap()
                .config
                .msisdn_on
                & !(leakguard_common::place::INSIDE_VALUES
                    | leakguard_common::form::HEX_ON
                    | leakguard_common::form::B64_ON)
        };
        let digest = |c: &Config| crate::kernel::compile::digest(&c.kernel);
        let default = parse_str(&file("")).unwrap();
        assert!(default.kernel.msisdn.as_ref().unwrap().cookies);
        assert_eq!(bits(&default), bit(HEADER) | bit(TARGET) | bit(COOKIE));
        let on = parse_str(&file("cookies = true\n")).unwrap();
        assert_eq!(on.kernel, default.kernel);
        let off = parse_str(&file("cookies = false\n")).unwrap();
        assert!(!off.kernel.msisdn.as_ref().unwrap().cookies);
        assert_eq!(bits(&off), bit(HEADER) | bit(TARGET));
        assert_ne!(digest(&on), digest(&off));
        let cookies_only = parse_str(&file("request_target = false\n")).unwrap();
        assert_eq!(bits(&cookies_only), bit(HEADER) | bit(COOKIE));
        let header = parse_str(&file(
            "request_target = false\ncookies = false\ninside_values = false\n",
        ))
        .unwrap();
        assert_eq!(bits(&header), bit(HEADER));
        let all = [&on, &off, &cookies_only, &header].map(digest);
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "{all:x?}");
        }
        // This file's digest since before places could be chosen (header values only).
        assert_eq!(format!("{:016x}", digest(&header)), HEADER_ONLY_DIGEST);
    }

    /// The digest of `cookies_are_read_unless_turned_off`'s header-only file, as every
    /// release before the request target and cookies were read computed it: a gateway
    /// that reads header values only keeps its digest across the upgrade.
    const HEADER_ONLY_DIGEST: &str = "49843ed3ef5bb15f";

    /// A bad file, where its error must point, and words its message must contain.
    type BadCase = (String, Option<(usize, usize)>, &'static [&'static str]);

    #[test]
    fn bad_files_name_the_place_the_key_and_the_value() {
        let attach = "[[attach]]\ninterface = \"eth0\"\nhook = \"tc-egress\"\n";
        let cases: Vec<BadCase> = vec![
            (format!("{attach}[scan]\nportz = [80]\n"), Some((5, 1)), &["portz"]),
            (format!("{attach}[bogus]\n"), Some((4, 2)), &["bogus"]),
            ("[[attach]]\ninterface = \"eth0\"\nhook = \"tc\"\n".into(), Some((3, 8)), &["attach.hook", "\"tc\""]),
            ("[[attach]]\ninterface = \"a/b\"\nhook = \"xdp\"\n".into(), Some((2, 13)), &["attach.interface", "a/b"]),
            ("[[attach]]\ninterface = \"averyveryverylongname\"\nhook = \"xdp\"\n".into(), Some((2, 13)), &["interface"]),
            (format!("{attach}{attach}"), Some((5, 13)), &["listed twice"]),
            ("[daemon]\n".into(), None, &["[[attach]]"]),
            (format!("{attach}[scan]\nports = [0]\n"), Some((5, 10)), &["scan.ports", "0"]),
            (format!("{attach}[scan]\nports = [80, 80]\n"), Some((5, 14)), &["twice"]),
            (format!("{attach}[scan]\nports = [70000]\n"), Some((5, 10)), &["70000"]),
            (format!("{attach}[scan]\nports = []\n"), Some((5, 9)), &["at least one"]),
            (format!("{attach}[scan]\nmax_head_bytes = 10\n"), Some((5, 18)), &["max_head_bytes", "10"]),
            (format!("{attach}[scan]\nmax_head_bytes = 1000000\n"), Some((5, 18)), &["1000000"]),
            (format!("{attach}[scan]\nincomplete_heads = \"skip\"\n"), Some((5, 20)), &["incomplete_heads", "skip", "\"drop\" or \"pass\""]),
            (format!("{attach}[scan]\nbuiltin_catalog = \"block\"\n"), Some((5, 19)), &["builtin_catalog", "block"]),
            (format!("{attach}[[rule]]\nheader = \"X MSISDN\"\naction = \"redact\"\n"), Some((5, 10)), &["rule.header", "X MSISDN", "byte 2"]),
            (format!("{attach}[[rule]]\nheader = \"{}\"\naction = \"count\"\n", "X".repeat(65)), Some((5, 10)), &["longer than 64"]),
            (format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"mask\"\n"), Some((6, 10)), &["rule.action", "mask"]),
            (format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\n[[rule]]\nheader = \"x_a\"\naction = \"drop\"\n"), Some((8, 10)), &["x_a", "X-A"]),
            (format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"198.51.100.0/33\"]\n"), Some((7, 10)), &["rule.allow", "198.51.100.0/33"]),
            (format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"198.51.100.1/24\"]\n"), Some((7, 10)), &["host bits", "198.51.100.0/24"]),
            (format!("{attach}[[rule]]\nheader = \"X-A\"\naction = \"count\"\nallow = [\"gateway\"]\n"), Some((7, 10)), &["gateway"]),
            (format!("[daemon]\npin_path = \"relative\"\n{attach}"), Some((2, 12)), &["pin_path", "relative"]),
            (format!("[daemon]\nselftest_interval = \"often\"\n{attach}"), Some((2, 21)), &["selftest_interval", "often"]),
            (format!("[daemon]\nselftest_interval = \"0s\"\n{attach}"), Some((2, 21)), &["between"]),
            (format!("[metrics]\nlisten = \"localhost\"\n{attach}"), Some((2, 10)), &["metrics.listen", "localhost"]),
            (format!("[metrics]\nweb_config = \"web.yml\"\n{attach}"), Some((2, 14)), &["metrics.web_config", "absolute"]),
            (format!("[metrics]\nweb_config = \"/nonexistent/web.yml\"\n{attach}"), Some((2, 14)), &["metrics.web_config", "cannot read"]),
            (format!("{attach}[scan]\nports = \"80\"\n"), Some((5, 9)), &["invalid type"]),
            (format!("{attach}[scan]\nmax_head_bytes = \"big\"\n"), Some((5, 18)), &["invalid type"]),
            ("[[attach]\n".into(), Some((1, 10)), &[]),
            (format!("{attach}[scan]\n[scan]\n"), Some((5, 2)), &["duplicate"]),
            (format!("{attach}[msisdn]\naction = \"redact\"\n"), Some((5, 10)), &["msisdn.prefixes", "missing"]),
            (format!("{attach}[msisdn]\naction = \"mask\"\nprefixes = [\"44\"]\n"), Some((5, 10)), &["msisdn.action", "mask"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"+44\"]\n"), Some((6, 13)), &["msisdn.prefixes", "+44"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"1234567890123456\"]\n"), Some((6, 13)), &["1 to 15 digits"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = []\n"), Some((6, 12)), &["at least one"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\", \"44\"]\n"), Some((6, 19)), &["twice"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nignore_headers = [\"X-A\", \"x_a\"]\n"), Some((7, 26)), &["ignore_headers", "twice"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nignore_headers = [\"X A\"]\n"), Some((7, 19)), &["ignore_headers", "X A"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nallow = [\"10.0.0.1/8\"]\n"), Some((7, 10)), &["msisdn.allow", "host bits"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefix = [\"44\"]\n"), Some((6, 1)), &["prefix"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nrequest_target = \"yes\"\n"), Some((7, 18)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nrequest_targets = false\n"), Some((7, 1)), &["request_targets", "request_target"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\ncookies = \"yes\"\n"), Some((7, 11)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\ncookie = false\n"), Some((7, 1)), &["`cookie`", "`cookies`"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nhex = \"yes\"\n"), Some((7, 7)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nhex = 1\n"), Some((7, 7)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nbase64 = \"yes\"\n"), Some((7, 10)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nbase64 = 1\n"), Some((7, 10)), &["invalid type", "boolean"]),
            (format!("{attach}[msisdn]\naction = \"count\"\nprefixes = [\"44\"]\nb64 = false\n"), Some((7, 1)), &["`b64`", "`base64`"]),
        ];
        for (text, at, words) in &cases {
            let e = parse_str(text).expect_err(text);
            let msg = e.to_string();
            assert_eq!(e.at, *at, "position for {text:?}: {msg}");
            for w in *words {
                assert!(msg.contains(w), "{msg:?} should mention {w:?}");
            }
            assert_eq!(msg.lines().count(), 1, "one-line message: {msg:?}");
        }
    }
}
