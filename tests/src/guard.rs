//! The real leakguard object, loaded with a policy, run through `BPF_PROG_TEST_RUN`.

use std::{
    collections::BTreeMap,
    ops::{Deref, DerefMut},
    sync::{Mutex, PoisonError},
};

use crate::rawmap::{Dump, RawMap};
use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use leakguard::{
    kernel::{
        apply::apply,
        counters, load,
        maps::{MAP_EVENTS, MAP_FLOWS, MAP_FLOW_HINTS, MAP_IFSLOT, MAP_MATCHES, MAP_MATCH_COUNTS},
        object::{EBPF_OBJECT, PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
        pins::Pins,
        verifier,
    },
    policy::KernelPolicy,
};
use leakguard_common::{
    action, flow::hint_slot, Event, FlowKey, FlowState, IfSlot, RuleCounters, Stats,
    FLOW_HINT_SLOTS, IFSLOT_ENTRIES,
};

/// The benchmark object's empty programs (return pass): the baseline of cost
/// measurements.
pub const PROG_BASELINE_XDP: &str = "baseline_xdp_pass";
pub const PROG_BASELINE_TC: &str = "baseline_tc_pass";
/// The floor of a scan: the frame copied into the scratch window and every 8-byte word
/// tested for an LF, nothing else (what the bench compares a request's cost with).
pub const PROG_FLOOR_XDP: &str = "baseline_xdp_lf";
pub const PROG_FLOOR_TC: &str = "baseline_tc_lf";

/// A `MATCHES` hash key: (interface index, hook, rule id, outcome).
pub type HashMatch = (u32, u8, u32, u8);
/// A `MATCH_COUNTS` counter of a slot: (hook, rule id, outcome).
pub type ArrayMatch = (u8, u32, u8);

/// The interface `BPF_PROG_TEST_RUN` runs packets on: the network namespace's loopback.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// The three hooks, as a test table dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    TcEgress,
    TcIngress,
    Xdp,
}

impl Hook {
    pub const ALL: [Self; 3] = [Self::TcEgress, Self::TcIngress, Self::Xdp];

    #[must_use]
    pub const fn program(self) -> &'static str {
        match self {
            Self::TcEgress => PROG_TC_EGRESS,
            Self::TcIngress => PROG_TC_INGRESS,
            Self::Xdp => PROG_XDP,
        }
    }

    #[must_use]
    pub const fn id(self) -> u8 {
        match self {
            Self::TcEgress => leakguard_common::hook::TC_EGRESS,
            Self::TcIngress => leakguard_common::hook::TC_INGRESS,
            Self::Xdp => leakguard_common::hook::XDP,
        }
    }
}

/// A program's decision, mapped from the hook's return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
}

pub struct Run {
    pub verdict: Verdict,
    pub out: Vec<u8>,
}

/// The object with its maps filled, every program loaded.
pub struct Guard {
    pub ebpf: Ebpf,
}

// Return codes (linux/pkt_cls.h, linux/bpf.h).
const TC_ACT_UNSPEC: u32 = u32::MAX; // -1: TCX_NEXT, pass
const TC_ACT_SHOT: u32 = 2;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The benchmark's object: the guard programs and, for the bench and the profiler only,
/// the empty programs and the floor of a scan (`leakguard-ebpf`'s `bench` feature; built by
/// `build.rs`). The shipped object, `EBPF_OBJECT`, has the guard programs alone.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/leakguard-ebpf-bench"));

impl Guard {
    /// The shipped programs, with `policy` written.
    pub fn load(policy: &KernelPolicy) -> Result<Self> {
        Self::load_object(EBPF_OBJECT, policy)
    }

    /// The benchmark's object (`BENCH_OBJECT`): the guard and the baselines.
    pub fn load_bench(policy: &KernelPolicy) -> Result<Self> {
        Self::load_object(BENCH_OBJECT, policy)
    }

    /// [`Guard::load_bench`] with a counter slot for the test-run interface, as a guarded
    /// interface has: how the bench and the profiler time the guard.
    pub fn load_bench_with_slot(policy: &KernelPolicy) -> Result<Self> {
        let mut g = Self::load_bench(policy)?;
        g.give_slot(TEST_RUN_IFINDEX, 1)?;
        Ok(g)
    }

