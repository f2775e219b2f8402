//! Handing the guard over to maps of another layout, without a gap.
//!
//! A release whose maps mean something else (another `MAP_LAYOUT_VERSION`) cannot reuse
//! the pinned ones. Its programs and maps are made beside the old ones (`maps-next/`),
//! the policy written into them, and then every link is switched to the new programs
//! (one `BPF_LINK_UPDATE`, or a cls_bpf replace, each): the guard is never off. What the
//! old maps knew:
//! - the policy: written afresh from the file before any link switches;
//! - the counters: start again at zero (a counter reset to Prometheus);
//! - the flow table, heads open across segments and redactions kept for resends. Every
//!   layout keeps `FlowKey` and the first three words of `FlowState` (`next_seq`,
//!   `state`, `tok`; see `leakguard_common::flow`), so each old entry is carried over:
//!   an open head as a head not seen whole (the rest of it meets
//!   `scan.incomplete_heads`), redactions as forgotten (a resend of the bytes before the
//!   entry's sequence is dropped).
//!
//! Between carrying the table and switching the links the old programs may open more
//! heads. While `ScanConfig::handover` is set, the new programs take a segment with no
//! entry that starts no request as a head not seen whole; after the switch the table is
//! carried again until a pass finds nothing new. Then the flag is cleared, `maps/`
//! renamed `maps-old/`, `maps-next/` renamed `maps/`, and `maps-old/` removed.
//!
//! A daemon stopped half way is picked up at the next start by [`recover`].

use std::{
    collections::HashMap as StdHashMap,
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, HashMap, MapData},
    Ebpf,
};
use leakguard_common::{
    flow::{hint_slot, parser::S_SKIP},
    FlowKey, FlowState, ScanConfig, Span, MAX_SCAN_BYTES,
};

use super::{
    maps::{MAP_CONFIG, MAP_FLOWS, MAP_FLOW_HINTS},
    pins::Pins,
};

/// The oldest map layout whose flow table can be carried over (layout 1 predates the
/// contract on `FlowState`'s first words).
pub const OLDEST_CARRIED: u64 = 2;

/// Bytes of an old `FlowState` the carry reads: `next_seq`, `state`, `tok`.
const PREFIX: usize = 12;

/// Added to a hint counter the programs are using when an entry goes in behind them:
/// a read-then-write from user space can lose their concurrent atomic adds, and a
/// counter must never fall below its entries. So big that a lost add cannot matter;
/// the slot then always looks its flows up (a lookup per segment, never a miss).
const HINT_BIAS: u64 = 1 << 32;

/// `BPF_NOEXIST` (linux/bpf.h): insert only where the key has no entry.
const BPF_NOEXIST: u64 = 1;

/// A handover in progress: the old flow table, open from its pin.
pub struct Handover {
    from: u64,
    old_flows: MapData,
    carried: Carried,
}

#[derive(Clone, Copy, Debug, Default)]
struct Carried {
    /// Heads open in the old table: their rest is not seen whole.
    heads: u64,
    /// Flows with redactions the old table remembered: their resends are dropped.
    resends: u64,
}

/// Finishes, or forgets, a handover a previous daemon left half way. Run before the
/// pinned layout is read.
pub fn recover(pins: &Pins) -> Result<()> {
    let (maps, next, old) = dirs(pins);
    if old.is_dir() && next.is_dir() && !maps.exists() {
        // Stopped between the two renames: the new maps were complete.
        rename(&next, &maps)?;
        tracing::warn!("a handover to new maps stopped half way; finished it");
    }
    if next.is_dir() {
        // Stopped before the swap: start again (links already on its programs are
        // switched again to this start's).
        remove_dir(&next)?;
        tracing::warn!("a handover to new maps stopped half way; starting it again");
    }
    if old.is_dir() {
        remove_dir(&old)?;
    }
    Ok(())
}

