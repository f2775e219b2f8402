//! Loading the object with its maps pinned (made on first use, reused after, refused when
//! pinned by a build whose map layout differs), the flow hints made to cover a reused flow
//! table, and the programs verified and pinned.

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, MapData},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use leakguard_common::{FLOW_HINT_SLOTS, MAP_LAYOUT_VERSION};

use super::{
    maps::{map, map_err, ApplyError, ALL_MAPS, MAP_ACTIVE, MAP_FLOWS, MAP_FLOW_HINTS, MAP_LAYOUT},
    object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
    pins::Pins,
};

/// Loads `object` (normally [`super::object::EBPF_OBJECT`]) with every map pinned under
/// `pins` (created on first use, reused after), and verifies the guard programs.
pub fn load(pins: &Pins, object: &[u8]) -> Result<Ebpf> {
    let paths: Vec<(&str, std::path::PathBuf)> =
        ALL_MAPS.iter().map(|m| (*m, pins.map(m))).collect();
    check_layout(pins)?;
    // Before the load, which creates the pins it does not find.
    let flows_reused = pins.map(MAP_FLOWS).exists();
    let mut loader = EbpfLoader::new();
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(object).context(
        "loading the eBPF object (pinned maps from an incompatible version? `leakguard detach` removes them)",
    )?;
    let mut layout: Array<&mut MapData, u64> =
        Array::try_from(ebpf.map_mut(MAP_LAYOUT).context(MAP_LAYOUT)?)?;
    layout
        .set(0, MAP_LAYOUT_VERSION, 0)
        .context("writing the map layout version")?;
    if cover_flows(&mut ebpf, flows_reused).context("preparing the flow hints")? {
        tracing::warn!(
            "the pinned flow table was not marked as covered by its hints (FLOW_HINTS): \
             every HTTP-port segment looks it up, as before hints, until `leakguard detach` \
             and a new start"
        );
    }
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS] {
        let p: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
        p.load().map_err(|e| super::verifier::refused(name, e))?;
    }
    let p: &mut Xdp = ebpf.program_mut(PROG_XDP).context(PROG_XDP)?.try_into()?;
    p.load()
        .map_err(|e| super::verifier::refused(PROG_XDP, e))?;
    Ok(ebpf)
}

/// Refuses pinned maps that mean something else to this build (`MAP_LAYOUT_VERSION`):
/// its programs would misread them. Maps pinned without a version pin are version 1
/// (from before versions were kept); a version pin still 0 is from a start that stopped
/// right after making it, and is taken.
fn check_layout(pins: &Pins) -> Result<()> {
    if !pins.map(MAP_ACTIVE).exists() {
        return Ok(());
    }
    let path = pins.map(MAP_LAYOUT);
    let found = if path.exists() {
        let data = MapData::from_pin(&path)
            .with_context(|| format!("opening the pinned {}", path.display()))?;
        let layout: Array<MapData, u64> = Array::try_from(aya::maps::Map::Array(data))?;
        layout.get(&0, 0)?
    } else {
        1
    };
    if found != 0 && found != MAP_LAYOUT_VERSION {
        anyhow::bail!(
            "the maps pinned under {} have map layout {found}, this leakguard uses \
             {MAP_LAYOUT_VERSION}: stop the daemon, run `leakguard detach` (the guard is off \
             until the next start, well under a second), then start it",
            pins.root.display()
        );
    }
    Ok(())
}

/// Pins the loaded programs under `progs/`, replacing the pins of a previous run (the
/// links, not these pins, keep the guard attached).
pub fn pin_programs(ebpf: &mut Ebpf, pins: &Pins) -> Result<()> {
    for name in [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP] {
        let path = pins.progs_dir().join(name);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("replacing {}", path.display()))?;
        }
        ebpf.program_mut(name)
            .context(name)?
            .pin(&path)
            .with_context(|| format!("pinning {name} at {}", path.display()))?;
    }
    Ok(())
}

/// `FLOW_HINTS[FLOW_HINT_SLOTS]` once the counters are known to cover every `FLOWS` entry.
pub const HINTS_COVER: u64 = u64::from_le_bytes(*b"lg-hints");

/// Makes the flow table's hints (`FLOW_HINTS`, see the kernel's `flows` module) cover it
/// before any program of this object runs. Called once per load, with whether the flow
/// table was reused from the pins.
///
/// Counters that have covered the table since it was made carry the mark. Without the
/// mark and with a new flow table, both are empty: the counters are exact. Without the
/// mark over a reused table (a start that stopped between making the counters and
/// marking them, or a counter pin removed by hand), entries may exist that no counter
/// counts: every counter is raised to at least 1, which makes every segment look the
/// table up (the cost before hints) until `leakguard detach`. Returns true then. (Pins
/// from before hints have an older `MAP_LAYOUT_VERSION` and are refused before this.)
pub fn cover_flows(ebpf: &mut Ebpf, flows_reused: bool) -> Result<bool, ApplyError> {
    let mut hints: Array<&mut MapData, u64> =
        Array::try_from(map(ebpf, MAP_FLOW_HINTS)?).map_err(map_err(MAP_FLOW_HINTS))?;
    if hints
        .get(&FLOW_HINT_SLOTS, 0)
        .map_err(map_err(MAP_FLOW_HINTS))?
        == HINTS_COVER
    {
        return Ok(false);
    }
    if flows_reused {
        for i in 0..FLOW_HINT_SLOTS {
            if hints.get(&i, 0).map_err(map_err(MAP_FLOW_HINTS))? == 0 {
                hints.set(i, 1, 0).map_err(map_err(MAP_FLOW_HINTS))?;
            }
        }
    }
    hints
        .set(FLOW_HINT_SLOTS, HINTS_COVER, 0)
        .map_err(map_err(MAP_FLOW_HINTS))?;
    Ok(flows_reused)
}
