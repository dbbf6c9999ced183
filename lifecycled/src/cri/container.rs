//! A pod's containers: create, start, stop, remove, status, list, and
//! commands run in them (ExecSync).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_proto::cri::v1 as cri;
use berth_proto::lifecycle::v1 as api;
use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};
use tonic::Status;

use super::spec::{self, PodFiles, User};
use super::{
    ContainerMeta, Cri, KIND, META, NAMESPACE, container_meta, nanos, new_id, sandbox_meta,
};
use crate::images::{blocking, status};
use crate::store::Record;

/// The most ExecSync gathers of each stream.
const EXEC_OUTPUT_MAX: usize = 16 << 20;

fn state_of(m: &ContainerMeta) -> cri::ContainerState {
    if m.finished_at != 0 {
        cri::ContainerState::ContainerExited
    } else if m.started_at != 0 {
        cri::ContainerState::ContainerRunning
    } else {
        cri::ContainerState::ContainerCreated
    }
}

fn state_name(s: cri::ContainerState) -> &'static str {
    match s {
        cri::ContainerState::ContainerCreated => "CONTAINER_CREATED",
        cri::ContainerState::ContainerRunning => "CONTAINER_RUNNING",
        cri::ContainerState::ContainerExited => "CONTAINER_EXITED",
        cri::ContainerState::ContainerUnknown => "CONTAINER_UNKNOWN",
    }
}

fn signal_number(name: &str) -> u32 {
    if name.is_empty() {
        return libc::SIGTERM as u32;
    }
    if let Ok(n) = name.parse::<u32>() {
        return n;
    }
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    format!("SIG{bare}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as u32)
        .unwrap_or(libc::SIGTERM as u32)
}

/// Looks a user up in the image's /etc/passwd and /etc/group: uid, gid and
/// the groups that list it, as containerd's CRI does for the image's USER
/// or a run-as user or name.
fn lookup_user(root: Option<&Path>, user: &str, group: Option<u32>) -> Result<User, Status> {
    let read = |p: &str| {
        root.and_then(|r| crate::rootfs::resolve(r, p).ok())
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read("/etc/passwd");
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == u || f[2] == u)).then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
            )
        })
    });
    let (name, uid, mut gid) = match (entry, u.parse::<u32>()) {
        (Some((n, Some(uid), gid)), _) => (n, uid, gid.unwrap_or(0)),
        (_, Ok(uid)) => (String::new(), uid, 0),
        _ => {
            return Err(Status::invalid_argument(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )));
        }
    };
    let groups_text = read("/etc/group");
    let groups: Vec<(String, u32, Vec<String>)> = groups_text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| {
                (
                    f[0].to_string(),
                    f[2].parse().unwrap_or(u32::MAX),
                    f[3].split(',')
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect(),
                )
            })
        })
        .collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|(n, _, _)| n == g)
                .map(|(_, id, _)| *id)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    if let Some(g) = group {
        gid = g;
    }
    let mut extra: Vec<u32> = groups
        .iter()
        .filter(|(_, id, members)| !name.is_empty() && members.contains(&name) && *id != gid)
        .map(|(_, id, _)| *id)
        .collect();
    extra.dedup();
    Ok(User {
        uid,
        gid,
        groups: extra,
    })
}

