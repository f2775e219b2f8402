//! Counter slots: each guarded interface gets one (its packet and match counters), kept
//! across restarts through the pinned `IFSLOT`; and the label of the interface an event
//! or a counter carries by index.

use anyhow::{Context as _, Result};
use aya::maps::Array;
use leakguard_common::{IfSlot, IFSLOT_ENTRIES, MAX_SLOTS};

use super::Daemon;
use crate::{
    config::Attach,
    kernel::{
        attach, counters,
        maps::{MAP_IFSLOT, MAP_MATCH_COUNTS},
    },
};

impl Daemon {
    /// Rebuilds the slot of each configured interface from the pinned `IFSLOT`, so
    /// counters keep their interface across restarts: an entry holding the interface's
    /// index (in its namespace) is its slot.
    pub(super) fn load_slots(&mut self) -> Result<()> {
        let a: Array<&aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map(MAP_IFSLOT).context("IFSLOT map")?)?;
        for entry in &self.config.attach {
            let Ok(Some(i)) = attach::entry_index(entry) else {
                continue;
            };
            let e = a.get(&(i % IFSLOT_ENTRIES), 0)?;
            if e.ifindex == i && e.slot != 0 {
                self.slots.insert(entry.label(), e.slot);
            }
        }
        Ok(())
    }
    /// Gives `a`'s interface (index `ifindex`) a counter slot and points its `IFSLOT`
    /// entry at it.
    pub(super) fn assign_slot(&mut self, a: &Attach, ifindex: u32) {
        let label = a.label();
        let slot = if let Some(&s) = self.slots.get(&label) {
            s
        } else {
            let Some(free) = (1..MAX_SLOTS).find(|s| !self.slots.values().any(|v| v == s)) else {
                tracing::warn!(interface = %label, "no counter slot left; counted as interface=\"other\"");
                return;
            };
            // A slot new to this interface starts its match counters from zero.
            if let Err(e) = self
                .ebpf
                .map_mut(MAP_MATCH_COUNTS)
                .context("MATCH_COUNTS map")
                .and_then(|m| counters::clear_match_counts(m, free))
            {
                tracing::error!(interface = %label, error = %format!("{e:#}"), "cannot clear the match counters");
            }
            self.slots.insert(label.clone(), free);
            free
        };
        if let Err(e) = self.set_ifslot(&label, ifindex, slot) {
            tracing::error!(interface = %label, error = %format!("{e:#}"), "cannot set the counter slot");
        }
    }

    pub(super) fn set_ifslot(&mut self, label: &str, ifindex: u32, slot: u32) -> Result<()> {
        let mut a: Array<&mut aya::maps::MapData, IfSlot> =
            Array::try_from(self.ebpf.map_mut(MAP_IFSLOT).context("IFSLOT map")?)?;
        let idx = ifindex % IFSLOT_ENTRIES;
        let cur = a.get(&idx, 0)?;
        // The entry belongs to another guarded interface: one whose index shares the
        // entry, or (in another network namespace) equals this one's.
        let other = self
            .attached_at
            .iter()
            .find(|(b, i)| **i == cur.ifindex && b.label() != label)
            .map(|(b, _)| b.label());
        if cur.slot != 0 && cur.slot != slot {
            if let Some(other) = other {
                tracing::warn!(interface = %label, other = %other,
                    "interface index collides with another guarded interface; counted as interface=\"other\"");
                return Ok(());
            }
        }
        a.set(idx, IfSlot { ifindex, slot }, 0)?;
        Ok(())
    }

    /// The label of the guarded interface with index `ifindex` (events and the match
    /// hash carry indexes); its name in the daemon's namespace when no single guarded
    /// interface has it.
    pub(super) fn iface_label(&self, ifindex: u32) -> String {
        let mut found = self.attached_at.iter().filter(|(_, i)| **i == ifindex);
        match (found.next(), found.next()) {
            (Some((a, _)), None) => a.label(),
            _ => ifname(ifindex),
        }
    }
}

fn ifname(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE long, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("ifindex {index}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
