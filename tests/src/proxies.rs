//! Real enrichment proxies from Debian, as a mobile operator's gateway runs them: each
//! adds the subscriber's identity headers to every request it forwards, the way the
//! operator's configuration would. As RAII guards: dropped, the process is killed.
//!
//! - HAProxy (`http-request add-header`), a reverse proxy on `GW_CLI:80`; appends the
//!   headers at the end of the head; reuses server connections (`http-reuse always`).
//! - Squid (`request_header_add`), a forward proxy on `GW_CLI:3128`; appends them too.
//! - nginx (`proxy_set_header`), a reverse proxy on `GW_CLI:8080`; puts them first;
//!   upstream keep-alive.
//!
//! [`Proxy::start_placing_number`] has HAProxy or nginx put the number where `[msisdn]`
//! reads it besides header values: appended to the query (`msisdn=N`), to the client's
//! `Cookie` (`; msisdn=N`) and inside a SIP `Contact` value. (Squid cannot rewrite a
//! request target or a header's value without a helper program.)

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::{
    daemon::wait_for,
    gateway::{GW_CLI, PARTNER, SRV},
    netns::Netns,
};

/// A proxy's kind: how clients reach it and how it enriches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Haproxy,
    Squid,
    Nginx,
}

impl Kind {
    pub const ALL: [Self; 3] = [Self::Haproxy, Self::Squid, Self::Nginx];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Haproxy => "haproxy",
            Self::Squid => "squid",
            Self::Nginx => "nginx",
        }
    }

    /// Where clients connect.
    #[must_use]
    pub fn listen(self) -> SocketAddr {
        let port = match self {
            Self::Haproxy => 80,
            Self::Squid => 3128,
            Self::Nginx => 8080,
        };
        SocketAddr::new(GW_CLI.parse().expect("address"), port)
    }

    /// True for a forward proxy (clients send absolute URIs to it).
    #[must_use]
    pub const fn forward(self) -> bool {
        matches!(self, Self::Squid)
    }
}

/// A running proxy.
pub struct Proxy {
    pub kind: Kind,
    child: Child,
    pub dir: PathBuf,
    /// Squid's service name: it names Squid's shared-memory segments (`/dev/shm/NAME-*`),
    /// which are per host, not per network namespace, so two Squids at once need two.
    service: Option<String>,
}

