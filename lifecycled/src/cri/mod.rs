//! The CRI's runtime side (`runtime.v1.RuntimeService`): pod sandboxes and
//! their containers, as the kubelet and crictl drive containerd's CRI.
//!
//! A sandbox is a task like any other, in namespace `k8s.io`: berth-pause
//! (carried in lifecycled, written out at start) in a read-only root, in a
//! network namespace kept by a bind mount and wired by the CNI plugins of
//! the first config in `cni_conf_dir`. The pod's containers join its
//! network, IPC and UTS namespaces (and its PID namespace when the pod
//! shares one). What the CRI knows of a pod or a container (its config,
//! its network, its start and exit) is kept in the extensions of its
//! container record, written with it in one atomic file, so a restarted
//! lifecycled answers as before; running tasks are found again through
//! their shims like every other task.

pub mod container;
pub mod events;
pub mod network;
pub mod sandbox;
pub mod spec;
pub mod stats;
pub mod streaming;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::lifecycle::v1::envelope::Event;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::config::CriConfig;
use crate::events::Bus;
use crate::store::{Record, Store, StoreError};
use crate::tasks::Tasks;
use berth_proto::cri::v1::ContainerEventType::{
    ContainerCreatedEvent as Created, ContainerDeletedEvent as Deleted,
    ContainerStartedEvent as Started, ContainerStoppedEvent as Stopped,
};

pub use crate::service::cri_images::NAMESPACE;

/// The extension of a record holding the CRI's metadata.
const META: &str = "io.berth.cri";
/// The label telling sandboxes from containers, as containerd's CRI sets it.
const KIND: &str = "io.cri-containerd.kind";

/// berth-pause, built by build.rs.
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-pause"));

/// What the CRI keeps of a pod sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SandboxMeta {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub runtime_handler: String,
    /// Nanoseconds since the epoch, as the CRI reports times.
    pub created_at: i64,
    pub ready: bool,
    pub hostname: String,
    pub log_directory: String,
    pub cgroup_parent: String,
    /// Network, PID and IPC namespace modes (the CRI's NamespaceMode).
    pub network_mode: i32,
    pub pid_mode: i32,
    pub ipc_mode: i32,
    pub netns: Option<PathBuf>,
    pub network: Option<network::Attachment>,
    pub ip: String,
    pub additional_ips: Vec<String>,
    /// The pause process's pid, for the namespaces containers join.
    pub pid: u32,
}

/// What the CRI keeps of a container.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContainerMeta {
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    /// The image as asked for, and its id.
    pub image: String,
    pub image_ref: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub log_path: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// The mounts as asked for: (container path, host path, readonly,
    /// propagation).
    pub mounts: Vec<(String, String, bool, i32)>,
    pub stop_signal: String,
    /// The name reserved for it (see [`ContainerMeta::reserved_name`]).
    pub reserved: String,
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// 64 hex digits from the kernel's random source, as containerd's ids.
pub fn new_id() -> Result<String, Status> {
    let mut b = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Status::internal(format!("reading /dev/urandom: {e}")))?;
    Ok(hex::encode(b))
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        StoreError::Exists(_) => Status::already_exists(e.to_string()),
        e => Status::internal(format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        )),
    }
}

pub struct Cri {
    pub tasks: Arc<Tasks>,
    pub store: Arc<Store>,
    pub images: imagestore::Store,
    pub cfg: CriConfig,
    pub cni: berth_cni::Cni,
    /// `<state>/cri`: network namespaces, pods' shm and files.
    pub state: PathBuf,
    /// berth-pause and the read-only root it runs in.
    pub pause_root: PathBuf,
    /// Names in use (`name_namespace_uid_attempt` as containerd makes them)
    /// and who holds them.
    names: Mutex<HashMap<String, String>>,
    /// The last CPU sample (time, usage) of each container and pod, for
    /// the usage rate the kubelet reads.
    samples: Mutex<HashMap<String, (i64, u64)>>,
    events: tokio::sync::broadcast::Sender<berth_proto::cri::v1::ContainerEventResponse>,
    /// URLs of the streaming server handed out and not yet used.
    pub streams: streaming::Tokens,
}