    /// Another build of the kernel programs (the bench's `--against`): its guard
    /// programs, and its baselines when it has them.
    pub fn load_object(object: &[u8], policy: &KernelPolicy) -> Result<Self> {
        let mut ebpf = Ebpf::load(object).context("loading the leakguard object")?;
        for (name, required) in [
            (PROG_TC_EGRESS, true),
            (PROG_TC_INGRESS, true),
            (PROG_BASELINE_TC, false),
            (PROG_FLOOR_TC, false),
        ] {
            let Some(p) = ebpf.program_mut(name) else {
                anyhow::ensure!(!required, "the object has no program {name}");
                continue;
            };
            let p: &mut SchedClassifier = p.try_into()?;
            p.load().map_err(|e| verifier::refused(name, e))?;
        }
        for (name, required) in [
            (PROG_XDP, true),
            (PROG_BASELINE_XDP, false),
            (PROG_FLOOR_XDP, false),
        ] {
            let Some(p) = ebpf.program_mut(name) else {
                anyhow::ensure!(!required, "the object has no program {name}");
                continue;
            };
            let p: &mut Xdp = p.try_into()?;
            p.load().map_err(|e| verifier::refused(name, e))?;
        }
        apply(&mut ebpf, policy)?;
        Ok(Self { ebpf })
    }

    /// A guard from this test process's pool, reset to what [`Guard::load`] with `policy`
    /// gives (see [`Guard::reset`]), or loaded when every pooled one is in use. Tests that
    /// run packets by `BPF_PROG_TEST_RUN` take theirs from here: a load verifies three
    /// programs, about 1 s on this machine and 10-15 s on Debian 12's 6.1 under the
    /// kernel matrix's emulation, where loads were most of the matrix's time.
    pub fn pooled(policy: &KernelPolicy) -> Result<Pooled> {
        let spare = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let g = match spare {
            Some(mut g) => {
                g.reset(policy)?;
                g
            }
            None => Self::load(policy)?,
        };
        Ok(Pooled(Some(g)))
    }

    /// Every map back to the state a fresh load leaves it in (array values zero, hash and
    /// trie keys gone, the event ring drained), then `policy` written: from here the guard
    /// behaves as one just loaded with `policy` (`tests/tests/kernel_pool.rs` compares
    /// every map's bytes and every verdict with a fresh guard's). The programs are not
    /// loaded again. A map of a type [`RawMap`] does not know fails the reset.
    pub fn reset(&mut self, policy: &KernelPolicy) -> Result<()> {
        for (name, map) in self.ebpf.maps() {
            if let Some(raw) = RawMap::of(name, map)? {
                raw.zero().with_context(|| format!("zeroing map {name}"))?;
            }
        }
        let m = self.ebpf.map_mut(MAP_EVENTS).context("EVENTS")?;
        let mut ring = aya::maps::RingBuf::try_from(m)?;
        while ring.next().is_some() {}
        drop(ring);
        apply(&mut self.ebpf, policy)?;
        Ok(())
    }

    /// Every map's entries as bytes, by map name (the event ring left out: it is read by
    /// draining, [`Guard::events`]).
    pub fn dump(&self) -> Result<BTreeMap<String, Dump>> {
        let mut all = BTreeMap::new();
        for (name, map) in self.ebpf.maps() {
            if let Some(raw) = RawMap::of(name, map)? {
                all.insert(
                    name.to_owned(),
                    raw.dump().with_context(|| format!("map {name}"))?,
                );
            }
        }
        Ok(all)
    }

    /// The guard programs as the daemon loads them, with their maps pinned under `pins`
    /// (made or reused: `leakguard::kernel::load::load`), and `policy` written.
    pub fn load_pinned(pins: &Pins, policy: &KernelPolicy) -> Result<Self> {
        pins.prepare()?;
        let mut ebpf = load::load(pins, EBPF_OBJECT)?;
        apply(&mut ebpf, policy)?;
        Ok(Self { ebpf })
    }

