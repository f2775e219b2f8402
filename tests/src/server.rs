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
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Result<()>>>>,
}

impl HttpServer {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self> {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (h, s) = (heads.clone(), stop.clone());
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
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &h),
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
        rx.recv_timeout(Duration::from_secs(10))
            .context("server thread did not start")??;
        Ok(Self {
            heads,
            stop,
            handle: Some(handle),
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

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
