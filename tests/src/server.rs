//! A real HTTP/1.1 server in a test namespace that records every request head it
//! receives, byte for byte, so a test can check what left the guard.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::netns::Netns;

/// Longest head recorded; the server answers 431 past it, as a real one would.
const MAX_HEAD: usize = 256 * 1024;
/// The server stops by itself after this long, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(600);

pub struct HttpServer {
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    _listening: Listening,
}

impl HttpServer {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self> {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let listening = listen(ns, addr, move |stream, _, _| serve(stream, &h))?;
        Ok(Self {
            heads,
            _listening: listening,
        })
    }

    /// Every head received so far.
    pub fn heads(&self) -> Vec<Vec<u8>> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, heads: &Mutex<Vec<Vec<u8>>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_HEAD {
            break;
        }
    }
    if head.is_empty() {
        return;
    }
    heads.lock().unwrap().push(head);
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
}

/// One request as a [`KeepAliveServer`] received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Which connection carried it (numbered from 0 in accept order).
    pub conn: u64,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

/// A recording HTTP/1.1 origin server as proxies meet one: persistent connections (many
/// requests each, until the peer closes or asks to), request bodies by Content-Length or
/// chunked, a thread per connection. Records every head and body.
pub struct KeepAliveServer {
    requests: Arc<Mutex<Vec<Recorded>>>,
    _listening: Listening,
}

impl KeepAliveServer {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        let listening = listen(ns, addr, move |stream, conn, stop| {
            let (r, s) = (r.clone(), stop.clone());
            std::thread::spawn(move || serve_persistent(stream, conn, &r, &s));
        })?;
        Ok(Self {
            requests,
            _listening: listening,
        })
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// A server's listening thread: stopped, and joined, on drop.
struct Listening {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Result<()>>>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Listens on `addr` inside `ns` and hands `serve` each connection, numbered from 0 in
/// accept order, with the stop flag, until stopped or [`LIFETIME`] has passed. Returns
/// once the socket is bound.
fn listen(
    ns: &Netns,
    addr: SocketAddr,
    mut serve: impl FnMut(TcpStream, u64, &Arc<AtomicBool>) + Send + 'static,
) -> Result<Listening> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let s = stop.clone();
    let handle = ns.spawn(move || -> Result<()> {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!("bind {addr}: {e}")));
                return Ok(());
            }
        };
        listener.set_nonblocking(true)?;
        let _ = tx.send(Ok(()));
        let deadline = Instant::now() + LIFETIME;
        let mut conn = 0;
        while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    serve(stream, conn, &s);
                    conn += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Nothing to accept: the only way to notice `stop` without
                    // a second wake-up socket.
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })?;
    let listening = Listening {
        stop,
        handle: Some(handle),
    };
    rx.recv_timeout(Duration::from_secs(10))
        .context("server thread did not start")??;
    Ok(listening)
}

/// Serves requests on one connection until the peer closes it, asks to, or is idle for
/// 10 s (or the server stops).
fn serve_persistent(
    mut stream: TcpStream,
    conn: u64,
    requests: &Mutex<Vec<Recorded>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16384];
    while !stop.load(Ordering::Relaxed) {
        // The head.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(i + 4);
            }
            if buf.len() > MAX_HEAD {
                break None;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(end) = end else {
            let _ = stream.write_all(b"HTTP/1.1 431 Too Large\r\nConnection: close\r\n\r\n");
            return;
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        // The body: Content-Length, or chunked to its last chunk.
        let body = if let Some(n) = field("content-length:").and_then(|v| v.parse::<usize>().ok()) {
            while buf.len() < n {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            buf.drain(..n).collect()
        } else if field("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            loop {
                if let Some(i) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                    break buf.drain(..i + 5).collect();
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
        } else {
            Vec::new()
        };
        let close = field("connection:").is_some_and(|v| v.contains("close"));
        requests.lock().unwrap().push(Recorded { conn, head, body });
        let reply: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
        };
        if stream.write_all(reply).is_err() || close {
            return;
        }
    }
}