    /// The flow table's keys and its hint counters (`FLOW_HINTS`).
    pub fn flow_hints(&self) -> Result<FlowHints> {
        let m = self.ebpf.map(MAP_FLOWS).context("FLOWS")?;
        let flows: aya::maps::HashMap<_, FlowKey, FlowState> = aya::maps::HashMap::try_from(m)?;
        let keys = flows.keys().collect::<Result<Vec<_>, _>>()?;
        let m = self.ebpf.map(MAP_FLOW_HINTS).context("FLOW_HINTS")?;
        let hints: aya::maps::Array<_, u64> = aya::maps::Array::try_from(m)?;
        let mut counters = (0..=FLOW_HINT_SLOTS)
            .map(|i| hints.get(&i, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let mark = counters.pop().unwrap_or(0);
        Ok(FlowHints {
            keys,
            counters,
            mark,
        })
    }

    /// Replaces the policy (maps only; the programs stay loaded).
    pub fn set_policy(&mut self, policy: &KernelPolicy) -> Result<()> {
        apply(&mut self.ebpf, policy)?;
        Ok(())
    }

    /// Runs `pkt` through the hook's program once.
    pub fn run(&mut self, hook: Hook, pkt: &[u8]) -> Result<Run> {
        let (ret, out) = self.run_program(hook.program(), hook != Hook::Xdp, pkt, 1)?;
        let verdict = match (hook, ret) {
            (Hook::Xdp, XDP_PASS) | (Hook::TcEgress | Hook::TcIngress, TC_ACT_UNSPEC) => {
                Verdict::Pass
            }
            (Hook::Xdp, XDP_DROP) | (Hook::TcEgress | Hook::TcIngress, TC_ACT_SHOT) => {
                Verdict::Drop
            }
            _ => bail!("{hook:?} returned unexpected code {ret}"),
        };
        Ok(Run { verdict, out })
    }

    /// Runs a program by name `repeat` times; returns the last return code, the output
    /// packet and (through `TestRunResult::duration`) the kernel's mean time per run.
    pub fn run_program(
        &mut self,
        name: &str,
        tc: bool,
        pkt: &[u8],
        repeat: u32,
    ) -> Result<(u32, Vec<u8>)> {
        let (ret, out, _) = self.time_program(name, tc, pkt, repeat)?;
        Ok((ret, out))
    }

    pub fn time_program(
        &self,
        name: &str,
        tc: bool,
        pkt: &[u8],
        repeat: u32,
    ) -> Result<(u32, Vec<u8>, std::time::Duration)> {
        let mut out = vec![0u8; pkt.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(pkt),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        };
        let r = if tc {
            let p: &SchedClassifier = self
                .ebpf
                .program(name)
                .with_context(|| format!("program {name}"))?
                .try_into()?;
            p.test_run(opts)
        } else {
            let p: &Xdp = self
                .ebpf
                .program(name)
                .with_context(|| format!("program {name}"))?
                .try_into()?;
            p.test_run(opts)
        }
        .with_context(|| format!("BPF_PROG_TEST_RUN of {name} on {} bytes", pkt.len()))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out, r.duration))
    }

    /// Instructions the verifier processed loading program `name` (one of the guard's
    /// TC or XDP programs), and the program's own size in instructions.
    pub fn verified_instructions(&self, name: &str) -> Result<(u32, u32)> {
        let p = self
            .ebpf
            .program(name)
            .with_context(|| format!("no program {name}"))?;
        let info = if name == PROG_XDP {
            <&Xdp>::try_from(p)?.info()?
        } else {
            <&SchedClassifier>::try_from(p)?.info()?
        };
        let n = info
            .verified_instruction_count()
            .context("the kernel reports no verified_insns")?;
        Ok((n, info.size_translated().unwrap_or(0) / 8))
    }

    pub fn stats(&self) -> Result<Stats> {
        Ok(counters::stats(&self.ebpf)?)
    }

    pub fn counters(&self, rule_id: u32) -> Result<RuleCounters> {
        Ok(counters::rule_counters(&self.ebpf, rule_id)?)
    }

