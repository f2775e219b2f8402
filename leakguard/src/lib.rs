//! leakguard: stops mobile subscriber identity headers leaking to websites.
//!
//! The kernel programs (`leakguard-ebpf`) scan plaintext HTTP requests for identity
//! headers and count, redact or drop them; this crate loads them and fills their maps.

pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod event_text;
pub mod http;
pub mod kernel;
pub mod metrics;
pub mod policy;
pub mod privileges;
pub mod status;

/// The source revision this binary was built from (`build.rs`: `LEAKGUARD_REVISION`, the
/// checkout's commit, or "unknown").
pub const REVISION: &str = env!("LEAKGUARD_REVISION");
