//! The kernel/user contract, read from the built objects (no kernel needed): the shipped
//! object has exactly the maps user space opens and pins by name
//! (`leakguard_common::maps`) and exactly the guard's programs; the benchmark's object adds
//! only its baselines.

use std::collections::BTreeSet;

use leakguard::kernel::object::{EBPF_OBJECT, PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP};
use leakguard_tests::guard::{
    BENCH_OBJECT, PROG_BASELINE_TC, PROG_BASELINE_XDP, PROG_FLOOR_TC, PROG_FLOOR_XDP,
};

fn names(object: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    let obj = aya_obj::Object::parse(object).expect("a BPF ELF object");
    let maps = obj
        .maps
        .keys()
        .filter(|n| !n.starts_with('.'))
        .cloned()
        .collect();
    let programs = obj.programs.keys().cloned().collect();
    (maps, programs)
}

#[test]
fn the_objects_hold_the_maps_and_programs_user_space_names() {
    let (maps, programs) = names(EBPF_OBJECT);
    let want: BTreeSet<String> = leakguard_common::maps::ALL_MAPS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(maps, want, "the shipped object's maps");
    let guard: BTreeSet<String> = [PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP]
        .map(String::from)
        .into();
    assert_eq!(
        programs, guard,
        "the shipped object's programs: the guard's alone"
    );

    let (bench_maps, bench_programs) = names(BENCH_OBJECT);
    assert_eq!(bench_maps, want, "the bench object's maps");
    let mut all = guard.clone();
    all.extend(
        [
            PROG_BASELINE_XDP,
            PROG_BASELINE_TC,
            PROG_FLOOR_XDP,
            PROG_FLOOR_TC,
        ]
        .map(String::from),
    );
    assert_eq!(
        bench_programs, all,
        "the bench object: the guard's and the baselines"
    );
}
