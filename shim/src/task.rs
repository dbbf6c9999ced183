//! One container of the shim's: its init process and execs, driven through
//! the runtime's command line. Locks here are plain mutexes held only for a few
//! field reads or writes, never across an await.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use tokio::sync::{Notify, broadcast};
use tonic::Status;

use crate::io;
use crate::mount;
use crate::process::{Exit, Proc, Status as PStatus};
use crate::runtime::Runtime;

/// How long a deleted task's shim waits for lifecycled's Shutdown before it
/// exits on its own.
const LINGER_AFTER_DELETE: Duration = Duration::from_secs(2);

pub struct Task {
    pub id: String,
    pub namespace: String,
    pub state_dir: PathBuf,
    /// Console sockets go next to the shim's socket (short paths: sun_path is
    /// 108 bytes).
    console_base: PathBuf,
    console_seq: AtomicU32,
    inner: Mutex<Inner>,
    /// The process serving this task (and maybe others): its reaper.
    pub host: Arc<crate::server::Host>,
    pub events: broadcast::Sender<shim::Event>,
    pub shutdown: Arc<Notify>,
    /// Held by the init's create and delete: a delete that arrives while
    /// the create is under way waits for it instead of finding no task.
    creating: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    runtime: Option<Arc<Runtime>>,
    bundle: PathBuf,
    mounts: Vec<PathBuf>,
    cgroup: Option<PathBuf>,
    init: Option<Arc<Proc>>,
    execs: HashMap<String, Arc<Proc>>,
    paused: bool,
    deleted: bool,
}

fn internal(e: anyhow::Error) -> Status {
    Status::internal(format!("{e:#}"))
}

