//! Tasks: the running side of containers, each through a shim (its own, or
//! its pod sandbox's for a CRI container). The shims
//! outlive lifecycled; on start, lifecycled finds them again through the
//! `address` files in its task directories and cleans up after those that died.
//!
//! The task map's lock is only held to look up or change an entry, never
//! across a call to a shim: one stuck container cannot freeze the API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::envelope::Event;
use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tonic::Status;

use crate::config::Config;
use crate::events::Bus;
use crate::shimclient::{self, Client};
use crate::store::{Store, StoreError};

const CONNECT: Duration = Duration::from_secs(3);
const CALL: Duration = Duration::from_secs(60);
const RECONNECT: Duration = Duration::from_secs(2);

type Key = (String, String);

/// What lifecycled needs to clean up after a task whose shim is gone: which
/// runtime, with which global arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub name: String,
    pub path: PathBuf,
    pub args: Vec<String>,
}

pub struct Task {
    pub namespace: String,
    pub id: String,
    pub dir: PathBuf,
    pub client: Client,
    pub runtime: RuntimeInfo,
    /// The init's exit has been published: the shim's event and a state
    /// read after a reconnect may both see it, subscribers hear it once.
    init_exit_published: std::sync::atomic::AtomicBool,
    /// Held from a Start's call to its event: a process that exits while
    /// it is being started is reported after its start, as containerd
    /// orders them (the shim no longer blocks while the runtime starts it,
    /// so its exit can come first).
    starting: tokio::sync::Mutex<()>,
}

enum Slot {
    Creating,
    Ready(Arc<Task>),
}

pub struct Tasks {
    /// Replaced whole by a reload (SIGHUP); read through `config()`.
    cfg: std::sync::RwLock<Arc<Config>>,
    state: PathBuf,
    store: Arc<Store>,
    images: imagestore::Store,
    events: Bus,
    debug: bool,
    map: Mutex<HashMap<Key, Slot>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("{what}: {e}"))
}

/// A shim call with a deadline; a shim that does not answer is Unavailable.
async fn call<T>(
    task: &Task,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL, fut).await {
        Ok(r) => r.map(|r| r.into_inner()).map_err(classed),
        Err(_) => Err(Status::unavailable(format!(
            "the shim of task {} did not answer within {}s",
            task.id,
            CALL.as_secs()
        ))),
    }
}

/// A shim's error that falls in no class (the runtime's failures) ends in
/// ": unknown", as containerd's client words a ttrpc error of that code:
/// engines and gRPC tools show the same line as with containerd.
fn classed(s: Status) -> Status {
    if s.code() == tonic::Code::Unknown && !s.message().ends_with(": unknown") {
        Status::unknown(format!("{}: unknown", s.message()))
    } else {
        s
    }
}

