//! Which engine owns a bridge on this host. Each berthd holds, while it
//! lives, an abstract unix socket named after its default bridge: the kernel
//! releases it when the process dies, however it dies, and it is scoped to
//! the network namespace the bridge lives in, so no file can go stale.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

/// A bridge this engine owns until the claim is dropped.
#[derive(Debug)]
pub struct Claim {
    pub bridge: String,
    _socket: UnixListener,
}

fn address(bridge: &str) -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("berth/bridge/{bridge}").as_bytes())
}

/// Claims `bridge`; `None` when a running engine holds it.
pub fn claim(bridge: &str) -> std::io::Result<Option<Claim>> {
    match UnixListener::bind_addr(&address(bridge)?) {
        Ok(socket) => Ok(Some(Claim {
            bridge: bridge.to_string(),
            _socket: socket,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// Claims `bridge`, waiting up to `patience` for a holder that is going
/// away (an engine being stopped or killed lets go when its last process
/// ends) before taking it for a running one.
pub fn claim_patiently(
    bridge: &str,
    patience: std::time::Duration,
) -> std::io::Result<Option<Claim>> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(c) = claim(bridge)? {
            return Ok(Some(c));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The processes (pid, command) that hold `bridge`'s claim, as
/// /proc/net/unix and /proc/*/fd tell them: for an error that names them.
pub fn holders(bridge: &str) -> Vec<(u32, String)> {
    let name = format!("@berth/bridge/{bridge}");
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let inodes: Vec<String> = table
        .lines()
        .filter(|l| l.split_whitespace().nth(7) == Some(name.as_str()))
        .filter_map(|l| l.split_whitespace().nth(6).map(|i| format!("socket:[{i}]")))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let holds = std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|t| inodes.iter().any(|i| t.to_string_lossy() == *i))
            });
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// The IPv4 address and prefix an interface has, if it exists and has one.
pub fn ipv4_of(interface: &str) -> Option<ipnet::Ipv4Net> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if a.interface_name != interface {
            continue;
        }
        let ip = a.address.as_ref()?.as_sockaddr_in().map(|s| s.ip());
        let mask = a
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map(|s| s.ip());
        if let (Some(ip), Some(mask)) = (ip, mask) {
            let prefix = u32::from(mask).leading_ones() as u8;
            return ipnet::Ipv4Net::new(ip, prefix).ok();
        }
    }
    None
}

/// The IPv4 networks of every interface of this host.
pub fn host_networks() -> Vec<ipnet::Ipv4Net> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            ipnet::Ipv4Net::new(ip, u32::from(mask).leading_ones() as u8)
                .ok()
                .map(|n| n.trunc())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_until_dropped() {
        let name = format!("bt-claim-{}", std::process::id());
        let first = claim(&name).unwrap().expect("free");
        assert!(claim(&name).unwrap().is_none(), "claimed twice");
        let me = std::process::id();
        assert!(
            holders(&name).iter().any(|(pid, _)| *pid == me),
            "{:?}",
            holders(&name)
        );
        drop(first);
        assert!(claim(&name).unwrap().is_some(), "not released");
    }

    #[test]
    fn loopback_has_its_address() {
        let lo = ipv4_of("lo").expect("lo has 127.0.0.1");
        assert_eq!(lo.addr(), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(lo.prefix_len(), 8);
        assert!(host_networks().iter().any(|n| n.contains(&lo.addr())));
        assert!(ipv4_of("no-such-if0").is_none());
    }
}
