//! The daemon's HTTP listener (`metrics.listen`): `/metrics` (the latest snapshot, in the
//! Prometheus text format), `/healthz` (the process answers), `/readyz` (every
//! configured interface attached and the last self-test passed), `/` (links to the
//! three). Optional TLS and basic authentication come from a web-config file
//! (`webconfig`, the Prometheus exporter toolkit's format).
//!
//! One request per connection (`Connection: close`), answered from [`State`], which the
//! daemon updates once a tick: nothing here touches the kernel. Nothing a client sends is
//! echoed back or logged. The listener holds under abuse: at most [`MAX_CONNECTIONS`] at
//! once, each with a deadline, and accept errors (out of descriptors, say) back off
//! instead of spinning.

mod auth;
mod tls;
pub mod webconfig;

use std::{
    borrow::Cow,
    fmt::Write as _,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;

use auth::BasicAuth;
pub use webconfig::WebConfig;

/// Connections served at once. Each holds a file descriptor until it is answered or its
/// deadline passes; without a cap, idle clients took every descriptor the process may
/// open (RLIMIT_NOFILE, 256 in a test), and then the daemon's own lookups of its
/// interfaces failed. A scraper needs one or two; past the cap, new connections wait
/// in the kernel's listen backlog until one finishes.
pub const MAX_CONNECTIONS: usize = 64;

/// The whole exchange of one connection (TLS handshake, request head, password check,
/// response) must fit in this.
const DEADLINE: Duration = Duration::from_secs(5);

/// A request head is small; anything longer is not a scrape.
const MAX_HEAD: usize = 8192;

/// Pause after a failed accept: doubled on each further failure, up to the maximum.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// What the daemon shares with the listener.
pub struct State {
    snapshot: Mutex<Snapshot>,
    web: Mutex<Arc<Web>>,
}

struct Snapshot {
    metrics: String,
    /// `Err(reason)`: why `/readyz` says 503, in a few words (never a value).
    ready: Result<(), String>,
}

/// TLS and authentication in force, from the web-config file.
pub struct Web {
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    summary: String,
}

impl Web {
    /// From a validated web config (`None`: plain HTTP, no authentication).
    pub fn build(config: Option<&WebConfig>) -> Result<Self, String> {
        let Some(c) = config else {
            return Ok(Self {
                tls: None,
                auth: None,
                summary: "TLS off (plain HTTP), basic auth off".into(),
            });
        };
        let tls = match &c.tls {
            Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let auth = (!c.users.is_empty()).then(|| BasicAuth::new(c.users.clone()));
        Ok(Self {
            tls,
            auth,
            summary: c.summary(),
        })
    }
}

impl State {
    #[must_use]
    pub fn new(web: Web) -> Arc<Self> {
        Arc::new(Self {
            snapshot: Mutex::new(Snapshot {
                metrics: String::new(),
                ready: Err("self-test pending".into()),
            }),
            web: Mutex::new(Arc::new(web)),
        })
    }

    /// The exposition text `/metrics` serves from now on.
    pub fn set_metrics(&self, text: String) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.metrics = text;
        }
    }

    /// What `/readyz` says from now on.
    pub fn set_ready(&self, ready: Result<(), String>) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.ready = ready;
        }
    }

    /// A new web config (after SIGHUP), for connections accepted from now on; when it
    /// cannot be built (a certificate replaced by an unreadable one since the policy was
    /// validated), the one in force stays.
    pub fn reload_web(&self, config: Option<&WebConfig>) {
        match Web::build(config) {
            Ok(web) => {
                tracing::info!(web = %web.summary, "metrics listener configured");
                if let Ok(mut w) = self.web.lock() {
                    *w = Arc::new(web);
                }
            }
            Err(e) => tracing::error!(error = %e,
                "metrics.web_config not applied; the listener keeps its TLS and authentication"),
        }
    }

    fn web(&self) -> Option<Arc<Web>> {
        self.web.lock().ok().map(|w| w.clone())
    }
}

/// Serves `state` on `listener` for as long as the daemon runs.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    if let Some(web) = state.web() {
        tracing::info!(web = %web.summary, "metrics listener configured");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failing: Option<Duration> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                failing = None;
                s
            }
            Err(e) => {
                // EMFILE and the like persist until something is closed: retrying at once
                // would spin a core. One line per burst of failures.
                let pause = match failing {
                    None => {
                        tracing::error!(error = %e,
                            "the metrics listener cannot accept connections; retrying with backoff (10 ms doubling to 1 s)");
                        BACKOFF.0
                    }
                    Some(p) => (p * 2).min(BACKOFF.1),
                };
                failing = Some(pause);
                drop(slot);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(DEADLINE, connection(stream, &state)).await;
        });
    }
}

