//! Frames for `BPF_PROG_TEST_RUN`, built layer by layer, and an independent checker of
//! the TCP checksum of a program's output.

use etherparse::{
    IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, NetSlice, SlicedPacket, TcpHeader, UdpHeader,
};
use leakguard_common::csum;

/// A [`Frame`]'s sequence number unless [`Frame::seq`] sets another.
pub const SEQ: u32 = 1_000_000;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// IPv6 extension headers the builder can put before TCP.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    Fragment { offset: u16, more: bool },
}

#[derive(Clone, Debug)]
pub enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        /// Raw option bytes, a multiple of 4.
        options: Vec<u8>,
        frag_offset: u16,
        more_fragments: bool,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        ext: Vec<Ext>,
    },
}

#[derive(Clone, Debug)]
pub enum L4 {
    /// `options`: raw TCP option bytes, a multiple of 4.
    Tcp {
        sport: u16,
        dport: u16,
        options: Vec<u8>,
        seq: u32,
        /// SYN, RST, FIN (PSH and ACK are always set).
        syn: bool,
        rst: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
}

#[derive(Clone, Debug)]
pub struct Frame {
    /// VLAN tags, outermost first: (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
    pub ip: Ip,
    pub l4: L4,
    pub payload: Vec<u8>,
}

pub const CLIENT_V4: [u8; 4] = [192, 0, 2, 10];
pub const SERVER_V4: [u8; 4] = [203, 0, 113, 80];
pub const TRUSTED_V4: [u8; 4] = [198, 51, 100, 7];
pub const CLIENT_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
pub const SERVER_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
];
pub const TRUSTED_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
];

/// Source ports for new frames: each frame is its own flow unless a test says otherwise
/// (`sport`), so the kernel's per-flow state never links unrelated test packets. The
/// counter is per process and wraps after 50,000 frames: a test that needs more flows
/// clones one frame and sets `sport` itself.
fn next_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // 10000..=59999, with the process id mixed in so parallel test binaries differ.
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id() * 7919;
    10_000 + (n % 50_000) as u16
}

/// Subscriber flow `n`'s source address (in 100.64.0.0/10, the carrier-grade NAT range
/// subscribers sit behind) and port: distinct for every `n` below 2^22 × 50,000, for tests
/// that need more flows than [`Frame::http_v4`]'s own ports give.
#[must_use]
pub fn subscriber_endpoint(n: u64) -> ([u8; 4], u16) {
    let host = 0x6440_0000u32 | ((n / 50_000) as u32 & 0x003f_ffff);
    (host.to_be_bytes(), 10_000 + (n % 50_000) as u16)
}

impl Frame {
    /// An IPv4 TCP segment from a subscriber to a web server on port 80.
    #[must_use]
    pub fn http_v4(payload: &[u8]) -> Self {
        Self {
            vlans: Vec::new(),
            ip: Ip::V4 {
                src: CLIENT_V4,
                dst: SERVER_V4,
                options: Vec::new(),
                frag_offset: 0,
                more_fragments: false,
            },
            l4: L4::Tcp {
                sport: next_port(),
                dport: 80,
                options: Vec::new(),
                seq: SEQ,
                syn: false,
                rst: false,
            },
            payload: payload.to_vec(),
        }
    }

    /// The same over IPv6.
    #[must_use]
    pub fn http_v6(payload: &[u8]) -> Self {
        Self {
            ip: Ip::V6 {
                src: CLIENT_V6,
                dst: SERVER_V6,
                ext: Vec::new(),
            },
            ..Self::http_v4(payload)
        }
    }

    /// The TCP source port (the flow), sequence number and SYN/RST flags.
    #[must_use]
    pub fn sport(mut self, port: u16) -> Self {
        if let L4::Tcp { sport, .. } = &mut self.l4 {
            *sport = port;
        }
        self
    }

    #[must_use]
    pub fn seq(mut self, n: u32) -> Self {
        if let L4::Tcp { seq, .. } = &mut self.l4 {
            *seq = n;
        }
        self
    }

