//! The effective policy in words, as `check-config` prints it.

use super::{Config, Origin};
use crate::policy::{forms_text, places_text, Action, Incomplete};

impl Config {
    /// The effective policy, as `check-config` prints it.
    #[must_use]
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "pin_path = {}", self.pin_path.display());
        let _ = writeln!(
            s,
            "selftest_interval = {}",
            humantime::format_duration(self.selftest_interval)
        );
        let _ = writeln!(
            s,
            "watch_policy = {} ({})",
            self.watch_policy,
            if self.watch_policy {
                "a change to the file reloads it, as SIGHUP does"
            } else {
                "reloaded on SIGHUP only"
            }
        );
        let _ = writeln!(s, "metrics.listen = {}", self.metrics_listen);
        match &self.metrics_web {
            None => {
                let _ = writeln!(
                    s,
                    "metrics: TLS off (plain HTTP), basic auth off (no metrics.web_config)"
                );
            }
            Some(w) => {
                let _ = writeln!(
                    s,
                    "metrics.web_config = {}: {}",
                    w.path.display(),
                    w.summary()
                );
            }
        }
        for a in &self.attach {
            match &a.netns {
                None => {
                    let _ = writeln!(s, "attach {} {}", a.interface, a.hook.name());
                }
                Some(ns) => {
                    let _ = writeln!(
                        s,
                        "attach {} {} in network namespace {}",
                        a.interface,
                        a.hook.name(),
                        ns.path().display()
                    );
                }
            }
        }
        let ports: Vec<String> = self.kernel.ports.iter().map(u16::to_string).collect();
        let _ = writeln!(s, "scan.ports = {}", ports.join(", "));
        let _ = writeln!(
            s,
            "scan.max_head_bytes = {} (every request head is scanned to its end, up to this)",
            self.kernel.max_head_bytes
        );
        let _ = writeln!(
            s,
            "scan.incomplete_heads = {} ({})",
            self.kernel.incomplete.name(),
            match self.kernel.incomplete {
                Incomplete::Drop => "a head longer, or not seen whole, is dropped, counted and logged",
                Incomplete::Pass =>
                    "a head longer, or not seen whole, passes unscanned past that point, counted and logged",
            }
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "rules ({}):", self.kernel.rules.len());
        for (r, o) in self.kernel.rules.iter().zip(&self.origin) {
            let action = match r.action {
                Action::Count => "count",
                Action::Redact => "redact",
                Action::Drop => "drop",
            };
            let from = match o {
                Origin::File => "rule",
                Origin::Catalog => "catalog",
            };
            let allow: Vec<String> = r.allow.iter().map(ToString::to_string).collect();
            if allow.is_empty() {
                let _ = writeln!(s, "  {:<32} {action:<6} ({from})", r.header);
            } else {
                let _ = writeln!(
                    s,
                    "  {:<32} {action:<6} ({from}) allow {}",
                    r.header,
                    allow.join(", ")
                );
            }
        }
        match &self.kernel.msisdn {
            None => {
                let _ = writeln!(s, "msisdn: off");
            }
            Some(m) => {
                let action = match m.action {
                    Action::Count => "count",
                    Action::Redact => "redact",
                    Action::Drop => "drop",
                };
                let _ = writeln!(
                    s,
                    "msisdn: {action}, numbers of 9-15 digits starting {}",
                    m.prefixes.join(", ")
                );
                let _ = writeln!(s, "msisdn places: {}", places_text(m.places()));
                let _ = writeln!(
                    s,
                    "msisdn values: {}",
                    if m.inside_values {
                        "a number inside a longer value counts too (tel:+44..., ...@ims...)"
                    } else {
                        "only a value that is the number alone (inside_values = false)"
                    }
                );
                // Hex or base64 asked for (the default) where nothing is read for runs of
                // digits does nothing: said, so that "off" is not taken for a bad key.
                let asked: Vec<&str> = [(m.hex, "hex"), (m.base64, "base64")]
                    .into_iter()
                    .filter(|&(on, _)| on)
                    .map(|(_, name)| name)
                    .collect();
                let why = if !asked.is_empty() && !m.reads_hex() && !m.reads_b64() {
                    let verb = if asked.len() == 1 { "is" } else { "are" };
                    format!(
                        " ({} {verb} read only in runs of digits: request_target, cookies and inside_values are all off)",
                        asked.join(" and ")
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(s, "msisdn forms: {}{why}", forms_text(m.places()));
                if !m.ignore_headers.is_empty() {
                    let _ = writeln!(s, "  ignore {}", m.ignore_headers.join(", "));
                }
                if !m.allow.is_empty() {
                    let allow: Vec<String> = m.allow.iter().map(ToString::to_string).collect();
                    let _ = writeln!(s, "  allow {}", allow.join(", "));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    /// `check-config` says which places the number check reads, and which it does not.
    #[test]
    fn the_number_check_names_its_places() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"xdp\"\n[msisdn]\naction = \"drop\"\nprefixes = [\"44\", \"447\"]\n{extra}")
        };
        let describe = |text: &str| {
            parse(std::path::Path::new("test.toml"), text)
                .unwrap()
                .describe()
        };
        let on = describe(&file(""));
        assert!(
            on.contains("msisdn: drop, numbers of 9-15 digits starting 44, 447\n"),
            "{on}"
        );
        assert!(
            on.contains("msisdn places: header values, request target (path and query), cookies\n"),
            "{on}"
        );
        let off = describe(&file("request_target = false\n"));
        assert!(
            off.contains("msisdn places: header values, cookies; off: request target\n"),
            "{off}"
        );
        let no_cookies = describe(&file("cookies = false\n"));
        assert!(
            no_cookies.contains(
                "msisdn places: header values, request target (path and query); off: cookies\n"
            ),
            "{no_cookies}"
        );
        let header = describe(&file("request_target = false\ncookies = false\n"));
        assert!(
            header.contains("msisdn places: header values; off: request target, cookies\n"),
            "{header}"
        );
        let none = describe("[[attach]]\ninterface = \"eth0\"\nhook = \"xdp\"\n");
        assert!(
            none.contains("msisdn: off\n")
                && !none.contains("msisdn places")
                && !none.contains("msisdn forms"),
            "{none}"
        );
    }

    /// `check-config` says which forms of a number the check finds, after the places;
    /// hex or base64 asked for where no run of digits is read is off, and says why.
    #[test]
    fn the_number_check_names_its_forms() {
        let file = |extra: &str| {
            format!("[[attach]]\ninterface = \"eth0\"\nhook = \"xdp\"\n[msisdn]\naction = \"drop\"\nprefixes = [\"44\"]\n{extra}")
        };
        let describe = |text: &str| {
            parse(std::path::Path::new("test.toml"), text)
                .unwrap()
                .describe()
        };
        let on = describe(&file(""));
        let places = on.find("msisdn places: ").unwrap();
        let forms = on.find("msisdn forms: decimal, hex, base64\n").expect(&on);
        assert!(places < forms, "{on}");
        let off = describe(&file("hex = false\n"));
        assert!(
            off.contains("msisdn forms: decimal, base64; off: hex\n"),
            "{off}"
        );
        let off = describe(&file("base64 = false\n"));
        assert!(
            off.contains("msisdn forms: decimal, hex; off: base64\n"),
            "{off}"
        );
        let off = describe(&file("hex = false\nbase64 = false\n"));
        assert!(
            off.contains("msisdn forms: decimal; off: hex, base64\n"),
            "{off}"
        );
        let whole = "request_target = false\ncookies = false\ninside_values = false\n";
        let both = describe(&file(whole));
        assert!(
            both.contains("msisdn forms: decimal; off: hex, base64 (hex and base64 are read only in runs of digits: "),
            "{both}"
        );
        let hex = describe(&file(&format!("{whole}base64 = false\n")));
        assert!(
            hex.contains(
                "msisdn forms: decimal; off: hex, base64 (hex is read only in runs of digits: "
            ),
            "{hex}"
        );
        let b64 = describe(&file(&format!("{whole}hex = false\n")));
        assert!(
            b64.contains(
                "msisdn forms: decimal; off: hex, base64 (base64 is read only in runs of digits: "
            ),
            "{b64}"
        );
        let whole_off = describe(&file(&format!("{whole}hex = false\nbase64 = false\n")));
        assert!(
            whole_off.contains("msisdn forms: decimal; off: hex, base64\n"),
            "{whole_off}"
        );
    }
}
