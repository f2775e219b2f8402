//! Loading the object with its maps pinned (made on first use, reused after; made anew
//! beside pins of another map layout, for a handover), the flow hints made to cover a
//! reused flow table, and the programs verified and pinned.

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, MapData},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use leakguard_common::{FLOW_HINT_SLOTS, MAP_LAYOUT_VERSION};

use super::{
    handover::{self, Handover},
    maps::{map, map_err, ApplyError, ALL_MAPS, MAP_ACTIVE, MAP_FLOWS, MAP_FLOW_HINTS, MAP_LAYOUT},
    object::{PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
    pins::Pins,
};

/// The loaded object, and the handover to finish when the pinned maps had another
/// layout (their programs still run until every link is switched).
pub struct Loaded {
    pub ebpf: Ebpf,
    pub handover: Option<Handover>,
}

/// Loads `object` (normally [`super::object::EBPF_OBJECT`]) with every map pinned under
/// `pins` (created on first use, reused after), and verifies the guard programs. Refuses
/// pins of another map layout (the daemon hands those over: [`load_with_handover`]).
pub fn load(pins: &Pins, object: &[u8]) -> Result<Ebpf> {
    // Checked before anything is made: nothing staged for a handover nobody finishes.
    if let Some(found) = pinned_layout(pins)?.filter(|&v| v != MAP_LAYOUT_VERSION) {
        anyhow::bail!(
            "the maps pinned under {} have map layout {found}, this build's is \
             {MAP_LAYOUT_VERSION}: `leakguard run` hands them over without a gap, or \
             `leakguard detach` removes them",
            pins.root.display()
        );
    }
    let Loaded { ebpf, handover } = load_with_handover(pins, object)?;
    anyhow::ensure!(
        handover.is_none(),
        "a handover began under {}",
        pins.root.display()
    );
    Ok(ebpf)
}

/// [`load`], except that pins of another map layout are left to the programs using them:
/// this object's maps are made under `maps-next/` and a [`Handover`] is returned.
pub fn load_with_handover(pins: &Pins, object: &[u8]) -> Result<Loaded> {
    handover::recover(pins)?;
    let (target, handover) = match pinned_layout(pins)? {
        Some(found) if found != MAP_LAYOUT_VERSION => {
            let h = Handover::open(pins, found)?;
            tracing::warn!(
                from = found,
                to = MAP_LAYOUT_VERSION,
                "the pinned maps have another layout: making new maps beside them, then \
                 switching every link to the new programs (no gap)"
            );
            let staging = pins.staging();
            let dir = staging.maps_dir();
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            (staging, Some(h))
        }
        _ => (Pins::new(&pins.root), None),
    };
    let paths: Vec<(&str, std::path::PathBuf)> =
        ALL_MAPS.iter().map(|m| (*m, target.map(m))).collect();
    // Before the load, which creates the pins it does not find.
    let flows_reused = target.map(MAP_FLOWS).exists();
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
    Ok(Loaded { ebpf, handover })
}

/// The map layout of the pinned maps (`MAP_LAYOUT_VERSION` of the build that made
/// them), None when none are pinned. Maps pinned without a version pin are version 1
/// (from before versions were kept); a version pin still 0 is from a start that stopped
/// right after making it, and is taken as this build's.
fn pinned_layout(pins: &Pins) -> Result<Option<u64>> {
    if !pins.map(MAP_ACTIVE).exists() {
        return Ok(None);
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
    Ok(Some(if found == 0 {
        MAP_LAYOUT_VERSION
    } else {
        found
    }))
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
