//! `kill`: a signal to the container's init, or with --all to every process in
//! its cgroup.

use nix::unistd::Pid;

use crate::cgroups::Cgroup;
use crate::cli::{GlobalOpts, KillArgs};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::signals;

fn send(pid: Pid, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) with plain integers; real-time signals are not in nix's enum.
    let r = unsafe { libc::kill(pid.as_raw(), sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

pub fn run(g: &GlobalOpts, a: &KillArgs) -> Result<i32> {
    let sig = signals::parse(&a.signal)?;
    let c = Container::load(&g.root, &a.id)?;
    let status = c.status();
    // --all signals whatever is left in the cgroup, nothing for a stopped
    // container, and succeeds as runc's does.
    if status == Status::Stopped && !a.all {
        return Err(Error::BadState {
            id: c.id().into(),
            status: "stopped",
            action: "container not running",
        });
    }
    if a.all {
        let cg = Cgroup::open(&c.state.cgroup_path)?;
        for pid in cg.pids()? {
            let _ = send(pid, sig);
        }
        if status == Status::Paused && sig == libc::SIGKILL {
            let _ = cg.freeze(false);
        }
        return Ok(0);
    }
    send(c.pid(), sig)
        .map_err(|e| Error::sys(format!("sending signal {sig} to container {}", c.id()), e))?;
    Ok(0)
}
