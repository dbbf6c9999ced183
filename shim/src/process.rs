//! A process the shim looks after: the task's init or one of its execs.

use std::sync::Mutex;
use std::time::SystemTime;

use berth_proto::types::v1 as pb;
use tokio::sync::watch;

use crate::io::Io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// Exit code, or 128 + signal for a process killed by a signal.
    pub status: u32,
    pub at: SystemTime,
}

impl Exit {
    pub fn to_pb(self) -> pb::Exit {
        pb::Exit {
            pid: self.pid as u32,
            exit_status: self.status,
            exited_at: Some(crate::timestamp(self.at)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

pub struct ProcState {
    pub pid: i32,
    pub status: Status,
    /// A Start is under way (the runtime's start or exec is running).
    pub starting: bool,
    pub exit: Option<Exit>,
    pub started_at: Option<SystemTime>,
}

pub struct Proc {
    pub exec_id: String,
    pub stdio: pb::Stdio,
    /// For an exec: its runtime-spec process, as JSON.
    pub spec: Vec<u8>,
    pub state: Mutex<ProcState>,
    exit_tx: watch::Sender<Option<Exit>>,
    pub io: std::sync::Arc<Io>,
}

impl Proc {
    pub fn new(exec_id: String, stdio: pb::Stdio, spec: Vec<u8>) -> Proc {
        Proc {
            exec_id,
            stdio,
            spec,
            state: Mutex::new(ProcState {
                pid: 0,
                starting: false,
                status: Status::Created,
                exit: None,
                started_at: None,
            }),
            exit_tx: watch::channel(None).0,
            io: Default::default(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ProcState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> i32 {
        self.lock().pid
    }

    pub fn set_exited(&self, exit: Exit) {
        {
            let mut s = self.lock();
            s.status = Status::Stopped;
            s.exit = Some(exit);
        }
        self.exit_tx.send_replace(Some(exit));
        self.io.process_exited();
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit_tx.borrow()
    }

    /// Resolves once the process has exited.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit_tx.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as we do; cannot happen.
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn to_pb(&self, container_id: &str) -> pb::Process {
        let s = self.lock();
        let status = match s.status {
            Status::Created => pb::Status::Created,
            Status::Running => pb::Status::Running,
            Status::Stopped => pb::Status::Stopped,
        };
        pb::Process {
            container_id: container_id.to_string(),
            exec_id: self.exec_id.clone(),
            pid: s.pid as u32,
            status: status as i32,
            exit_status: s.exit.map(|e| e.status).unwrap_or(0),
            exited_at: s.exit.map(|e| crate::timestamp(e.at)),
            stdin: self.stdio.stdin,
            terminal: self.stdio.terminal,
            started_at: s.started_at.map(crate::timestamp),
        }
    }
}
