//! Any map of a loaded object read and zeroed through the `bpf(2)` syscall as bytes
//! (`leakguard::kernel::rawmap`),
//! whatever its key and value types (aya's maps are typed): what [`Guard::reset`] needs to
//! clear every map, and what its test compares a reset guard with a fresh one by.
//!
//! [`Guard::reset`]: crate::guard::Guard::reset

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
};

use anyhow::{bail, Context as _, Result};
use aya::maps::{Map, MapData};
use leakguard::kernel::rawmap::{elem, is_no_entry, Cmd};

/// How a map's entries are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Every index from 0 to `max_entries` exists; zeroing writes zeros to each.
    Array,
    /// Keys come and go (hash, LRU hash, LPM trie); zeroing deletes every key.
    Keyed,
}

/// One map, by its file descriptor, borrowed from the object that owns it (so that the
/// descriptor cannot be closed, and its number reused by another map, while in use).
pub struct RawMap<'a> {
    fd: BorrowedFd<'a>,
    kind: Kind,
    key_size: usize,
    /// A lookup's value: per-CPU maps return one 8-byte-aligned value per possible CPU.
    value_len: usize,
    max_entries: u32,
    /// A `.rodata` section: the programs cannot write it (`BPF_F_RDONLY_PROG`), so it
    /// holds what the load wrote, and the kernel refuses updates once it is frozen.
    read_only: bool,
}

/// `BPF_F_RDONLY_PROG` (linux/bpf.h): the map is read-only for programs.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// A map's entries as bytes, sorted by key.
pub type Dump = Vec<(Vec<u8>, Vec<u8>)>;

impl<'a> RawMap<'a> {
    /// The map's layout, or `None` for the event ring (read by draining it, not by key).
    pub fn of(name: &str, map: &'a Map) -> Result<Option<Self>> {
        let (data, kind, per_cpu): (&'a MapData, _, _) = match map {
            Map::Array(d) => (d, Kind::Array, false),
            Map::PerCpuArray(d) => (d, Kind::Array, true),
            Map::HashMap(d) | Map::LruHashMap(d) | Map::LpmTrie(d) => (d, Kind::Keyed, false),
            Map::PerCpuHashMap(d) | Map::PerCpuLruHashMap(d) => (d, Kind::Keyed, true),
            Map::RingBuf(_) => return Ok(None),
            _ => bail!("map {name}: a type this test helper does not know how to clear"),
        };
        // A `.data` section's initial values are the object's, not zeros.
        anyhow::ensure!(
            !name.starts_with(".data"),
            "map {name}: initialised globals, which zeroing would not restore"
        );
        let info = data.info().with_context(|| format!("map {name}: info"))?;
        let value_size = info.value_size() as usize;
        let value_len = if per_cpu {
            let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
            value_size.next_multiple_of(8) * cpus
        } else {
            value_size
        };
        Ok(Some(Self {
            fd: data.fd().as_fd(),
            kind,
            key_size: info.key_size() as usize,
            value_len,
            max_entries: info.max_entries(),
            read_only: info.map_flags() & BPF_F_RDONLY_PROG != 0,
        }))
    }

    /// Runs `cmd` with `key` (`key_size` bytes) and `value` (`value_len` bytes, or
    /// `key_size` for the next key, or null to delete).
    fn call(&self, cmd: Cmd, key: Option<&[u8]>, value: *mut u8) -> io::Result<()> {
        debug_assert!(key.is_none_or(|k| k.len() == self.key_size));
        let key = key.map_or(std::ptr::null(), <[u8]>::as_ptr);
        // SAFETY: the map's key is `key_size` bytes, its value `value_len` (per-CPU:
        // one 8-byte-aligned value per possible CPU); every caller passes buffers of
        // those sizes.
        unsafe { elem(cmd, self.fd.as_raw_fd(), key, value) }
    }

    /// The key after `key` (the first with `None`), or `None` at the end.
    fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let mut next = vec![0u8; self.key_size];
        match self.call(Cmd::NextKey, key, next.as_mut_ptr()) {
            Ok(()) => Ok(Some(next)),
            Err(e) if is_no_entry(&e) => Ok(None),
            Err(e) => Err(e).context("BPF_MAP_GET_NEXT_KEY"),
        }
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>> {
        match self.kind {
            Kind::Array => Ok((0..self.max_entries)
                .map(|i| i.to_ne_bytes().to_vec())
                .collect()),
            Kind::Keyed => {
                let mut keys: Vec<Vec<u8>> = Vec::new();
                // Bounded: a map holds at most max_entries keys.
                for _ in 0..=self.max_entries {
                    match self.next_key(keys.last().map(Vec::as_slice))? {
                        Some(k) => keys.push(k),
                        None => return Ok(keys),
                    }
                }
                bail!("more keys than max_entries: the map changed while it was read")
            }
        }
    }

    /// Every entry, sorted by key.
    pub fn dump(&self) -> Result<Dump> {
        let mut entries = Vec::new();
        for k in self.keys()? {
            let mut v = vec![0u8; self.value_len];
            self.call(Cmd::Lookup, Some(&k), v.as_mut_ptr())
                .context("BPF_MAP_LOOKUP_ELEM")?;
            entries.push((k, v));
        }
        entries.sort();
        Ok(entries)
    }

    /// The map as a fresh load leaves it: every array value zero, every key gone.
    pub fn zero(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        match self.kind {
            Kind::Array => {
                let mut zeros = vec![0u8; self.value_len];
                for k in self.keys()? {
                    self.call(Cmd::Update, Some(&k), zeros.as_mut_ptr())
                        .context("BPF_MAP_UPDATE_ELEM")?;
                }
            }
            Kind::Keyed => {
                // Delete the first key until there is none (bounded by max_entries).
                for _ in 0..=self.max_entries {
                    let Some(k) = self.next_key(None)? else {
                        return Ok(());
                    };
                    self.call(Cmd::Delete, Some(&k), std::ptr::null_mut())
                        .context("BPF_MAP_DELETE_ELEM")?;
                }
                bail!("the map still has keys after max_entries deletions");
            }
        }
        Ok(())
    }
}
