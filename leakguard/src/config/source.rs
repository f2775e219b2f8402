//! Reading the policy file safely. The policy decides what leaves the gateway: whoever can
//! change the file, or where it points, can turn the guard off. So the file is taken
//! only when it is a regular file no other user may write, or exactly a Kubernetes
//! ConfigMap mount, where every name is a link the kubelet swaps atomically:
//!
//! ```text
//! DIR/leakguard.toml -> ..data/leakguard.toml
//! DIR/..data         -> ..2026_12_01_17_00_00.123456789
//! DIR/..2026_12_01_17_00_00.123456789/leakguard.toml   (the file)
//! ```
//!
//! That pattern is followed when DIR, both links, the directory they lead to and the file
//! are owned by root, the directory and the file not writable by other users, and DIR
//! either not writable by them, or sticky (1777: only root may rename root's links), or
//! on a read-only mount (the kubelet makes DIR 0777 or 1777 and mounts it read-only into
//! the container). Any other link is refused.

use std::{
    fs::{File, Metadata},
    io::Read as _,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

/// The link every ConfigMap file goes through.
pub const DATA_LINK: &str = "..data";

/// The policy file's text, or why it is not taken (one line).
pub fn read(path: &Path) -> Result<String, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(format!("cannot read the policy file: {e}")),
    };
    let real = if meta.file_type().is_symlink() {
        configmap_target(path)?
    } else {
        path.to_owned()
    };
    // O_NOFOLLOW: the last name is not swapped for a link between the checks and the
    // open; what was opened is checked again.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| format!("cannot read the policy file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the policy file: {e}"))?;
    if !meta.is_file() {
        return Err("the policy file is not a regular file".into());
    }
    if meta.mode() & 0o002 != 0 {
        return Err(format!(
            "the policy file is writable by every user (mode {:04o}); fix it with chmod o-w",
            meta.mode() & 0o7777
        ));
    }
    if real != path {
        if meta.uid() != 0 {
            return Err(not_root("the file a ConfigMap link leads to", &real));
        }
    } else {
        // A plain file: it and the directory it may be renamed over in are someone's
        // to change only if that someone is trusted already.
        trusted("the policy file", path, &meta)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let dir_meta = std::fs::metadata(dir)
            .map_err(|e| format!("cannot read the policy file's directory: {e}"))?;
        trusted("the policy file's directory", dir, &dir_meta)?;
    }
    read_all(&mut file)
}

fn read_all(file: &mut File) -> Result<String, String> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the policy file: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "the policy file is not UTF-8".into())
}

/// Where a ConfigMap's link leads, when `path` is exactly one; else why it is refused.
fn configmap_target(path: &Path) -> Result<PathBuf, String> {
    let refuse = || {
        "the policy file is a symbolic link, and not a Kubernetes ConfigMap's \
         (NAME -> ..data/NAME -> ..TIMESTAMP/NAME); give the file itself"
            .to_owned()
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let link = std::fs::read_link(path).map_err(|_| refuse())?;
    if link != Path::new(DATA_LINK).join(name) {
        return Err(refuse());
    }
    let data = dir.join(DATA_LINK);
    let data_meta = std::fs::symlink_metadata(&data).map_err(|_| refuse())?;
    let stamp = std::fs::read_link(&data).map_err(|_| refuse())?;
    // One name in DIR, starting with "..", as the kubelet makes it.
    let one_name = stamp.components().count() == 1
        && stamp
            .to_str()
            .is_some_and(|s| s.starts_with("..") && s.len() > 2);
    if !data_meta.file_type().is_symlink() || !one_name {
        return Err(refuse());
    }
    let target_dir = dir.join(&stamp);
    let target_meta = std::fs::symlink_metadata(&target_dir).map_err(|_| refuse())?;
    if !target_meta.is_dir() {
        return Err(refuse());
    }
    let dir_meta = std::fs::symlink_metadata(dir).map_err(|_| refuse())?;
    if dir_meta.uid() != 0 {
        return Err(not_root("the policy file's directory", dir));
    }
    let sticky = dir_meta.mode() & libc::S_ISVTX != 0;
    if dir_meta.mode() & 0o002 != 0 && !sticky && !read_only(dir) {
        return Err(format!(
            "the policy file's directory {} is writable by every user (mode {:04o}), not \
             sticky and not mounted read-only: anyone could swap its ConfigMap links",
            dir.display(),
            dir_meta.mode() & 0o7777
        ));
    }
    let link_meta = std::fs::symlink_metadata(path).map_err(|_| refuse())?;
    for (what, p, m) in [
        ("the policy file's link", path.to_owned(), &link_meta),
        ("the ConfigMap's ..data link", data.clone(), &data_meta),
        (
            "the ConfigMap's data directory",
            target_dir.clone(),
            &target_meta,
        ),
    ] {
        check_owner(what, &p, m)?;
    }
    Ok(target_dir.join(name))
}

/// True when `dir` is on a read-only mount.
fn read_only(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statvfs on a valid C string with a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0) && st.f_flag & libc::ST_RDONLY != 0
}

