//! Continuous HTTP load from a thread inside a test namespace: one request per
//! connection, as fast as the server answers, each request numbered so the server's record
//! can be checked against what the client believes happened. Bounded in count and time.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{daemon::wait_for, netns::Netns};

/// What the client saw.
#[derive(Default)]
pub struct Tally {
    /// Requests answered `200`.
    pub ok: AtomicU64,
    /// Connections that could not be opened: nothing was sent.
    pub unsent: AtomicU64,
    /// Requests written (in part or whole) without an answer: the server may or may not
    /// have them, and the guard may or may not have seen them.
    pub in_doubt: AtomicU64,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    pub tally: Arc<Tally>,
    handles: Vec<JoinHandle<Result<Result<()>>>>,
}

/// The pieces of request `n`, each sent in its own segment (`TCP_NODELAY`, one write each).
pub type Request = dyn Fn(u64) -> Vec<Vec<u8>> + Send + Sync;

impl Load {
    /// Starts `clients` threads sending requests built by `request` to `addr` from inside
    /// `ns`, until [`Load::stop`], `max` requests in all, or `lifetime`. Several clients
    /// keep requests coming while one of them waits out a lost SYN.
    pub fn start(
        ns: &Netns,
        addr: SocketAddr,
        clients: u64,
        max: u64,
        lifetime: Duration,
        request: Arc<Request>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut handles = Vec::new();
        for c in 0..clients {
            let (s, t, request) = (stop.clone(), tally.clone(), request.clone());
            handles.push(
                ns.spawn(move || client(c, clients, &s, &t, addr, max, lifetime, &*request))?,
            );
        }
        Ok(Self {
            stop,
            tally,
            handles,
        })
    }

    #[must_use]
    pub fn ok(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have been answered.
    pub fn wait_more(&self, n: u64, timeout: Duration) -> Result<()> {
        let target = self.ok() + n;
        wait_for(&format!("{n} more answered requests"), timeout, || {
            self.ok() >= target
        })
    }

    /// Stops the client and waits for its last request to finish.
    pub fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))?
                .context("namespace thread")??;
        }
        Ok(())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Client `c` of `clients`: requests `c`, `c + clients`, … until told to stop.
#[allow(clippy::too_many_arguments)]
fn client(
    c: u64,
    clients: u64,
    stop: &AtomicBool,
    t: &Tally,
    addr: SocketAddr,
    max: u64,
    lifetime: Duration,
    request: &Request,
) -> Result<()> {
    let end = Instant::now() + lifetime;
    let mut n = c;
    while !stop.load(Ordering::Relaxed) && n < max && Instant::now() < end {
        match one(addr, &request(n)) {
            Outcome::Ok => t.ok.fetch_add(1, Ordering::Relaxed),
            Outcome::Unsent => {
                // No route or no listener (an interface being re-created): back off a
                // little rather than spin on the error.
                std::thread::sleep(Duration::from_millis(1));
                t.unsent.fetch_add(1, Ordering::Relaxed)
            }
            Outcome::InDoubt => t.in_doubt.fetch_add(1, Ordering::Relaxed),
        };
        n += clients;
    }
    Ok(())
}

enum Outcome {
    Ok,
    Unsent,
    InDoubt,
}

fn one(addr: SocketAddr, pieces: &[Vec<u8>]) -> Outcome {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Outcome::Unsent;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    for p in pieces {
        if s.write_all(p).is_err() {
            return Outcome::InDoubt;
        }
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    if answer.starts_with(b"HTTP/1.1 200 ") {
        Outcome::Ok
    } else {
        Outcome::InDoubt
    }
}
