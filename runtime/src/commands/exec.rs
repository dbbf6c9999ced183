//! `exec`: a new process in a running container, from a runtime-spec process
//! file (what shims pass) or from arguments and flags.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::str::FromStr;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, Process};

use crate::cgroups::Cgroup;
use crate::cli::{ExecArgs, GlobalOpts};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::process::wait::{self, Signals};
use crate::process::{Forked, clone, exec};
use crate::spec;
use crate::sync::{Channel, Msg};

pub fn run(g: &GlobalOpts, a: &ExecArgs) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        // The process would wait in the frozen cgroup until a resume.
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            return Err(Error::Invalid(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ));
        }
        s => {
            return Err(Error::BadState {
                id: c.id().into(),
                status: s.as_str(),
                action: "cannot exec in a container that is not running",
            });
        }
    }
    let process = build_process(&c, a)?;
    spec::validate_process(&process).map_err(Error::Invalid)?;
    let terminal = process.terminal().unwrap_or(false);
    let foreground = !a.detach;

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
                    "cannot allocate a terminal for a detached process without --console-socket"
                        .into(),
                ));
            }
            (false, Some(_), _) => {
                return Err(Error::Invalid(
                    "--console-socket was given but the process has no terminal".into(),
                ));
            }
            (false, None, _) => (None, None),
        };

    let cgroup = Cgroup::open(&c.state.cgroup_path)?;
    let sub_cgroups = crate::cgroups::sub_cgroup_dirs(&c.state.cgroup_path, &a.cgroups)?;
    let root = if c.state.no_pivot {
        Some(
            std::fs::File::open(format!("/proc/{}/root", c.state.pid))
                .map_err(|e| Error::io("opening the container's root", "/proc/<pid>/root", e))?,
        )
    } else {
        None
    };
    let (ours, theirs) = Channel::pair()?;
    let signals = if foreground {
        Some(Signals::block()?)
    } else {
        None
    };
    let config = &c.state.config;
    let seccomp = crate::process::seccomp::for_spec(config)?;
    let userns = crate::namespaces::has(config, oci_spec::runtime::LinuxNamespaceType::User);
    let self_join = crate::cgroups::SelfJoin::plan(&c.state.cgroup_path, userns);
    if self_join.is_none() {
        cgroup.prepare()?;
    }
    let plan = exec::Plan {
        init_pid: c.pid(),
        namespaces: exec::namespaces_of(config),
        process: &process,
        seccomp: seccomp.as_ref(),
        cgroup: &cgroup,
        sub_cgroups: &sub_cgroups,
        console: console_child.as_ref().map(|s| s.as_raw_fd()),
        preserve_fds: a.preserve_fds,
        root,
        join_cgroups: self_join.as_ref().map(|j| j.v1.as_slice()),
        in_unified: false,
    };
    // Born in the container's unified cgroup where it can be (see
    // `cgroups::SelfJoin`); the exec'd process inherits it.
    let unified = self_join.as_ref().and_then(|j| j.unified.as_ref());
    let (forked, in_unified) = match unified {
        Some(dir) => crate::process::clone_into(nix::sched::CloneFlags::empty(), dir.as_fd()),
        None => clone(nix::sched::CloneFlags::empty(), false).map(|f| (f, false)),
    }
    .map_err(|e| Error::sys("forking for exec", e))?;
    let middle = match forked {
        Forked::Child => {
            drop(ours);
            exec::run(exec::Plan { in_unified, ..plan }, theirs);
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    drop(console_child);
    let first = ours.recv();
    let _ = waitpid(middle, None);
    let pid = match first? {
        Some(Msg::Pid(p)) => Pid::from_raw(p),
        Some(Msg::Error(e)) => return Err(Error::Init(e)),
        other => {
            return Err(Error::Init(format!(
                "exec setup ended unexpectedly ({other:?})"
            )));
        }
    };
    // The process holds its end until execve closes it: end-of-file means it
    // is running the program; a message means it failed before that.
    match ours.recv()? {
        None => {}
        Some(Msg::Error(e)) => {
            let _ = waitpid(pid, None);
            return Err(Error::Init(e));
        }
        Some(other) => return Err(Error::Init(format!("unexpected message {other:?}"))),
    }
    let console = match console_parent {
        Some(sock) => Some(crate::console::recv_fd(sock.as_raw_fd())?),
        None => None,
    };
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid.as_raw())?;
    }
    match signals {
        None => Ok(0),
        Some(s) => wait::supervise(pid, s, console),
    }
}

fn build_process(c: &Container, a: &ExecArgs) -> Result<Process> {
    if let Some(path) = &a.process {
        let mut p = spec::parse_process(path)?;
        if a.tty {
            p.set_terminal(Some(true));
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        return Err(Error::Invalid("exec needs a command or --process".into()));
    }
    let mut p = c
        .state
        .config
        .process()
        .clone()
        .ok_or_else(|| Error::Invalid("the container has no process".into()))?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    // Later settings of a variable replace earlier ones.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order = Vec::new();
    for kv in p.env().iter().flatten().chain(a.env.iter()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if env.insert(k.to_string(), v.to_string()).is_none() {
            order.push(k.to_string());
        }
    }
    p.set_env(Some(
        order.iter().map(|k| format!("{k}={}", env[k])).collect(),
    ));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let uid: u32 = uid
            .parse()
            .map_err(|_| Error::Invalid(format!("--user {u}: expected UID[:GID] as numbers")))?;
        let gid: u32 = gid
            .parse()
            .map_err(|_| Error::Invalid(format!("--user {u}: expected UID[:GID] as numbers")))?;
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid);
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap = Capability::from_str(name.trim_start_matches("CAP_"))
                .map_err(|_| Error::Invalid(format!("unknown capability {name}")))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
                caps.inheritable().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    2 => caps.set_permitted(Some(s)),
                    _ => caps.set_inheritable(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
