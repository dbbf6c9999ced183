//! The processes of `exec`. The runtime forks an intermediate child that joins
//! the container's cgroup and namespaces (all at once, through a pidfd of the
//! container's init), then clones the final process with CLONE_PARENT so that it
//! is the runtime's own child (a foreground exec can wait for it) and, once the
//! runtime exits, is adopted by the caller's subreaper (the shim).

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::{CloneFlags, setns};
use nix::unistd::{Pid, getpid, setsid};
use oci_spec::runtime::Process;

use super::{Forked, child_exit, clone, finalize, lookup, unblock_all_signals};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result, SysContext, chain};
use crate::namespaces;
use crate::sync::{Channel, Msg};

pub struct Plan<'a> {
    pub init_pid: Pid,
    /// The container's namespaces, to be joined.
    pub namespaces: CloneFlags,
    pub process: &'a Process,
    /// Compiled before the clone, from the cache under the runtime root.
    pub seccomp: Option<&'a super::seccomp::Program>,
    pub cgroup: &'a Cgroup,
    /// Sub-cgroups to move into after the container's (`--cgroup`).
    pub sub_cgroups: &'a [std::path::PathBuf],
    pub console: Option<RawFd>,
    pub preserve_fds: u32,
    /// The container's root, for containers made with --no-pivot (their mount
    /// namespace's root is not the container's root).
    pub root: Option<File>,
    /// The container's v1 cgroup directories, which the process joins
    /// itself (see `cgroups::SelfJoin`); None when the cgroup is joined by
    /// writing cgroup.procs.
    pub join_cgroups: Option<&'a [std::path::PathBuf]>,
    /// Whether the clone already put the process in the container's unified
    /// cgroup.
    pub in_unified: bool,
}

/// The intermediate child; never returns.
pub fn run(plan: Plan<'_>, ch: Channel) -> ! {
    unblock_all_signals();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match intermediate(&plan, &ch) {
        Ok(Forked::Parent(pid)) => {
            let _ = ch.send(&Msg::Pid(pid.as_raw()));
            child_exit(0);
        }
        Ok(Forked::Child) => {
            let err = match final_process(&plan) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = ch.send(&Msg::Error(chain(&err)));
            child_exit(1);
        }
        Err(e) => {
            let _ = ch.send(&Msg::Error(chain(&e)));
            child_exit(1);
        }
    }
}

fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn join(plan: &Plan<'_>) -> Result<()> {
    if plan.namespaces.is_empty() {
        return Ok(());
    }
    if let Ok(pidfd) = pidfd_open(plan.init_pid)
        && setns(pidfd.as_fd(), plan.namespaces).is_ok()
    {
        return Ok(());
    }
    // Kernels before 5.8: one namespace file at a time, all opened before the
    // first setns changes what /proc shows us, the user namespace first.
    let mut files = Vec::new();
    for (flag, name) in [
        (CloneFlags::CLONE_NEWUSER, "user"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        (CloneFlags::CLONE_NEWNS, "mnt"),
    ] {
        if plan.namespaces.contains(flag) {
            let path = format!("/proc/{}/ns/{name}", plan.init_pid);
            let f = File::open(&path).map_err(|e| Error::io("opening namespace", &path, e))?;
            files.push((flag, name, f));
        }
    }
    for (flag, name, f) in files {
        setns(f.as_fd(), flag).ctx(|| format!("joining the container's {name} namespace"))?;
    }
    Ok(())
}

fn intermediate(plan: &Plan<'_>, _ch: &Channel) -> Result<Forked> {
    match plan.join_cgroups {
        Some(dirs) => {
            crate::cgroups::join_self(dirs)?;
            if !plan.in_unified {
                plan.cgroup.add_to_unified(getpid());
            }
        }
        None => plan.cgroup.add_task(getpid())?,
    }
    for dir in plan.sub_cgroups {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, getpid().as_raw().to_string())
            .map_err(|e| Error::io("joining the sub-cgroup", &procs, e))?;
    }
    join(plan)?;
    clone(CloneFlags::empty(), true).ctx(|| "cloning the exec process".into())
}

fn final_process(plan: &Plan<'_>) -> Result<Infallible> {
    if let Some(root) = &plan.root {
        nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "entering the container's root".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot to the container's root".into())?;
    }
    let p = plan.process;
    if p.terminal().unwrap_or(false) {
        setsid().ctx(|| "setsid".into())?;
        let sock = plan
            .console
            .ok_or_else(|| Error::Invalid("terminal requested but no console socket".into()))?;
        crate::console::setup_in_container(sock, p.console_size(), false)?;
    }
    finalize::chdir_checked(p.cwd())?;
    let args = p.args().as_deref().unwrap_or(&[]);
    let env = p.env().as_deref().unwrap_or(&[]);
    let program = lookup::find(&args[0], env).map_err(Error::Invalid)?;
    finalize::exec(finalize::Final {
        process: p,
        seccomp: plan.seccomp,
        preserve_fds: plan.preserve_fds,
        program,
        before_exec: None,
    })
}

/// The namespaces an exec joins: every one the container has.
pub fn namespaces_of(spec: &oci_spec::runtime::Spec) -> CloneFlags {
    namespaces::all_flags(spec)
}
