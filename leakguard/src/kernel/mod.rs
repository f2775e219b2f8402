//! Everything that talks to the kernel: the BPF object and its programs, the policy
//! compiled into map values and applied as double-buffered generations, counters read
//! back, loading with pinned maps, attaching (TCX links, XDP, cls_bpf filters on older
//! kernels), the pinned state, interfaces in other network namespaces, link events, what
//! the kernel must support, verifier refusals, and the self-test run through the loaded
//! programs. Nothing here reads the policy file or keeps daemon state.

pub mod apply;
pub mod attach;
pub mod compile;
pub mod counters;
pub mod features;
pub mod handover;
pub mod link_events;
pub mod load;
pub mod maps;
pub mod netns;
pub mod object;
pub mod pins;
pub mod rawmap;
pub mod selftest;
pub mod tc_filter;
pub mod verifier;
