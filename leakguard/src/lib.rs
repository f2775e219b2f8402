//! leakguard: stops mobile subscriber identity headers leaking to websites.
//!
//! The kernel programs (`leakguard-ebpf`) scan plaintext HTTP requests for identity
//! headers and count, redact or drop them; this crate loads them and fills their maps.

pub mod attach;
pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod features;
pub mod maps;
pub mod metrics;
pub mod netlink;
pub mod netns;
pub mod object;
pub mod pins;
pub mod policy;
pub mod privileges;
pub mod selftest;
pub mod status;
pub mod tc;
pub mod verifier;