impl Cri {
    pub fn new(
        tasks: Arc<Tasks>,
        store: Arc<Store>,
        images: imagestore::Store,
        state: &Path,
    ) -> Result<Arc<Cri>, std::io::Error> {
        let cfg = tasks.config().cri.clone();
        let state = state.join("cri");
        let pause_root = state.join("pause");
        write_pause_root(&pause_root)?;
        let cri = Cri {
            cni: berth_cni::Cni::with_dirs(cfg.cni_bin_dirs.clone()),
            cfg,
            tasks,
            images,
            state,
            pause_root,
            names: Mutex::new(HashMap::new()),
            samples: Mutex::new(HashMap::new()),
            events: events::channel(),
            streams: streaming::Tokens::default(),
            store,
        };
        let mut names = HashMap::new();
        for r in cri.store.list(NAMESPACE) {
            if let Some(m) = sandbox_meta(&r) {
                names.insert(m.reserved_name(), r.id.clone());
            } else if let Some(m) = container_meta(&r) {
                names.insert(m.reserved, r.id.clone());
            }
        }
        *cri.names.lock().unwrap_or_else(|e| e.into_inner()) = names;
        Ok(Arc::new(cri))
    }

    /// Takes `name` for `id`, or says who has it as containerd does.
    fn reserve(&self, what: &str, name: &str, id: &str) -> Result<(), Status> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(holder) = names.get(name) {
            return Err(Status::already_exists(format!(
                "failed to reserve {what} name {name:?}: name {name:?} is reserved for {holder:?}"
            )));
        }
        names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    fn release(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn sandbox_record(&self, id: &str) -> Option<(Record, SandboxMeta)> {
        let r = self.store.get(NAMESPACE, id).ok()?;
        let m = sandbox_meta(&r)?;
        Some((r, m))
    }

    /// The record of `kind` an id names, or the only one whose id starts
    /// with it (crictl takes id prefixes).
    fn find(&self, kind: &str, id: &str) -> Result<Record, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument(format!("no {kind} id given")));
        }
        if let Ok(r) = self.store.get(NAMESPACE, id)
            && r.labels.get(KIND).map(String::as_str) == Some(kind)
        {
            return Ok(r);
        }
        let mut found: Vec<Record> = self
            .store
            .list(NAMESPACE)
            .into_iter()
            .filter(|r| {
                r.id.starts_with(id) && r.labels.get(KIND).map(String::as_str) == Some(kind)
            })
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Status::not_found(format!(
                "an error occurred when try to find {kind} {id:?}: not found"
            ))),
            _ => Err(Status::invalid_argument(format!(
                "{kind} id prefix {id:?} is ambiguous"
            ))),
        }
    }

    fn update_meta<M: Serialize + for<'a> Deserialize<'a>>(
        &self,
        id: &str,
        f: impl FnOnce(&mut M),
    ) -> Result<Record, Status> {
        let mut failed = None;
        let r = self
            .store
            .update(NAMESPACE, id, |r| {
                let mut m: M = match r.extensions.get(META).map(|t| serde_json::from_str(t)) {
                    Some(Ok(m)) => m,
                    _ => {
                        failed = Some(Status::internal(format!("{id}: no CRI metadata")));
                        return;
                    }
                };
                f(&mut m);
                if let Ok(t) = serde_json::to_string(&m) {
                    r.extensions.insert(META.into(), t);
                }
            })
            .map_err(store_status)?;
        failed.map_or(Ok(r), Err)
    }

    /// Follows the exits of the CRI's tasks: a container's exit is recorded
    /// (time, status, why) and its task deleted, freeing its shim, as
    /// containerd's CRI does; a sandbox whose pause process ended is no
    /// longer ready. Subscribed before the tasks are restored, so exits
    /// that happened while lifecycled was away are seen too.
    pub fn follow_exits(self: &Arc<Self>, events: &Bus) {
        let mut rx = events.subscribe();
        let cri = self.clone();
        tokio::spawn(async move {
            loop {
                let env = match rx.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("CRI exit handler missed {n} events");
                        continue;
                    }
                    Err(_) => return,
                };
                if env.namespace != NAMESPACE {
                    continue;
                }
                let Some(Event::TaskExit(exit)) = env.event else {
                    continue;
                };
                if !exit.exec_id.is_empty() {
                    continue;
                }
                let cri = cri.clone();
                tokio::spawn(async move {
                    let at = exit
                        .exited_at
                        .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                        .unwrap_or_else(|| nanos(SystemTime::now()));
                    cri.on_exit(&exit.container_id, exit.exit_status, at).await;
                });
            }
        });
    }

    async fn on_exit(&self, id: &str, status: u32, at: i64) {
        let Ok(r) = self.store.get(NAMESPACE, id) else {
            return;
        };
        match r.labels.get(KIND).map(String::as_str) {
            Some("container") => {
                let oom = crate::oom::killed(&r.spec);
                let mut sandbox = None;
                let _ = self.update_meta::<ContainerMeta>(id, |m| {
                    if m.finished_at == 0 {
                        sandbox = Some(m.sandbox_id.clone());
                        m.finished_at = at;
                        // Its start has not returned yet (the process
                        // ended at once): never exited without a start.
                        if m.started_at == 0 || m.started_at > at {
                            m.started_at = at;
                        }
                        m.exit_code = status as i32;
                        m.reason = if oom {
                            "OOMKilled".into()
                        } else if status == 0 {
                            "Completed".into()
                        } else {
                            "Error".into()
                        };
                    }
                });
                self.delete_task(id).await;
                if let Some(sandbox) = sandbox {
                    self.emit(id, &sandbox, Stopped).await;
                }
            }
            Some("sandbox") => {
                let mut was_ready = false;
                let _ = self.update_meta::<SandboxMeta>(id, |m| {
                    was_ready = std::mem::replace(&mut m.ready, false);
                });
                if was_ready {
                    self.emit(id, id, Stopped).await;
                }
            }
            _ => {}
        }
    }

    /// Deletes a task whose process ended (or ends it first); a task that
    /// is already gone is fine.
    async fn delete_task(&self, id: &str) {
        if !self.tasks.has_task(NAMESPACE, id) {
            return;
        }
        if let Err(e) = self.tasks.delete(NAMESPACE, id, "").await
            && e.code() != tonic::Code::NotFound
        {
            tracing::warn!("deleting the task of {id}: {}", e.message());
        }
    }

    /// Ends a task: `signal`, then SIGKILL after `timeout`; returns once
    /// its process is gone (or it had none).
    async fn stop_task(&self, id: &str, signal: u32, timeout: Duration) -> Result<(), Status> {
        use berth_proto::lifecycle::v1 as api;
        use berth_proto::types::v1 as pb;
        let state = match self.tasks.state(NAMESPACE, id, "").await {
            Ok(s) => s,
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if state.status == pb::Status::Stopped as i32 {
            return Ok(());
        }
        let kill = |signal| api::KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all: false,
        };
        let wait = self.tasks.wait(NAMESPACE, id, "");
        tokio::pin!(wait);
        if !timeout.is_zero() && signal != libc::SIGKILL as u32 {
            if let Err(e) = self.tasks.kill(NAMESPACE, &kill(signal)).await
                && e.code() != tonic::Code::NotFound
            {
                tracing::debug!("signalling {id}: {}", e.message());
            }
            if tokio::time::timeout(timeout, &mut wait).await.is_ok() {
                return Ok(());
            }
        }
        match self
            .tasks
            .kill(NAMESPACE, &kill(libc::SIGKILL as u32))
            .await
        {
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            _ => {}
        }
        let _ = wait.await;
        Ok(())
    }
}

