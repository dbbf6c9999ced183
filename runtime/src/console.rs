//! Terminals: the pty a container process gets, created inside the container
//! (on its own devpts) with the master sent out over a console socket as runc
//! does (SCM_RIGHTS); and, for a foreground `run`/`exec`, the host side that
//! puts the user's terminal in raw mode and copies bytes both ways.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::termios::{self, SetArg, Termios};
use oci_spec::runtime::Box as ConsoleSize;

use crate::error::{Error, Result, SysContext};

pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(|e| Error::io("connecting to console socket", path, e))
}

pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "sending the pty master over the console socket".into())?;
    Ok(())
}

pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| "receiving the pty master".into())?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::sys("reading control message", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(Error::Invalid(
        "no pty master received on the console socket".into(),
    ))
}

/// Opens a pty on the container's devpts (call after pivot_root), makes it the
/// process's controlling terminal and stdio, and sends the master to `sock`.
/// With `mount_console`, the slave is also bind-mounted on /dev/console.
pub fn setup_in_container(
    sock: RawFd,
    size: Option<ConsoleSize>,
    mount_console: bool,
) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "opening /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let slave_path = ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {slave_path}"))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some(sz) = size {
        set_size(master.as_raw_fd(), sz.height() as u16, sz.width() as u16);
    }
    if mount_console {
        let console = Path::new("/dev/console");
        crate::fsutil::create_mount_point(console, true)?;
        nix::mount::mount(
            Some(slave_path.as_str()),
            console,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind mounting {slave_path} on /dev/console"))?;
    }
    send_fd(sock, master.as_raw_fd(), "/dev/ptmx")?;
    drop(master);
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| "dup2 of the pty slave".into())?;
    }
    // SAFETY: TIOCSCTTY on our own stdin with an integer argument.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::sys(
            "making the pty the controlling terminal",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own for the duration of the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

pub fn copy_size(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes into a winsize we own.
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } == 0 {
        set_size(to, ws.ws_row, ws.ws_col);
    }
}

/// The user's terminal in raw mode for as long as this lives.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: fd 0 stays open for the life of the process.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(bfd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(bfd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in enter.
        let bfd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(bfd, SetArg::TCSANOW, &self.saved);
    }
}
