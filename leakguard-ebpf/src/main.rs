//! leakguard's kernel programs: a TC classifier (egress through TCX, or ingress) and an XDP
//! program, both thin wrappers around one pipeline (`guard`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod act;
#[cfg(target_arch = "bpf")]
mod bound;
#[cfg(target_arch = "bpf")]
mod floor;
#[cfg(target_arch = "bpf")]
mod flows;
#[cfg(target_arch = "bpf")]
mod guard;
#[cfg(target_arch = "bpf")]
mod http;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod pkt;
#[cfg(target_arch = "bpf")]
mod policy;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::{xdp_action, TC_ACT_SHOT, TC_ACT_UNSPEC},
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };
    use leakguard_common::hook;

    use crate::{
        floor::floor,
        guard::{guard, Verdict},
        pkt::{Tc, Xdp},
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

    /// Baselines for the benchmarks: the cheapest programs of each hook.
    #[xdp]
    pub fn baseline_xdp_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }

    #[classifier]
    pub fn baseline_tc_pass(_ctx: TcContext) -> i32 {
        TC_ACT_UNSPEC
    }

    /// The floor of a scan (`floor`): copy the frame, test every word for an LF.
    #[xdp]
    pub fn baseline_xdp_lf(ctx: XdpContext) -> u32 {
        floor(&Xdp(ctx.ctx));
        xdp_action::XDP_PASS
    }

    #[classifier]
    pub fn baseline_tc_lf(ctx: TcContext) -> i32 {
        floor(&Tc(ctx.skb.skb));
        TC_ACT_UNSPEC
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
