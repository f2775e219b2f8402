//! Protocol constants and the address type the parsers fill: a leaf every layer imports.

pub(crate) const ETH_P_IPV4: u16 = 0x0800;

pub(crate) const ETH_P_IPV6: u16 = 0x86dd;

pub const ETH_P_8021Q: u16 = 0x8100;

pub const ETH_P_8021AD: u16 = 0x88a8;

pub(crate) const IPPROTO_TCP: u8 = 6;

pub(crate) const IPPROTO_HOPOPTS: u8 = 0;

pub(crate) const IPPROTO_ROUTING: u8 = 43;

pub(crate) const IPPROTO_FRAGMENT: u8 = 44;

pub(crate) const IPPROTO_AH: u8 = 51;

pub(crate) const IPPROTO_DSTOPTS: u8 = 60;

/// Deepest TCP payload start accepted; deeper header stacks pass unscanned.
pub const MAX_HEADER_DEPTH: usize = 512;

pub const TCP_SYN: u8 = 0x02;

pub const TCP_RST: u8 = 0x04;

/// An address, IPv4 in the first 4 bytes. Aligned so zeroing it is two word stores
/// rather than a call to BPF's byte-at-a-time memset.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// An IPv4 address: written as two whole words (a 4-byte write into a zeroed address
    /// becomes a 12-byte memset call).
    #[inline(always)]
    pub fn v4(b: &[u8]) -> Self {
        let mut a = Self([0; 16]);
        let w = a.0.as_mut_ptr().cast::<u64>();
        let lo = u64::from_ne_bytes([b[0], b[1], b[2], b[3], 0, 0, 0, 0]);
        // SAFETY: `a` is 16 bytes, 8-byte aligned.
        unsafe {
            core::ptr::write_volatile(w, lo);
            core::ptr::write_volatile(w.add(1), 0);
        }
        a
    }
}
