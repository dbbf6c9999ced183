//! The container's first process, on the child side of the clone in `create`:
//! it builds the container around itself, reports ready, waits for `start` on
//! the exec fifo, then becomes the user's program.

use std::cell::Cell;
use std::convert::Infallible;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, sethostname, setresgid, setresuid, setsid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{child_exit, finalize, lookup, unblock_all_signals};
use crate::error::{Error, Result, SysContext, chain};
use crate::rootfs;
use crate::sync::{Channel, Msg};
use crate::{hooks, namespaces};

pub struct Plan<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub fifo: PathBuf,
    pub cgroup_path: PathBuf,
    pub console: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Whether the runtime has prestart/createRuntime hooks to run mid-setup.
    pub runtime_hooks: bool,
    /// Namespaces the clone created.
    pub created: CloneFlags,
    /// Compiled before the clone, from the cache under the runtime root.
    pub seccomp: Option<super::seccomp::Program>,
    /// Bind sources detached by the runtime, by mount index (user
    /// namespaces only; see `rootfs::detach_bind_sources`).
    pub bind_trees: Vec<Option<OwnedFd>>,
    /// The v1 cgroup directories the init moves itself into once the
    /// runtime has made them (see `cgroups::SelfJoin`); empty when the
    /// runtime moves it.
    pub join_cgroups: Vec<PathBuf>,
}

struct Prepared {
    fifo: OwnedFd,
    /// The host's `/proc/self/fd`, held from before the chroot when the
    /// container has no mount namespace (and so no /proc of its own in
    /// its root): the fifo is reopened through it.
    proc_fds: Option<OwnedFd>,
    program: CString,
    state: String,
}

/// Runs in the cloned child; never returns.
pub fn run(plan: Plan<'_>, ch: Channel) -> ! {
    let prepared = match prepare(&plan, &ch) {
        Ok(p) => p,
        Err(e) => {
            let _ = ch.send(&Msg::Error(chain(&e)));
            child_exit(1);
        }
    };
    if ch.send(&Msg::Ready).is_err() {
        // The runtime died before it could record us: nobody could ever start
        // or delete this container, so do not linger.
        child_exit(1);
    }
    drop(ch);
    let err = match start(&plan, prepared) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(&err)
}

/// Says why the program did not start and ends the init. The runtime that
/// created us is gone; the container's stderr is the only place left to
/// say it, and it must be said while the exec fifo is still open: `start`
/// (or `run`) ends the container as soon as it sees the fifo closed empty.
fn fail(err: &Error) -> ! {
    let _ = writeln!(std::io::stderr(), "berth-runtime: {}", chain(err));
    child_exit(255);
}

fn set_dumpable(on: bool) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) };
}

