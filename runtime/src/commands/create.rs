//! `create`: everything up to the point where the container's process waits for
//! `start`. Shared with `run`, which continues in the same process.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, mkfifo};
use oci_spec::runtime::LinuxNamespaceType;

use crate::cgroups::{self, Cgroup};
use crate::cli::{CreateArgs, GlobalOpts};
use crate::container::{self, Container, EXEC_FIFO, State, Status};
use crate::error::{Error, Result, SysContext};
use crate::process::wait::Signals;
use crate::process::{self, Forked, init};
use crate::sync::{Channel, Msg};
use crate::{hooks, namespaces, spec};

pub fn run(g: &GlobalOpts, a: &CreateArgs) -> Result<i32> {
    launch(g, a, false)?;
    Ok(0)
}

/// A container created by this process, with what a foreground `run` needs.
pub struct Launched {
    pub container: Container,
    pub cgroup: Option<Cgroup>,
    pub console: Option<OwnedFd>,
    pub signals: Option<Signals>,
}

/// Undoes a half-made container if create fails at any step.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    child: Option<Pid>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.remove()
        {
            tracing::warn!("removing cgroup after failed create: {e}");
        }
        if let Some(dir) = &self.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Undo {
    fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

pub fn launch(g: &GlobalOpts, a: &CreateArgs, foreground: bool) -> Result<Launched> {
    container::validate_id(&a.id)?;
    if g.systemd_cgroup {
        return Err(Error::Invalid(
            "--systemd-cgroup is not supported: berth-runtime manages cgroups through cgroupfs"
                .into(),
        ));
    }
    let bundle = fs::canonicalize(&a.bundle).map_err(|e| Error::io("bundle", &a.bundle, e))?;
    let spec = spec::load(&bundle)?;
    spec::validate(&spec, &bundle.join("config.json"))?;
    let rootfs = spec::rootfs(&spec, &bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Invalid("process is missing".into()))?;
    let terminal = process.terminal().unwrap_or(false);

    // The socket the container's pty master goes to: the caller's, or our own
    // when we will sit in the foreground and copy the terminal ourselves.
    let (console_child, console_parent): (Option<UnixStream>, Option<UnixStream>) =
        match (terminal, &a.console_socket, foreground) {
            (true, Some(p), _) => (Some(crate::console::connect(p)?), None),
            (true, None, true) => {
                let (x, y) = UnixStream::pair()
                    .map_err(|e| Error::io("creating console socket pair", "", e))?;
                (Some(x), Some(y))
            }
            (true, None, false) => {
                return Err(Error::Invalid(
                    "cannot allocate a terminal for a detached container without --console-socket"
                        .into(),
                ));
            }
            (false, Some(_), _) => {
                return Err(Error::Invalid(
                    "--console-socket was given but process.terminal is false".into(),
                ));
            }
            (false, None, _) => (None, None),
        };

    let dir = container::make_state_dir(&g.root, &a.id)?;
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: None,
        child: None,
    };
    let fifo = dir.join(EXEC_FIFO);
    mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .ctx(|| format!("creating {}", fifo.display()))?;
    if let Some((uid, gid)) = namespaces::root_host_ids(&spec) {
        // The container's root opens the fifo from inside its user namespace.
        nix::unistd::chown(
            &fifo,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .ctx(|| format!("chown {}", fifo.display()))?;
    }

    let cgroup_path = cgroups::path_for(&spec, &a.id);
    // A process that joins a frozen cgroup stops in the kernel before it
    // can tell us anything: refused up front, with runc's words.
    if cgroups::is_frozen(&cgroup_path) {
        return Err(Error::Invalid(
            "container's cgroup unexpectedly frozen".into(),
        ));
    }
    // Processes already there share the container's limits, and a delete
    // of the container ends them: said, as runc says it.
    let present = cgroups::processes_in(&cgroup_path);
    if present > 0 {
        tracing::warn!("container's cgroup is not empty: {present} process(es) found");
    }

    let (ours, theirs) = Channel::pair()?;
    let signals = if foreground {
        Some(Signals::block()?)
    } else {
        None
    };

    // A pid namespace given by path applies to our children only: join it for
    // the clone and return to our own right after.
    let own_pidns = match namespaces::path_of(&spec, LinuxNamespaceType::Pid) {
        Some(path) => {
            let own = fs::File::open("/proc/self/ns/pid")
                .map_err(|e| Error::io("opening", "/proc/self/ns/pid", e))?;
            let target =
                fs::File::open(path).map_err(|e| Error::io("opening namespace", path, e))?;
            setns(target.as_fd(), CloneFlags::CLONE_NEWPID)
                .ctx(|| format!("joining pid namespace {}", path.display()))?;
            Some(own)
        }
        None => None,
    };

    let runtime_hooks = spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    let created = namespaces::new_flags(&spec) - CloneFlags::CLONE_NEWCGROUP;
    let seccomp = crate::process::seccomp::for_spec(&spec)?;
    let userns = namespaces::has(&spec, LinuxNamespaceType::User);
    let self_join = cgroups::SelfJoin::plan(&cgroup_path, userns);
    // Undone from here on: the plan may have made the unified directory.
    undo.cgroup = Some(Cgroup::open(&cgroup_path)?);
    let bind_trees = if created.contains(CloneFlags::CLONE_NEWUSER) {
        crate::rootfs::detach_bind_sources(&spec)?
    } else {
        Vec::new()
    };
    let plan = init::Plan {
        spec: &spec,
        rootfs: rootfs.clone(),
        fifo: fifo.clone(),
        cgroup_path: cgroup_path.clone(),
        console: console_child.as_ref().map(|s| s.as_raw_fd()),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        runtime_hooks,
        created,
        seccomp,
        bind_trees,
        join_cgroups: self_join.as_ref().map(|j| j.v1.clone()).unwrap_or_default(),
    };

    // The stage names are runc's, which tools and runc's own tests look for
    // in --debug output; berth does in one clone what nsexec does in three.
    tracing::debug!("=> nsexec container setup: clone with {created:?}");
    let unified = self_join.as_ref().and_then(|j| j.unified.as_ref());
    let (forked, in_unified) = match unified {
        Some(dir) => process::clone_into(created, dir.as_fd()),
        None => process::clone(created, false).map(|f| (f, false)),
    }
    .ctx(|| "cloning the container process".into())?;
    let pid = match forked {
        Forked::Child => {
            drop(ours);
            init::run(plan, theirs);
        }
        Forked::Parent(pid) => pid,
    };
    undo.child = Some(pid);
    // The child has its copies; ours of the detached bind trees would keep
    // their sources busy for as long as a foreground `run` lasts.
    drop(plan);
    drop(theirs);
    drop(console_child);
    if let Some(own) = own_pidns {
        setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
            .ctx(|| "returning to our pid namespace".into())?;
    }

    if created.contains(CloneFlags::CLONE_NEWUSER) {
        namespaces::write_id_maps(pid, &spec)?;
    }

    let c = Container {
        dir: dir.clone(),
        state: State {
            id: a.id.clone(),
            pid: pid.as_raw(),
            pid_start: container::process_start_time(pid.as_raw()).unwrap_or(0),
            bundle: bundle.clone(),
            rootfs,
            created: container::now_rfc3339(),
            owner: owner_name(),
            cgroup_path: cgroup_path.clone(),
            no_pivot: a.no_pivot,
            annotations: spec.annotations().clone().unwrap_or_default(),
            config: spec.clone(),
        },
    };
    let hook_state = c.oci_state(Status::Creating).to_string();
    send_to_init(&ours, &Msg::Go(hook_state.clone()))?;
    // The child builds its root meanwhile; it waits for this only at its first
    // cgroup mount.
    let Some(cgroup) = undo.cgroup.as_ref() else {
        return Err(Error::Invalid("the container's cgroup went missing".into()));
    };
    match &self_join {
        // The init moves itself once the directories exist and hold
        // their limits (see `cgroups::SelfJoin`).
        Some(join) => {
            join.make_dirs()?;
            if !in_unified {
                cgroup.add_to_unified(pid);
            }
        }
        None => cgroup.add_task(pid)?,
    }
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroup.apply(res)?;
    }
    send_to_init(&ours, &Msg::CgroupReady)?;
    // Recorded while the child finishes its setup; until it is ready, `state`
    // shows it as created (the fifo exists) and a failed create removes it.
    c.save()?;
    loop {
        match ours.recv()? {
            Some(Msg::RunHooks) => {
                let h = spec.hooks().as_ref();
                hooks::run(
                    "prestart",
                    h.and_then(|h| h.prestart().as_ref()),
                    &hook_state,
                )?;
                hooks::run(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &hook_state,
                )?;
                send_to_init(&ours, &Msg::HooksDone)?;
            }
            Some(Msg::Ready) => {
                tracing::debug!("init: closing the pipe to signal completion (pid {pid})");
                break;
            }
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            Some(other) => return Err(Error::Init(format!("unexpected message {other:?}"))),
            None => {
                let how = match waitpid(pid, None) {
                    Ok(ws) => format!("{ws:?}"),
                    Err(e) => e.to_string(),
                };
                undo.child = None;
                return Err(Error::Init(format!(
                    "the container's process exited during setup ({how})"
                )));
            }
        }
    }
    let console = match console_parent {
        Some(sock) => Some(crate::console::recv_fd(sock.as_raw_fd())?),
        None => None,
    };
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid.as_raw())?;
    }
    let cgroup = undo.cgroup.take();
    undo.disarm();
    Ok(Launched {
        container: c,
        cgroup,
        console,
        signals,
    })
}

/// Sends to the container's init. When the init has failed and gone, the
/// send breaks (EPIPE); what the user needs then is the init's own error,
/// which it sent before leaving, not the broken pipe.
fn send_to_init(ch: &Channel, msg: &Msg) -> Result<()> {
    let Err(e) = ch.send(msg) else {
        return Ok(());
    };
    match ch.recv() {
        Ok(Some(Msg::Error(init))) => Err(Error::Init(init)),
        _ => Err(e),
    }
}

/// The caller's user name from /etc/passwd (read directly: a statically linked
/// runtime has no NSS), or its uid.
fn owner_name() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}
