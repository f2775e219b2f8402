//! The `bpf(2)` map element commands on raw bytes, for what aya's typed maps cannot say: a
//! map whose value size is known only at run time (a handover's old flow table), or every
//! map of an object whatever its types (the tests' reset of a loaded guard).

use std::{io, os::fd::RawFd};

/// The element commands of `enum bpf_cmd` (linux/bpf.h).
#[derive(Clone, Copy, Debug)]
#[repr(i64)]
pub enum Cmd {
    Lookup = 1,
    Update = 2,
    Delete = 3,
    NextKey = 4,
}

/// The element member of `union bpf_attr`: `map_fd`, `key`, `value` or `next_key`, `flags`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Runs `cmd` on map `fd`. `ENOENT` (no such key, or no key after `key`) is an error here;
/// callers say what it means for them.
///
/// # Safety
/// `key` points at the map's key size in bytes, or is null (`NextKey`: the first key;
/// `Delete` never). `value` points at the map's value size in bytes (for per-CPU maps one
/// 8-byte-aligned value per possible CPU), at the key size for `NextKey`, or is null for
/// `Delete`. The kernel reads or writes exactly those.
pub unsafe fn elem(cmd: Cmd, fd: RawFd, key: *const u8, value: *mut u8) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        _pad: 0,
        key: key as u64,
        value: value as u64,
        flags: 0,
    };
    // SAFETY: `attr` is the element layout of `bpf_attr` and lives for the call; the
    // pointers in it are valid for the sizes the caller promised.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            core::ptr::from_mut(&mut attr),
            size_of::<ElemAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True for the error `elem` returns when a key is missing or the last key was passed.
#[must_use]
pub fn is_no_entry(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}