impl Handover {
    /// Opens the old flow table of layout `from`, refusing one whose entries cannot be
    /// read under the contract.
    pub fn open(pins: &Pins, from: u64) -> Result<Self> {
        let refuse = |why: String| {
            anyhow::anyhow!(
                "the maps pinned under {} have map layout {from} ({why}); stop the daemon, run \
                 `leakguard detach` (the guard is off until the next start, well under a \
                 second), then start it",
                pins.root.display()
            )
        };
        if from < OLDEST_CARRIED {
            return Err(refuse(format!(
                "older than {OLDEST_CARRIED}, the oldest whose flow table can be carried over"
            )));
        }
        let path = pins.map(MAP_FLOWS);
        let old_flows = MapData::from_pin(&path)
            .with_context(|| format!("opening the pinned {}", path.display()))?;
        let info = old_flows.info()?;
        let (k, v) = (info.key_size() as usize, info.value_size() as usize);
        if k != size_of::<FlowKey>() || v < PREFIX {
            return Err(refuse(format!(
                "its flow table has {k}-byte keys and {v}-byte values, not a {}-byte key and \
                 a value of at least {PREFIX}",
                size_of::<FlowKey>()
            )));
        }
        Ok(Self {
            from,
            old_flows,
            carried: Carried::default(),
        })
    }

    /// Before any link switches, with the policy in the new maps: sets the handover
    /// flag and carries the old flow table over.
    pub fn prepare(&mut self, ebpf: &mut Ebpf) -> Result<()> {
        set_flag(ebpf, 1)?;
        // No program runs on the new maps yet: exact hint counts.
        let n = carry(&self.old_flows, ebpf, false)?;
        self.carried.heads += n.heads;
        self.carried.resends += n.resends;
        Ok(())
    }

    /// After every link runs the new programs: carries what the old programs added
    /// meanwhile (until a pass finds nothing new), clears the flag, swaps the pins.
    pub fn finish(mut self, ebpf: &mut Ebpf, pins: &Pins) -> Result<()> {
        // At least two passes: a run of an old program that began before its link
        // switched can still add an entry while the first pass reads the table.
        const MAX_PASSES: u32 = 10;
        let mut quiet = 0;
        for _ in 0..MAX_PASSES {
            let n = carry(&self.old_flows, ebpf, true)?;
            self.carried.heads += n.heads;
            self.carried.resends += n.resends;
            quiet = if n.heads + n.resends == 0 {
                quiet + 1
            } else {
                0
            };
            if quiet == 2 {
                break;
            }
        }
        if quiet < 2 {
            tracing::warn!(
                "the old flow table still grew after {MAX_PASSES} passes: a link may still run an old program"
            );
        }
        set_flag(ebpf, 0)?;
        let (maps, next, old) = dirs(pins);
        rename(&maps, &old)?;
        rename(&next, &maps)?;
        remove_dir(&old)?;
        tracing::info!(
            from = self.from,
            to = leakguard_common::MAP_LAYOUT_VERSION,
            open_heads = self.carried.heads,
            flows_with_redactions = self.carried.resends,
            "handed the guard over to maps of the new layout without a gap; open heads \
             carried over as not seen whole, counters start again at zero"
        );
        Ok(())
    }
}

/// (`maps/`, `maps-next/`, `maps-old/`).
fn dirs(pins: &Pins) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let maps = pins.maps_dir();
    let next = pins.staging().maps_dir();
    let old = pins.root.join("maps-old");
    (maps, next, old)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Sets `ScanConfig::handover` in both policy generations.
pub fn set_flag(ebpf: &mut Ebpf, on: u8) -> Result<()> {
    let mut config: Array<&mut MapData, ScanConfig> =
        Array::try_from(ebpf.map_mut(MAP_CONFIG).context(MAP_CONFIG)?)?;
    for gen in 0..2 {
        let mut c = config.get(&gen, 0)?;
        c.handover = on;
        config.set(gen, c, 0)?;
    }
    Ok(())
}

/// The entry an old one becomes: what it says of the flow, and nothing it cannot say.
pub fn carried(next_seq: u32, state: u32, tok: u32) -> (FlowState, bool) {
    let mut f = FlowState::FRESH;
    f.next_seq = next_seq;
    // The old table's redactions are not readable: a resend of any byte before
    // `next_seq` is dropped (TCP then gives up on that connection, or the client
    // retries). One placeholder span keeps the entry, as a real forgotten span would.
    f.forgot = 1;
    f.forgot_end = next_seq;
    f.spans[0] = Span {
        start: next_seq.wrapping_sub(1),
        end: next_seq,
    };
    f.nspans = 1;
    let open = !(state == 0 && tok == 0);
    if open {
        // Mid-line, somewhere: past any cap (`max_head_bytes` is at most
        // MAX_SCAN_BYTES), so the next segment has no room and the head is not seen
        // whole.
        f.state = S_SKIP;
        f.head_seq = next_seq.wrapping_sub(MAX_SCAN_BYTES + 1);
    }
    (f, open)
}

