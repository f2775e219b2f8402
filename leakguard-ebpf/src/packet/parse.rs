//! Layer parsers: Ethernet (+ up to two VLAN tags) → IPv4/IPv6 (+ extension headers) →
//! TCP. Each takes the offset where its header starts, checks bounds once through
//! `ptr_at`, and returns the next offset. Offsets stay below `MAX_HEADER_DEPTH`, which
//! keeps every packet pointer the verifier sees within a known range.

use leakguard_common::{FAMILY_IPV4, FAMILY_IPV6, MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS};

use crate::proto::{
    Addr, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_AH, IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_TCP, MAX_HEADER_DEPTH,
};

use super::access::{ptr_at, Packet};

/// What the scanner needs to know about a TCP segment.
pub struct Flow {
    pub family: u8,
    /// Offsets of the source address (the destination follows it) and of the TCP header.
    pub addr_off: u32,
    pub l4_off: u32,
    /// Read by `parse`, with `ip_end`. The other TCP fields below, and the addresses, are
    /// read by `complete`: only HTTP-port segments need them.
    pub dport: u16,
    pub sport: u16,
    /// TCP sequence number (host order) and flags byte.
    pub seq: u32,
    pub tcp_flags: u8,
    /// Offset of the TCP checksum field.
    pub csum_off: u32,
    pub payload_off: u32,
    /// End of the IP datagram by its length field (`u32::MAX` when that field defers to
    /// the packet length: BIG TCP, jumbograms).
    pub ip_end: u32,
}

impl Flow {
    /// Reads the rest of the TCP header (ports apart) and the addresses: only HTTP-port
    /// segments need them, so other packets never pay for the loads. None for a data
    /// offset below 20 (not a TCP header), or if the bytes are no longer in the linear
    /// part (nothing between `parse` and here changes the packet).
    #[inline(always)]
    pub fn complete<P: Packet>(&mut self, p: &P) -> Option<(Addr, Addr)> {
        let l4 = self.l4_off as usize;
        if l4 > MAX_HEADER_DEPTH {
            return None;
        }
        let t: *const [u8; 20] = ptr_at(p, l4)?;
        // SAFETY: bounds checked by `ptr_at`.
        let t = unsafe { &*t };
        let doff = usize::from(t[12] >> 4) * 4;
        if doff < 20 {
            return None;
        }
        self.sport = u16::from_be_bytes([t[0], t[1]]);
        self.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        self.tcp_flags = t[13];
        self.csum_off = (l4 + 16) as u32;
        self.payload_off = (l4 + doff) as u32;
        self.addrs(p)
    }

    /// Source and destination addresses.
    #[inline(always)]
    fn addrs<P: Packet>(&self, p: &P) -> Option<(Addr, Addr)> {
        let off = self.addr_off as usize;
        if off > MAX_HEADER_DEPTH {
            return None;
        }
        if self.family == FAMILY_IPV4 {
            let h: *const [u8; 8] = ptr_at(p, off)?;
            // SAFETY: bounds checked by `ptr_at`.
            let h = unsafe { &*h };
            return Some((Addr::v4(&h[0..4]), Addr::v4(&h[4..8])));
        }
        let h: *const [u8; 32] = ptr_at(p, off)?;
        // SAFETY: bounds checked by `ptr_at`.
        let h = unsafe { &*h };
        let (mut s, mut d) = (Addr([0; 16]), Addr([0; 16]));
        s.0.copy_from_slice(&h[0..16]);
        d.0.copy_from_slice(&h[16..32]);
        Some((s, d))
    }

    /// TCP payload length. The datagram may be shorter than the frame (Ethernet padding)
    /// or, for GSO, longer than the linear part: take the smaller of the IP length and
    /// the packet length.
    #[inline(always)]
    pub fn payload_len<P: Packet>(&self, p: &P) -> u32 {
        p.len_min(self.ip_end).saturating_sub(self.payload_off)
    }
}

pub enum Parsed {
    /// A TCP segment (not yet checked against the HTTP ports).
    Tcp(Flow),
    /// A non-first IP fragment: no TCP header to look at.
    Fragment,
    /// Anything else: not IP, not TCP, or headers we do not follow.
    Other,
}

#[inline(always)]
fn be16(p: *const [u8; 2]) -> u16 {
    // SAFETY: `p` came from `ptr_at`, which checked the two bytes are in the packet.
    u16::from_be_bytes(unsafe { *p })
}

/// Ethernet II and 802.1Q/802.1ad tags: returns (ethertype, L3 offset).
#[inline(always)]
fn parse_eth<P: Packet>(p: &P) -> Option<(u16, usize)> {
    let mut off = 12;
    let mut proto = be16(ptr_at(p, off)?);
    off += 2;
    let mut tags = 0;
    while tags < MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        // TCI (2 bytes), then the inner ethertype.
        proto = be16(ptr_at(p, off + 2)?);
        off += 4;
        tags += 1;
    }
    Some((proto, off))
}