impl SandboxMeta {
    /// containerd's sandbox name: `name_namespace_uid_attempt`.
    /// The metadata the kubelet gave the pod.
    pub fn metadata(&self) -> berth_proto::cri::v1::PodSandboxMetadata {
        berth_proto::cri::v1::PodSandboxMetadata {
            name: self.name.clone(),
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            attempt: self.attempt,
        }
    }

    pub fn reserved_name(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.name, self.namespace, self.uid, self.attempt
        )
    }
}

impl ContainerMeta {
    /// containerd's container name: the container's name and attempt with
    /// its pod's name, namespace and uid.
    pub fn reserved_name(&self, sandbox: &(Record, SandboxMeta)) -> String {
        let s = &sandbox.1;
        format!(
            "{}_{}_{}_{}_{}",
            self.name, s.name, s.namespace, s.uid, self.attempt
        )
    }
}

pub fn sandbox_meta(r: &Record) -> Option<SandboxMeta> {
    if r.labels.get(KIND).map(String::as_str) != Some("sandbox") {
        return None;
    }
    serde_json::from_str(r.extensions.get(META)?).ok()
}

pub fn container_meta(r: &Record) -> Option<ContainerMeta> {
    if r.labels.get(KIND).map(String::as_str) != Some("container") {
        return None;
    }
    serde_json::from_str(r.extensions.get(META)?).ok()
}

/// The root berth-pause runs in: the binary and the directories its
/// mounts need, read-only for every sandbox.
fn write_pause_root(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in ["proc", "dev", "sys", "etc"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let bin = root.join("pause");
    if std::fs::read(&bin).ok().as_deref() != Some(PAUSE) {
        // A running sandbox may be executing the old file: a new inode.
        let tmp = root.join(".pause.new");
        std::fs::write(&tmp, PAUSE)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &bin)?;
    }
    Ok(())
}

/// Whether a label selector (every key equal) matches.
fn selected(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