fn prepare(plan: &Plan<'_>, ch: &Channel) -> Result<Prepared> {
    // Logged while stderr is still the runtime's (a terminal replaces it
    // later in the setup).
    tracing::debug!("child process in init(): building the container");
    let spec = plan.spec;
    unblock_all_signals();
    // Nobody in the container may open /proc/<us>/… while we still run the
    // runtime's code (CVE-2016-9962); execve makes us dumpable again.
    set_dumpable(false);

    let state = match ch.recv()? {
        Some(Msg::Go(state)) => state,
        Some(Msg::Error(e)) => return Err(Error::Init(e)),
        other => {
            return Err(Error::Init(format!(
                "the runtime went away before setup ({other:?})"
            )));
        }
    };

    if plan.created.contains(CloneFlags::CLONE_NEWUSER) {
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "becoming root in the user namespace (gid)".into())?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "becoming root in the user namespace (uid)".into())?;
    }
    namespaces::join_paths(spec)?;
    // The runtime creates our cgroup while we build the root; we wait for it
    // only where it matters: the first cgroup mount, or the end of setup.
    let new_cgroupns = namespaces::has(spec, LinuxNamespaceType::Cgroup)
        && namespaces::path_of(spec, LinuxNamespaceType::Cgroup).is_none();
    let cgroup_done = Cell::new(false);
    let cgroup_ready = || -> Result<()> {
        if cgroup_done.get() {
            return Ok(());
        }
        ch.expect(Msg::CgroupReady)?;
        crate::cgroups::join_self(&plan.join_cgroups)?;
        cgroup_done.set(true);
        if new_cgroupns {
            // Only once we are in our cgroup does a new cgroup namespace get
            // the right root.
            unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "creating cgroup namespace".into())?;
        }
        Ok(())
    };
    setsid().ctx(|| "setsid".into())?;
    if plan.created.contains(CloneFlags::CLONE_NEWNET) {
        // A network namespace of its own has its loopback up, as runc and
        // crun give it (`--network none` still has 127.0.0.1).
        namespaces::loopback_up().ctx(|| "setting up the loopback interface".into())?;
    }
    if !plan.no_new_keyring {
        join_session_keyring();
    }
    if namespaces::has(spec, LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            sethostname(h).ctx(|| format!("setting hostname {h}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            set_domainname(d)?;
        }
    }

    let has_mntns = namespaces::has(spec, LinuxNamespaceType::Mount);
    let in_userns = namespaces::has(spec, LinuxNamespaceType::User);
    if has_mntns {
        rootfs::prepare(&rootfs::Context {
            spec,
            rootfs: &plan.rootfs,
            cgroup_path: &plan.cgroup_path,
            in_userns,
            new_cgroupns: namespaces::has(spec, LinuxNamespaceType::Cgroup),
            bind_trees: &plan.bind_trees,
            cgroup_ready: &cgroup_ready,
        })?;
    }
    cgroup_ready()?;
    if plan.runtime_hooks {
        ch.send(&Msg::RunHooks)?;
        ch.expect(Msg::HooksDone)?;
    }
    let spec_hooks = spec.hooks().as_ref();
    hooks::run(
        "createContainer",
        spec_hooks.and_then(|h| h.create_container().as_ref()),
        &state,
    )?;

    // The fifo lives in the state directory, which pivot_root hides: hold it by
    // an O_PATH descriptor and reopen it through /proc when `start` comes.
    let raw = open(&plan.fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("opening {}", plan.fifo.display()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let fifo = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut proc_fds = None;
    if has_mntns {
        rootfs::enter(&plan.rootfs, plan.no_pivot)?;
        // `start` reopens the fifo through the container's /proc: without
        // one the init would die after create said it worked.
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        nix::sys::stat::stat(path.as_str()).ctx(|| {
            format!("checking the exec fifo at {path} (is /proc mounted in the container?)")
        })?;
    } else {
        let raw = open(
            "/proc/self/fd",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "opening /proc/self/fd".into())?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        proc_fds = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        nix::unistd::chroot(&plan.rootfs).ctx(|| format!("chroot {}", plan.rootfs.display()))?;
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Invalid("process is missing".into()))?;
    if process.terminal().unwrap_or(false) {
        let sock = plan
            .console
            .ok_or_else(|| Error::Invalid("terminal requested but no console socket".into()))?;
        crate::console::setup_in_container(sock, process.console_size(), true)?;
    }
    rootfs::sysctls(spec)?;
    if has_mntns {
        rootfs::finish(spec)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("writing", "/proc/self/oom_score_adj", e))?;
    }
    finalize::chdir_checked(process.cwd())?;
    let args = process.args().as_deref().unwrap_or(&[]);
    let env = process.env().as_deref().unwrap_or(&[]);
    let program = lookup::find(&args[0], env).map_err(Error::Invalid)?;
    Ok(Prepared {
        fifo,
        proc_fds,
        program,
        state,
    })
}

fn start(plan: &Plan<'_>, p: Prepared) -> Result<Infallible> {
    let spec = plan.spec;
    let path = format!("/proc/self/fd/{}", p.fifo.as_raw_fd());

    // Blocks until `start` opens the other end.
    let f = match &p.proc_fds {
        Some(dir) => {
            let name = CString::new(p.fifo.as_raw_fd().to_string())
                .map_err(|_| Error::Invalid("fd number".into()))?;
            // SAFETY: a NUL-terminated name relative to a directory fd we
            // own; the returned descriptor is owned right away.
            let raw = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                )
            };
            if raw < 0 {
                return Err(Error::sys("opening exec fifo", nix::errno::Errno::last()));
            }
            // SAFETY: openat returned a fresh descriptor that nothing else owns.
            fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) })
        }
        None => fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening exec fifo", &path, e))?,
    };
    drop(p.fifo);
    drop(p.proc_fds);
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Invalid("process is missing".into()))?;
    // startContainer hooks run in the container as its process will (its
    // user, capabilities and seccomp filter), as runc runs them. Then the
    // byte that lets `start` return: a failing hook fails `start` (it
    // reads the fifo closed empty), and poststart hooks come after these.
    let last = || {
        let started = hooks::run(
            "startContainer",
            spec.hooks()
                .as_ref()
                .and_then(|h| h.start_container().as_ref()),
            &p.state,
        );
        if let Err(e) = started {
            fail(&e);
        }
        (&f).write_all(b"0")
            .map_err(|e| Error::io("writing exec fifo", &path, e))
    };
    let err = match finalize::exec(finalize::Final {
        process,
        seccomp: plan.seccomp.as_ref(),
        preserve_fds: plan.preserve_fds,
        program: p.program,
        before_exec: Some(&last),
    }) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // With the fifo still open (see `fail`): identity, capabilities and
    // seccomp come before the byte that lets `start` return.
    fail(&err)
}

fn join_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks the kernel for a new anonymous session keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        // Kernels without keyrings, or a full key quota: the container simply
        // shares the caller's keyring, as runc allows.
        tracing::debug!("no new session keyring: {}", nix::errno::Errno::last());
    }
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: setdomainname reads exactly len bytes from the pointer.
    let r = unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) };
    if r != 0 {
        return Err(Error::sys(
            format!("setting domainname {d}"),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}