/// IPv4: returns the flow addresses, the TCP offset and the end of the IP datagram.
#[inline(always)]
fn parse_ipv4<P: Packet>(p: &P, off: usize, flow: &mut Flow) -> Option<Result<(usize, u32), ()>> {
    let h: *const [u8; 20] = ptr_at(p, off)?;
    // SAFETY: bounds checked by `ptr_at`.
    let h = unsafe { &*h };
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    // A non-first fragment has no TCP header (RFC 791): pass it, but say so.
    let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if frag_off != 0 {
        return Some(Err(()));
    }
    if h[9] != IPPROTO_TCP {
        return None;
    }
    flow.family = FAMILY_IPV4;
    flow.addr_off = off as u32 + 12;
    // tot_len 0 is BIG TCP (a GSO packet over 64 KiB): the skb length rules then.
    let tot_len = u32::from(u16::from_be_bytes([h[2], h[3]]));
    let end = if tot_len == 0 {
        u32::MAX
    } else {
        off as u32 + tot_len
    };
    Some(Ok((off + ihl, end)))
}

/// IPv6 and its extension-header chain (bounded): returns the TCP offset and datagram end.
#[inline(always)]
fn parse_ipv6<P: Packet>(p: &P, off: usize, flow: &mut Flow) -> Option<Result<(usize, u32), ()>> {
    let h: *const [u8; 40] = ptr_at(p, off)?;
    // SAFETY: bounds checked by `ptr_at`.
    let h = unsafe { &*h };
    if h[0] >> 4 != 6 {
        return None;
    }
    flow.family = FAMILY_IPV6;
    flow.addr_off = off as u32 + 8;
    // payload_len 0 is a jumbogram (RFC 2675): the packet length rules then.
    let plen = u32::from(u16::from_be_bytes([h[4], h[5]]));
    let end = if plen == 0 {
        u32::MAX
    } else {
        off as u32 + 40 + plen
    };
    let mut next = h[6];
    let mut off = off + 40;
    let mut i = 0;
    while i < MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP => return Some(Ok((off, end))),
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                let e: *const [u8; 2] = ptr_at(p, off)?;
                // SAFETY: bounds checked by `ptr_at`.
                let e = unsafe { *e };
                // RFC 8200 §4: length in 8-octet units not counting the first 8;
                // AH (RFC 4302) counts 4-octet units minus 2.
                off += if next == IPPROTO_AH {
                    (usize::from(e[1]) + 2) * 4
                } else {
                    (usize::from(e[1]) + 1) * 8
                };
                next = e[0];
            }
            IPPROTO_FRAGMENT => {
                let e: *const [u8; 4] = ptr_at(p, off)?;
                // SAFETY: bounds checked by `ptr_at`.
                let e = unsafe { *e };
                if u16::from_be_bytes([e[2], e[3]]) >> 3 != 0 {
                    return Some(Err(()));
                }
                next = e[0];
                off += 8;
            }
            _ => return None,
        }
        if off > MAX_HEADER_DEPTH {
            return None;
        }
        i += 1;
    }
    None
}

/// Parses a frame down to TCP. Cheap for what is not TCP: one or two loads and compares.
#[inline(always)]
pub fn parse<P: Packet>(p: &P) -> Parsed {
    match parse_inner(p) {
        Some(Ok(flow)) => Parsed::Tcp(flow),
        Some(Err(())) => Parsed::Fragment,
        None => Parsed::Other,
    }
}

#[inline(always)]
fn parse_inner<P: Packet>(p: &P) -> Option<Result<Flow, ()>> {
    let (proto, l3) = parse_eth(p)?;
    let mut flow = Flow {
        family: 0,
        addr_off: 0,
        l4_off: 0,
        sport: 0,
        dport: 0,
        seq: 0,
        tcp_flags: 0,
        csum_off: 0,
        payload_off: 0,
        ip_end: 0,
    };
    let l4 = match proto {
        ETH_P_IPV4 => parse_ipv4(p, l3, &mut flow)?,
        ETH_P_IPV6 => parse_ipv6(p, l3, &mut flow)?,
        _ => return None,
    };
    let (l4, ip_end) = match l4 {
        Ok(v) => v,
        Err(()) => return Some(Err(())),
    };
    if l4 > MAX_HEADER_DEPTH {
        return None;
    }
    // The destination port decides whether anything else is needed (`Flow::complete`);
    // the whole fixed header must be there all the same.
    let t: *const [u8; 20] = ptr_at(p, l4)?;
    // SAFETY: bounds checked by `ptr_at`.
    let t = unsafe { &*t };
    flow.dport = u16::from_be_bytes([t[2], t[3]]);
    flow.l4_off = l4 as u32;
    flow.ip_end = ip_end;
    Some(Ok(flow))
}
