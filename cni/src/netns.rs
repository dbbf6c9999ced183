//! Network namespaces that exist apart from any process: made before a
//! container's task starts (so CNI can wire them first) and kept by a bind
//! mount of the namespace file, as `ip netns add` does, under the engine's
//! run directory.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::CniError;

fn err(path: &Path, e: impl Into<std::io::Error>) -> CniError {
    CniError::Netns {
        path: path.display().to_string(),
        source: e.into(),
    }
}

/// Makes a new network namespace held at `path`.
pub fn create(path: &Path) -> Result<(), CniError> {
    make(path, false, false)
}

/// Makes a new network namespace held at `path` with its loopback
/// interface up, which is all CNI's loopback plugin does (the kernel
/// gives `lo` 127.0.0.1 and ::1 as it comes up): without a plugin
/// process per container start.
pub fn create_with_loopback(path: &Path) -> Result<(), CniError> {
    make(path, true, false)
}

/// [`create_with_loopback`], and the interfaces made in it later start
/// without IPv6, as Docker's do on networks without it (no link-local
/// address, no router solicitations); the bridge plugin turns IPv6 on for
/// an interface it gives an IPv6 address. `lo` keeps `::1`.
pub fn create_for_ipv4_interfaces(path: &Path) -> Result<(), CniError> {
    make(path, true, true)
}

fn make(path: &Path, loopback: bool, ipv4_interfaces: bool) -> Result<(), CniError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(path, e))?;
    }
    std::fs::File::create(path).map_err(|e| err(path, e))?;
    let target = path.to_path_buf();
    // unshare moves only the calling thread: a thread of its own, which
    // ends right after, keeps the daemon's threads where they are.
    let made = std::thread::spawn(move || -> Result<(), CniError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| err(&target, e))?;
        if loopback {
            loopback_up().map_err(|e| err(&target, e))?;
        }
        // The namespace's own sysctl, as this thread is in it now; a
        // kernel without IPv6 has none to set.
        if ipv4_interfaces {
            match std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1") {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err(&target, e));
                }
                _ => {}
            }
        }
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err(&target, e))
    })
    .join()
    .map_err(|_| err(path, std::io::Error::other("the namespace thread panicked")))?;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Sets `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
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
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write an ifreq that
    // lives across the calls, on a socket that is open.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `f` inside the network namespace at `path`, on a thread of its
/// own that ends with it (setns moves only the calling thread: the
/// daemon's threads stay where they are). Sockets `f` makes belong to the
/// namespace.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CniError> {
    let ns = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let target = path.to_path_buf();
    std::thread::spawn(move || -> Result<T, CniError> {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| err(&target, e))?;
        Ok(f())
    })
    .join()
    .map_err(|_| err(path, std::io::Error::other("the namespace thread panicked")))?
}

/// Removes a namespace made by [`create`]; one that is already gone is
/// fine.
pub fn remove(path: &Path) -> Result<(), CniError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(path, e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path, e)),
    }
}