/// Owned by root or by whoever runs leakguard (a user checking a file of their own), and
/// writable by no other user: not by every user, and by a group only if that is root's
/// or the runner's. A directory writable by every user passes when sticky (1777, /tmp):
/// then only a file's owner may rename or remove it.
fn trusted(what: &str, path: &Path, m: &Metadata) -> Result<(), String> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if m.uid() != 0 && m.uid() != uid {
        return Err(format!(
            "{what} {} is owned by uid {}, not by root: whoever owns it could change the \
             policy; fix it with chown root:root",
            path.display(),
            m.uid()
        ));
    }
    let mode = m.mode() & 0o7777;
    let sticky = m.is_dir() && mode & libc::S_ISVTX != 0;
    let others = mode & 0o002 != 0 && !sticky;
    let group = mode & 0o020 != 0 && m.gid() != 0 && m.gid() != gid;
    if others || group {
        let whom = if others { "every user" } else { "its group" };
        let fix = if others { "o-w" } else { "g-w" };
        return Err(format!(
            "{what} {} is writable by {whom} (mode {mode:04o}): whoever can write it \
             decides what leaves the gateway; fix it with chmod {fix}",
            path.display()
        ));
    }
    Ok(())
}

/// Owned by root and, unless a link (whose mode means nothing), not writable by others.
fn check_owner(what: &str, path: &Path, m: &Metadata) -> Result<(), String> {
    if m.uid() != 0 {
        return Err(not_root(what, path));
    }
    if !m.file_type().is_symlink() && m.mode() & 0o002 != 0 {
        return Err(format!(
            "{what} {} is writable by every user (mode {:04o}); fix it with chmod o-w",
            path.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

fn not_root(what: &str, path: &Path) -> String {
    format!(
        "{what} {} is not owned by root: whoever owns it could change the policy; the \
         ConfigMap pattern is followed only when root owns every part of it",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::{read, DATA_LINK};
    use std::{
        os::unix::fs::{symlink, PermissionsExt as _},
        path::{Path, PathBuf},
    };

    /// A ConfigMap mount as the kubelet makes it, holding `text` as `leakguard.toml`.
    fn configmap(dir: &Path, stamp: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join(stamp)).unwrap();
        std::fs::write(dir.join(stamp).join("leakguard.toml"), text).unwrap();
        let _ = std::fs::remove_file(dir.join(DATA_LINK));
        symlink(stamp, dir.join(DATA_LINK)).unwrap();
        let file = dir.join("leakguard.toml");
        if std::fs::symlink_metadata(&file).is_err() {
            symlink(Path::new(DATA_LINK).join("leakguard.toml"), &file).unwrap();
        }
        file
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lg-src-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_configmap_mount_is_followed_and_its_swap_seen() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!("run as root: the ConfigMap pattern needs files owned by root");
        }
        let d = tmp("cm");
        let file = configmap(&d, "..2026_12_01_17_00_00.1", "one");
        assert_eq!(read(&file).unwrap(), "one");
        configmap(&d, "..2026_12_01_17_05_00.2", "two");
        assert_eq!(read(&file).unwrap(), "two");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn links_other_than_a_configmap_s_are_refused() {
        let d = tmp("other");
        std::fs::write(d.join("real.toml"), "x").unwrap();
        // A plain link elsewhere.
        symlink(d.join("real.toml"), d.join("plain.toml")).unwrap();
        let e = read(&d.join("plain.toml")).unwrap_err();
        assert!(e.contains("not a Kubernetes ConfigMap"), "{e}");
        // ..data pointing out of the directory.
        let cm = tmp("escape");
        symlink(&d, cm.join(DATA_LINK)).unwrap();
        symlink(Path::new(DATA_LINK).join("real.toml"), cm.join("real.toml")).unwrap();
        let e = read(&cm.join("real.toml")).unwrap_err();
        assert!(e.contains("not a Kubernetes ConfigMap"), "{e}");
        // The data directory writable by everyone.
        let open = tmp("open");
        let file = configmap(&open, "..stamp", "x");
        std::fs::set_permissions(open.join("..stamp"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let e = read(&file).unwrap_err();
        assert!(e.contains("writable by every user"), "{e}");
        // The mount's directory as the kubelet makes it: 1777 is taken, 0777 on a
        // writable mount is not.
        let sticky = tmp("sticky");
        let file = configmap(&sticky, "..stamp", "x");
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(read(&file).unwrap(), "x");
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read(&file).unwrap_err();
        assert!(e.contains("not sticky and not mounted read-only"), "{e}");
        // A link not owned by root.
        let theirs = tmp("theirs");
        let file = configmap(&theirs, "..stamp", "x");
        let c = std::ffi::CString::new(theirs.join(DATA_LINK).to_str().unwrap()).unwrap();
        // SAFETY: lchown on a valid C string.
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
        let e = read(&file).unwrap_err();
        assert!(e.contains("not owned by root"), "{e}");
        for e in [&d, &cm, &open, &sticky, &theirs] {
            let _ = std::fs::remove_dir_all(e);
        }
    }

    /// A plain file and its directory: root's (or the runner's) and writable by no other
    /// user, a sticky directory excepted.
    #[test]
    fn a_plain_file_is_taken_only_from_whom_it_is_trusted() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!("run as root: the cases need files owned by another user");
        }
        let chown = |p: &Path, uid: u32, gid: u32| {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: chown on a valid C string.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, gid) }, 0);
        };
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let d = tmp("plain");
        let file = d.join("leakguard.toml");
        std::fs::write(&file, "x").unwrap();
        mode(&file, 0o664);
        assert_eq!(read(&file).unwrap(), "x", "root's group may write");
        chown(&file, 65534, 0);
        let e = read(&file).unwrap_err();
        assert!(e.contains("owned by uid 65534, not by root"), "{e}");
        chown(&file, 0, 65534);
        let e = read(&file).unwrap_err();
        assert!(e.contains("writable by its group (mode 0664)"), "{e}");
        mode(&file, 0o644);
        assert_eq!(read(&file).unwrap(), "x", "a group that may only read");
        // The directory: anyone who may write it may put another file in its place.
        mode(&d, 0o777);
        let e = read(&file).unwrap_err();
        assert!(
            e.contains("directory") && e.contains("every user (mode 0777)"),
            "{e}"
        );
        mode(&d, 0o1777);
        assert_eq!(read(&file).unwrap(), "x", "sticky, as /tmp");
        mode(&d, 0o755);
        chown(&d, 65534, 65534);
        let e = read(&file).unwrap_err();
        assert!(e.contains("directory") && e.contains("not by root"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
