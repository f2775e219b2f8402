//! leakguard's kernel programs: a TC classifier (egress, or ingress) and an XDP program,
//! thin entry points into one pipeline. The data path, module by module:
//!
//! ```text
//! main → pipeline → scan/ (window, request_line, header, skip, number, redact)
//!                 → flow/ (the table behind its hints; resume and save)
//!                 → policy/ (rules, allowlists, counters, events)
//!                 → packet/ (one interface for TC and XDP; parse)   → maps
//! leaves: state (the per-CPU scanner state), proto, verifier; checksums: leakguard_common::csum
//! ```
//!
//! With the `bench` feature (`leakguard-tests` builds it for the benchmark) the object also
//! holds the empty programs and the floor of a scan (`bench`); the shipped one does not.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(all(target_arch = "bpf", feature = "bench"))]
mod bench;
#[cfg(target_arch = "bpf")]
mod flow;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod pipeline;
#[cfg(target_arch = "bpf")]
mod policy;
#[cfg(target_arch = "bpf")]
mod proto;
#[cfg(target_arch = "bpf")]
mod scan;
#[cfg(target_arch = "bpf")]
mod state;
#[cfg(target_arch = "bpf")]
mod verifier;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::{xdp_action, TC_ACT_SHOT, TC_ACT_UNSPEC},
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };
    use leakguard_common::hook;

    use crate::{
        packet::{Tc, Xdp},
        pipeline::{guard, Verdict},
    };

    #[inline(always)]
    fn tc(ctx: &TcContext, hook: u8) -> i32 {
        let p = Tc(ctx.skb.skb);
        p.pull_headers();
        match guard(&p, hook) {
            // TC_ACT_UNSPEC is TCX_NEXT: pass, and let any later program in the chain run.
            Verdict::Pass => TC_ACT_UNSPEC,
            Verdict::Drop => TC_ACT_SHOT,
        }
    }

    #[classifier]
    pub fn leakguard_tc_egress(ctx: TcContext) -> i32 {
        tc(&ctx, hook::TC_EGRESS)
    }

    #[classifier]
    pub fn leakguard_tc_ingress(ctx: TcContext) -> i32 {
        tc(&ctx, hook::TC_INGRESS)
    }

    #[xdp]
    pub fn leakguard_xdp(ctx: XdpContext) -> u32 {
        match guard(&Xdp(ctx.ctx), hook::XDP) {
            Verdict::Pass => xdp_action::XDP_PASS,
            Verdict::Drop => xdp_action::XDP_DROP,
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
