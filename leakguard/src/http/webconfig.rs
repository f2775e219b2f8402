//! The metrics listener's web-config file, in the format of the Prometheus exporter
//! toolkit (the same file node_exporter, Prometheus and Alertmanager read with
//! `--web.config.file`): TLS in `tls_server_config`, bcrypt-hashed passwords in
//! `basic_auth_users`. The toolkit's keys leakguard cannot honour are refused by name,
//! unknown keys too: a file the listener would half-apply must not start it (it could
//! serve plaintext, or without a password, while the operator believes otherwise).
//!
//! Relative paths in the file are relative to its directory, as in the toolkit.
//! Messages never quote a password, a hash or key material.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use serde::{de::IgnoredAny, Deserialize};

/// The TLS versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(key: &str, s: &str) -> Result<Self, String> {
        match s {
            "TLS12" => Ok(Self::Tls12),
            "TLS13" => Ok(Self::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "tls_server_config.{key} = {s:?}: TLS 1.0 and 1.1 are not supported (write \"TLS12\" or \"TLS13\")"
            )),
            _ => Err(format!(
                "tls_server_config.{key} = {s:?}: expected \"TLS12\" or \"TLS13\""
            )),
        }
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// `client_auth_type`, of the toolkit's values those that verify what a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default).
    None,
    /// `VerifyClientCertIfGiven`: a client may send none; one it sends must verify.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`.
    Require,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    /// Set exactly when `client_auth` is not `None`.
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// A validated web-config file.
#[derive(Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub path: PathBuf,
    pub tls: Option<TlsSettings>,
    /// User name → bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

/// Names only: the hashes stay out of any debug output.
impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// What `check-config` prints about the listener.
    #[must_use]
    pub fn summary(&self) -> String {
        let tls = match &self.tls {
            None => "TLS off (plain HTTP)".to_owned(),
            Some(t) => {
                let versions = if t.min_version == t.max_version {
                    t.min_version.name().to_owned()
                } else {
                    format!("{}-{}", t.min_version.name(), t.max_version.name())
                };
                let clients = match t.client_auth {
                    ClientAuth::None => "no client certificates",
                    ClientAuth::VerifyIfGiven => "client certificates verified if given",
                    ClientAuth::Require => "client certificates required",
                };
                format!("TLS on ({versions}, {clients})")
            }
        };
        let auth = if self.users.is_empty() {
            "basic auth off".to_owned()
        } else {
            format!("basic auth on ({} user(s))", self.users.len())
        };
        format!("{tls}, {auth}")
    }
}

const SUPPORTED: &str = "leakguard supports tls_server_config (cert_file, key_file, \
     client_auth_type, client_ca_file, min_version, max_version) and basic_auth_users";

/// The toolkit's schema; leaves that could hold a secret are read as `IgnoredAny` or a
/// YAML value, so that serde's type errors cannot quote them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    tls_server_config: Option<TlsYaml>,
    http_server_config: Option<IgnoredAny>,
    basic_auth_users: Option<Users>,
    rate_limit: Option<IgnoredAny>,
}

/// `basic_auth_users`: a mapping, or anything else (refused without being quoted).
#[derive(Deserialize)]
#[serde(untagged)]
enum Users {
    Map(BTreeMap<String, Leaf>),
    Other(IgnoredAny),
}