/// One pass over the old flow table: every entry the new table lacks goes in.
fn carry(old: &MapData, ebpf: &mut Ebpf, in_use: bool) -> Result<Carried> {
    let value_size = old.info()?.value_size() as usize;
    let fd = old.fd().as_fd().as_raw_fd();
    let mut added = Carried::default();
    let mut slots: StdHashMap<u32, u64> = StdHashMap::new();
    {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowState> =
            HashMap::try_from(ebpf.map_mut(MAP_FLOWS).context(MAP_FLOWS)?)?;
        let mut value = vec![0u8; value_size];
        let mut key: Option<FlowKey> = None;
        while let Some(next) = raw::next_key(fd, key.as_ref())? {
            key = Some(next);
            if !raw::lookup(fd, &next, &mut value)? {
                continue; // gone since the key was listed
            }
            let word = |i: usize| u32::from_ne_bytes(value[i * 4..i * 4 + 4].try_into().unwrap());
            let (f, open) = carried(word(0), word(1), word(2));
            // BPF_NOEXIST: an entry the new programs made is theirs.
            match flows.insert(next, f, BPF_NOEXIST) {
                Ok(()) => {
                    *slots.entry(hint_slot(&next)).or_default() += 1;
                    if open {
                        added.heads += 1;
                    } else {
                        added.resends += 1;
                    }
                }
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e).context("carrying a flow into the new flow table"),
            }
        }
    }
    let mut hints: Array<&mut MapData, u64> =
        Array::try_from(ebpf.map_mut(MAP_FLOW_HINTS).context(MAP_FLOW_HINTS)?)?;
    for (slot, n) in slots {
        let c = hints.get(&slot, 0)?;
        let up = if in_use { HINT_BIAS } else { n };
        hints.set(slot, c.saturating_add(up), 0)?;
    }
    Ok(added)
}

/// The two map commands aya does not offer for values of a size known only at run time.
mod raw {
    use std::io;

    use leakguard_common::FlowKey;

    use crate::kernel::rawmap::{elem, is_no_entry, Cmd};

    /// The key after `key` (the first for None); None at the end.
    pub fn next_key(fd: i32, key: Option<&FlowKey>) -> io::Result<Option<FlowKey>> {
        let mut next = FlowKey::default();
        let key = key.map_or(core::ptr::null(), |k| core::ptr::from_ref(k).cast());
        // SAFETY: both point at a FlowKey, the flow table's key.
        match unsafe { elem(Cmd::NextKey, fd, key, core::ptr::from_mut(&mut next).cast()) } {
            Ok(()) => Ok(Some(next)),
            Err(e) if is_no_entry(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `key`'s value into `value` (the map's value size); false when it has none.
    pub fn lookup(fd: i32, key: &FlowKey, value: &mut [u8]) -> io::Result<bool> {
        let key = core::ptr::from_ref(key).cast();
        // SAFETY: `key` is the flow table's key; `value` its value size (the caller's
        // buffer is sized from the map's info).
        match unsafe { elem(Cmd::Lookup, fd, key, value.as_mut_ptr()) } {
            Ok(()) => Ok(true),
            Err(e) if is_no_entry(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::carried;
    use leakguard_common::MAX_SCAN_BYTES;

    #[test]
    fn an_open_head_is_carried_past_any_cap_and_redactions_as_forgotten() {
        let (f, open) = carried(1000, 4, 3);
        assert!(open);
        assert!(f.next_seq.wrapping_sub(f.head_seq) > MAX_SCAN_BYTES);
        assert_eq!((f.forgot, f.forgot_end, f.nspans), (1, 1000, 1));
        let (f, open) = carried(5, 0, 0);
        assert!(!open);
        assert_eq!((f.state, f.tok, f.forgot_end), (0, 0, 5));
    }
}