impl Cri {
    pub async fn create_container(
        &self,
        req: cri::CreateContainerRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("no container config given"))?;
        let md = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("container config must include metadata"))?;
        if md.name.is_empty() {
            return Err(Status::invalid_argument(
                "container config must include metadata.name",
            ));
        }
        let sandbox = self.find("sandbox", &req.pod_sandbox_id).map_err(|e| {
            Status::new(
                e.code(),
                format!(
                    "failed to find sandbox id {:?}: {}",
                    req.pod_sandbox_id,
                    e.message()
                ),
            )
        })?;
        let smeta = sandbox_meta(&sandbox).unwrap_or_default();
        if !smeta.ready {
            return Err(Status::failed_precondition(format!(
                "sandbox {} is not ready",
                sandbox.id
            )));
        }
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let images = self.images.clone();
        let asked = image_name.clone();
        let found = blocking(move || crate::service::cri_images::find(&images, &asked))
            .await?
            .ok_or_else(|| {
                Status::not_found(format!("failed to resolve image {image_name:?}: not found"))
            })?;
        let image_cfg = found
            .resolved
            .config
            .config()
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or_else(|| json!({}));

        let id = new_id()?;
        let mut meta = ContainerMeta {
            sandbox_id: sandbox.id.clone(),
            name: md.name.clone(),
            attempt: md.attempt,
            image: image_name.clone(),
            image_ref: found.id.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            created_at: nanos(SystemTime::now()),
            log_path: if smeta.log_directory.is_empty() || config.log_path.is_empty() {
                String::new()
            } else {
                Path::new(&smeta.log_directory)
                    .join(&config.log_path)
                    .display()
                    .to_string()
            },
            tty: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            mounts: config
                .mounts
                .iter()
                .map(|m| {
                    (
                        m.container_path.clone(),
                        m.host_path.clone(),
                        m.readonly,
                        m.propagation,
                    )
                })
                .collect(),
            stop_signal: image_cfg["StopSignal"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            ..Default::default()
        };
        let name = meta.reserved_name(&(sandbox.clone(), smeta.clone()));
        meta.reserved = name.clone();
        self.reserve("container", &name, &id)?;

        // The container's rootfs: a snapshot over the image's layers.
        let (images, key, record_name) = (self.images.clone(), id.clone(), found.names[0].clone());
        let prepared = blocking(move || {
            let parent = images.unpack(NAMESPACE, &record_name).map_err(status)?;
            images
                .prepare(NAMESPACE, &key, parent.as_ref())
                .map_err(status)
        })
        .await;
        let mounts = match prepared {
            Ok(m) => m,
            Err(e) => {
                self.release(&name);
                return Err(e);
            }
        };
        let made = self
            .create_record(
                &id,
                &config,
                &image_cfg,
                &sandbox,
                &smeta,
                &meta,
                &found.names[0],
                &mounts,
            )
            .await;
        if let Err(e) = made {
            let (images, key) = (self.images.clone(), id.clone());
            let _ = blocking(move || images.remove(NAMESPACE, &key).map_err(status)).await;
            self.release(&name);
            return Err(e);
        }
        self.emit(&id, &sandbox.id, super::Created).await;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_record(
        &self,
        id: &str,
        config: &cri::ContainerConfig,
        image_cfg: &Value,
        sandbox: &Record,
        smeta: &super::SandboxMeta,
        meta: &ContainerMeta,
        image_record: &str,
        mounts: &[imagestore::Mount],
    ) -> Result<(), Status> {
        let sc = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        let image_user = image_cfg["User"].as_str().unwrap_or_default().to_string();
        let user_spec = if !sc.run_as_username.is_empty() {
            sc.run_as_username.clone()
        } else if let Some(u) = &sc.run_as_user {
            u.value.to_string()
        } else {
            image_user
        };
        let group = sc.run_as_group.as_ref().map(|g| g.value as u32);
        let mut user = if user_spec.is_empty() || user_spec == "0" || user_spec == "root" {
            User {
                uid: 0,
                gid: group.unwrap_or(0),
                groups: vec![],
            }
        } else {
            // The image's /etc/passwd and /etc/group, from its snapshot.
            let scratch = self.state.join("scratch").join(id);
            let mounts = mounts.to_vec();
            let spec_user = user_spec.clone();
            blocking(move || {
                let root = crate::rootfs::TempRoot::mount(&scratch, &mounts)?;
                lookup_user(Some(root.path()), &spec_user, group)
            })
            .await?
        };
        for g in &sc.supplemental_groups {
            let g = *g as u32;
            if !user.groups.contains(&g) {
                user.groups.push(g);
            }
        }
        let files_dir = self.state.join("sandboxes").join(&sandbox.id);
        let files = PodFiles { dir: &files_dir };
        let spec = spec::container(&spec::ContainerInput {
            id,
            config,
            image: image_cfg,
            sandbox_id: &sandbox.id,
            sandbox: smeta,
            files: &files,
            user,
        })?;
        let mut labels: BTreeMap<String, String> = config.labels.clone().into_iter().collect();
        labels.insert(KIND.into(), "container".into());
        let now = SystemTime::now();
        let record = Record {
            id: id.to_string(),
            labels,
            image: image_record.to_string(),
            runtime: sandbox.runtime.clone(),
            spec: spec.to_string(),
            rootfs: vec![],
            snapshot_key: id.to_string(),
            created_at: now,
            updated_at: now,
            extensions: [(META.to_string(), json!(meta).to_string())].into(),
        };
        self.store
            .create(NAMESPACE, record)
            .map_err(super::store_status)?;
        Ok(())
    }

    pub async fn start_container(&self, id: &str) -> Result<(), Status> {
        let r = self.find("container", id)?;
        let id = r.id.as_str();
        let m = container_meta(&r).unwrap_or_default();
        let state = state_of(&m);
        if state != cri::ContainerState::ContainerCreated {
            return Err(Status::failed_precondition(format!(
                "container {id} is in {} state",
                state_name(state)
            )));
        }
        let ready = self
            .sandbox_record(&m.sandbox_id)
            .is_some_and(|(_, s)| s.ready);
        if !ready {
            return Err(Status::failed_precondition(format!(
                "sandbox container {:?} is not running",
                m.sandbox_id
            )));
        }
        let stdio = pb::Stdio {
            stdin: m.stdin,
            terminal: m.tty,
            stdin_once: m.stdin_once,
            log_path: m.log_path.clone(),
            log_format: "cri".into(),
            ..Default::default()
        };
        let started = async {
            self.tasks.create(NAMESPACE, id, stdio).await?;
            // Taken before the start: a process that exits at once has
            // its exit recorded (at its exit time) before the start
            // returns, and must not seem to have started after it ended.
            let at = nanos(SystemTime::now());
            self.tasks.start(NAMESPACE, id, "").await.map(|_| at)
        }
        .await;
        match started {
            Ok(at) => {
                self.update_meta::<ContainerMeta>(id, |m| {
                    m.started_at = at;
                })?;
                self.emit(id, &m.sandbox_id, super::Started).await;
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .stop_task(id, libc::SIGKILL as u32, Duration::ZERO)
                    .await;
                self.delete_task(id).await;
                let now = nanos(SystemTime::now());
                let _ = self.update_meta::<ContainerMeta>(id, |m| {
                    m.started_at = now;
                    m.finished_at = now;
                    m.exit_code = 128;
                    m.reason = "StartError".into();
                    m.message = e.message().to_string();
                });
                Err(Status::new(
                    e.code(),
                    format!("failed to start container {id:?}: {}", e.message()),
                ))
            }
        }
    }

    /// Records the exit of a task that has ended (when its event has not
    /// been handled yet) and deletes the task.
    async fn reap(&self, id: &str) {
        if let Ok(p) = self.tasks.state(NAMESPACE, id, "").await
            && p.status == pb::Status::Stopped as i32
        {
            let at = p
                .exited_at
                .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                .unwrap_or_else(|| nanos(SystemTime::now()));
            self.on_exit(id, p.exit_status, at).await;
        }
    }

    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let r = self.find("container", id)?;
        let m = container_meta(&r).unwrap_or_default();
        let signal = signal_number(&m.stop_signal);
        let timeout = Duration::from_secs(timeout.max(0) as u64);
        self.stop_task(&r.id, signal, timeout).await?;
        self.reap(&r.id).await;
        Ok(())
    }

    /// Kills a container at once (a pod's stop or a forced removal).
    pub(super) async fn stop_container_now(&self, id: &str) -> Result<(), Status> {
        self.stop_task(id, libc::SIGKILL as u32, Duration::ZERO)
            .await?;
        self.reap(id).await;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), Status> {
        let r = match self.find("container", id) {
            Ok(r) => r,
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let id = r.id.as_str();
        self.stop_container_now(id).await?;
        self.delete_task(id).await;
        let (images, key) = (self.images.clone(), id.to_string());
        blocking(move || match images.remove(NAMESPACE, &key) {
            Err(imagestore::Error::SnapshotNotFound { .. }) => Ok(()),
            r => r.map_err(status),
        })
        .await?;
        self.store
            .delete(NAMESPACE, id)
            .map_err(super::store_status)?;
        if let Some(m) = container_meta(&r) {
            self.release(&m.reserved);
        }
        self.forget_sample(id);
        if let Some(m) = container_meta(&r) {
            self.emit(id, &m.sandbox_id, super::Deleted).await;
        }
        Ok(())
    }

    fn to_container(r: &Record, m: &ContainerMeta) -> cri::Container {
        cri::Container {
            id: r.id.clone(),
            pod_sandbox_id: m.sandbox_id.clone(),
            metadata: Some(cri::ContainerMetadata {
                name: m.name.clone(),
                attempt: m.attempt,
            }),
            image: Some(cri::ImageSpec {
                image: m.image.clone(),
                ..Default::default()
            }),
            image_ref: m.image_ref.clone(),
            state: state_of(m) as i32,
            created_at: m.created_at,
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            image_id: m.image_ref.clone(),
        }
    }

    pub fn list_containers(&self, filter: Option<cri::ContainerFilter>) -> Vec<cri::Container> {
        let f = filter.unwrap_or_default();
        self.store
            .list(NAMESPACE)
            .iter()
            .filter_map(|r| container_meta(r).map(|m| Self::to_container(r, &m)))
            .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
            .filter(|c| {
                f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id)
            })
            .filter(|c| f.state.as_ref().is_none_or(|v| v.state == c.state))
            .filter(|c| super::selected(&c.labels, &f.label_selector))
            .collect()
    }

    pub async fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, Status> {
        let r = self.find("container", id)?;
        let m = container_meta(&r).unwrap_or_default();
        let c = Self::to_container(&r, &m);
        let status = cri::ContainerStatus {
            id: c.id,
            metadata: c.metadata,
            state: c.state,
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
            exit_code: m.exit_code,
            image: c.image,
            image_ref: m.image_ref.clone(),
            reason: m.reason.clone(),
            message: m.message.clone(),
            labels: c.labels,
            annotations: c.annotations,
            mounts: m
                .mounts
                .iter()
                .map(|(c, h, ro, p)| cri::Mount {
                    container_path: c.clone(),
                    host_path: h.clone(),
                    readonly: *ro,
                    propagation: *p,
                    ..Default::default()
                })
                .collect(),
            log_path: m.log_path.clone(),
            image_id: m.image_ref.clone(),
            ..Default::default()
        };
        let mut info = std::collections::HashMap::new();
        if verbose {
            let pid = match self.tasks.state(NAMESPACE, &r.id, "").await {
                Ok(p) if p.status == pb::Status::Running as i32 => p.pid,
                _ => 0,
            };
            let spec: Value = serde_json::from_str(&r.spec).unwrap_or_default();
            info.insert(
                "info".to_string(),
                json!({
                    "sandboxID": m.sandbox_id,
                    "pid": pid,
                    "snapshotKey": r.snapshot_key,
                    "runtimeType": r.runtime,
                    "runtimeSpec": spec,
                })
                .to_string(),
            );
        }
        Ok(cri::ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    /// The running container's task, or why there is none.
    pub(super) fn running(&self, id: &str) -> Result<Record, Status> {
        let r = self.find("container", id)?;
        let m = container_meta(&r).unwrap_or_default();
        let state = state_of(&m);
        if state != cri::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "container {} is in {} state",
                r.id,
                state_name(state)
            )));
        }
        Ok(r)
    }

    pub async fn exec_sync(
        &self,
        req: cri::ExecSyncRequest,
    ) -> Result<cri::ExecSyncResponse, Status> {
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument(
                "no command given (ExecSyncRequest.cmd)",
            ));
        }
        let r = self.running(&req.container_id)?;
        let id = r.id.clone();
        let spec: Value = serde_json::from_str(&r.spec)
            .map_err(|e| Status::internal(format!("container {id}: spec: {e}")))?;
        let mut process = spec["process"].clone();
        process["args"] = json!(req.cmd);
        process["terminal"] = json!(false);
        let exec_id = format!("exec-{}", &new_id()?[..16]);
        self.tasks
            .exec(
                NAMESPACE,
                api::ExecRequest {
                    container_id: id.clone(),
                    exec_id: exec_id.clone(),
                    spec: process.to_string().into_bytes(),
                    stdio: Some(pb::Stdio::default()),
                },
            )
            .await?;
        let result = self.run_exec(&id, &exec_id, req.timeout).await;
        let _ = self.tasks.delete(NAMESPACE, &id, &exec_id).await;
        result
    }

    async fn run_exec(
        &self,
        id: &str,
        exec_id: &str,
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, Status> {
        let task = self.tasks.get(NAMESPACE, id)?;
        let open = shim::AttachRequest {
            kind: Some(shim::attach_request::Kind::Open(shim::AttachOpen {
                exec_id: exec_id.to_string(),
                stdin: false,
                stdout: true,
                stderr: true,
            })),
        };
        let mut output = task
            .client
            .clone()
            .attach(tokio_stream::iter([open]))
            .await?
            .into_inner();
        self.tasks.start(NAMESPACE, id, exec_id).await?;
        let run = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.message().await? {
                let buf = if chunk.stream == pb::chunk::Stream::Stderr as i32 {
                    &mut stderr
                } else {
                    &mut stdout
                };
                let room = EXEC_OUTPUT_MAX.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
            }
            let exit = self.tasks.wait(NAMESPACE, id, exec_id).await?;
            Ok::<_, Status>(cri::ExecSyncResponse {
                stdout,
                stderr,
                exit_code: exit.exit_status as i32,
            })
        };
        if timeout <= 0 {
            return run.await;
        }
        match tokio::time::timeout(Duration::from_secs(timeout as u64), run).await {
            Ok(r) => r,
            Err(_) => {
                self.kill_exec(id, exec_id).await;
                Err(Status::deadline_exceeded(format!(
                    "command {exec_id} timed out: timeout {timeout}s exceeded"
                )))
            }
        }
    }

    /// A URL on the streaming server where the command runs once a
    /// client connects.
    pub fn exec_url(&self, mut req: cri::ExecRequest) -> Result<String, Status> {
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("cmd is empty"));
        }
        stream_opts(req.stdin, req.stdout, req.stderr, req.tty)?;
        req.container_id = self.running(&req.container_id)?.id;
        self.streams.url(super::streaming::Pending::Exec(req))
    }

    /// A URL on the streaming server joining a client to the container's
    /// own stdio.
    pub fn attach_url(&self, mut req: cri::AttachRequest) -> Result<String, Status> {
        stream_opts(req.stdin, req.stdout, req.stderr, req.tty)?;
        req.container_id = self.running(&req.container_id)?.id;
        self.streams.url(super::streaming::Pending::Attach(req))
    }

    /// A URL on the streaming server forwarding connections into the pod.
    pub fn port_forward_url(&self, mut req: cri::PortForwardRequest) -> Result<String, Status> {
        let r = self.find("sandbox", &req.pod_sandbox_id)?;
        if !super::sandbox_meta(&r).is_some_and(|m| m.ready) {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                r.id
            )));
        }
        req.pod_sandbox_id = r.id;
        self.streams
            .url(super::streaming::Pending::PortForward(req))
    }

    /// Ends a command run in a container and waits for it to be gone.
    pub(super) async fn kill_exec(&self, id: &str, exec_id: &str) {
        let kill = api::KillRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal: libc::SIGKILL as u32,
            all: false,
        };
        let _ = self.tasks.kill(NAMESPACE, &kill).await;
        let _ = self.tasks.wait(NAMESPACE, id, exec_id).await;
    }

    /// The kubelet renamed the log away (rotation): the shim opens it
    /// again. Only a running container has a log being written.
    pub async fn reopen_log(&self, id: &str) -> Result<(), Status> {
        let r = self.running(id)?;
        self.tasks.reopen_log(NAMESPACE, &r.id).await.map_err(|e| {
            Status::new(
                e.code(),
                format!("failed to reopen log of {}: {}", r.id, e.message()),
            )
        })
    }

    pub async fn update_resources(
        &self,
        id: &str,
        resources: Option<cri::LinuxContainerResources>,
    ) -> Result<(), Status> {
        let r = self.find("container", id)?;
        let Some(res) = resources else {
            return Ok(());
        };
        let new = spec::update_resources(&res);
        // The spec keeps what a later start should get too.
        let mut spec: Value = serde_json::from_str(&r.spec).unwrap_or_default();
        if let Some(o) = new.as_object() {
            for (k, v) in o {
                spec["linux"]["resources"][k] = v.clone();
            }
        }
        if self.tasks.has_task(NAMESPACE, &r.id) {
            self.tasks
                .update(NAMESPACE, &r.id, new.to_string().into_bytes())
                .await?;
        }
        self.store
            .update(NAMESPACE, &r.id, |rec| rec.spec = spec.to_string())
            .map_err(super::store_status)?;
        Ok(())
    }
}

/// The streams a session may ask for, as the kubelet's streaming
/// library checks them.
fn stream_opts(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_in_the_images_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nlog:x:4:www\n",
        )
        .unwrap();
        let u = lookup_user(Some(dir.path()), "www", None).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (33, 33, vec![4]));
        let u = lookup_user(Some(dir.path()), "33:log", None).unwrap();
        assert_eq!((u.uid, u.gid), (33, 4));
        let u = lookup_user(Some(dir.path()), "1000", Some(7)).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 7));
        let e = lookup_user(Some(dir.path()), "nobody", None).unwrap_err();
        assert!(e.message().contains("unable to find user nobody"), "{e}");
    }

    #[test]
    fn stop_signals_by_name_or_number() {
        assert_eq!(signal_number(""), 15);
        assert_eq!(signal_number("SIGQUIT"), 3);
        assert_eq!(signal_number("usr1"), 10);
        assert_eq!(signal_number("9"), 9);
    }
}
