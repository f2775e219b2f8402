//! What test processes that were killed (SIGKILL, a timeout, a lost terminal) left behind:
//! network namespaces `lg-PID-…` and the daemons' bpffs pins `leakguard-test-PID-…`, each
//! holding its veths, programs and some 20 MiB of maps. A signal handler cleans up after
//! the signals it can catch (`netns::delete_own`); these are what it cannot. Swept once
//! per test process, before its first namespace or daemon: only names whose process is
//! gone, so tests running beside this one keep theirs.

use std::{path::Path, sync::Once};

use crate::{daemon, netns};

/// Removes one entry; true when it did.
type Remove = fn(&Path, &str) -> bool;

/// Where the namespaces and the pins live, the prefix before each owner's pid, and how an
/// entry is removed: a namespace by `ip netns del`, a pin directory by removing it.
const PLACES: [(&str, &str, Remove); 2] = [
    (netns::DIR, netns::PREFIX, |_, name| netns::delete(name)),
    (daemon::PIN_DIR, daemon::PIN_PREFIX, |path, _| {
        std::fs::remove_dir_all(path).is_ok()
    }),
];

/// Sweeps once per process (see the module's doc).
pub fn sweep_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (dir, prefix, remove) in PLACES {
            sweep(Path::new(dir), prefix, remove, |pid| {
                Path::new(&format!("/proc/{pid}")).exists()
            });
        }
    });
}

/// Removes, by `remove`, the entries of `dir` named `PREFIX<pid>-…` whose pid `alive`
/// says is gone (this process is alive). Returns what it removed. Entries of other shapes
/// are left alone.
pub fn sweep(dir: &Path, prefix: &str, remove: Remove, alive: impl Fn(u32) -> bool) -> Vec<String> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if owner(&name, prefix).is_some_and(|pid| !alive(pid)) && remove(&e.path(), &name) {
            removed.push(name);
        }
    }
    removed
}

/// The pid in `PREFIX<pid>-…`.
fn owner(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names_of_the_shape_only() {
        assert_eq!(owner("lg-123-4-cli", "lg-"), Some(123));
        assert_eq!(owner("leakguard-test-77-0", "leakguard-test-"), Some(77));
        assert_eq!(owner("lg-cli", "lg-"), None);
        assert_eq!(owner("lg-12x-0", "lg-"), None);
        assert_eq!(owner("leakguard", "leakguard-test-"), None);
    }

    /// Only the dead owners' entries go; a live owner's and other names stay.
    #[test]
    fn sweeps_what_dead_processes_left_and_nothing_else() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("lg-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for name in ["p-10-0", "p-10-1", "p-11-0", "p-x-0", "other"] {
            std::fs::create_dir_all(dir.join(name).join("maps"))?;
        }
        let mut removed = sweep(&dir, "p-", PLACES[1].2, |pid| pid == 11);
        removed.sort();
        assert_eq!(removed, ["p-10-0", "p-10-1"]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        left.sort();
        assert_eq!(left, ["other", "p-11-0", "p-x-0"]);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
