//! One packet interface for both hooks. Headers are read by direct packet access (a bounds
//! check and a load, the cheapest path); the payload is copied and written back by the
//! load/store helpers, which also reach the paged part of a GSO skb or multi-buffer XDP frame.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md, BPF_F_RECOMPUTE_CSUM},
    helpers::generated::{
        bpf_l4_csum_replace, bpf_skb_load_bytes, bpf_skb_pull_data, bpf_skb_store_bytes,
        bpf_xdp_get_buff_len, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
};
use leakguard_common::CANARY_MAGIC;

use crate::proto::{
    ETH_P_IPV4, ETH_P_IPV6, IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS,
    IPPROTO_ROUTING, IPPROTO_TCP,
};

/// Bytes a TC program pulls into the linear area when the headers are not there already
/// (rare: a locally built skb keeps its headers linear). Covers Ethernet, two VLAN tags,
/// IPv6 with a few extension headers and TCP with options.
pub const HEADER_PULL: u32 = 256;

/// A packet context. `Copy` and rebuildable from its raw pointer, so that a `bpf_loop`
/// callback (which only gets a pointer to the caller's stack) can act on the packet.
pub trait Packet: Copy {
    /// The context pointer the program was called with.
    fn raw(self) -> *mut c_void;
    /// # Safety
    /// `raw` must come from [`Packet::raw`] of the same type, in the same program run.
    unsafe fn from_raw(raw: *mut c_void) -> Self;
    /// Start and end of the linear (directly accessible) part.
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Length of the whole packet, paged part included.
    fn len(&self) -> u32;
    /// The smaller of `end` and the packet's length.
    #[inline(always)]
    fn len_min(&self, end: u32) -> u32 {
        end.min(self.len())
    }
    /// Copies `len` bytes at `off` into `dst`. `len` must be verifier-bounded by the caller.
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> i64;
    /// Writes `len` bytes from `src` at `off`.
    fn store(&self, off: u32, src: *const u8, len: u32) -> i64;
    /// Applies a one's-complement `diff` of the payload to the TCP checksum at `csum_off`.
    /// `diff` is a folded 16-bit one's-complement sum in big-endian arithmetic. `field`
    /// is where XDP copies the checksum to update it (`ScanState::csum_field`).
    fn update_l4_csum(&self, csum_off: u32, diff: u32, field: &mut [u8; 8]) -> i64;
    fn ifindex(&self) -> u32;
    /// True for a self-test canary (see `CANARY_MAGIC`).
    fn is_canary(&self) -> bool;
}

/// Returns a pointer to a `T` at `off` in the linear part, or `None` past its end.
/// The one place where packet pointers are formed.
#[inline(always)]
pub fn ptr_at<T, P: Packet>(p: &P, off: usize) -> Option<*const T> {
    let start = p.data();
    if start + off + core::mem::size_of::<T>() > p.data_end() {
        return None;
    }
    Some((start + off) as *const T)
}

#[derive(Clone, Copy)]
pub struct Tc(pub *mut __sk_buff);

impl Tc {
    #[inline(always)]
    fn skb(&self) -> *mut __sk_buff {
        self.0
    }

    /// Makes sure the headers are linear: a GSO skb built elsewhere may start paged.
    ///
    /// Most skbs with paged data have every header linear and only the payload in pages
    /// (TCP's own, forwarded ones): those are left as they are, since a pull moves the
    /// payload into the linear part, often by reallocating it, for every such packet; the
    /// scanner reads the payload through `bpf_skb_load_bytes` wherever it lies.
    #[inline(always)]
    pub fn pull_headers(&self) {
        let len = self.len();
        let linear = (self.data_end() - self.data()) as u32;
        let want = if len < HEADER_PULL { len } else { HEADER_PULL };
        if linear < want && !self.headers_linear() {
            // SAFETY: valid skb context; failure leaves the skb as it was and the parser
            // then passes the packet.
            unsafe { bpf_skb_pull_data(self.skb(), want) };
        }
    }

    /// True when the linear part holds every header the parser reads, for the common
    /// stacks: Ethernet, then IPv4 or IPv6 without extension headers, then TCP up to the
    /// end of its options, or a protocol that is not TCP (of which only the IP header is
    /// read). Anything else (VLAN tags, IPv6 extension headers, a header cut by the
    /// linear end) answers false, and the headers are pulled.
    #[inline(always)]
    fn headers_linear(&self) -> bool {
        const ETH: usize = 14;
        let Some(eth) = ptr_at::<[u8; ETH], _>(self, 0) else {
            return false;
        };
        // SAFETY (every dereference below): bounds checked by `ptr_at`.
        let ethertype = u16::from_be_bytes(unsafe { [(*eth)[12], (*eth)[13]] });
        let (proto, l4) = match ethertype {
            ETH_P_IPV4 => {
                let Some(ip) = ptr_at::<[u8; 20], _>(self, ETH) else {
                    return false;
                };
                let ihl = usize::from(unsafe { (*ip)[0] } & 0x0f) * 4;
                (unsafe { (*ip)[9] }, ETH + ihl)
            }
            ETH_P_IPV6 => {
                let Some(ip) = ptr_at::<[u8; 40], _>(self, ETH) else {
                    return false;
                };
                let next = unsafe { (*ip)[6] };
                // Extension headers (hop-by-hop, routing, fragment, AH, destination
                // options) are walked by the parser: let it have them linear.
                if matches!(
                    next,
                    IPPROTO_HOPOPTS
                        | IPPROTO_ROUTING
                        | IPPROTO_FRAGMENT
                        | IPPROTO_AH
                        | IPPROTO_DSTOPTS
                ) {
                    return false;
                }
                (next, ETH + 40)
            }
            _ => return false,
        };
        if proto != IPPROTO_TCP {
            return true;
        }
        let Some(tcp) = ptr_at::<[u8; 20], _>(self, l4) else {
            return false;
        };
        let doff = usize::from(unsafe { (*tcp)[12] } >> 4) * 4;
        self.data() + l4 + doff <= self.data_end()
    }
}