    /// Count of `outcome` for `rule_id`.
    pub fn count(&self, rule_id: u32, outcome: u8) -> Result<u64> {
        Ok(self.counters(rule_id)?.outcomes[usize::from(outcome)])
    }

    /// Gives interface `ifindex` counter slot `slot`, as the daemon does for a guarded
    /// interface (`BPF_PROG_TEST_RUN` runs on the loopback device: [`TEST_RUN_IFINDEX`]).
    pub fn give_slot(&mut self, ifindex: u32, slot: u32) -> Result<()> {
        let m = self.ebpf.map_mut(MAP_IFSLOT).context("IFSLOT")?;
        let mut a: aya::maps::Array<_, IfSlot> = aya::maps::Array::try_from(m)?;
        a.set(ifindex % IFSLOT_ENTRIES, IfSlot { ifindex, slot }, 0)?;
        Ok(())
    }

    /// The `MATCHES` hash counters: (interface index, hook, rule id, outcome) → count.
    pub fn match_hash(&self) -> Result<Vec<(HashMatch, u64)>> {
        let m = self.ebpf.map(MAP_MATCHES).context("MATCHES")?;
        Ok(counters::matches_of(m)?
            .into_iter()
            .map(|(k, n)| ((k.ifindex, k.hook, k.rule_id, k.outcome), n))
            .collect())
    }

    /// The `MATCH_COUNTS` counters of `slot`: (hook, rule id, outcome) → count.
    pub fn match_array(&self, slot: u32) -> Result<Vec<(ArrayMatch, u64)>> {
        let m = self.ebpf.map(MAP_MATCH_COUNTS).context("MATCH_COUNTS")?;
        Ok(counters::match_counts_of(m, slot)?
            .into_iter()
            .map(|(h, r, o, n)| ((h, r, o), n))
            .collect())
    }

    /// Drains the event ring.
    pub fn events(&mut self) -> Result<Vec<Event>> {
        let m = self.ebpf.map_mut(MAP_EVENTS).context("EVENTS")?;
        let mut ring = aya::maps::RingBuf::try_from(m)?;
        let mut events = Vec::new();
        while let Some(item) = ring.next() {
            events.push(Event::from_record(&item).expect("an event head or a whole event"));
        }
        Ok(events)
    }
}

/// Loaded guards not in use, for [`Guard::pooled`]: at most as many as tests ran at once.
static POOL: Mutex<Vec<Guard>> = Mutex::new(Vec::new());

/// A pooled guard; it goes back to the pool when dropped, unless its test panicked (then
/// it is dropped with the test, whatever state it was left in).
pub struct Pooled(Option<Guard>);

impl Deref for Pooled {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        self.0
            .as_ref()
            .expect("a pooled guard is present until dropped")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Guard {
        self.0
            .as_mut()
            .expect("a pooled guard is present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            if !std::thread::panicking() {
                POOL.lock().unwrap_or_else(PoisonError::into_inner).push(g);
            }
        }
    }
}

/// Outcome names for assertion messages.
#[must_use]
pub fn outcome_name(o: u8) -> &'static str {
    action::name(o)
}

/// A snapshot of `FLOWS`' keys and the `FLOW_HINTS` counters.
pub struct FlowHints {
    pub keys: Vec<FlowKey>,
    /// One per hint slot.
    pub counters: Vec<u64>,
    /// The daemon's "counters cover the table" mark (`leakguard::kernel::load::HINTS_COVER`).
    pub mark: u64,
}

impl FlowHints {
    /// Entries whose counter is zero: segments of these flows would skip their state.
    #[must_use]
    pub fn uncovered(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| self.counters[hint_slot(k) as usize] == 0)
            .count()
    }

    /// Slots whose counter differs from the number of entries hashing to it: none when
    /// no entry was evicted (every insertion and removal counted, nothing drifted).
    #[must_use]
    pub fn inexact(&self) -> usize {
        let mut want = vec![0u64; self.counters.len()];
        for k in &self.keys {
            want[hint_slot(k) as usize] += 1;
        }
        want.iter()
            .zip(&self.counters)
            .filter(|(a, b)| a != b)
            .count()
    }
}
