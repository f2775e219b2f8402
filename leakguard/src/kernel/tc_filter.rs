//! TC attachment on kernels without TCX (before 6.6): a cls_bpf filter in direct-action
//! mode on the interface's clsact qdisc. aya creates and replaces the filter; this module
//! reads the kernel's filter table (is leakguard's filter there, which program runs) and
//! removes the qdisc leakguard added, through rtnetlink.
//!
//! leakguard's filter is the one at [`PRIORITY`] with [`HANDLE`] under the hook's clsact
//! parent. The kernel keeps it when the daemon exits, and replacing its program at the
//! same priority and handle is atomic (cls_bpf swaps the program under RCU): the same
//! promises as a pinned TCX link.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use aya::programs::{tc::TcHandle, TcAttachType};

/// Priority of leakguard's filter: 1, the first to run, so that no other filter can pass
/// a request (TC_ACT_OK) before the guard has scanned it. The guard passes with
/// TC_ACT_UNSPEC, which lets the filters after it run.
pub const PRIORITY: u16 = 1;
/// Handle of leakguard's filter ("LG"): identifies it among filters of other tools.
pub const HANDLE: TcHandle = TcHandle::new(0, 0x4c47);

const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// clsact's handle and its two parents (linux/pkt_sched.h).
const TC_H_CLSACT: u32 = 0xffff_fff1;
const TC_H_MIN_INGRESS: u32 = 0xfff2;
const TC_H_MIN_EGRESS: u32 = 0xfff3;

/// The clsact parent of a hook's filters.
#[must_use]
pub fn parent(ty: TcAttachType) -> u32 {
    let min = match ty {
        TcAttachType::Ingress => TC_H_MIN_INGRESS,
        _ => TC_H_MIN_EGRESS,
    };
    (TC_H_CLSACT & 0xffff_0000) | min
}

/// One filter of a clsact parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// The classifier ("bpf", "u32", "flower", …).
    pub kind: String,
    /// For a bpf filter: the program's name and id.
    pub program: Option<(String, u32)>,
}

impl Filter {
    /// True for leakguard's filter (its priority and handle).
    #[must_use]
    pub fn is_ours(&self) -> bool {
        self.priority == PRIORITY && self.handle == u32::from(HANDLE) && self.kind == "bpf"
    }
}

/// The filters under `parent` of interface `ifindex` (none when it has no clsact qdisc).
pub fn filters(ifindex: u32, parent: u32) -> io::Result<Vec<Filter>> {
    let mut req = header(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP);
    req.extend(tcmsg(ifindex, 0, parent, 0));
    let mut out = Vec::new();
    for (ty, msg) in exchange(&req)? {
        if ty == RTM_NEWTFILTER {
            if let Some(f) = parse_filter(&msg) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// leakguard's filter under `parent` of `ifindex`, if the kernel has it.
pub fn ours(ifindex: u32, parent: u32) -> io::Result<Option<Filter>> {
    Ok(filters(ifindex, parent)?.into_iter().find(Filter::is_ours))
}

/// Removes the clsact qdisc of `ifindex` (and with it any filter still on it).
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let mut req = header(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK);
    req.extend(tcmsg(ifindex, TC_H_CLSACT & 0xffff_0000, TC_H_CLSACT, 0));
    exchange(&req).map(drop)
}

fn header(ty: u16, flags: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(NLMSG_HDRLEN + TCMSG_LEN);
    h.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `exchange`
    h.extend_from_slice(&ty.to_ne_bytes());
    h.extend_from_slice(&flags.to_ne_bytes());
    h.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    h.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    h
}

fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut m = vec![0u8; 4]; // family AF_UNSPEC, padding
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&info.to_ne_bytes());
    m
}

/// Sends one request and collects the answer's messages (type, payload) up to its end:
/// NLMSG_DONE for a dump, the acknowledgement for a change. A netlink error is returned
/// as the `io::Error` of its errno.
fn exchange(req: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
    let mut req = req.to_vec();
    let len = req.len() as u32;
    req[..4].copy_from_slice(&len.to_ne_bytes());
    let dump = u16_at(&req, 6).is_some_and(|f| f & NLM_F_DUMP == NLM_F_DUMP);
    // SAFETY: socket(2) with valid arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: send(2) of a buffer of the given length.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: recv(2) into a buffer of the given length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut b = &buf[..n as usize];
        while b.len() >= NLMSG_HDRLEN {
            let len = u32_at(b, 0).unwrap_or(0) as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(io::Error::other("malformed netlink answer"));
            }
            let ty = u16_at(b, 4).unwrap_or(0);
            let payload = &b[NLMSG_HDRLEN..len];
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(
                        payload
                            .get(..4)
                            .and_then(|e| e.try_into().ok())
                            .unwrap_or([0; 4]),
                    );
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    // The acknowledgement of a change.
                    if !dump {
                        return Ok(out);
                    }
                }
                _ => out.push((ty, payload.to_vec())),
            }
            b = &b[((len + 3) & !3).min(b.len())..];
        }
    }
}

fn parse_filter(msg: &[u8]) -> Option<Filter> {
    let handle = u32_at(msg, 8)?;
    let info = u32_at(msg, 16)?;
    let mut f = Filter {
        priority: (info >> 16) as u16,
        handle,
        kind: String::new(),
        program: None,
    };
    for (ty, v) in attrs(msg.get(TCMSG_LEN..)?) {
        match ty {
            TCA_KIND => f.kind = cstr(v),
            TCA_OPTIONS => {
                let (mut name, mut id) = (None, None);
                for (ty, v) in attrs(v) {
                    match ty {
                        TCA_BPF_NAME => name = Some(cstr(v)),
                        TCA_BPF_ID => id = u32_at(v, 0),
                        _ => {}
                    }
                }
                if let (Some(n), Some(i)) = (name, id) {
                    f.program = Some((n, i));
                }
            }
            _ => {}
        }
    }
    Some(f)
}

/// The attributes (type, value) of a netlink attribute stream; a malformed one ends it.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_at(b, 0).unwrap_or(0));
        let ty = u16_at(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        while !a.len().is_multiple_of(4) {
            a.push(0);
        }
        a
    }

    #[test]
    fn parses_a_bpf_filter_and_knows_its_own() {
        let mut msg = tcmsg(
            3,
            u32::from(HANDLE),
            parent(TcAttachType::Egress),
            1 << 16 | 3,
        );
        msg.extend(attr(TCA_KIND, b"bpf\0"));
        let mut opts = attr(TCA_BPF_NAME, b"leakguard_tc_eg\0");
        opts.extend(attr(TCA_BPF_ID, &42u32.to_ne_bytes()));
        msg.extend(attr(TCA_OPTIONS | 0x8000, &opts));
        let f = parse_filter(&msg).unwrap();
        assert_eq!(f.priority, 1);
        assert_eq!(f.kind, "bpf");
        assert_eq!(f.program, Some(("leakguard_tc_eg".into(), 42)));
        assert!(f.is_ours());
        let other = Filter {
            handle: 1,
            ..f.clone()
        };
        assert!(!other.is_ours());
        assert_eq!(parent(TcAttachType::Egress), 0xffff_fff3);
        assert_eq!(parent(TcAttachType::Ingress), 0xffff_fff2);
        assert!(
            parse_filter(&msg[..10]).is_none(),
            "a cut message is no filter"
        );
    }
}
