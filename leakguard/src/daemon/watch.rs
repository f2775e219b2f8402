//! The policy file watched (`daemon.watch_policy`): a change reaches the daemon without a
//! signal, and is reloaded as SIGHUP reloads it. The file's directory is watched, not the
//! file: an editor or config management replaces the file by a rename, and a Kubernetes
//! ConfigMap swaps its `..data` link, and neither changes the old file's inode.

use std::{
    ffi::OsString,
    hash::{DefaultHasher, Hash as _, Hasher as _},
    path::Path,
};

use anyhow::{Context as _, Result};
use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::source::DATA_LINK;

/// Starts a thread that sends on `tx` whenever the policy file at `path` (or the
/// ConfigMap link it goes through) may have changed. The thread lives as long as the
/// process.
pub fn spawn(path: &Path, tx: UnboundedSender<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => ".".into(),
    };
    let name: OsString = path
        .file_name()
        .context("the policy file has no name")?
        .into();
    let mut inotify = Inotify::init().context("inotify_init")?;
    inotify
        .watches()
        .add(
            &dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::ATTRIB,
        )
        .with_context(|| format!("watching {}", dir.display()))?;
    std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let events = match inotify.read_events_blocking(&mut buf) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "watching the policy file failed; reload with SIGHUP");
                        return;
                    }
                };
                let relevant = events
                    .filter_map(|e| e.name)
                    .any(|n| n == name.as_os_str() || n == DATA_LINK);
                if relevant && tx.send(()).is_err() {
                    return;
                }
            }
        })
        .context("starting the policy watch")?;
    Ok(())
}

/// What tells one version of the file's text from another.
#[must_use]
pub fn fingerprint(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
