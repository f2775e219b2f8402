//! The gateway path the `gso` and `e2e` parts run on, and the empty programs attached
//! there.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use leakguard_tests::{
    gateway::Gateway,
    guard::{PROG_BASELINE_TC, PROG_BASELINE_XDP},
};

/// The gateway path (client ── gateway ── server) and a directory for the files of
/// nginx, HAProxy and wrk.
pub struct Topo {
    pub net: Gateway,
    pub dir: PathBuf,
}

pub fn topology() -> Result<Topo> {
    let net = Gateway::new()?;
    let dir = std::env::temp_dir().join(format!("leakguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Topo { net, dir })
}

/// Attaches the empty program of a hook to `iface` in the gateway; detached on drop.
pub fn attach_empty(t: &Topo, xdp: bool, iface: &str) -> Result<aya::Ebpf> {
    use aya::programs::{
        links::LinkOrder, tc::TcAttachOptions, SchedClassifier, TcAttachType, Xdp, XdpMode,
    };
    let mut ebpf = aya::Ebpf::load(leakguard_tests::guard::BENCH_OBJECT)?;
    t.net.gw.enter(|| -> Result<()> {
        if xdp {
            let p: &mut Xdp = ebpf
                .program_mut(PROG_BASELINE_XDP)
                .context("baseline")?
                .try_into()?;
            p.load()?;
            p.attach(iface, XdpMode::Driver)?;
        } else {
            let p: &mut SchedClassifier = ebpf
                .program_mut(PROG_BASELINE_TC)
                .context("baseline")?
                .try_into()?;
            p.load()?;
            p.attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )?;
        }
        Ok(())
    })??;
    Ok(ebpf)
}
