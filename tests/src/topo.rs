//! The client ⟷ server topology of the end-to-end and daemon tests, and curl.

use std::process::{ExitStatus, Stdio};

use aya::programs::{
    links::LinkOrder, tc::TcAttachOptions, SchedClassifier, TcAttachType, Xdp, XdpMode,
};
use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_XDP};

use crate::{
    guard::Guard,
    netns::{veth, Netns},
};

pub const CLI_IF: &str = "lgc0";
pub const SRV_IF: &str = "lgs0";
pub const SRV_V4: &str = "192.0.2.2";
pub const SRV_V6: &str = "2001:db8:1::2";

/// client ⟷ server over one veth pair, IPv4 and IPv6.
pub struct Topo {
    pub cli: Netns,
    pub srv: Netns,
}

#[must_use]
pub fn topo() -> Topo {
    let cli = Netns::new("cli").unwrap();
    let srv = Netns::new("srv").unwrap();
    link_v4(&cli, &srv).unwrap();
    cli.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        CLI_IF,
        "nodad",
    ])
    .unwrap();
    srv.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{SRV_V6}/64"),
        "dev",
        SRV_IF,
        "nodad",
    ])
    .unwrap();
    Topo { cli, srv }
}

/// The client ⟷ server veth pair with its IPv4 addresses: made by [`topo`], and again by
/// tests that delete the client's interface.
pub fn link_v4(cli: &Netns, srv: &Netns) -> anyhow::Result<()> {
    veth(
        cli,
        CLI_IF,
        "192.0.2.1/24",
        srv,
        SRV_IF,
        &format!("{SRV_V4}/24"),
    )
}

/// curl in `ns`, with extra request header lines; bounded by `max_secs`.
pub fn curl(ns: &Netns, url: &str, headers: &[String], max_secs: u32) -> ExitStatus {
    let mut c = ns.command("curl");
    c.args([
        "-sS",
        "-g",
        "-o",
        "/dev/null",
        "-m",
        &max_secs.to_string(),
        url,
    ]);
    for h in headers {
        c.args(["-H", h]);
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c.status()
        .expect("curl runs (installed by `cargo xtask setup`)")
}

pub fn attach_tc_egress(g: &mut Guard, ns: &Netns, ifname: &str) {
    ns.enter(|| {
        let p: &mut SchedClassifier = g
            .ebpf
            .program_mut(PROG_TC_EGRESS)
            .unwrap()
            .try_into()
            .unwrap();
        p.attach_with_options(
            ifname,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .expect("TCX egress attach");
    })
    .unwrap();
}

pub fn attach_xdp(g: &mut Guard, ns: &Netns, ifname: &str) {
    ns.enter(|| {
        let p: &mut Xdp = g.ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
        p.attach(ifname, XdpMode::Default).expect("XDP attach");
    })
    .unwrap();
}