/// A service name no other Squid of this run or of a parallel test binary uses.
fn squid_service_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lg{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Proxy {
    /// Starts `kind` in `ns` (the gateway), adding `headers` (`(name, value)`) to every
    /// request it forwards; returns once it accepts connections. Reverse proxies send
    /// requests for Host `partner.example` to the partner, the rest to the server.
    pub fn start(kind: Kind, ns: &Netns, dir: &Path, headers: &[(&str, &str)]) -> Result<Self> {
        Self::spawn(kind, ns, dir, |dir| config(kind, dir, headers, None))
    }

    /// Starts HAProxy or nginx in `ns` putting `number` in the request target, the
    /// `Cookie` value and a `Contact` header of every request it forwards (see the module
    /// comment); returns once it accepts connections.
    pub fn start_placing_number(kind: Kind, ns: &Netns, dir: &Path, number: &str) -> Result<Self> {
        anyhow::ensure!(
            kind != Kind::Squid,
            "Squid cannot put a number in a request target or a header value"
        );
        Self::spawn(kind, ns, dir, |dir| config(kind, dir, &[], Some(number)))
    }

    /// Starts `kind` in `ns` with the configuration `conf` makes for its directory.
    fn spawn(
        kind: Kind,
        ns: &Netns,
        dir: &Path,
        conf: impl FnOnce(&Path) -> String,
    ) -> Result<Self> {
        let dir = dir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        // Squid drops to its own user, which must write here.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        let conf_path = dir.join("proxy.conf");
        std::fs::write(&conf_path, conf(&dir))?;
        let log = std::fs::File::create(dir.join("stderr.log"))?;
        let mut cmd = ns.command(match kind {
            Kind::Haproxy => "haproxy",
            Kind::Squid => "squid",
            Kind::Nginx => "nginx",
        });
        let service = kind.eq(&Kind::Squid).then(squid_service_name);
        match kind {
            Kind::Haproxy => cmd.arg("-db").arg("-f").arg(&conf_path),
            Kind::Squid => cmd
                .args(["-N", "-d", "1", "-n"])
                .arg(service.as_deref().unwrap_or("squid"))
                .arg("-f")
                .arg(&conf_path),
            Kind::Nginx => cmd
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off; master_process off;"]),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (Debian's, by `cargo xtask setup`)",
                    kind.name()
                )
            })?;
        let p = Self {
            kind,
            child,
            dir,
            service,
        };
        let addr = kind.listen();
        wait_for(
            &format!("{} to listen", kind.name()),
            Duration::from_secs(20),
            || {
                ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                    .unwrap_or(false)
            },
        )
        .with_context(|| {
            format!(
                "{} log:\n{}",
                kind.name(),
                std::fs::read_to_string(p.dir.join("stderr.log")).unwrap_or_default()
            )
        })?;
        Ok(p)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed Squid leaves its segments behind.
        if let Some(service) = &self.service {
            let prefix = format!("{service}-");
            for e in std::fs::read_dir("/dev/shm")
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// `kind`'s configuration: adding `headers`, and with `number`, putting it in the
/// request target, the cookie and a `Contact` value (HAProxy and nginx).
fn config(kind: Kind, dir: &Path, headers: &[(&str, &str)], number: Option<&str>) -> String {
    let d = dir.display();
    let listen = kind.listen();
    match kind {
        Kind::Haproxy => {
            let add: String = headers
                .iter()
                .map(|(n, v)| format!("  http-request add-header {n} {v}\n"))
                .chain(number.map(|n| {
                    // Single quotes: no escapes read, so `\1` reaches the regex engine.
                    format!(
                        "  http-request set-query '%[query]&msisdn={n}'\n  \
                         http-request replace-header Cookie '(.*)' '\\1; msisdn={n}'\n  \
                         http-request add-header Contact '<sip:+{n}@ims.example;user=phone>'\n"
                    )
                }))
                .collect();
            format!(
                "global\n  maxconn 256\n\
                 defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
                 option http-keep-alive\n  http-reuse always\n\
                 frontend fe\n  bind {listen}\n{add}  \
                 use_backend partner if {{ hdr(host) -i partner.example }}\n  default_backend origin\n\
                 backend origin\n  server s1 {SRV}:80\n\
                 backend partner\n  server p1 {PARTNER}:80\n"
            )
        }
        Kind::Squid => {
            let add: String = headers
                .iter()
                .map(|(n, v)| format!("request_header_add {n} \"{v}\" all\n"))
                .collect();
            format!(
                "http_port {listen}\n\
                 http_access allow all\n\
                 cache deny all\n\
                 {add}\
                 pid_filename {d}/squid.pid\n\
                 cache_log {d}/cache.log\n\
                 access_log none\n\
                 cache_store_log none\n\
                 coredump_dir {d}\n\
                 shutdown_lifetime 1 seconds\n\
                 server_persistent_connections on\n\
                 client_persistent_connections on\n"
            )
        }
        Kind::Nginx => {
            let set: String = headers
                .iter()
                .map(|(n, v)| format!("      proxy_set_header {n} \"{v}\";\n"))
                .chain(number.map(|n| {
                    // The rewrite puts `msisdn=N` first in the query and has proxy_pass
                    // send the rewritten target (`break`: no new location search).
                    format!(
                        "      rewrite ^ $uri?msisdn={n} break;\n      \
                         proxy_set_header Cookie \"$http_cookie; msisdn={n}\";\n      \
                         proxy_set_header Contact \"<sip:+{n}@ims.example;user=phone>\";\n"
                    )
                }))
                .collect();
            format!(
                "error_log {d}/error.log;\npid {d}/nginx.pid;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n\
                   client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                   large_client_header_buffers 4 32k;\n\
                   upstream origin {{ server {SRV}:80; keepalive 8; }}\n\
                   upstream partner {{ server {PARTNER}:80; keepalive 8; }}\n\
                   map $host $up {{ default origin; partner.example partner; }}\n\
                   server {{\n    listen {listen};\n    location / {{\n\
                 {set}      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                       proxy_pass http://$up;\n    }}\n  }}\n}}\n"
            )
        }
    }
}