async fn connection(stream: TcpStream, state: &State) -> io::Result<()> {
    let Some(web) = state.web() else {
        return Ok(());
    };
    match &web.tls {
        Some(acceptor) => exchange(acceptor.accept(stream).await?, state, &web).await,
        None => exchange(stream, state, &web).await,
    }
}

/// One request, one response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    state: &State,
    web: &Web,
) -> io::Result<()> {
    let response = match read_request(&mut s).await? {
        None => return Ok(()),
        Some(Err(r)) => r,
        Some(Ok(req)) => respond(&req, state, web).await,
    };
    s.write_all(&response).await?;
    s.shutdown().await
}

struct Request {
    method: String,
    path: String,
    authorization: Option<Vec<u8>>,
}

/// The request head: `None` when the client closed before sending one whole, a response
/// ready to send when it is not one this listener answers.
async fn read_request<S: AsyncRead + Unpin>(
    s: &mut S,
) -> io::Result<Option<Result<Request, Vec<u8>>>> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let n = s.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = req.path.unwrap_or("");
                return Ok(Some(Ok(Request {
                    method: req.method.unwrap_or("").to_owned(),
                    // The query string is no part of the route.
                    path: path.split('?').next().unwrap_or("").to_owned(),
                    authorization: req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                        .map(|h| h.value.to_vec()),
                })));
            }
            Ok(httparse::Status::Partial) if len < buf.len() => {}
            Ok(httparse::Status::Partial) => {
                return Ok(Some(Err(plain(
                    "431 Request Header Fields Too Large",
                    "",
                    "request head too large\n",
                    false,
                ))))
            }
            Err(_) => {
                return Ok(Some(Err(plain(
                    "400 Bad Request",
                    "",
                    "bad request\n",
                    false,
                ))))
            }
        }
    }
}

const LANDING: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>leakguard</title></head>
<body>
<h1>leakguard</h1>
<ul>
<li><a href=\"metrics\">/metrics</a>: Prometheus metrics</li>
<li><a href=\"healthz\">/healthz</a>: the daemon answers</li>
<li><a href=\"readyz\">/readyz</a>: every configured interface is guarded and the last self-test passed</li>
</ul>
</body>
</html>
";

async fn respond(req: &Request, state: &State, web: &Web) -> Vec<u8> {
    let head_only = req.method == "HEAD";
    let known = matches!(req.path.as_str(), "/" | "/metrics" | "/healthz" | "/readyz");
    // /healthz stays open: liveness probes (systemd, Kubernetes, a load balancer) seldom
    // carry credentials, and it tells nothing but that the process answers. Everything
    // else, unknown paths included, needs the password first: a client without one
    // learns nothing, not even which paths exist.
    if req.path != "/healthz" {
        if let Some(auth) = &web.auth {
            if !auth.allows(req.authorization.as_deref()).await {
                return plain(
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"leakguard\"\r\n",
                    "unauthorized\n",
                    head_only,
                );
            }
        }
    }
    if !known {
        return plain("404 Not Found", "", "not found\n", head_only);
    }
    if req.method != "GET" && !head_only {
        return plain(
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n",
            false,
        );
    }
    let Ok(snapshot) = state.snapshot.lock() else {
        return plain(
            "500 Internal Server Error",
            "",
            "internal error\n",
            head_only,
        );
    };
    match req.path.as_str() {
        "/metrics" => response(
            "200 OK",
            CONTENT_TYPE,
            "",
            snapshot.metrics.as_str().into(),
            head_only,
        ),
        "/healthz" => plain("200 OK", "", "ok\n", head_only),
        "/readyz" => match &snapshot.ready {
            Ok(()) => plain("200 OK", "", "ready\n", head_only),
            Err(why) => plain(
                "503 Service Unavailable",
                "",
                &format!("not ready: {why}\n"),
                head_only,
            ),
        },
        _ => response(
            "200 OK",
            "text/html; charset=utf-8",
            "",
            LANDING.into(),
            head_only,
        ),
    }
}

fn plain(status: &str, extra: &str, body: &str, head_only: bool) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        extra,
        body.into(),
        head_only,
    )
}

/// A whole response; for HEAD, the headers of the GET (its Content-Length too) alone.
fn response(
    status: &str,
    content_type: &str,
    extra: &str,
    body: Cow<'_, str>,
    head_only: bool,
) -> Vec<u8> {
    let mut head = String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
