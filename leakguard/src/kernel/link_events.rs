//! Interface appearance and removal, from the kernel's rtnetlink link group: the daemon
//! attaches to an interface the moment it appears, and notices at once when a guarded one
//! goes away (its link goes defunct; the guard is re-attached when it comes back).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use tokio::io::unix::AsyncFd;

/// rtnetlink constants (linux/rtnetlink.h, linux/if_link.h).
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    New { index: u32, name: String },
    Del { index: u32, name: String },
}

pub struct LinkEvents {
    fd: AsyncFd<OwnedFd>,
}

/// A link-event socket of this thread's network namespace (a socket keeps the namespace
/// it was made in, whichever thread uses it later).
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2)/bind(2) calls with valid arguments; the fd is owned below.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = RTMGRP_LINK;
        if libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

impl LinkEvents {
    /// Subscribes to link events of the current network namespace.
    pub fn open() -> io::Result<Self> {
        Self::from_fd(socket()?)
    }

    /// Link events from a [`socket`] (made in any namespace); registers it with the
    /// runtime, so it must be called on one of its threads.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            // SAFETY: `fd` is owned by the AsyncFd, which deregisters it before closing.
            fd: unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?,
        })
    }

    /// Waits for the next datagram and returns its link events.
    pub async fn next(&self) -> io::Result<Vec<LinkEvent>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: recv(2) into a buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                // ENOBUFS: events were lost; the caller rechecks every interface.
                return Err(e);
            }
            return Ok(parse(&buf[..n as usize]));
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The link events in one netlink datagram (malformed parts are skipped).
#[must_use]
pub fn parse(mut b: &[u8]) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(b, 0).map(|l| l as usize) else {
            break;
        };
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let ty = u16_at(b, 4).unwrap_or(0);
        let msg = &b[NLMSG_HDRLEN..len];
        if (ty == RTM_NEWLINK || ty == RTM_DELLINK) && msg.len() >= IFINFOMSG_LEN {
            let index = u32_at(msg, 4).unwrap_or(0);
            let mut attrs = &msg[IFINFOMSG_LEN..];
            let mut name = None;
            while attrs.len() >= 4 {
                let alen = usize::from(u16_at(attrs, 0).unwrap_or(0));
                let aty = u16_at(attrs, 2).unwrap_or(0);
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if aty == IFLA_IFNAME {
                    let v = &attrs[4..alen];
                    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                    name = Some(String::from_utf8_lossy(&v[..end]).into_owned());
                }
                attrs = &attrs[(alen + 3) & !3..];
            }
            if let Some(name) = name {
                out.push(if ty == RTM_NEWLINK {
                    LinkEvent::New { index, name }
                } else {
                    LinkEvent::Del { index, name }
                });
            }
        }
        let next = (len + 3) & !3;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, index: u32, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let alen = 4 + name.len() + 1;
        attr.extend_from_slice(&(alen as u16).to_ne_bytes());
        attr.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut ifi = vec![0u8; IFINFOMSG_LEN];
        ifi[4..8].copy_from_slice(&index.to_ne_bytes());
        let len = NLMSG_HDRLEN + ifi.len() + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&ifi);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn parses_new_and_del_links_in_one_datagram() {
        let mut d = msg(RTM_NEWLINK, 7, "eth1");
        d.extend(msg(RTM_DELLINK, 9, "wan0"));
        d.extend(msg(24, 1, "route")); // RTM_NEWROUTE: ignored
        assert_eq!(
            parse(&d),
            vec![
                LinkEvent::New {
                    index: 7,
                    name: "eth1".into()
                },
                LinkEvent::Del {
                    index: 9,
                    name: "wan0".into()
                },
            ]
        );
        assert!(parse(&d[..10]).is_empty(), "truncated input is ignored");
    }
}
