//! A gateway path in network namespaces, as an operator's network has it, in two sizes.
//! [`Gateway::new`], for the bench, the demo and TC egress on the gateway's uplink:
//!
//! ```text
//! client 192.0.2.2 ── 192.0.2.1 gateway 198.51.100.1 ── server 198.51.100.10
//!                                                               198.51.100.20 (a partner)
//! ```
//!
//! [`Gateway::with_router`], for XDP where the gateway's frames arrive off the wire:
//!
//! ```text
//! client 192.0.2.2 ── 192.0.2.1 gateway 203.0.113.1 ── 203.0.113.2 router 198.51.100.1 ── server
//!                      (enrichment proxies; the uplink        (ingress: where XDP       198.51.100.10
//!                       toward the router is where TC          sees the gateway's       198.51.100.20
//!                       egress guards)                          frames off the wire)     (a partner)
//! ```
//!
//! The gateway's own TCP (its proxies) hands TC egress on the uplink GSO super-packets of
//! up to 64 KiB, as on a real gateway. [`Gateway::wire_like_uplink`] makes the uplink send
//! as a NIC puts frames on a wire (no segmentation or checksum offload: MTU-sized frames
//! with full checksums), for XDP on the router's ingress.

use anyhow::Result;

use crate::netns::{veth, Netns};

pub const CLI_IF: &str = "lgcl0";
pub const GW_CLI_IF: &str = "lggc0";
/// The gateway's uplink: toward the router, or without one the server's link.
pub const GW_UP_IF: &str = "lggu0";
pub const RTR_IN_IF: &str = "lgri0";
pub const RTR_OUT_IF: &str = "lgro0";
pub const SRV_IF: &str = "lgsv0";

pub const CLI: &str = "192.0.2.2";
pub const GW_CLI: &str = "192.0.2.1";
/// The server's next hop: the router's server side, or without a router the gateway's
/// uplink.
pub const SRV_HOP: &str = "198.51.100.1";
/// With the router: the gateway's uplink and the router's side of that link.
pub const GW_UP: &str = "203.0.113.1";
pub const RTR_IN: &str = "203.0.113.2";
/// The origin server, and a partner the operator trusts with identities (a second
/// address of the same server).
pub const SRV: &str = "198.51.100.10";
pub const PARTNER: &str = "198.51.100.20";

pub struct Gateway {
    pub cli: Netns,
    pub gw: Netns,
    /// [`Gateway::with_router`]'s only.
    pub rtr: Option<Netns>,
    pub srv: Netns,
}

impl Gateway {
    /// client ── gateway ── server, the gateway forwarding.
    pub fn new() -> Result<Self> {
        Self::build(false)
    }

    /// client ── gateway ── router ── server, both forwarding.
    pub fn with_router() -> Result<Self> {
        Self::build(true)
    }

    fn build(router: bool) -> Result<Self> {
        let g = Self {
            cli: Netns::new("cli")?,
            gw: Netns::new("gw")?,
            rtr: router.then(|| Netns::new("rtr")).transpose()?,
            srv: Netns::new("srv")?,
        };
        veth(
            &g.cli,
            CLI_IF,
            &format!("{CLI}/24"),
            &g.gw,
            GW_CLI_IF,
            &format!("{GW_CLI}/24"),
        )?;
        let (hop, hop_if) = match &g.rtr {
            Some(rtr) => {
                veth(
                    &g.gw,
                    GW_UP_IF,
                    &format!("{GW_UP}/24"),
                    rtr,
                    RTR_IN_IF,
                    &format!("{RTR_IN}/24"),
                )?;
                (rtr, RTR_OUT_IF)
            }
            None => (&g.gw, GW_UP_IF),
        };
        veth(
            hop,
            hop_if,
            &format!("{SRV_HOP}/24"),
            &g.srv,
            SRV_IF,
            &format!("{SRV}/24"),
        )?;
        g.srv
            .ip(&["addr", "add", &format!("{PARTNER}/24"), "dev", SRV_IF])?;
        g.cli.ip(&["route", "add", "default", "via", GW_CLI])?;
        if let Some(rtr) = &g.rtr {
            g.gw.ip(&["route", "add", "default", "via", RTR_IN])?;
            rtr.ip(&["route", "add", "192.0.2.0/24", "via", GW_UP])?;
        }
        g.srv.ip(&["route", "add", "default", "via", SRV_HOP])?;
        for ns in std::iter::once(&g.gw).chain(&g.rtr) {
            ns.sysctl("net.ipv4.ip_forward=1")?;
        }
        Ok(g)
    }

    /// The uplink sends MTU-sized frames with full checksums, as from a NIC.
    pub fn wire_like_uplink(&self) -> Result<()> {
        self.gw
            .ethtool(GW_UP_IF, &["tso", "off", "gso", "off", "tx", "off"])
    }
}
