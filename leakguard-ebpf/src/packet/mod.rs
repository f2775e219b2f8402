//! The packet: one interface for both hooks (`access`: TC's skb, XDP's frame), and the
//! layer parsers that find the TCP payload in it (`parse`).

mod access;
pub mod parse;

pub use access::{ptr_at, Packet, Tc, Xdp};