    #[must_use]
    pub fn syn(mut self) -> Self {
        if let L4::Tcp { syn, .. } = &mut self.l4 {
            *syn = true;
        }
        self
    }

    #[must_use]
    pub fn rst(mut self) -> Self {
        if let L4::Tcp { rst, .. } = &mut self.l4 {
            *rst = true;
        }
        self
    }

    #[must_use]
    pub fn dport(mut self, port: u16) -> Self {
        match &mut self.l4 {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => *dport = port,
        }
        self
    }

    #[must_use]
    pub fn udp(mut self) -> Self {
        let (sport, dport) = match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        };
        self.l4 = L4::Udp { sport, dport };
        self
    }

    #[must_use]
    pub fn src_v4(mut self, addr: [u8; 4]) -> Self {
        if let Ip::V4 { src, .. } = &mut self.ip {
            *src = addr;
        }
        self
    }

    #[must_use]
    pub fn dst_v4(mut self, addr: [u8; 4]) -> Self {
        if let Ip::V4 { dst, .. } = &mut self.ip {
            *dst = addr;
        }
        self
    }

    #[must_use]
    pub fn dst_v6(mut self, addr: [u8; 16]) -> Self {
        if let Ip::V6 { dst, .. } = &mut self.ip {
            *dst = addr;
        }
        self
    }

    #[must_use]
    pub fn vlan(mut self, tpid: u16, id: u16) -> Self {
        self.vlans.push((tpid, id));
        self
    }

    #[must_use]
    pub fn ipv4_options(mut self, opts: &[u8]) -> Self {
        if let Ip::V4 { options, .. } = &mut self.ip {
            *options = opts.to_vec();
        }
        self
    }

    #[must_use]
    pub fn ipv4_fragment(mut self, offset: u16, more: bool) -> Self {
        if let Ip::V4 {
            frag_offset,
            more_fragments,
            ..
        } = &mut self.ip
        {
            *frag_offset = offset;
            *more_fragments = more;
        }
        self
    }

    #[must_use]
    pub fn ipv6_ext(mut self, e: &[Ext]) -> Self {
        if let Ip::V6 { ext, .. } = &mut self.ip {
            *ext = e.to_vec();
        }
        self
    }

    #[must_use]
    pub fn tcp_options(mut self, opts: &[u8]) -> Self {
        if let L4::Tcp { options, .. } = &mut self.l4 {
            *options = opts.to_vec();
        }
        self
    }

    /// The frame's bytes, with correct lengths and checksums.
    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
        for &(tpid, id) in &self.vlans {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes()); // PCP 0, DEI 0
        }
        let ethertype: u16 = match self.ip {
            Ip::V4 { .. } => 0x0800,
            Ip::V6 { .. } => 0x86dd,
        };
        out.extend_from_slice(&ethertype.to_be_bytes());

        let (l4, proto) = self.l4_bytes();
        match &self.ip {
            Ip::V4 {
                src,
                dst,
                options,
                frag_offset,
                more_fragments,
            } => {
                let mut h = Ipv4Header::new(l4.len() as u16, 64, proto, *src, *dst).unwrap();
                h.options = Ipv4Options::try_from(&options[..]).expect("IPv4 options");
                // Total length counts the options: recompute it now they are set.
                h.set_payload_len(l4.len()).unwrap();
                h.fragment_offset = IpFragOffset::try_new(*frag_offset).unwrap();
                h.more_fragments = *more_fragments;
                h.dont_fragment = *frag_offset == 0 && !*more_fragments;
                h.header_checksum = h.calc_header_checksum();
                out.extend_from_slice(&h.to_bytes());
            }
            Ip::V6 { src, dst, ext } => {
                let mut exts = Vec::new();
                let kinds: Vec<u8> = ext
                    .iter()
                    .map(|e| match e {
                        Ext::HopByHop => 0,
                        Ext::Routing => 43,
                        Ext::DestOpts => 60,
                        Ext::Fragment { .. } => 44,
                    })
                    .chain([proto.0])
                    .collect();
                for (i, e) in ext.iter().enumerate() {
                    let next = kinds[i + 1];
                    match e {
                        // 8 bytes: next header, length 0, PadN option of 4 bytes.
                        Ext::HopByHop | Ext::DestOpts => {
                            exts.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
                        }
                        // Segment routing header type 4 with no segments left.
                        Ext::Routing => exts.extend_from_slice(&[next, 0, 4, 0, 0, 0, 0, 0]),
                        Ext::Fragment { offset, more } => {
                            let fo = (offset << 3) | u16::from(*more);
                            exts.extend_from_slice(&[next, 0]);
                            exts.extend_from_slice(&fo.to_be_bytes());
                            exts.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                        }
                    }
                }
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&((exts.len() + l4.len()) as u16).to_be_bytes());
                out.push(kinds[0]);
                out.push(64);
                out.extend_from_slice(src);
                out.extend_from_slice(dst);
                out.extend_from_slice(&exts);
            }
        }
        out.extend_from_slice(&l4);
        out
    }

    fn l4_bytes(&self) -> (Vec<u8>, IpNumber) {
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                options,
                seq,
                syn,
                rst,
            } => {
                let mut t = TcpHeader::new(*sport, *dport, *seq, 64240);
                t.psh = true;
                t.ack = true;
                t.syn = *syn;
                t.rst = *rst;
                t.acknowledgment_number = 77;
                t.set_options_raw(options).expect("TCP options");
                t.checksum = match &self.ip {
                    Ip::V4 { src, dst, .. } => t.calc_checksum_ipv4_raw(*src, *dst, &self.payload),
                    Ip::V6 { src, dst, .. } => t.calc_checksum_ipv6_raw(*src, *dst, &self.payload),
                }
                .unwrap();
                let mut v = t.to_bytes().to_vec();
                v.extend_from_slice(&self.payload);
                (v, IpNumber::TCP)
            }
            L4::Udp { sport, dport } => {
                let u =
                    UdpHeader::without_ipv4_checksum(*sport, *dport, self.payload.len()).unwrap();
                let mut v = u.to_bytes().to_vec();
                v.extend_from_slice(&self.payload);
                (v, IpNumber::UDP)
            }
        }
    }
}