/// The runtime could not create or start a process: an unclassified
/// error, as containerd's shim reports it (its callers add ": unknown").
fn runtime_failed(e: anyhow::Error) -> Status {
    Status::unknown(format!("{e:#}"))
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct ExitRecord {
    pub pid: i32,
    pub status: u32,
    pub exited_at: String,
}

/// Writes `<state>/exit` through a temporary file and rename: the first thing
/// done when the init exits, so the status survives every daemon's death.
fn record_exit(state_dir: &Path, exit: Exit) {
    let rec = ExitRecord {
        pid: exit.pid,
        status: exit.status,
        exited_at: humantime::format_rfc3339_nanos(exit.at).to_string(),
    };
    let tmp = state_dir.join(".exit.tmp");
    let res = serde_json::to_vec(&rec)
        .map_err(std::io::Error::other)
        .and_then(|data| std::fs::write(&tmp, data))
        .and_then(|_| std::fs::rename(&tmp, state_dir.join("exit")));
    if let Err(e) = res {
        tracing::error!("recording exit {}: {e}", exit.status);
    }
}

/// Whether `pid` is gone or a zombie waiting for the reaper.
fn has_exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn read_pid(path: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading pid file {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("pid file {} holds {text:?}", path.display()))
}

impl Task {
    pub fn new(opts: &crate::Options, host: Arc<crate::server::Host>) -> Task {
        Task {
            id: opts.id.clone(),
            namespace: opts.namespace.clone(),
            state_dir: opts.state_dir.clone(),
            console_base: opts.socket.clone(),
            console_seq: AtomicU32::new(0),
            inner: Mutex::new(Inner::default()),
            host,
            events: broadcast::channel(64).0,
            shutdown: Arc::new(Notify::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn console_path(&self) -> PathBuf {
        let n = self.console_seq.fetch_add(1, Ordering::SeqCst);
        let mut p = self.console_base.clone().into_os_string();
        p.push(format!(".c{n}"));
        PathBuf::from(p)
    }

    fn runtime(&self) -> Result<Arc<Runtime>, Status> {
        self.lock()
            .runtime
            .clone()
            .ok_or_else(|| Status::failed_precondition("the task has not been created"))
    }

    pub fn init(&self) -> Result<Arc<Proc>, Status> {
        self.lock()
            .init
            .clone()
            .ok_or_else(|| Status::failed_precondition("the task has not been created"))
    }

    /// How messages name a process: the task's id for its init.
    fn name_of<'a>(&'a self, exec_id: &'a str) -> &'a str {
        if exec_id.is_empty() {
            &self.id
        } else {
            exec_id
        }
    }

    pub fn process(&self, exec_id: &str) -> Result<Arc<Proc>, Status> {
        if exec_id.is_empty() {
            return self.init();
        }
        self.lock()
            .execs
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("exec {exec_id} not found")))
    }

    fn watch(&self, proc: &Arc<Proc>, pid: i32, is_init: bool) {
        let state_dir = self.state_dir.clone();
        let events = self.events.clone();
        let exec_id = proc.exec_id.clone();
        self.host.reaper.watch(pid, proc.clone(), move |exit| {
            if is_init {
                record_exit(&state_dir, exit);
            }
            let _ = events.send(shim::Event {
                kind: shim::event::Kind::Exit as i32,
                exec_id: exec_id.clone(),
                exit: Some(exit.to_pb()),
            });
        });
    }

    pub async fn create(&self, req: shim::CreateRequest) -> Result<u32, Status> {
        let _creating = self.creating.lock().await;
        if self.lock().deleted {
            return Err(Status::failed_precondition(format!(
                "task {} was deleted",
                self.id
            )));
        }
        if self.lock().runtime.is_some() {
            return Err(Status::already_exists(format!(
                "task {} already created",
                self.id
            )));
        }
        let bundle = PathBuf::from(&req.bundle);
        let runtime = Arc::new(Runtime {
            path: PathBuf::from(&req.runtime_path),
            args: req.runtime_args.clone(),
            log: self.state_dir.join("runtime.json"),
            reaper: self.host.reaper.clone(),
        });
        let stdio = req.stdio.clone().unwrap_or_default();
        let mounts = mount::mount_all(&bundle, &req.rootfs).map_err(internal)?;
        let cgroup = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(PathBuf::from));
        let proc = Arc::new(Proc::new(String::new(), stdio.clone(), Vec::new()));
        let result = self.run_init(&runtime, &bundle, &proc, &stdio).await;
        let pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                mount::unmount_all(&mounts);
                return Err(e);
            }
        };
        let mut inner = self.lock();
        inner.runtime = Some(runtime);
        inner.bundle = bundle;
        inner.mounts = mounts;
        inner.cgroup = cgroup;
        inner.init = Some(proc);
        Ok(pid as u32)
    }

    async fn run_init(
        &self,
        runtime: &Runtime,
        bundle: &Path,
        proc: &Arc<Proc>,
        stdio: &pb::Stdio,
    ) -> Result<i32, Status> {
        let mut prepared =
            io::prepare(stdio, &self.console_path(), &self.host.reaper).map_err(internal)?;
        let pid_file = self.state_dir.join("init.pid");
        let console = prepared.console_socket.clone();
        let child_io = prepared.child_stdio().map_err(internal)?;
        runtime
            .create(&self.id, bundle, &pid_file, console.as_deref(), child_io)
            .await
            .map_err(runtime_failed)?;
        berth_fault::point("shim:create.after-runtime-create");
        let pid = match read_pid(&pid_file) {
            Ok(p) => p,
            Err(e) => {
                let _ = runtime.delete(&self.id, true).await;
                return Err(internal(e));
            }
        };
        proc.lock().pid = pid;
        // No await between reading the pid and watching it: the reaper cannot
        // run in between, and an earlier exit waits for us in the reaper.
        self.watch(proc, pid, true);
        if let Err(e) = prepared.start(&proc.io, stdio).await {
            let _ = runtime.delete(&self.id, true).await;
            return Err(internal(e));
        }
        Ok(pid)
    }

    pub async fn start(&self, exec_id: &str) -> Result<u32, Status> {
        // The init's start and its delete exclude each other, as its
        // create and delete do: the runtime's start and a delete --force
        // never run side by side.
        let _creating = match exec_id.is_empty() {
            true => Some(self.creating.lock().await),
            false => None,
        };
        let runtime = self.runtime()?;
        let proc = self.process(exec_id)?;
        {
            // One Start at a time: runtime commands no longer hold the
            // shim's thread, so a second one could otherwise run beside it.
            let mut s = proc.lock();
            if s.status != PStatus::Created || s.starting {
                return Err(Status::failed_precondition(format!(
                    "process {} has already been started",
                    self.name_of(exec_id)
                )));
            }
            s.starting = true;
        }
        let started = if exec_id.is_empty() {
            runtime.start(&self.id).await.map_err(runtime_failed)
        } else {
            self.start_exec(&runtime, &proc).await
        };
        let mut s = proc.lock();
        s.starting = false;
        started?;
        if s.status == PStatus::Created {
            s.status = PStatus::Running;
        }
        s.started_at = Some(SystemTime::now());
        Ok(s.pid as u32)
    }

    async fn start_exec(&self, runtime: &Runtime, proc: &Arc<Proc>) -> Result<(), Status> {
        let init = self.init()?;
        if init.lock().status != PStatus::Running {
            return Err(Status::failed_precondition(format!(
                "cannot exec in task {}: it is not running",
                self.id
            )));
        }
        let spec = crate::runtime::in_memory(&proc.spec).map_err(|e| internal(e.into()))?;
        let pid_file = self.state_dir.join(format!("exec-{}.pid", proc.exec_id));
        let mut prepared =
            io::prepare(&proc.stdio, &self.console_path(), &self.host.reaper).map_err(internal)?;
        let console = prepared.console_socket.clone();
        let child_io = prepared.child_stdio().map_err(internal)?;
        let result = runtime
            .exec(&self.id, &spec, &pid_file, console.as_deref(), child_io)
            .await;
        drop(spec);
        result.map_err(runtime_failed)?;
        let pid = read_pid(&pid_file).map_err(internal)?;
        let _ = std::fs::remove_file(&pid_file);
        proc.lock().pid = pid;
        self.watch(proc, pid, false);
        prepared
            .start(&proc.io, &proc.stdio)
            .await
            .map_err(internal)
    }

    pub fn exec(&self, req: shim::ExecRequest) -> Result<(), Status> {
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(Status::invalid_argument("an exec needs an id without '/'"));
        }
        serde_json::from_slice::<serde_json::Value>(&req.spec)
            .map_err(|e| Status::invalid_argument(format!("exec spec is not JSON: {e}")))?;
        let init = self.init()?;
        if init.lock().status == PStatus::Stopped {
            return Err(Status::failed_precondition(format!(
                "cannot exec in task {}: it has exited",
                self.id
            )));
        }
        let mut inner = self.lock();
        if inner.execs.contains_key(&req.exec_id) {
            return Err(Status::already_exists(format!(
                "exec {} already exists",
                req.exec_id
            )));
        }
        let proc = Arc::new(Proc::new(
            req.exec_id.clone(),
            req.stdio.unwrap_or_default(),
            req.spec,
        ));
        inner.execs.insert(req.exec_id, proc);
        Ok(())
    }

    pub async fn kill(&self, req: &shim::KillRequest) -> Result<(), Status> {
        let proc = self.process(&req.exec_id)?;
        let (pid, status) = {
            let s = proc.lock();
            (s.pid, s.status)
        };
        if status == PStatus::Stopped && !req.all {
            return Err(Status::not_found(format!(
                "process {} has already exited",
                self.name_of(&req.exec_id)
            )));
        }
        if req.exec_id.is_empty() {
            let runtime = self.runtime()?;
            return runtime
                .kill(&self.id, req.signal, req.all)
                .await
                .map_err(|e| {
                    // The init died before its exit reached us: the runtime
                    // already calls it stopped. As for a reaped one, there is
                    // nothing left to signal.
                    if pid > 0 && has_exited(pid) {
                        Status::not_found(format!("process {} has already exited", self.id))
                    } else {
                        Status::failed_precondition(format!("{e:#}"))
                    }
                });
        }
        if status == PStatus::Created {
            return Err(Status::failed_precondition("exec has not been started"));
        }
        // SAFETY: kill(2) with plain integers.
        if unsafe { libc::kill(pid, req.signal as i32) } != 0 {
            return Err(Status::internal(format!(
                "signalling {pid}: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    pub async fn delete(&self, exec_id: &str) -> Result<shim::DeleteResponse, Status> {
        let _creating = match exec_id.is_empty() {
            true => Some(self.creating.lock().await),
            false => None,
        };
        if exec_id.is_empty() && self.lock().init.is_none() {
            // Its create never came or failed (and undid itself): there is
            // nothing of the container left, and the shim may go.
            self.lock().deleted = true;
            self.linger_then_exit();
            return Ok(shim::DeleteResponse {
                pid: 0,
                exit_status: 255,
                exited_at: Some(crate::timestamp(SystemTime::now())),
            });
        }
        let proc = self.process(exec_id)?;
        let (pid, status, exit) = {
            let s = proc.lock();
            let status = match s.starting {
                // Being started: as good as running for a delete.
                true => PStatus::Running,
                false => s.status,
            };
            (s.pid, status, s.exit)
        };
        if status == PStatus::Running {
            return Err(Status::failed_precondition(format!(
                "process {} is running: kill it first",
                self.name_of(exec_id)
            )));
        }
        let exit = exit.unwrap_or(Exit {
            pid,
            status: 255,
            at: SystemTime::now(),
        });
        if exec_id.is_empty() && self.lock().deleted {
            // Again, after a caller lost our first answer.
            return Ok(shim::DeleteResponse {
                pid: exit.pid as u32,
                exit_status: exit.status,
                exited_at: Some(crate::timestamp(exit.at)),
            });
        }
        if exec_id.is_empty() {
            let runtime = self.runtime()?;
            // A created task's process still waits for start: delete --force
            // kills it.
            runtime
                .delete(&self.id, status == PStatus::Created)
                .await
                .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
            let mounts = {
                let mut inner = self.lock();
                inner.deleted = true;
                std::mem::take(&mut inner.mounts)
            };
            mount::unmount_all(&mounts);
            self.linger_then_exit();
        } else {
            self.lock().execs.remove(exec_id);
        }
        Ok(shim::DeleteResponse {
            pid: exit.pid as u32,
            exit_status: exit.status,
            exited_at: Some(crate::timestamp(exit.at)),
        })
    }

    /// Marks a task that was never created (and is not being created) as
    /// gone, so that no create comes after its end; true if it was.
    pub fn abandon_if_uncreated(&self) -> bool {
        let Ok(_creating) = self.creating.try_lock() else {
            return false;
        };
        let mut inner = self.lock();
        if inner.runtime.is_some() || inner.init.is_some() || inner.deleted {
            return false;
        }
        inner.deleted = true;
        true
    }

    /// Gives lifecycled a moment to send Shutdown, then exits regardless.
    fn linger_then_exit(&self) {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER_AFTER_DELETE).await;
            shutdown.notify_one();
        });
    }

    pub fn state(&self, exec_id: &str) -> Result<pb::Process, Status> {
        let proc = self.process(exec_id)?;
        let mut p = proc.to_pb(&self.id);
        if exec_id.is_empty() && self.lock().paused && p.status == pb::Status::Running as i32 {
            p.status = pb::Status::Paused as i32;
        }
        Ok(p)
    }

    pub async fn pids(&self) -> Result<Vec<pb::ProcessPid>, Status> {
        let runtime = self.runtime()?;
        let pids = runtime
            .ps(&self.id)
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        let execs: HashMap<u32, String> = self
            .lock()
            .execs
            .values()
            .map(|p| (p.pid() as u32, p.exec_id.clone()))
            .collect();
        Ok(pids
            .into_iter()
            .map(|pid| pb::ProcessPid {
                pid,
                exec_id: execs.get(&pid).cloned().unwrap_or_default(),
            })
            .collect())
    }

    pub fn stats(&self) -> Result<pb::Stats, Status> {
        let cgroup = self
            .lock()
            .cgroup
            .clone()
            .ok_or_else(|| Status::failed_precondition("the task has no cgroup path"))?;
        Ok(crate::cgstats::read_stats(&cgroup))
    }

    pub async fn pause(&self, pause: bool) -> Result<(), Status> {
        let runtime = self.runtime()?;
        let r = if pause {
            runtime.pause(&self.id).await
        } else {
            runtime.resume(&self.id).await
        };
        r.map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        self.lock().paused = pause;
        Ok(())
    }

    pub async fn update(&self, resources: &[u8]) -> Result<(), Status> {
        self.runtime()?
            .update(&self.id, resources)
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))
    }

    pub fn resize(&self, exec_id: &str, width: u32, height: u32) -> Result<(), Status> {
        self.process(exec_id)?
            .io
            .resize(width, height)
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))
    }

    pub fn info(&self) -> shim::InfoResponse {
        shim::InfoResponse {
            shim_pid: std::process::id(),
            task_pid: self
                .lock()
                .init
                .as_ref()
                .map(|p| p.pid() as u32)
                .unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").to_string(),
            id: self.id.clone(),
        }
    }

    /// Whether the shim may exit: its task is gone (or never came).
    pub fn may_shut_down(&self) -> bool {
        let inner = self.lock();
        inner.deleted || inner.runtime.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::has_exited;

    #[test]
    fn a_zombie_and_a_missing_pid_have_exited_a_live_one_has_not() {
        assert!(!has_exited(std::process::id() as i32));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        // Unreaped, it turns into a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !has_exited(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(has_exited(pid), "{pid} never became a zombie");
        child.wait().expect("reap");
        assert!(has_exited(pid));
    }
}