/// A user's hash: a string, or anything else (refused without being quoted).
#[derive(Deserialize)]
#[serde(untagged)]
enum Leaf {
    Text(String),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsYaml {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
}

/// Reads and validates the web-config file at `path` (absolute), the certificate, key
/// and CA files it names included. The error is one line, without the file's name.
pub fn load(path: &Path) -> Result<WebConfig, String> {
    use std::os::unix::fs::PermissionsExt as _;
    // Whoever can write it can turn authentication off.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!(
            "writable by every user (mode {mode:04o}); fix it with chmod o-w"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let config = parse(path, dir, &text)?;
    if let Some(t) = &config.tls {
        super::tls::server_config(t)?;
    }
    Ok(config)
}

/// Validates the text of a web-config file; relative paths are taken from `dir`.
/// Touches no file.
pub(super) fn parse(path: &Path, dir: &Path, text: &str) -> Result<WebConfig, String> {
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    }) {
        return Err(
            "the file is empty: it would serve plain HTTP without authentication; \
             remove metrics.web_config for that"
                .into(),
        );
    }
    // A key left without a value (`tls_server_config:` with nothing indented under it)
    // would read as absent: TLS off. Refused instead.
    let top: BTreeMap<String, Option<IgnoredAny>> = from_yaml(text)?;
    if let Some((k, _)) = top.iter().find(|(_, v)| v.is_none()) {
        return Err(format!(
            "{k} has no value: indent what belongs under it, or remove it"
        ));
    }
    let file: FileYaml = from_yaml(text)?;
    for (key, set) in [
        ("http_server_config", file.http_server_config.is_some()),
        ("rate_limit", file.rate_limit.is_some()),
    ] {
        if set {
            return Err(format!("{key} is not supported; {SUPPORTED}"));
        }
    }
    let tls = file.tls_server_config.map(|t| tls(dir, t)).transpose()?;
    let users = match file.basic_auth_users {
        None => BTreeMap::new(),
        Some(v) => users(&v)?,
    };
    Ok(WebConfig {
        path: path.to_owned(),
        tls,
        users,
    })
}

fn tls(dir: &Path, t: TlsYaml) -> Result<TlsSettings, String> {
    for (key, set) in [
        ("cert", t.cert.is_some()),
        ("key", t.key.is_some()),
        ("client_ca", t.client_ca.is_some()),
        ("client_allowed_sans", t.client_allowed_sans.is_some()),
        ("cipher_suites", t.cipher_suites.is_some()),
        (
            "prefer_server_cipher_suites",
            t.prefer_server_cipher_suites.is_some(),
        ),
        ("curve_preferences", t.curve_preferences.is_some()),
    ] {
        if set {
            return Err(format!(
                "tls_server_config.{key} is not supported; {SUPPORTED}"
            ));
        }
    }
    let file = |key: &str, v: Option<String>| -> Result<PathBuf, String> {
        match v {
            Some(p) if !p.is_empty() => Ok(dir.join(p)),
            _ => Err(format!(
                "tls_server_config.{key} is missing: TLS needs cert_file and key_file \
                 (remove tls_server_config to serve plain HTTP)"
            )),
        }
    };
    let cert_file = file("cert_file", t.cert_file)?;
    let key_file = file("key_file", t.key_file)?;
    let client_auth = match t.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Require,
        Some(s @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            return Err(format!(
                "tls_server_config.client_auth_type = {s:?} accepts certificates without \
                 verifying them: not supported; use \"RequireAndVerifyClientCert\""
            ))
        }
        Some(s) => {
            return Err(format!(
                "tls_server_config.client_auth_type = {s:?}: expected \"NoClientCert\", \
                 \"VerifyClientCertIfGiven\" or \"RequireAndVerifyClientCert\""
            ))
        }
    };
    let client_ca_file = match (client_auth, t.client_ca_file) {
        (ClientAuth::None, None) => None,
        (ClientAuth::None, Some(_)) => {
            return Err(
                "tls_server_config.client_ca_file is set but client_auth_type is \
                 NoClientCert: set client_auth_type = \"RequireAndVerifyClientCert\", or \
                 remove client_ca_file"
                    .into(),
            )
        }
        (_, Some(p)) if !p.is_empty() => Some(dir.join(p)),
        (_, _) => {
            return Err(
                "tls_server_config.client_ca_file is missing: verifying client \
                 certificates needs the CA that signs them"
                    .into(),
            )
        }
    };
    let version = |key: &str, v: Option<String>, default| {
        v.map_or(Ok(default), |s| TlsVersion::parse(key, &s))
    };
    let min_version = version("min_version", t.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", t.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config.min_version is above max_version".into());
    }
    Ok(TlsSettings {
        cert_file,
        key_file,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    })
}

/// Deserializes YAML; the error is the parser's first line, without the source snippet
/// serde-saphyr would add (it would quote the file: a hash, a key).
fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let e = e.to_string();
        e.lines()
            .next()
            .unwrap_or("not YAML")
            .trim_start_matches("error: ")
            .to_owned()
    })
}

