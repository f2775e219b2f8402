//! The policy file an operator writes, once validated: a [`Config`], with where the guard
//! is attached ([`Attach`]: interface, [`Hook`], network namespace), read by [`load`].
//! The TOML and its validation are in `validate`; the effective policy as `check-config`
//! prints it, in `describe`.

mod describe;
pub mod source;
mod validate;

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::policy::KernelPolicy;

pub const DEFAULT_CONFIG: &str = "/etc/leakguard/leakguard.toml";
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/leakguard";
pub const DEFAULT_METRICS: &str = "127.0.0.1:9717";

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace as the policy names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetNs {
    /// As written in the file: a name under `/run/netns`, or an absolute path.
    pub name: String,
}

impl NetNs {
    /// The namespace file.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        if self.name.starts_with('/') {
            PathBuf::from(&self.name)
        } else {
            Path::new(NETNS_DIR).join(&self.name)
        }
    }

    /// The name in pin file names and metric labels: `/` and `%` percent-encoded, so
    /// that a path fits in one file name and decodes back ([`NetNs::from_label`]).
    #[must_use]
    pub fn label(&self) -> String {
        self.name
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace(':', "%3A")
            .replace('@', "%40")
    }

    #[must_use]
    pub fn from_label(label: &str) -> Self {
        Self {
            name: label
                .replace("%40", "@")
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%25", "%"),
        }
    }
}

/// Where a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    TcEgress,
    TcIngress,
    Xdp,
}

impl Hook {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::TcEgress => "tc-egress",
            Self::TcIngress => "tc-ingress",
            Self::Xdp => "xdp",
        }
    }

    /// The hook of a [`Hook::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::TcEgress, Self::TcIngress, Self::Xdp]
            .into_iter()
            .find(|h| h.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attach {
    pub interface: String,
    pub hook: Hook,
    /// The interface's network namespace, when it is not the daemon's own.
    pub netns: Option<NetNs>,
}

impl Attach {
    /// The interface as logs, metrics and `status` name it: `NETNS:IFACE` for one in
    /// another network namespace (names alone could repeat across namespaces).
    #[must_use]
    pub fn label(&self) -> String {
        match &self.netns {
            Some(ns) => format!("{}:{}", ns.label(), self.interface),
            None => self.interface.clone(),
        }
    }

    /// The entry of a [`Attach::label`] and hook (pin names are made of these).
    #[must_use]
    pub fn from_label(label: &str, hook: Hook) -> Self {
        match label.split_once(':') {
            Some((ns, iface)) => Self {
                interface: iface.to_owned(),
                hook,
                netns: Some(NetNs::from_label(ns)),
            },
            None => Self {
                interface: label.to_owned(),
                hook,
                netns: None,
            },
        }
    }
}

/// Where a rule of the effective policy comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `[[rule]]` of the file.
    File,
    /// The built-in catalog, with `scan.builtin_catalog`'s action.
    Catalog,
}

/// A validated policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub pin_path: PathBuf,
    pub selftest_interval: Duration,
    /// Reload when the file changes (`daemon.watch_policy`, on by default), as on SIGHUP.
    pub watch_policy: bool,
    pub metrics_listen: SocketAddr,
    /// `metrics.web_config`: TLS and basic authentication of the listener.
    pub metrics_web: Option<crate::http::WebConfig>,
    pub attach: Vec<Attach>,
    /// File rules first, then the catalog headers they do not override.
    pub kernel: KernelPolicy,
    /// Parallel to `kernel.rules`.
    pub origin: Vec<Origin>,
    /// Keys accepted but no longer meaningful, one line each (`check-config` prints them,
    /// the daemon logs them).
    pub warnings: Vec<String>,
}

/// A policy file error: where, which key, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a policy file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, true)
}

/// [`load`] for commands that attach nothing (`audit`): no `[[attach]]` is needed.
pub fn load_policy(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, false)
}

fn load_with(path: &Path, need_attach: bool) -> Result<Config, ConfigError> {
    let text = read(path)?;
    validate::parse_with(path, &text, need_attach)
}

/// The policy file's text, read safely (see `source`: a regular file no other user may
/// write, or exactly a Kubernetes ConfigMap mount).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    source::read(path).map_err(|message| ConfigError {
        path: path.to_owned(),
        at: None,
        message,
    })
}

/// Validates policy text (`path` is for messages).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    validate::parse_with(path, text, true)
}

/// A valid policy file with every section but `[msisdn]`: rules, allowlists of both
/// families, the catalog behind them (tests of what the parser yields and what that
/// compiles into).
#[cfg(test)]
pub(crate) const EXAMPLE_FILE: &str = r#"
[daemon]
pin_path = "/sys/fs/bpf/lg-test"
selftest_interval = "5m"

[metrics]
listen = "127.0.0.1:19717"

[[attach]]
interface = "eth1"
hook = "tc-egress"

[[attach]]
interface = "wan0"
hook = "xdp"

[scan]
ports = [80, 8080, 8000]
max_head_bytes = 8192
incomplete_heads = "pass"
builtin_catalog = "count"

[[rule]]
header = "x_msisdn"
action = "redact"
allow = ["198.51.100.0/24", "2001:db8:100::/48", "203.0.113.7"]

[[rule]]
header = "X-Operator-Sub"
action = "drop"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_fit_a_file_name() {
        for name in ["gw", "/run/netns/gw", "/var/run/x%y:z@w"] {
            let ns = NetNs { name: name.into() };
            let label = ns.label();
            assert!(!label.contains('/') && !label.contains(':') && !label.contains('@'));
            assert_eq!(NetNs::from_label(&label), ns);
        }
        assert_eq!(
            NetNs { name: "gw".into() }.path(),
            PathBuf::from("/run/netns/gw")
        );
    }

    #[test]
    fn unsafe_files_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("leakguard-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[[attach]]\ninterface = \"eth0\"\nhook = \"xdp\"\n").unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&good).is_ok());
        let open = dir.join("open.toml");
        std::fs::copy(&good, &open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load(&open).unwrap_err().to_string();
        assert!(
            e.contains("writable by every user") && e.contains("0666"),
            "{e}"
        );
        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        let e = load(&link).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link") && e.contains("ConfigMap"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
