//! Which namespaces a container gets new, which it joins by path, and the
//! id mappings of a new user namespace.

use std::fs;
use std::os::fd::AsFd;

use nix::sched::{CloneFlags, setns};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Spec};

use crate::error::{Error, Result, SysContext};

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn list(spec: &Spec) -> &[LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or(&[])
}

/// Namespaces created fresh (no path in the spec).
pub fn new_flags(spec: &Spec) -> CloneFlags {
    list(spec)
        .iter()
        .filter(|n| n.path().is_none())
        .fold(CloneFlags::empty(), |acc, n| acc | flag(n.typ()))
}

/// All namespaces the container has, fresh or joined.
pub fn all_flags(spec: &Spec) -> CloneFlags {
    list(spec)
        .iter()
        .fold(CloneFlags::empty(), |acc, n| acc | flag(n.typ()))
}

pub fn has(spec: &Spec, t: LinuxNamespaceType) -> bool {
    list(spec).iter().any(|n| n.typ() == t)
}

pub fn path_of(spec: &Spec, t: LinuxNamespaceType) -> Option<&std::path::Path> {
    list(spec)
        .iter()
        .find(|n| n.typ() == t)
        .and_then(|n| n.path().as_deref())
}

/// Sets `lo` up in the caller's network namespace.
pub fn loopback_up() -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: both ioctls read or write the ifreq above, which outlives
    // them, on a socket that is open.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::Error::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Joins the namespaces given by path, the user namespace first (it decides what
/// the others may do). The pid namespace is not joined here: it applies only to
/// children, so the runtime joins it before it clones the container's process.
pub fn join_paths(spec: &Spec) -> Result<()> {
    let mut targets: Vec<&LinuxNamespace> = list(spec)
        .iter()
        .filter(|n| n.path().is_some() && n.typ() != LinuxNamespaceType::Pid)
        .collect();
    targets.sort_by_key(|n| n.typ() != LinuxNamespaceType::User);
    for ns in targets {
        let Some(path) = ns.path() else { continue };
        let f = fs::File::open(path).map_err(|e| Error::io("opening namespace", path, e))?;
        setns(f.as_fd(), flag(ns.typ())).ctx(|| {
            format!(
                "joining {} namespace {}",
                proc_name(ns.typ()),
                path.display()
            )
        })?;
    }
    Ok(())
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes uid_map and gid_map of the child's new user namespace.
pub fn write_id_maps(pid: nix::unistd::Pid, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, map_text(maps.as_deref().unwrap_or(&[])))
            .map_err(|e| Error::io("writing id mapping", path, e))?;
    }
    Ok(())
}

/// The host uid and gid that the container's root maps to, when the container
/// has a user namespace of its own.
pub fn root_host_ids(spec: &Spec) -> Option<(u32, u32)> {
    if !has(spec, LinuxNamespaceType::User) {
        return None;
    }
    let linux = spec.linux().as_ref()?;
    let find = |maps: &Option<Vec<LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    Some((find(linux.uid_mappings())?, find(linux.gid_mappings())?))
}
