//! Where a loaded program's machine code came from: its JIT-ed functions (start, length,
//! name) and, through the program's BTF line info, the source line of each stretch of
//! machine code. With it, samples of the CPU's instruction pointer (`perf record` on the
//! kernel) are attributed to lines of `leakguard-ebpf` (`cargo xtask profile`).

use std::{
    collections::HashMap,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{bail, Context as _, Result};
use aya_obj::generated::{bpf_btf_info, bpf_cmd, bpf_line_info, bpf_prog_info};

/// One JIT-ed function (the main program or a subprogram such as a `bpf_loop` callback).
#[derive(Debug, Clone)]
pub struct Func {
    pub name: String,
    pub start: u64,
    pub len: u64,
}

/// Machine code from `addr` up to the next line's address comes from `file:line`.
#[derive(Debug, Clone)]
pub struct Line {
    pub addr: u64,
    pub file: String,
    pub line: u32,
}

#[derive(Debug)]
pub struct JitMap {
    pub funcs: Vec<Func>,
    /// Sorted by address.
    pub lines: Vec<Line>,
}

/// `bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `bpf_attr` for BPF_*_GET_FD_BY_ID.
#[repr(C)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn sys_bpf<T>(cmd: bpf_cmd, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: `attr` is a valid `bpf_attr` prefix for `cmd`; the kernel zero-extends it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn info_by_fd<T>(fd: i32, info: &mut T) -> Result<()> {
    let mut a = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: std::ptr::from_mut(info) as u64,
    };
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut a).context("BPF_OBJ_GET_INFO_BY_FD")?;
    Ok(())
}

impl JitMap {
    /// Reads the map of the program behind `prog` (needs root and bpf_jit_kallsyms for
    /// the function names).
    pub fn of(prog: impl AsFd) -> Result<Self> {
        let fd = prog.as_fd().as_raw_fd();
        // SAFETY: plain-data C struct; all-zero is its "ask for nothing" value.
        let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
        info_by_fd(fd, &mut info)?;
        let (nk, nl, njl) = (
            info.nr_jited_ksyms as usize,
            info.nr_line_info as usize,
            info.nr_jited_line_info as usize,
        );
        if nl == 0 || njl != nl {
            bail!("the program has no JIT-ed line info ({nl} lines, {njl} addresses)");
        }
        let mut ksyms = vec![0u64; nk];
        let mut lens = vec![0u32; nk];
        let mut lines = vec![
            bpf_line_info {
                insn_off: 0,
                file_name_off: 0,
                line_off: 0,
                line_col: 0
            };
            nl
        ];
        let mut addrs = vec![0u64; njl];
        let btf_id = info.btf_id;
        // SAFETY: as above.
        let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
        info.nr_jited_ksyms = nk as u32;
        info.jited_ksyms = ksyms.as_mut_ptr() as u64;
        info.nr_jited_func_lens = nk as u32;
        info.jited_func_lens = lens.as_mut_ptr() as u64;
        info.nr_line_info = nl as u32;
        info.line_info_rec_size = std::mem::size_of::<bpf_line_info>() as u32;
        info.line_info = lines.as_mut_ptr() as u64;
        info.nr_jited_line_info = njl as u32;
        info.jited_line_info_rec_size = 8;
        info.jited_line_info = addrs.as_mut_ptr() as u64;
        info_by_fd(fd, &mut info)?;
        let strings = btf_strings(btf_id)?;
        let names = kallsyms()?;
        let funcs = ksyms
            .iter()
            .zip(&lens)
            .map(|(&start, &len)| Func {
                name: names
                    .get(&start)
                    .map_or_else(|| format!("{start:#x}"), |n| short_name(n)),
                start,
                len: u64::from(len),
            })
            .collect();
        let mut lines: Vec<Line> = lines
            .iter()
            .zip(&addrs)
            .map(|(l, &addr)| Line {
                addr,
                file: string_at(&strings, l.file_name_off),
                line: l.line_col >> 10,
            })
            .collect();
        lines.sort_by_key(|l| l.addr);
        Ok(Self { funcs, lines })
    }

    /// The function and source line an instruction pointer lies in, if in this program.
    #[must_use]
    pub fn locate(&self, ip: u64) -> Option<(&Func, Option<&Line>)> {
        let f = self
            .funcs
            .iter()
            .find(|f| (f.start..f.start + f.len).contains(&ip))?;
        let i = self.lines.partition_point(|l| l.addr <= ip);
        let line = i
            .checked_sub(1)
            .map(|i| &self.lines[i])
            .filter(|l| l.addr >= f.start);
        Some((f, line))
    }
}

/// `bpf_prog_<tag>_window_3C_…` -> `window`.
fn short_name(sym: &str) -> String {
    let rest = sym
        .strip_prefix("bpf_prog_")
        .and_then(|r| r.split_once('_'))
        .map_or(sym, |(_, n)| n);
    rest.split("_3C_").next().unwrap_or(rest).to_owned()
}

fn string_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or_default();
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

/// The string section of BTF object `id`.
fn btf_strings(id: u32) -> Result<Vec<u8>> {
    let mut a = IdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    let fd = sys_bpf(bpf_cmd::BPF_BTF_GET_FD_BY_ID, &mut a).context("BPF_BTF_GET_FD_BY_ID")?;
    // SAFETY: the kernel returned a new fd we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: plain-data C struct.
    let mut bi: bpf_btf_info = unsafe { std::mem::zeroed() };
    info_by_fd(fd.as_raw_fd(), &mut bi)?;
    let mut buf = vec![0u8; bi.btf_size as usize];
    // SAFETY: as above.
    let mut bi: bpf_btf_info = unsafe { std::mem::zeroed() };
    bi.btf = buf.as_mut_ptr() as u64;
    bi.btf_size = buf.len() as u32;
    info_by_fd(fd.as_raw_fd(), &mut bi)?;
    // struct btf_header: magic u16, version u8, flags u8, hdr_len u32, type_off u32,
    // type_len u32, str_off u32, str_len u32 (offsets after the header).
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap()) as usize;
    if buf.len() < 24 || u16::from_le_bytes([buf[0], buf[1]]) != 0xeb9f {
        bail!("BTF {id}: not a little-endian BTF blob");
    }
    let (hdr, off, len) = (u32_at(4), u32_at(16), u32_at(20));
    buf.get(hdr + off..hdr + off + len)
        .map(<[u8]>::to_vec)
        .with_context(|| format!("BTF {id}: string section out of bounds"))
}

/// Kernel symbol addresses to names, for BPF programs only.
fn kallsyms() -> Result<HashMap<u64, String>> {
    let text = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
    Ok(text
        .lines()
        .filter(|l| l.ends_with("[bpf]"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let name = it.nth(1)?;
            Some((addr, name.to_owned()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(
            short_name(
                "bpf_prog_f6caca41f3e9270f_window_3C_leakguard_ebpf_3A__3A_pkt_3A__3A_Xdp_3E_"
            ),
            "window"
        );
        assert_eq!(short_name("bpf_prog_8bc6b7b72b86ddcb_advance"), "advance");
        assert_eq!(short_name("odd"), "odd");
    }

    #[test]
    fn strings_by_offset() {
        let s = b"\0http.rs\0guard.rs\0";
        assert_eq!(string_at(s, 1), "http.rs");
        assert_eq!(string_at(s, 9), "guard.rs");
        assert_eq!(string_at(s, 99), "");
    }
}
