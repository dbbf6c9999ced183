//! The shim is the subreaper of everything the runtime starts. On SIGCHLD it
//! reaps every exited child and hands each exit to the process it belongs to,
//! or to whoever waits for a runtime command it ran (nothing else may wait
//! for a child: the reaper would take its status first). An exit can arrive
//! before the shim knows the pid (a container that exits before its pid file
//! is read): such exits wait here until claimed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::process::{Exit, Proc};

#[derive(Default)]
pub struct Reaper {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    watched: HashMap<i32, Watch>,
    commands: HashMap<i32, tokio::sync::oneshot::Sender<Exit>>,
    unclaimed: HashMap<i32, Exit>,
}

struct Watch {
    proc: Arc<Proc>,
    on_exit: Box<dyn Fn(Exit) + Send>,
}

pub fn exit_status(ws: WaitStatus) -> Option<(i32, u32)> {
    match ws {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

impl Reaper {
    /// Reaps every child that has exited.
    pub fn reap(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    if let Some((pid, status)) = exit_status(ws) {
                        self.exited(Exit {
                            pid,
                            status,
                            at: SystemTime::now(),
                        });
                    }
                }
            }
        }
    }

    fn exited(&self, exit: Exit) {
        let w = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match inner.watched.remove(&exit.pid) {
                Some(w) => w,
                None => {
                    if let Some(tx) = inner.commands.remove(&exit.pid) {
                        let _ = tx.send(exit);
                        return;
                    }
                    // Orphans re-parented to us (a container without a pid
                    // namespace leaves them) are never claimed: keep few.
                    if inner.unclaimed.len() >= 1024 {
                        inner.unclaimed.clear();
                    }
                    inner.unclaimed.insert(exit.pid, exit);
                    return;
                }
            }
        };
        (w.on_exit)(exit);
        w.proc.set_exited(exit);
    }

    /// The exit of a command the shim just spawned, called before anything
    /// else ran: its exit cannot have been reaped yet. An unclaimed exit
    /// under the same pid is an earlier process's (the pid reused), left
    /// for whoever watches that one.
    pub fn wait_command(&self, pid: i32) -> tokio::sync::oneshot::Receiver<Exit> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .commands
            .insert(pid, tx);
        rx
    }

    /// Spawns `cmd` from any thread, its exit delivered to the receiver:
    /// registered under the lock the reaper takes to hand an exit over, so
    /// a reap on the shim's thread between the spawn and the registration
    /// waits for it instead of leaving the exit unclaimed (where a process
    /// given the same pid later could take it).
    pub fn spawn_command(
        &self,
        cmd: &mut std::process::Command,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<Exit>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // std's Child does not wait on drop: the exit is the reaper's.
        let pid = cmd.spawn()?.id() as i32;
        let (tx, rx) = tokio::sync::oneshot::channel();
        inner.commands.insert(pid, tx);
        Ok(rx)
    }

    /// Starts watching `pid`; `on_exit` runs first when it exits (the shim
    /// records the exit on disk there, before anyone is told).
    pub fn watch(&self, pid: i32, proc: Arc<Proc>, on_exit: impl Fn(Exit) + Send + 'static) {
        let early = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match inner.unclaimed.remove(&pid) {
                Some(exit) => Some(exit),
                None => {
                    inner.watched.insert(
                        pid,
                        Watch {
                            proc: proc.clone(),
                            on_exit: Box::new(on_exit),
                        },
                    );
                    return;
                }
            }
        };
        if let Some(exit) = early {
            on_exit(exit);
            proc.set_exited(exit);
        }
    }
}