impl Packet for Tc {
    #[inline(always)]
    fn raw(self) -> *mut c_void {
        self.0.cast()
    }
    #[inline(always)]
    unsafe fn from_raw(raw: *mut c_void) -> Self {
        Self(raw.cast())
    }
    // SAFETY (the three field reads below): `self.0` is the program's context.
    #[inline(always)]
    fn data(&self) -> usize {
        unsafe { (*self.0).data as usize }
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        unsafe { (*self.0).data_end as usize }
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        unsafe { (*self.0).len }
    }
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> i64 {
        // SAFETY: `dst` points at `len` writable bytes (the caller's scratch window).
        unsafe { bpf_skb_load_bytes(self.skb().cast(), off, dst.cast(), len) }
    }
    #[inline(always)]
    fn store(&self, off: u32, src: *const u8, len: u32) -> i64 {
        // RECOMPUTE_CSUM keeps skb->csum right for CHECKSUM_COMPLETE (tc ingress).
        // SAFETY: `src` points at `len` readable bytes.
        unsafe {
            bpf_skb_store_bytes(
                self.skb(),
                off,
                src.cast(),
                len,
                u64::from(BPF_F_RECOMPUTE_CSUM),
            )
        }
    }
    #[inline(always)]
    fn update_l4_csum(&self, csum_off: u32, diff: u32, _field: &mut [u8; 8]) -> i64 {
        // from = 0 and size 0 in flags: `to` is a checksum diff. The kernel applies it to a
        // full checksum and leaves a CHECKSUM_PARTIAL one alone (that field then holds only
        // the pseudo-header sum; the device or GSO sums the rewritten payload later).
        // `diff` is big-endian arithmetic; a kernel `__wsum` sums the bytes as they lie
        // in memory, read natively. `to_be` converts (a byte swap on bpfel).
        let wsum = u64::from((diff as u16).to_be());
        // SAFETY: valid skb context.
        unsafe { bpf_l4_csum_replace(self.skb(), csum_off, 0, wsum, 0) }
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: reading a field of the context.
        unsafe { (*self.skb()).ifindex }
    }
    #[inline(always)]
    fn is_canary(&self) -> bool {
        // SAFETY: reading a field of the context.
        unsafe { (*self.skb()).mark == CANARY_MAGIC }
    }
}

#[derive(Clone, Copy)]
pub struct Xdp(pub *mut xdp_md);

impl Packet for Xdp {
    #[inline(always)]
    fn raw(self) -> *mut c_void {
        self.0.cast()
    }
    #[inline(always)]
    unsafe fn from_raw(raw: *mut c_void) -> Self {
        Self(raw.cast())
    }
    // SAFETY (the two field reads below): `self.0` is the program's context.
    #[inline(always)]
    fn data(&self) -> usize {
        unsafe { (*self.0).data as usize }
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        unsafe { (*self.0).data_end as usize }
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        // SAFETY: valid xdp context. Counts fragments of a multi-buffer frame too.
        unsafe { bpf_xdp_get_buff_len(self.0) as u32 }
    }
    /// The length is a helper call (several ns); an `end` inside the linear part needs
    /// none: a frame is at least as long as its linear part.
    #[inline(always)]
    fn len_min(&self, end: u32) -> u32 {
        if end as usize <= self.data_end().saturating_sub(self.data()) {
            end
        } else {
            end.min(self.len())
        }
    }
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, len: u32) -> i64 {
        // SAFETY: `dst` points at `len` writable bytes.
        unsafe { bpf_xdp_load_bytes(self.0, off, dst.cast(), len) }
    }
    #[inline(always)]
    fn store(&self, off: u32, src: *const u8, len: u32) -> i64 {
        // SAFETY: `src` points at `len` readable bytes.
        unsafe { bpf_xdp_store_bytes(self.0, off, src.cast_mut().cast(), len) }
    }
    #[inline(always)]
    fn update_l4_csum(&self, csum_off: u32, diff: u32, field: &mut [u8; 8]) -> i64 {
        // XDP sees frames as they came off the wire, with a full checksum: update it
        // in place (RFC 1624: HC' = ~(~HC + ~m + m'), `diff` = m' - m).
        let r = self.load(csum_off, field.as_mut_ptr(), 2);
        if r != 0 {
            return r;
        }
        let old = u16::from_be_bytes([field[0], field[1]]);
        let new = leakguard_common::csum::apply(old, diff).to_be_bytes();
        field[..2].copy_from_slice(&new);
        self.store(csum_off, field.as_ptr(), 2)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: reading a field of the context.
        unsafe { (*self.0).ingress_ifindex }
    }
    #[inline(always)]
    fn is_canary(&self) -> bool {
        // SAFETY: reading fields of the context; the metadata is bounds-checked against
        // `data`, as the verifier requires.
        unsafe {
            let meta = (*self.0).data_meta as usize;
            let data = (*self.0).data as usize;
            if meta + 4 > data {
                return false;
            }
            core::ptr::read_unaligned(meta as *const u32) == CANARY_MAGIC
        }
    }
}