fn users(v: &Users) -> Result<BTreeMap<String, String>, String> {
    let Users::Map(m) = v else {
        return Err(
            "basic_auth_users: expected a mapping of user names (strings) to bcrypt hashes".into(),
        );
    };
    if m.is_empty() {
        return Err(
            "basic_auth_users is empty: name at least one user, or remove it to serve \
             without authentication"
                .into(),
        );
    }
    let mut users = BTreeMap::new();
    for (user, hash) in m {
        if user.is_empty() || user.contains(':') {
            return Err(format!(
                "basic_auth_users: user name {user:?} is empty or contains ':'"
            ));
        }
        // A plaintext password here would be compared as if it were a hash, and sits in
        // a file that backups and config management copy around.
        let hash = match hash {
            Leaf::Text(h) => Some(h.as_str()),
            Leaf::Other(_) => None,
        };
        let hash = hash.filter(|h| is_bcrypt(h)).ok_or_else(|| {
            format!(
                "basic_auth_users.{user}: not a bcrypt hash (plaintext passwords are refused); \
                 make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
            )
        })?;
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

/// `$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost bcrypt accepts, a salt and a hash.
fn is_bcrypt(h: &str) -> bool {
    h.parse::<bcrypt::HashParts>()
        .is_ok_and(|p| (4..=31).contains(&p.get_cost()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    fn parse_str(text: &str) -> Result<WebConfig, String> {
        parse(Path::new("/etc/w.yml"), Path::new("/etc/lg"), text)
    }

    #[test]
    fn a_full_file_and_relative_paths() {
        let c = parse_str(&format!(
            "tls_server_config:\n  cert_file: tls/c.pem\n  key_file: /k.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nbasic_auth_users:\n  prom: {HASH}\n"
        ))
        .unwrap();
        let t = c.tls.as_ref().unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/etc/lg/tls/c.pem"));
        assert_eq!(t.key_file, PathBuf::from("/k.pem"));
        assert_eq!(t.client_ca_file, Some(PathBuf::from("/etc/lg/ca.pem")));
        assert_eq!(t.client_auth, ClientAuth::Require);
        assert_eq!(
            (t.min_version, t.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert_eq!(c.users.len(), 1);
        assert_eq!(
            c.summary(),
            "TLS on (1.3, client certificates required), basic auth on (1 user(s))"
        );
        assert!(!format!("{c:?}").contains(HASH), "no hash in debug output");
        let auth_only = parse_str(&format!("basic_auth_users:\n  prom: '{HASH}'\n")).unwrap();
        assert!(auth_only.tls.is_none());
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_in_one_line_without_secrets() {
        let cases: &[(&str, &str)] = &[
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  bogus: 1\n", "unknown field `bogus`"),
            ("bogus: 1\n", "unknown field `bogus`"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites is not supported"),
            ("tls_server_config:\n  cert: x\n  key: SECRETKEY\n", "tls_server_config.cert is not supported"),
            ("http_server_config:\n  http2: false\n", "http_server_config is not supported"),
            ("rate_limit:\n  interval: 1s\n", "rate_limit is not supported"),
            ("tls_server_config:\n  cert_file: c\n", "key_file is missing"),
            ("tls_server_config: {}\n", "cert_file is missing"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n", "TLS 1.0 and 1.1"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n", "above max_version"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert\n", "without verifying"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file is missing"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n", "NoClientCert"),
            ("basic_auth_users:\n  prom: SECRETPASS\n", "basic_auth_users.prom: not a bcrypt hash"),
            ("basic_auth_users:\n  prom: 12345\n", "not a bcrypt hash"),
            ("basic_auth_users: SECRETPASS\n", "expected a mapping"),
            ("basic_auth_users: {}\n", "is empty"),
            ("# nothing\n\n", "the file is empty"),
            ("tls_server_config:\nbasic_auth_users:\n  prom: x\n", "tls_server_config has no value"),
            ("tls_server_config: [\n", "unclosed bracket"),
        ];
        for (text, want) in cases {
            let e = parse_str(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} should say {want:?}");
            assert_eq!(e.lines().count(), 1, "{e:?}");
            assert!(!e.contains("SECRET"), "{e:?} quotes a secret");
        }
    }
}