/// An ARP request (not IP at all).
#[must_use]
pub fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 10]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f
}

/// The pseudo-header sum and the TCP segment of a frame, located by etherparse (an
/// independent reading, not the program's). Works for a first fragment too.
fn tcp_segment(frame: &[u8]) -> Option<(u64, &[u8])> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (acc, payload) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                csum::sum(&h.destination(), csum::sum(&h.source(), 0)),
                ip.payload(),
            )
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                csum::sum(&h.destination(), csum::sum(&h.source(), 0)),
                ip.payload(),
            )
        }
        _ => return None,
    };
    if payload.ip_number != etherparse::IpNumber::TCP {
        return None;
    }
    Some((acc + 6 + payload.payload.len() as u64, payload.payload))
}

/// The TCP payload of a frame.
pub fn tcp_payload(frame: &[u8]) -> Option<Vec<u8>> {
    let (_, seg) = tcp_segment(frame)?;
    let doff = usize::from(seg.get(12)? >> 4) * 4;
    Some(seg.get(doff..)?.to_vec())
}

/// Length of the TCP header of a frame.
pub fn tcp_header_len(frame: &[u8]) -> Option<usize> {
    let (_, seg) = tcp_segment(frame)?;
    Some(usize::from(seg.get(12)? >> 4) * 4)
}

/// True when the TCP checksum of the frame verifies over the pseudo-header and segment.
pub fn tcp_checksum_ok(frame: &[u8]) -> bool {
    tcp_segment(frame).is_some_and(|(acc, seg)| csum::fold(csum::sum(seg, acc)) == 0xffff)
}
