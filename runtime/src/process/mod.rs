//! Starting processes inside a container: the init created by `create`
//! ([`init`]), the extra processes of `exec` ([`exec`]), and what both do last
//! before `execve` ([`finalize`]).

pub mod caps;
pub mod exec;
pub mod finalize;
pub mod init;
pub mod lookup;
pub mod seccomp;
pub mod wait;

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Which side of a clone we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// clone(2) without a new stack: fork semantics, plus the namespace flags, so the
/// child is born in its new namespaces (a new pid namespace needs no second fork).
///
/// The caller must be single-threaded (the runtime never starts threads), so the
/// child's copy of the address space holds no lock another thread owned.
pub fn clone(flags: CloneFlags, parent: bool) -> nix::Result<Forked> {
    let mut raw = flags.bits() as libc::c_ulong;
    if parent {
        raw |= libc::CLONE_PARENT as libc::c_ulong;
    }
    raw |= libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a null stack makes clone behave as fork (the child runs on a copy of
    // the caller's stack); the process is single-threaded as documented above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            raw,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// `clone` with the child born in the cgroup2 directory `cgroup` (clone3's
/// CLONE_INTO_CGROUP): no migration afterwards, and so none of the
/// kernel's global migration lock, whose taking waits for an RCU grace
/// period. Returns whether the child was placed; where clone3 is refused
/// (kernels before 5.7, seccomp profiles that answer it with ENOSYS) it is
/// a plain `clone` and the caller moves the child itself.
pub fn clone_into(
    flags: CloneFlags,
    cgroup: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<(Forked, bool)> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 reads `args` (its size given); a zero stack without
    // CLONE_VM is fork semantics, as `clone` above, and the same
    // single-threaded rule holds.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => {
            let e = nix::errno::Errno::last();
            tracing::debug!("clone3 into a cgroup refused ({e}): plain clone");
            clone(flags, false).map(|f| (f, false))
        }
        0 => Ok((Forked::Child, true)),
        pid => Ok((Forked::Parent(Pid::from_raw(pid as i32)), true)),
    }
}

/// Ends a child process without running destructors or atexit handlers that
/// belong to the parent's copy of the program.
pub fn child_exit(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Unblocks every signal: the runtime blocks some for its signalfd, and a
/// child must not pass that mask on to the container's process.
pub fn unblock_all_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}
