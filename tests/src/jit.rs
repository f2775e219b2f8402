//! Where a loaded program's machine code came from: its JIT-ed functions (start, length,
//! name) and, through the program's BTF line info, the source line of each stretch of
//! machine code. With it, samples of the CPU's instruction pointer (`perf record` on the
//! kernel) are attributed to lines of `leakguard-ebpf` (`cargo xtask profile`).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context as _, Result};
use aya_obj::generated::{bpf_btf_info, bpf_cmd, bpf_func_info, bpf_line_info, bpf_prog_info};

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
    /// Reads the map of the program behind `prog` (as root). Function names come from the
    /// program's BTF (its func info), as the kernel's own symbols for it do.
    pub fn of(prog: impl AsFd) -> Result<Self> {
        let fd = prog.as_fd().as_raw_fd();
        // SAFETY: plain-data C struct; all-zero is its "ask for nothing" value.
        let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
        info_by_fd(fd, &mut info)?;
        let (nk, nf, nl, njl) = (
            info.nr_jited_ksyms as usize,
            info.nr_func_info as usize,
            info.nr_line_info as usize,
            info.nr_jited_line_info as usize,
        );
        if nl == 0 || njl != nl {
            bail!("the program has no JIT-ed line info ({nl} lines, {njl} addresses)");
        }
        if nf != nk {
            bail!("{nf} functions in the program's BTF, {nk} JIT-ed");
        }
        let mut funcs_btf = vec![
            bpf_func_info {
                insn_off: 0,
                type_id: 0
            };
            nf
        ];
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
        info.nr_func_info = nf as u32;
        info.func_info_rec_size = std::mem::size_of::<bpf_func_info>() as u32;
        info.func_info = funcs_btf.as_mut_ptr() as u64;
        info.nr_line_info = nl as u32;
        info.line_info_rec_size = std::mem::size_of::<bpf_line_info>() as u32;
        info.line_info = lines.as_mut_ptr() as u64;
        info.nr_jited_line_info = njl as u32;
        info.jited_line_info_rec_size = 8;
        info.jited_line_info = addrs.as_mut_ptr() as u64;
        info_by_fd(fd, &mut info)?;
        let btf = Btf::load(btf_id)?;
        // The kernel lists JIT-ed functions in func-info order (by instruction offset).
        let funcs = ksyms
            .iter()
            .zip(&lens)
            .zip(&funcs_btf)
            .map(|((&start, &len), fi)| Func {
                name: short_name(&btf.type_name(fi.type_id)),
                start,
                len: u64::from(len),
            })
            .collect();
        let mut lines: Vec<Line> = lines
            .iter()
            .zip(&addrs)
            .map(|(l, &addr)| Line {
                addr,
                file: string_at(&btf.strings, l.file_name_off),
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

/// `window_3C_leakguard_ebpf_3A__3A_pkt_3A__3A_Xdp_3E_` (a generic function, as BTF
/// names it) -> `window`.
fn short_name(name: &str) -> String {
    name.split("_3C_").next().unwrap_or(name).to_owned()
}

fn string_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or_default();
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

/// A loaded BTF object's type and string sections.
struct Btf {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Btf {
    /// BTF object `id`, read from the kernel.
    fn load(id: u32) -> Result<Self> {
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
        Self::parse(&buf).with_context(|| format!("BTF {id}"))
    }

    /// struct btf_header: magic u16, version u8, flags u8, hdr_len u32, type_off u32,
    /// type_len u32, str_off u32, str_len u32 (offsets from the header's end).
    fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < 24 || u16::from_le_bytes([buf[0], buf[1]]) != 0xeb9f {
            bail!("not a little-endian BTF blob");
        }
        let at = |o: usize| u32_at(buf, o) as usize;
        let hdr = at(4);
        let section = |off: usize, len: usize| {
            buf.get(hdr + off..hdr + off + len)
                .map(<[u8]>::to_vec)
                .context("section out of bounds")
        };
        Ok(Self {
            types: section(at(8), at(12))?,
            strings: section(at(16), at(20))?,
        })
    }

    /// The name of type `id` (ids count from 1; 0 is void).
    fn type_name(&self, id: u32) -> String {
        let mut off = 0;
        for _ in 1..id {
            match btf_type_len(&self.types, off) {
                Some(len) => off += len,
                None => return format!("type {id}"),
            }
        }
        if id == 0 || off + 12 > self.types.len() {
            return format!("type {id}");
        }
        string_at(&self.strings, u32_at(&self.types, off))
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap()))
}

/// Bytes of the BTF type record at `off`: 12 for `struct btf_type`, then what its kind
/// adds (per member or value for the kinds that list them).
fn btf_type_len(types: &[u8], off: usize) -> Option<usize> {
    if off + 12 > types.len() {
        return None;
    }
    let info = u32_at(types, off + 4);
    let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
    let extra = match kind {
        // INT, VAR, DECL_TAG
        1 | 14 | 17 => 4,
        // ARRAY
        3 => 12,
        // STRUCT, UNION, DATASEC, ENUM64
        4 | 5 | 15 | 19 => 12 * vlen,
        // ENUM, FUNC_PROTO
        6 | 13 => 8 * vlen,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        _ => 0,
    };
    Some(12 + extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(
            short_name("window_3C_leakguard_ebpf_3A__3A_packet_3A__3A_Xdp_3E_"),
            "window"
        );
        assert_eq!(short_name("advance"), "advance");
    }

    #[test]
    fn strings_by_offset() {
        let s = b"\0skip.rs\0pipeline.rs\0";
        assert_eq!(string_at(s, 1), "skip.rs");
        assert_eq!(string_at(s, 9), "pipeline.rs");
        assert_eq!(string_at(s, 99), "");
    }

    /// A hand-built blob: INT "int", STRUCT "s" with two members, FUNC "f".
    #[test]
    fn type_names_skip_each_kind_s_extra_bytes() {
        let strings = b"\0int\0s\0f\0a\0b\0";
        let mut types = Vec::new();
        let mut rec = |name: u32, kind: u32, vlen: u32, size: u32, extra: &[u32]| {
            for w in [name, (kind << 24) | vlen, size].iter().chain(extra) {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        rec(1, 1, 0, 4, &[32]); // INT: one extra word
        rec(5, 4, 2, 8, &[9, 1, 0, 11, 1, 32]); // STRUCT: 12 bytes per member
        rec(7, 12, 0, 0, &[]); // FUNC: none
        let mut blob = Vec::new();
        blob.extend_from_slice(&0xeb9f_u16.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        let (tl, sl) = (types.len() as u32, strings.len() as u32);
        for w in [24u32, 0, tl, tl, sl] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(strings);
        let btf = Btf::parse(&blob).unwrap();
        assert_eq!(btf.type_name(1), "int");
        assert_eq!(btf.type_name(2), "s");
        assert_eq!(btf.type_name(3), "f");
        assert_eq!(btf.type_name(4), "type 4");
        assert!(Btf::parse(&blob[..10]).is_err());
    }
}
