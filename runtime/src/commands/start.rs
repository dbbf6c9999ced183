//! `start`: releases a created container's process by opening the exec fifo.

use std::fs;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::cli::{GlobalOpts, IdArg};
use crate::container::{self, Container, EXEC_FIFO, Status};
use crate::error::{Error, Result, SysContext};
use crate::hooks;

pub fn run(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    start(&c)?;
    Ok(0)
}

pub fn start(c: &Container) -> Result<()> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::BadState {
                id: c.id().into(),
                status: "stopped",
                action: "cannot start a container that has stopped",
            });
        }
        s => {
            return Err(Error::BadState {
                id: c.id().into(),
                status: s.as_str(),
                action: "cannot start an already running container",
            });
        }
    }
    let fifo = c.dir.join(EXEC_FIFO);
    // Non-blocking, so a process that died before anyone started it cannot leave
    // us waiting forever: we poll and check that it still lives.
    let raw = open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", fifo.display()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let begun = Instant::now();
    // The process writes its byte just before it becomes the user's
    // program, and its end of the fifo closes on that exec (close-on-exec):
    // reading to the end (as runc's start reads it) returns once the
    // program runs. A caller that reads the container's processes or output
    // right after `start` then finds the program, not the runtime's init.
    let mut released = false;
    loop {
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut p, PollTimeout::from(50u16)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 1];
                match nix::unistd::read(raw, &mut b) {
                    Ok(1) => released = true,
                    Ok(_) if released => break,
                    Ok(_) => {
                        return Err(Error::Init(
                            "the container's process closed the exec fifo without starting".into(),
                        ));
                    }
                    Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(Error::sys("reading exec fifo", e)),
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("polling exec fifo", e)),
        }
        if !released && !container::process_alive(c.state.pid, c.state.pid_start) {
            return Err(Error::Init(
                "the container's process exited before it was started".into(),
            ));
        }
        if begun.elapsed() > Duration::from_secs(60) {
            return Err(Error::Init(
                "timed out waiting for the container's process".into(),
            ));
        }
    }
    fs::remove_file(&fifo).map_err(|e| Error::io("removing", &fifo, e))?;
    let state = c.oci_state(Status::Running).to_string();
    hooks::run_warn(
        "poststart",
        c.state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().as_ref()),
        &state,
    );
    Ok(())
}
