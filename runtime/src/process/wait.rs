//! A foreground `run` or `exec`: wait for the process, pass on the signals the
//! runtime receives, and with a terminal, copy between the user's terminal and
//! the container's pty.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console::{RawMode, copy_size};
use crate::error::{Result, SysContext};

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGCHLD,
];

/// Signals blocked and read from a signalfd, set up before the clone so none
/// is lost in between. Children unblock them first thing.
pub struct Signals(SignalFd);

impl Signals {
    pub fn block() -> Result<Signals> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        set.thread_block().ctx(|| "blocking signals".into())?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .ctx(|| "creating signalfd".into())?;
        Ok(Signals(fd))
    }
}

pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::from(100u16));
            }
            Err(_) => return false,
        }
    }
    true
}

/// Waits for `child` and returns its exit status the shell way (128+signal).
pub fn supervise(child: Pid, signals: Signals, tty: Option<OwnedFd>) -> Result<i32> {
    let _raw = tty.as_ref().and_then(|_| RawMode::enter(0));
    if let Some(m) = &tty {
        copy_size(0, m.as_raw_fd());
    }
    // SAFETY: our stdio descriptors stay open for the life of the process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    let mut stdin_open = tty.is_some();
    let mut master_open = tty.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let mut status = None;
    loop {
        if let Some(code) = status
            && !master_open
        {
            return Ok(code);
        }
        let sfd = signals.0.as_fd();
        let mut fds = vec![PollFd::new(sfd, PollFlags::POLLIN)];
        let master = tty.as_ref().map(|m| m.as_fd());
        if let (Some(m), true) = (master, master_open) {
            fds.push(PollFd::new(m, PollFlags::POLLIN));
        }
        if stdin_open && status.is_none() {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        // Once the process is gone, drain what is left on the pty without waiting.
        let timeout = if status.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => master_open = false,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(crate::error::Error::sys("poll", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if ready[0] {
            while let Ok(Some(info)) = signals.0.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    loop {
                        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(ws) => {
                                if ws.pid() == Some(child) {
                                    status = exit_code(ws);
                                }
                            }
                        }
                    }
                } else if sig == libc::SIGWINCH {
                    if let Some(m) = &tty {
                        copy_size(0, m.as_raw_fd());
                    }
                } else if let Ok(s) = Signal::try_from(sig) {
                    let _ = kill(child, s);
                }
            }
        }
        let mut idx = 1;
        if let (Some(m), true) = (master, master_open) {
            if ready.get(idx).copied().unwrap_or(false) {
                match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(Errno::EIO) => master_open = false,
                    Ok(n) => {
                        if !write_all(stdout, &buf[..n]) {
                            master_open = false;
                        }
                    }
                    Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                    Err(_) => master_open = false,
                }
            }
            idx += 1;
        }
        if stdin_open && ready.get(idx).copied().unwrap_or(false) {
            match nix::unistd::read(0, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => {
                    if let Some(m) = master {
                        write_all(m, &buf[..n]);
                    }
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}
