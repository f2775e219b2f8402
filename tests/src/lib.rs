//! Test support: the real programs loaded into the kernel, packets built with etherparse,
//! and network namespaces for end-to-end runs. Every resource is an RAII guard.

pub mod bpfstats;
pub mod cases;
pub mod cmd;
pub mod configmap;
pub mod corpus;
pub mod cpu;
pub mod daemon;
pub mod diff;
pub mod fleet;
pub mod fuzz;
pub mod gateway;
pub mod guard;
pub mod http;
pub mod jit;
pub mod kernel;
pub mod load;
pub mod netns;
pub mod packet;
pub mod proxies;
pub mod rawmap;
pub mod server;
pub mod stale;
pub mod topo;