pub fn read_exit(dir: &Path) -> Option<(u32, u32, SystemTime)> {
    let data = std::fs::read(dir.join("exit")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    let at = v["exited_at"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(SystemTime::now);
    Some((v["pid"].as_u64()? as u32, v["status"].as_u64()? as u32, at))
}

/// Removes a task directory, first unmounting whatever is still mounted on
/// its rootfs (a shim that died mid-create leaves its mount): removing
/// through a mount would delete the container's files, or the files of a
/// directory bound in as its rootfs.
fn remove_task_dir(dir: &Path) {
    let rootfs = dir.join("rootfs");
    // Mounts can be stacked; each umount takes off the top one.
    for _ in 0..32 {
        if nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    if let Err(e) = std::fs::remove_dir(&rootfs)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        // Not empty or still busy: never descend into it.
        tracing::warn!("not removing {}: {e}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `runtime delete --force`: whatever is left of a container in the runtime
/// (a process waiting to start, a cgroup) goes; a container the runtime
/// does not know is fine.
async fn runtime_delete(rt: &RuntimeInfo, id: &str) {
    let out = tokio::process::Command::new(&rt.path)
        .args(&rt.args)
        .args(["delete", "--force", id])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    if let Ok(o) = out
        && !o.status.success()
    {
        let why = String::from_utf8_lossy(&o.stderr);
        if !why.contains("does not exist") && !why.contains("not found") {
            tracing::warn!("{} delete --force {id}: {}", rt.path.display(), why.trim());
        }
    }
}

impl Tasks {
    pub fn new(
        cfg: Config,
        state: PathBuf,
        store: Arc<Store>,
        images: imagestore::Store,
        events: Bus,
        debug: bool,
    ) -> Tasks {
        Tasks {
            cfg: std::sync::RwLock::new(Arc::new(cfg)),
            state,
            store,
            images,
            events,
            debug,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the runtime table and default runtime of `new` (the file read
    /// again on SIGHUP) for the tasks created from now on; returns the keys
    /// that changed but take effect only at the next start.
    pub fn reload(&self, new: Config) -> Vec<&'static str> {
        let mut cfg = self.cfg.write().unwrap_or_else(|e| e.into_inner());
        let mut fixed = Vec::new();
        if new.shim != cfg.shim {
            fixed.push("shim");
        }
        if new.cgroup_parent != cfg.cgroup_parent {
            fixed.push("cgroup_parent");
        }
        if new.cri != cfg.cri {
            fixed.push("cri");
        }
        *cfg = Arc::new(Config {
            shim: cfg.shim.clone(),
            cgroup_parent: cfg.cgroup_parent.clone(),
            cri: cfg.cri.clone(),
            ..new
        });
        fixed
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn task_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("tasks").join(ns).join(id)
    }

    /// A short socket path (unix socket paths are limited to 108 bytes).
    fn socket_path(&self, ns: &str, id: &str) -> PathBuf {
        let h = sha2::Sha256::digest(format!("{ns}/{id}").as_bytes());
        self.state
            .join("s")
            .join(format!("{}.sock", &hex::encode(h)[..20]))
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Arc<Task>, Status> {
        match self.map().get(&(ns.to_string(), id.to_string())) {
            Some(Slot::Ready(t)) => Ok(t.clone()),
            Some(Slot::Creating) => Err(Status::failed_precondition(format!(
                "task {id} is being created"
            ))),
            None => Err(Status::not_found(format!("task {id} not found"))),
        }
    }

    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.map().contains_key(&(ns.to_string(), id.to_string()))
    }

    /// Where the shim of a container's task mounts its rootfs, whether
    /// it has a task now or not.
    pub fn rootfs_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.task_dir(ns, id).join("rootfs")
    }

    /// Where the shim of a container's task mounted its rootfs.
    pub fn rootfs_path(&self, ns: &str, id: &str) -> Option<PathBuf> {
        self.has_task(ns, id)
            .then(|| self.task_dir(ns, id).join("rootfs"))
    }

    /// The rootfs mounts of a container: as given, or its snapshot's.
    fn rootfs_mounts(
        &self,
        ns: &str,
        record: &crate::store::Record,
    ) -> Result<Vec<pb::Mount>, Status> {
        let given = record.mounts();
        if !given.is_empty() || record.snapshot_key.is_empty() {
            return Ok(given);
        }
        let mounts = self
            .images
            .mounts(ns, &record.snapshot_key)
            .map_err(crate::images::status)?;
        Ok(mounts
            .into_iter()
            .map(|m| pb::Mount {
                r#type: m.r#type,
                source: m.source,
                target: m.target,
                options: m.options,
            })
            .collect())
    }

    pub fn runtime_entry(&self, name: &str) -> Result<RuntimeInfo, Status> {
        let cfg = self.config();
        let name = if name.is_empty() {
            &cfg.default_runtime
        } else {
            name
        };
        let e = cfg.runtimes.get(name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown runtime {name:?}: lifecycled knows {}",
                cfg.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut args = e.args.clone();
        args.push("--root".into());
        args.push(
            self.state
                .join("runtime")
                .join(name)
                .to_string_lossy()
                .into_owned(),
        );
        Ok(RuntimeInfo {
            name: name.to_string(),
            path: e.path.clone(),
            args,
        })
    }

    pub async fn create(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        stdio: pb::Stdio,
    ) -> Result<api::CreateTaskResponse, Status> {
        let record = self.store.get(ns, id).map_err(|e| match e {
            StoreError::NotFound(_) => Status::not_found(format!("container {id} not found")),
            e => Status::internal(e.to_string()),
        })?;
        let key = (ns.to_string(), id.to_string());
        {
            let mut map = self.map();
            if map.contains_key(&key) {
                return Err(Status::already_exists(format!("task {id} already exists")));
            }
            map.insert(key.clone(), Slot::Creating);
        }
        match self.create_inner(ns, id, &record, stdio).await {
            Ok((task, pid)) => {
                self.map().insert(key, Slot::Ready(task.clone()));
                self.events.publish(
                    ns,
                    Event::TaskCreate(api::TaskEvent {
                        container_id: id.to_string(),
                        pid,
                    }),
                );
                // Subscribed before the caller can start the process: a
                // process that exits at once is not missed.
                let events = task.client.clone().events(()).await.ok();
                self.clone().watch(task, events.map(|r| r.into_inner()));
                Ok(api::CreateTaskResponse {
                    container_id: id.to_string(),
                    pid,
                })
            }
            Err(e) => {
                self.map().remove(&key);
                Err(e)
            }
        }
    }

    async fn create_inner(
        &self,
        ns: &str,
        id: &str,
        record: &crate::store::Record,
        stdio: pb::Stdio,
    ) -> Result<(Arc<Task>, u32), Status> {
        let runtime = self.runtime_entry(&record.runtime)?;
        let mut spec: serde_json::Value = serde_json::from_str(&record.spec)
            .map_err(|e| Status::invalid_argument(format!("container {id}: spec: {e}")))?;
        let mounts = self.rootfs_mounts(ns, record)?;
        if !mounts.is_empty() {
            spec["root"]["path"] = serde_json::json!("rootfs");
        }
        if spec["linux"].is_object()
            && spec["linux"]["cgroupsPath"]
                .as_str()
                .is_none_or(str::is_empty)
        {
            spec["linux"]["cgroupsPath"] =
                serde_json::json!(format!("/{}/{ns}/{id}", self.config().cgroup_parent));
        }
        let dir = self.task_dir(ns, id);
        remove_task_dir(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Status::internal(format!("creating {}: {e}", dir.display())))?;
        let write = |name: &str, data: Vec<u8>| {
            std::fs::write(dir.join(name), data)
                .map_err(|e| Status::internal(format!("writing {name}: {e}")))
        };
        write("config.json", spec.to_string().into_bytes())?;
        write(
            "task.json",
            serde_json::to_vec(&runtime).unwrap_or_default(),
        )?;

        let socket = self.socket_path(ns, id);
        let cleanup = |dir: &Path| remove_task_dir(dir);
        let (addr, own_shim) = match self.shim_for(ns, id, &dir, &socket, &spec).await {
            Ok(a) => a,
            Err(e) => {
                cleanup(&dir);
                return Err(Status::internal(format!("{e:#}")));
            }
        };
        berth_fault::point("lifecycled:task-create.after-shim-spawn");
        let client = match shimclient::connect(&addr, CONNECT).await {
            Ok(c) => c,
            Err(e) => {
                // A shim we cannot reach can never be told to exit: end it
                // (not a pod's shim that hosts others).
                if own_shim
                    && let Some(pid) = std::fs::read_to_string(dir.join("shim.pid"))
                        .ok()
                        .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                cleanup(&dir);
                return Err(unavailable("shim", format!("{e:#}")));
            }
        };

        let task = Arc::new(Task {
            namespace: ns.to_string(),
            id: id.to_string(),
            dir: dir.clone(),
            client,
            runtime: runtime.clone(),
            init_exit_published: Default::default(),
            starting: Default::default(),
        });
        let req = shim::CreateRequest {
            id: id.to_string(),
            bundle: dir.to_string_lossy().into_owned(),
            rootfs: mounts,
            stdio: Some(stdio),
            runtime_path: runtime.path.to_string_lossy().into_owned(),
            runtime_args: runtime.args.clone(),
        };
        let mut c = task.client.clone();
        match call(&task, c.create(req)).await {
            Ok(r) => {
                berth_fault::point("lifecycled:task-create.after-shim-create");
                Ok((task, r.pid))
            }
            Err(e) => {
                let _ = tokio::time::timeout(RECONNECT, task.client.clone().shutdown(())).await;
                // A shim that died mid-create may have left the runtime's
                // container waiting to start and the rootfs mounted.
                runtime_delete(&runtime, id).await;
                cleanup(&dir);
                Err(Status::new(
                    e.code(),
                    format!("failed to create shim task: {}", e.message()),
                ))
            }
        }
    }

    /// A shim serving the new task, and whether it is the task's own: a CRI
    /// container joins its pod sandbox's shim (named in its annotations as
    /// containerd's CRI names it), so that a pod costs one shim process, not
    /// one per container; anything else, or a sandbox whose shim cannot
    /// take it (gone, or an older shim without Host), gets a shim of its
    /// own.
    async fn shim_for(
        &self,
        ns: &str,
        id: &str,
        dir: &Path,
        socket: &Path,
        spec: &serde_json::Value,
    ) -> anyhow::Result<(PathBuf, bool)> {
        if let Some(host) = self.pod_shim(ns, id, spec) {
            let req = shim::HostRequest {
                id: id.to_string(),
                namespace: ns.to_string(),
                state_dir: dir.to_string_lossy().into_owned(),
                socket: socket.to_string_lossy().into_owned(),
            };
            match call(&host, host.client.clone().host(req)).await {
                Ok(r) => return Ok((PathBuf::from(r.address), false)),
                Err(e) => tracing::warn!(
                    namespace = ns,
                    id,
                    "the shim of sandbox {} cannot serve it ({}): starting one of its own",
                    host.id,
                    e.message()
                ),
            }
        }
        let shim = self.config().shim.clone();
        let addr = shimclient::spawn(&shim, ns, id, dir, socket, self.debug).await?;
        Ok((addr, true))
    }

    /// The running sandbox task of the pod a CRI container belongs to.
    fn pod_shim(&self, ns: &str, id: &str, spec: &serde_json::Value) -> Option<Arc<Task>> {
        let sandbox = crate::cri::spec::sandbox_of(spec)?;
        if sandbox == id {
            return None;
        }
        match self.map().get(&(ns.to_string(), sandbox.to_string())) {
            Some(Slot::Ready(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// Follows a shim's exits; when the shim itself dies, cleans up after it.
    /// `first`: the events stream if the caller has opened it already.
    fn watch(
        self: Arc<Self>,
        task: Arc<Task>,
        mut first: Option<tonic::codec::Streaming<shim::Event>>,
    ) {
        tokio::spawn(async move {
            loop {
                let stream = match first.take() {
                    Some(s) => Ok(s),
                    None => task.client.clone().events(()).await.map(|r| r.into_inner()),
                };
                if let Ok(mut s) = stream {
                    while let Ok(Some(ev)) = s.message().await {
                        if ev.kind == shim::event::Kind::Exit as i32
                            && let Some(exit) = ev.exit
                        {
                            let _started = task.starting.lock().await;
                            self.publish_exit(&task, &ev.exec_id, exit);
                        }
                    }
                }
                // The stream ended: the task was deleted, or the shim is gone.
                if !self.is_current(&task) {
                    return;
                }
                let alive = tokio::time::timeout(RECONNECT, task.client.clone().info(()))
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false);
                if !alive {
                    tracing::warn!(namespace = %task.namespace, id = %task.id, "shim died; cleaning up");
                    self.map()
                        .remove(&(task.namespace.clone(), task.id.clone()));
                    self.cleanup_dead(&task.namespace, &task.id, &task.dir, Some(&task.runtime))
                        .await;
                    return;
                }
            }
        });
    }

    /// A process's exit, once for the init however many ways it was seen.
    fn publish_exit(&self, task: &Task, exec_id: &str, exit: pb::Exit) {
        if exec_id.is_empty()
            && task
                .init_exit_published
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        // The OOM killer's work is told before the exit it caused, as
        // containerd's shim tells it, so the engine records the exit of a
        // container already marked OOMKilled.
        if exec_id.is_empty()
            && self
                .store
                .get(&task.namespace, &task.id)
                .is_ok_and(|r| crate::oom::killed(&r.spec))
        {
            self.events.publish(
                &task.namespace,
                Event::TaskOom(api::TaskEvent {
                    container_id: task.id.clone(),
                    pid: exit.pid,
                }),
            );
        }
        self.events.publish(
            &task.namespace,
            Event::TaskExit(api::TaskExit {
                container_id: task.id.clone(),
                exec_id: exec_id.to_string(),
                pid: exit.pid,
                exit_status: exit.exit_status,
                exited_at: exit.exited_at,
            }),
        );
    }

    fn is_current(&self, task: &Arc<Task>) -> bool {
        matches!(
            self.map().get(&(task.namespace.clone(), task.id.clone())),
            Some(Slot::Ready(t)) if Arc::ptr_eq(t, task)
        )
    }

    /// After a shim died: the runtime deletes what is left of the container,
    /// the rootfs is unmounted, and an exit is reported with the status the
    /// shim recorded (255 when it recorded none).
    async fn cleanup_dead(&self, ns: &str, id: &str, dir: &Path, runtime: Option<&RuntimeInfo>) {
        let loaded;
        let runtime = match runtime {
            Some(r) => Some(r),
            None => {
                loaded = std::fs::read(dir.join("task.json"))
                    .ok()
                    .and_then(|d| serde_json::from_slice::<RuntimeInfo>(&d).ok());
                loaded.as_ref()
            }
        };
        if let Some(rt) = runtime {
            runtime_delete(rt, id).await;
        }
        let (pid, status, at) = read_exit(dir).unwrap_or((0, 255, SystemTime::now()));
        for file in ["address", "attach-address"] {
            if let Ok(addr) = std::fs::read_to_string(dir.join(file)) {
                let _ = std::fs::remove_file(addr.trim());
            }
        }
        remove_task_dir(dir);
        self.events.publish(
            ns,
            Event::TaskExit(api::TaskExit {
                container_id: id.to_string(),
                exec_id: String::new(),
                pid,
                exit_status: status,
                exited_at: Some(crate::timestamp(at)),
            }),
        );
        self.events.publish(
            ns,
            Event::TaskDelete(api::TaskDelete {
                container_id: id.to_string(),
                pid,
                exit_status: status,
                exited_at: Some(crate::timestamp(at)),
            }),
        );
    }

    /// On start: reconnect to every shim found, in parallel; clean up after the
    /// dead ones.
    pub async fn restore(self: &Arc<Self>) {
        let base = self.state.join("tasks");
        let mut found = Vec::new();
        for ns in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            for t in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                found.push((
                    ns_name.clone(),
                    t.file_name().to_string_lossy().into_owned(),
                    t.path(),
                ));
            }
        }
        let jobs = found.into_iter().map(|(ns, id, dir)| {
            let this = self.clone();
            async move { this.restore_one(ns, id, dir).await }
        });
        futures::future::join_all(jobs).await;
        self.remove_unowned_runtime_state().await;
    }

    /// Containers a runtime keeps state for that are no task of ours (their
    /// task directory went, the runtime's delete did not happen): deleted,
    /// with whatever process of theirs still waits.
    async fn remove_unowned_runtime_state(&self) {
        let known: std::collections::HashSet<String> =
            self.map().keys().map(|(_, id)| id.clone()).collect();
        for name in self.config().runtimes.keys() {
            let Ok(rt) = self.runtime_entry(name) else {
                continue;
            };
            let root = self.state.join("runtime").join(name);
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                // Only what could be a container id reaches the command line.
                let an_id = crate::namespace::validate_id("container", &id).is_ok();
                if an_id && e.path().is_dir() && !known.contains(&id) {
                    tracing::warn!(runtime = %name, id = %id, "runtime state without a task; deleting it");
                    runtime_delete(&rt, &id).await;
                }
            }
        }
    }

    async fn restore_one(self: Arc<Self>, ns: String, id: String, dir: PathBuf) {
        let runtime: Option<RuntimeInfo> = std::fs::read(dir.join("task.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        let addr = std::fs::read_to_string(dir.join("address")).ok();
        let client = match (&addr, &runtime) {
            (Some(a), Some(_)) => shimclient::connect(Path::new(a.trim()), RECONNECT)
                .await
                .ok(),
            _ => None,
        };
        let client = match client {
            Some(mut c) => match tokio::time::timeout(RECONNECT, c.info(())).await {
                Ok(Ok(_)) => Some(c),
                _ => None,
            },
            None => None,
        };
        let (Some(client), Some(runtime)) = (client, runtime.clone()) else {
            tracing::warn!(namespace = %ns, id = %id, "shim gone; cleaning up");
            self.cleanup_dead(&ns, &id, &dir, runtime.as_ref()).await;
            return;
        };
        let task = Arc::new(Task {
            namespace: ns.clone(),
            id: id.clone(),
            dir,
            client,
            runtime,
            init_exit_published: Default::default(),
            starting: Default::default(),
        });
        let state = task
            .client
            .clone()
            .state(shim::ProcessRequest::default())
            .await;
        if let Err(e) = &state
            && e.code() == tonic::Code::FailedPrecondition
        {
            // The shim never got its task (we died spawning it) or is still
            // making it for a caller that died with us: no one was told it
            // exists, so it is rolled back (the shim's delete waits for a
            // create under way).
            tracing::warn!(namespace = %ns, id = %id, "task never finished its create; removing it");
            let mut c = task.client.clone();
            let _ = tokio::time::timeout(CALL, c.delete(shim::ProcessRequest::default())).await;
            let _ = tokio::time::timeout(RECONNECT, c.shutdown(())).await;
            self.cleanup_dead(&ns, &id, &task.dir, Some(&task.runtime))
                .await;
            return;
        }
        self.map()
            .insert((ns.clone(), id.clone()), Slot::Ready(task.clone()));
        // Subscribed first, then the state read again: an exit between the
        // two reads is seen by one or the other (and published once).
        let events = task.client.clone().events(()).await.ok();
        self.clone()
            .watch(task.clone(), events.map(|r| r.into_inner()));
        let state = match state {
            Ok(p) if p.get_ref().status != pb::Status::Stopped as i32 => {
                task.client
                    .clone()
                    .state(shim::ProcessRequest::default())
                    .await
            }
            s => s,
        };
        // An exit while we were away is reported now, with its true status.
        if let Ok(p) = state {
            let p = p.into_inner();
            if p.status == pb::Status::Stopped as i32 {
                self.publish_exit(
                    &task,
                    "",
                    pb::Exit {
                        pid: p.pid,
                        exit_status: p.exit_status,
                        exited_at: p.exited_at,
                    },
                );
            }
        }
        tracing::info!(namespace = %ns, "reconnected to shim of {}", task.id);
    }

    pub async fn start(&self, ns: &str, id: &str, exec_id: &str) -> Result<u32, Status> {
        let t = self.get(ns, id)?;
        let _starting = t.starting.lock().await;
        let pid = call(
            &t,
            t.client.clone().start(shim::ProcessRequest {
                exec_id: exec_id.to_string(),
            }),
        )
        .await?
        .pid;
        let ev = if exec_id.is_empty() {
            Event::TaskStart(api::TaskEvent {
                container_id: id.to_string(),
                pid,
            })
        } else {
            Event::ExecStarted(api::ExecEvent {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid,
            })
        };
        self.events.publish(ns, ev);
        Ok(pid)
    }

    pub async fn exec(&self, ns: &str, req: api::ExecRequest) -> Result<(), Status> {
        crate::namespace::validate_id("exec", &req.exec_id)?;
        let t = self.get(ns, &req.container_id)?;
        call(
            &t,
            t.client.clone().exec(shim::ExecRequest {
                exec_id: req.exec_id.clone(),
                spec: req.spec,
                stdio: req.stdio,
            }),
        )
        .await?;
        self.events.publish(
            ns,
            Event::ExecAdded(api::ExecEvent {
                container_id: req.container_id,
                exec_id: req.exec_id,
                pid: 0,
            }),
        );
        Ok(())
    }

    pub async fn kill(&self, ns: &str, req: &api::KillRequest) -> Result<(), Status> {
        let t = self.get(ns, &req.container_id)?;
        call(
            &t,
            t.client.clone().kill(shim::KillRequest {
                exec_id: req.exec_id.clone(),
                signal: req.signal,
                all: req.all,
            }),
        )
        .await
    }

    pub async fn delete(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
    ) -> Result<api::DeleteTaskResponse, Status> {
        let t = self.get(ns, id)?;
        let r = call(
            &t,
            t.client.clone().delete(shim::ProcessRequest {
                exec_id: exec_id.to_string(),
            }),
        )
        .await?;
        if exec_id.is_empty() {
            berth_fault::point("lifecycled:task-delete.after-shim-delete");
            self.map().remove(&(ns.to_string(), id.to_string()));
            let _ = tokio::time::timeout(RECONNECT, t.client.clone().shutdown(())).await;
            remove_task_dir(&t.dir);
            self.events.publish(
                ns,
                Event::TaskDelete(api::TaskDelete {
                    container_id: id.to_string(),
                    pid: r.pid,
                    exit_status: r.exit_status,
                    exited_at: r.exited_at,
                }),
            );
        }
        Ok(api::DeleteTaskResponse {
            container_id: id.to_string(),
            pid: r.pid,
            exit_status: r.exit_status,
            exited_at: r.exited_at,
        })
    }

    pub async fn wait(&self, ns: &str, id: &str, exec_id: &str) -> Result<pb::Exit, Status> {
        let t = self.get(ns, id)?;
        // No deadline: waiting is what this call is for.
        t.client
            .clone()
            .wait(shim::ProcessRequest {
                exec_id: exec_id.to_string(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn state(&self, ns: &str, id: &str, exec_id: &str) -> Result<pb::Process, Status> {
        let t = self.get(ns, id)?;
        call(
            &t,
            t.client.clone().state(shim::ProcessRequest {
                exec_id: exec_id.to_string(),
            }),
        )
        .await
    }

    pub async fn list(&self, ns: &str) -> Vec<pb::Process> {
        let tasks: Vec<Arc<Task>> = self
            .map()
            .iter()
            .filter_map(|((n, _), s)| match s {
                Slot::Ready(t) if n == ns => Some(t.clone()),
                _ => None,
            })
            .collect();
        let jobs = tasks.into_iter().map(|t| async move {
            call(&t, t.client.clone().state(shim::ProcessRequest::default()))
                .await
                .unwrap_or_else(|_| pb::Process {
                    container_id: t.id.clone(),
                    status: pb::Status::Unknown as i32,
                    ..Default::default()
                })
        });
        let mut v = futures::future::join_all(jobs).await;
        v.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        v
    }

    pub async fn pids(&self, ns: &str, id: &str) -> Result<Vec<pb::ProcessPid>, Status> {
        let t = self.get(ns, id)?;
        Ok(call(&t, t.client.clone().pids(())).await?.processes)
    }

    pub async fn stats(&self, ns: &str, id: &str) -> Result<pb::Stats, Status> {
        let t = self.get(ns, id)?;
        call(&t, t.client.clone().stats(())).await
    }

    pub async fn resize(&self, ns: &str, req: api::ResizePtyRequest) -> Result<(), Status> {
        let t = self.get(ns, &req.container_id)?;
        call(
            &t,
            t.client.clone().resize_pty(shim::ResizePtyRequest {
                exec_id: req.exec_id,
                width: req.width,
                height: req.height,
            }),
        )
        .await
    }

    pub async fn close_io(&self, ns: &str, id: &str, exec_id: &str) -> Result<(), Status> {
        let t = self.get(ns, id)?;
        call(
            &t,
            t.client.clone().close_io(shim::ProcessRequest {
                exec_id: exec_id.to_string(),
            }),
        )
        .await
    }

    pub async fn reopen_log(&self, ns: &str, id: &str) -> Result<(), Status> {
        let t = self.get(ns, id)?;
        call(
            &t,
            t.client.clone().reopen_log(shim::ProcessRequest {
                exec_id: String::new(),
            }),
        )
        .await
    }

    pub async fn pause(&self, ns: &str, id: &str, pause: bool) -> Result<(), Status> {
        let t = self.get(ns, id)?;
        if pause {
            call(&t, t.client.clone().pause(())).await?;
        } else {
            call(&t, t.client.clone().resume(())).await?;
        }
        let ev = api::TaskEvent {
            container_id: id.to_string(),
            pid: 0,
        };
        self.events.publish(
            ns,
            if pause {
                Event::TaskPaused(ev)
            } else {
                Event::TaskResumed(ev)
            },
        );
        Ok(())
    }

    pub async fn update(&self, ns: &str, id: &str, resources: Vec<u8>) -> Result<(), Status> {
        let t = self.get(ns, id)?;
        call(
            &t,
            t.client.clone().update(shim::UpdateRequest { resources }),
        )
        .await
    }
}
