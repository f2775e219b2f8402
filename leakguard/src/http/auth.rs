//! HTTP basic authentication against `basic_auth_users` (bcrypt hashes).
//!
//! bcrypt is slow on purpose (about 70 ms at cost 10): a scrape every 15 s must not pay
//! that each time, so credentials that verified once are remembered, by a SHA-256 of
//! user, password and stored hash (never the credentials themselves), for as long as this
//! web config is in force. A failure is never cached, and always costs one bcrypt run,
//! for an unknown user too, so the time taken does not tell which user names exist.
//! bcrypt runs on tokio's blocking pool: the daemon's own loop shares the runtime thread.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use base64::Engine as _;

/// Verified credentials remembered; past this many (more users and passwords than any
/// deployment has) the memory starts over, so no client can grow it without bound.
const MAX_REMEMBERED: usize = 256;

pub struct BasicAuth {
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    remembered: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    #[must_use]
    pub fn new(users: BTreeMap<String, String>) -> Arc<Self> {
        Arc::new(Self {
            users,
            remembered: Mutex::new(HashSet::new()),
        })
    }

    /// True when the `Authorization` header value carries a configured user's password.
    pub async fn allows(self: &Arc<Self>, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        // An unknown user is checked against some configured hash, and refused whatever
        // the result: the same cost as a known one.
        let (known, hash) = match self.users.get(&user) {
            Some(h) => (true, h.clone()),
            None => match self.users.values().next() {
                Some(h) => (false, h.clone()),
                None => return false,
            },
        };
        let key = fingerprint(&user, &password, &hash);
        if known && self.remembered.lock().is_ok_and(|r| r.contains(&key)) {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false))
            && known;
        if ok {
            if let Ok(mut r) = self.remembered.lock() {
                if r.len() >= MAX_REMEMBERED {
                    r.clear();
                }
                r.insert(key);
            }
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// SHA-256 of the three, each length-prefixed (no two triples share an encoding).
fn fingerprint(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, password, hash] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn header(user: &str, password: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b}").into_bytes()
    }

    /// Right, wrong and missing credentials; the second success costs no bcrypt run.
    #[tokio::test]
    async fn verifies_once_then_remembers() {
        let hash = bcrypt::hash("s3cret", 10).unwrap();
        let auth = BasicAuth::new([("prom".to_owned(), hash)].into());
        let timed = |h: Vec<u8>| {
            let auth = auth.clone();
            async move {
                let t = Instant::now();
                let ok = auth.allows(Some(&h)).await;
                (ok, t.elapsed())
            }
        };
        let (ok, first) = timed(header("prom", "s3cret")).await;
        assert!(ok);
        let (ok, again) = timed(header("prom", "s3cret")).await;
        assert!(ok);
        assert!(
            again < first / 10 && again < Duration::from_millis(5),
            "remembered: {again:?} after {first:?}"
        );
        assert!(!timed(header("prom", "wrong")).await.0);
        assert!(!timed(header("nobody", "s3cret")).await.0);
        assert!(!auth.allows(None).await);
        assert!(!auth.allows(Some(b"Bearer abc")).await);
        assert!(!auth.allows(Some(b"Basic !!!")).await);
        // A wrong password is not remembered as anything: still refused.
        assert!(!timed(header("prom", "wrong")).await.0);
    }
}
