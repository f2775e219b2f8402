//! The map from JIT-ed code to source that `cargo xtask profile` attributes samples with:
//! read from a real loaded program, it must name the program's functions and place
//! every stretch of their code in a source line of the kernel crate or a library.

use aya::programs::{SchedClassifier, Xdp};
use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_XDP};
use leakguard_tests::{guard::Guard, jit::JitMap};

#[test]
fn jit_map_names_functions_and_source_lines() {
    let g = Guard::load(&leakguard::policy::KernelPolicy::default()).unwrap();
    for prog in [PROG_XDP, PROG_TC_EGRESS] {
        let p = g.ebpf.program(prog).unwrap();
        let map = if prog == PROG_XDP {
            JitMap::of(<&Xdp>::try_from(p).unwrap().fd().unwrap())
        } else {
            JitMap::of(<&SchedClassifier>::try_from(p).unwrap().fd().unwrap())
        }
        .unwrap();
        let names: Vec<&str> = map.funcs.iter().map(|f| f.name.as_str()).collect();
        // The main program and the bpf_loop callbacks, as subprograms of their own.
        for want in [prog, "window", "advance"] {
            assert!(names.contains(&want), "{prog}: no {want} in {names:?}");
        }
        for f in &map.funcs {
            assert!(f.len > 0, "{prog}: {} has no code", f.name);
            let (at, _) = map.locate(f.start).expect("a function's first byte");
            assert_eq!(at.name, f.name);
            assert!(map
                .locate(f.start + f.len)
                .is_none_or(|(g, _)| g.name != f.name));
        }
        assert!(map.lines.windows(2).all(|w| w[0].addr <= w[1].addr));
        // Every line lies in a function, and most of the code comes from our sources.
        for l in &map.lines {
            assert!(
                map.locate(l.addr).is_some(),
                "{prog}: line at {:#x}",
                l.addr
            );
            assert!(l.line > 0 && !l.file.is_empty(), "{l:?}");
        }
        let ours = map
            .lines
            .iter()
            .filter(|l| {
                l.file.contains("leakguard-ebpf/src/") || l.file.contains("leakguard-common/src/")
            })
            .count();
        assert!(
            ours * 2 > map.lines.len(),
            "{prog}: {ours} of {} lines in leakguard's sources",
            map.lines.len()
        );
        assert!(map
            .lines
            .iter()
            .any(|l| l.file.contains("leakguard-ebpf/src/scan/")));
    }
}
