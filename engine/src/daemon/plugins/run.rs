//! An enabled plugin's process: a container of lifecycled's
//! `plugins.berth` namespace (dockerd keeps its plugins in containerd's
//! `plugins.moby`), made from the plugin's rootfs and settings as dockerd
//! makes it, and ready once something listens on its socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};
use specgen::defaults;

use super::{Entry, Plugin};
use crate::daemon::Daemon;
use crate::error::{ApiError, Result};

pub const NAMESPACE: &str = "plugins.berth";

/// How long an enabled plugin has to listen on its socket (dockerd gives
/// it about ten seconds too).
const LISTEN_WITHIN: Duration = Duration::from_secs(10);
/// How long a plugin has to end on SIGTERM before SIGKILL, as dockerd's.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn attrs(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("name".to_string(), name.to_string())])
}

impl Daemon {
    /// `POST /plugins/{name}/enable`.
    pub async fn plugin_enable(self: &Arc<Self>, e: &Arc<Entry>, given: &str) -> Result<()> {
        let _op = e.op.lock().await;
        let mut p = e.get();
        if p.enabled {
            return Err(ApiError::conflict(format!(
                "plugin already enabled: plugin {} is enabled",
                p.name
            )));
        }
        self.plugin_start(&p).await?;
        p.enabled = true;
        if let Err(err) = self.plugins.save(e, p) {
            self.plugin_stop(&e.id).await;
            return Err(err);
        }
        // Containers still running from before a forced disable log
        // through it again.
        self.resume_plugin_logging(&e.get()).await;
        self.watch_plugin(&e.id);
        self.events.publish("plugin", "enable", &e.id, attrs(given));
        Ok(())
    }

    /// `POST /plugins/{name}/disable`.
    pub async fn plugin_disable(&self, e: &Arc<Entry>, given: &str, force: bool) -> Result<()> {
        let _op = e.op.lock().await;
        let mut p = e.get();
        if !p.enabled {
            return Err(ApiError::conflict(format!(
                "plugin is already disabled: plugin {} found but disabled",
                p.name
            )));
        }
        if !force && (self.plugin_serves_volumes(&p) || self.networks_use_plugin(&p.name)) {
            return Err(ApiError::conflict(format!("plugin {} is in use", p.name)));
        }
        if !force && self.plugin_logs_in_use(&p).await {
            return Err(ApiError::conflict(format!("plugin {} is in use", p.name)));
        }
        self.drop_authz_plugin(&p.name);
        self.plugins
            .volume_scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p.name);
        self.plugin_stop(&e.id).await;
        p.enabled = false;
        self.plugins.save(e, p)?;
        self.events
            .publish("plugin", "disable", &e.id, attrs(given));
        Ok(())
    }

    /// `DELETE /plugins/{name}`: an enabled one only with force, which
    /// stops it first.
    pub async fn plugin_remove(&self, e: &Arc<Entry>, given: &str, force: bool) -> Result<()> {
        let _op = e.op.lock().await;
        let p = e.get();
        if !force {
            if self.plugin_serves_volumes(&p) || self.networks_use_plugin(&p.name) {
                return Err(ApiError::conflict(format!("plugin {} is in use", p.name)));
            }
            if p.enabled {
                return Err(ApiError::conflict(format!("plugin {} is enabled", p.name)));
            }
        }
        // Quiet when it does not run; a task or shared mount a failed stop
        // left goes too, before its files do.
        self.plugin_stop(&e.id).await;
        self.plugins.remove(e)?;
        self.plugin_forget_blobs(&e.id).await;
        self.events.publish("plugin", "remove", &e.id, attrs(given));
        Ok(())
    }

    /// Starts the plugin's container and waits until it listens on its
    /// socket; on any failure nothing of it is left running.
    async fn plugin_start(&self, p: &Plugin) -> Result<()> {
        self.plugin_stop(&p.id).await;
        match self.plugin_launch(p).await {
            Ok(()) => Ok(()),
            Err(err) => {
                self.plugin_stop(&p.id).await;
                Err(err)
            }
        }
    }

    async fn plugin_launch(&self, p: &Plugin) -> Result<()> {
        let id = &p.id;
        let sockets = self.plugins.socket_dir(id);
        std::fs::create_dir_all(&sockets)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", sockets.display())))?;
        let socket = self.plugins.socket(p);
        let _ = std::fs::remove_file(&socket);
        if !p.config.propagated_mount.is_empty() {
            share(&self.plugins.propagated(id))?;
        }
        let spec = spec(self, p)?;
        let record = api::Container {
            id: id.clone(),
            labels: [("berth.plugin".to_string(), p.name.clone())].into(),
            image: String::new(),
            runtime: String::new(),
            spec: spec.to_string().into_bytes(),
            rootfs: vec![pb::Mount {
                r#type: "bind".into(),
                source: self.plugins.rootfs(id).to_string_lossy().into_owned(),
                target: String::new(),
                options: vec!["rbind".into(), "rw".into()],
            }],
            snapshot_key: String::new(),
            created_at: None,
            updated_at: None,
        };
        self.lc
            .containers()
            .create(self.lc.req_in(
                NAMESPACE,
                api::CreateContainerRequest {
                    container: Some(record),
                },
            ))
            .await
            .map_err(|s| ApiError::internal(s.message().to_string()))?;
        let stdio = pb::Stdio {
            log_path: self
                .plugins
                .dir(id)
                .join("plugin.log")
                .to_string_lossy()
                .into_owned(),
            log_max_size: 1 << 20,
            log_max_files: 2,
            ..Default::default()
        };
        self.lc
            .tasks()
            .create(self.lc.req_in(
                NAMESPACE,
                api::CreateTaskRequest {
                    container_id: id.clone(),
                    stdio: Some(stdio),
                },
            ))
            .await
            .map_err(|s| ApiError::internal(s.message().to_string()))?;
        self.lc
            .tasks()
            .start(self.lc.req_in(NAMESPACE, process(id)))
            .await
            .map_err(|s| ApiError::internal(s.message().to_string()))?;
        let mut tasks = self.lc.tasks();
        let exited = tasks.wait(self.lc.req_in(NAMESPACE, process(id)));
        tokio::pin!(exited);
        let deadline = tokio::time::Instant::now() + LISTEN_WITHIN;
        loop {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(());
            }
            tokio::select! {
                r = &mut exited => {
                    let status = r.map(|x| x.into_inner().exit_status).unwrap_or(255);
                    return Err(ApiError::internal(format!(
                        "plugin {} exited with status {status} before it listened on {}{}",
                        p.name,
                        socket.display(),
                        last_output(&self.plugins.dir(id).join("plugin.log"))
                    )));
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::internal(format!(
                    "dial unix {}: connect: no such file or directory (plugin {} did not listen within {}s)",
                    socket.display(),
                    p.name,
                    LISTEN_WITHIN.as_secs()
                )));
            }
        }
    }

    /// Ends a plugin's process (SIGTERM, SIGKILL after the grace) and
    /// removes its task and container; quiet when there is none.
    pub async fn plugin_stop(&self, id: &str) {
        let running = matches!(
            self.lc.tasks().get(self.lc.req_in(NAMESPACE, process(id))).await,
            Ok(t) if t.get_ref().status == pb::Status::Running as i32
                || t.get_ref().status == pb::Status::Paused as i32
        );
        if running {
            self.plugin_signal(id, libc::SIGTERM).await;
            let mut tasks = self.lc.tasks();
            let waited = tokio::time::timeout(
                STOP_GRACE,
                tasks.wait(self.lc.req_in(NAMESPACE, process(id))),
            )
            .await;
            if waited.is_err() {
                tracing::warn!("plugin {id} did not end on SIGTERM; killing it");
                self.plugin_signal(id, libc::SIGKILL).await;
                let _ = self
                    .lc
                    .tasks()
                    .wait(self.lc.req_in(NAMESPACE, process(id)))
                    .await;
            }
        }
        if let Err(s) = self
            .lc
            .tasks()
            .delete(self.lc.req_in(NAMESPACE, process(id)))
            .await
            && s.code() != tonic::Code::NotFound
        {
            tracing::warn!("deleting plugin {id}'s task: {}", s.message());
        }
        if let Err(s) = self
            .lc
            .containers()
            .delete(
                self.lc
                    .req_in(NAMESPACE, api::ContainerRequest { id: id.to_string() }),
            )
            .await
            && s.code() != tonic::Code::NotFound
        {
            tracing::warn!("deleting plugin {id}'s container: {}", s.message());
        }
        unshare(&self.plugins.propagated(id));
    }

    async fn plugin_signal(&self, id: &str, signal: i32) {
        let _ = self
            .lc
            .tasks()
            .kill(self.lc.req_in(
                NAMESPACE,
                api::KillRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    signal: signal as u32,
                    all: true,
                },
            ))
            .await;
    }

    /// Starts an enabled plugin again when its process ends on its own, as
    /// dockerd restarts its plugins: after a second, doubling to half a
    /// minute while it keeps ending within ten seconds of its start.
    fn watch_plugin(self: &Arc<Self>, id: &str) {
        let d = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            let mut started = tokio::time::Instant::now();
            loop {
                match d
                    .lc
                    .tasks()
                    .wait(d.lc.req_in(NAMESPACE, process(&id)))
                    .await
                {
                    Ok(_) => {}
                    // Its task is gone: disabled or removed.
                    Err(s) if s.code() == tonic::Code::NotFound => return,
                    // lifecycled is away for a moment: wait on it again.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_secs(1);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                if d.plugins.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Some(e) = d.plugins.find_id(&id) else {
                    return;
                };
                let _op = e.op.lock().await;
                // Removed (perhaps installed again) while the lock was held:
                // a force remove ends the process this wait saw end.
                if !d
                    .plugins
                    .find_id(&id)
                    .is_some_and(|now| Arc::ptr_eq(&now, &e))
                {
                    return;
                }
                let p = e.get();
                let running = matches!(
                    d.lc.tasks().get(d.lc.req_in(NAMESPACE, process(&id))).await,
                    Ok(t) if t.get_ref().status == pb::Status::Running as i32
                );
                // Disabled meanwhile, or started again by someone else (who
                // watches it now).
                if !p.enabled || running {
                    return;
                }
                tracing::warn!("plugin {} ended; starting it again", p.name);
                started = tokio::time::Instant::now();
                if let Err(err) = d.plugin_start(&p).await {
                    tracing::error!("starting plugin {} again: {}", p.name, err.message);
                    return;
                }
                d.resume_plugin_logging(&p).await;
            }
        });
    }

    /// At start: each enabled plugin runs again, or still runs (a
    /// live-restored engine finds its process where it left it).
    pub async fn restore_plugins(self: &Arc<Self>) {
        // lifecycled may come up after the engine: it is waited for.
        for _ in 0..300 {
            if self.lc.version().version(self.lc.req(())).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        {
            let _fetching = self.plugins.fetch_lock.lock().await;
            self.plugin_sweep_blobs().await;
        }
        for e in self.plugins.all() {
            let p = e.get();
            if !p.enabled {
                continue;
            }
            let _op = e.op.lock().await;
            self.sweep_log_fifos(&p).await;
            let alive = matches!(
                self.lc.tasks().get(self.lc.req_in(NAMESPACE, process(&p.id))).await,
                Ok(t) if t.get_ref().status == pb::Status::Running as i32
            ) && tokio::net::UnixStream::connect(self.plugins.socket(&p))
                .await
                .is_ok();
            if alive {
                tracing::info!("plugin {} is still running", p.name);
                self.watch_plugin(&p.id);
                continue;
            }
            if let Err(err) = self.plugin_start(&p).await {
                tracing::error!("starting plugin {}: {}", p.name, err.message);
            } else {
                tracing::info!("started plugin {}", p.name);
                self.resume_plugin_logging(&p).await;
                self.watch_plugin(&p.id);
            }
        }
    }

    /// At a shutdown without live-restore: the plugins end with the engine
    /// and stay enabled, to run again at its next start.
    pub async fn stop_plugins(&self) {
        self.plugins
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for e in self.plugins.all() {
            if e.get().enabled {
                let _op = e.op.lock().await;
                self.plugin_stop(&e.id).await;
            }
        }
    }
}

fn process(id: &str) -> api::ProcessRequest {
    api::ProcessRequest {
        container_id: id.to_string(),
        exec_id: String::new(),
    }
}

/// The last lines the plugin wrote, for an error that says why it ended.
fn last_output(log: &Path) -> String {
    let Ok(raw) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<String> = raw
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["log"].as_str().map(|s| s.trim_end().to_string()))
        .collect();
    let tail = &lines[lines.len().saturating_sub(5)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" / "))
    }
}

/// Makes the host directory of a plugin's `PropagatedMount` a shared
/// mount of its own, so that what the plugin mounts under it inside its
/// mount namespace appears on the host (where volumes are bound from).
fn share(dir: &Path) -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let err = |e: nix::Error| {
        ApiError::internal(format!(
            "sharing the plugin's propagated mount {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    if !is_mount_point(dir) {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err)?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err)
}

fn unshare(dir: &Path) {
    while is_mount_point(dir) {
        if let Err(e) = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {}: {e}", dir.display());
            return;
        }
    }
}

fn is_mount_point(dir: &Path) -> bool {
    let want = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| p.replace("\\040", " ") == want)
}

/// The plugin's runtime spec, as dockerd's `InitSpec` makes it: Docker's
/// defaults, the entrypoint with the set args, the set env, the config's
/// mounts and devices, the socket directory at /run/docker/plugins, and
/// the host's namespaces the config asks for.
fn spec(d: &Daemon, p: &Plugin) -> Result<Value> {
    let c = &p.config;
    let mut args = c.entrypoint.clone().unwrap_or_default();
    args.extend(p.settings.args.iter().cloned());
    if args.is_empty() {
        return Err(ApiError::bad_request(format!(
            "plugin {} has no entrypoint",
            p.name
        )));
    }
    let mut spec = defaults::spec(&args, false);
    let mut env = vec![format!("PATH={}", defaults::DEFAULT_PATH)];
    env.extend(p.settings.env.iter().cloned());
    let proc = &mut spec["process"];
    proc["env"] = json!(env);
    proc["cwd"] = json!(if c.work_dir.is_empty() {
        "/"
    } else {
        &c.work_dir
    });
    proc["user"] = json!({"uid": c.user.uid, "gid": c.user.gid});
    let mut caps: Vec<String> = defaults::DEFAULT_CAPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for cap in c.linux.capabilities.iter().flatten() {
        let cap = defaults::normalize_cap(cap).ok_or_else(|| {
            ApiError::bad_request(format!("plugin {}: unknown capability {cap:?}", p.name))
        })?;
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    proc["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});

    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    for m in &p.settings.mounts {
        let Some(source) = &m.source else {
            return Err(ApiError::bad_request(format!(
                "plugin {}: mount {:?} has no source",
                p.name, m.name
            )));
        };
        mounts.push(json!({
            "destination": m.destination,
            "type": if m.typ.is_empty() { "bind" } else { &m.typ },
            "source": source,
            "options": m.options.clone().unwrap_or_default(),
        }));
    }
    mounts.push(json!({
        "destination": "/run/docker/plugins",
        "type": "bind",
        "source": d.plugins.socket_dir(&p.id),
        "options": ["rbind", "rshared"],
    }));
    let mut namespaces: Vec<Value> = spec["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !c.network.typ.is_empty() {
        if c.network.typ == "host" {
            namespaces.retain(|n| n["type"] != "network");
        }
        for f in ["/etc/hosts", "/etc/resolv.conf"] {
            mounts.push(
                json!({"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}),
            );
        }
    }
    if c.pid_host {
        namespaces.retain(|n| n["type"] != "pid");
    }
    if c.ipc_host {
        namespaces.retain(|n| n["type"] != "ipc");
    }
    if !c.propagated_mount.is_empty() {
        mounts.push(json!({
            "destination": c.propagated_mount,
            "type": "bind",
            "source": d.plugins.propagated(&p.id),
            "options": ["rbind", "rw", "rshared"],
        }));
        spec["linux"]["rootfsPropagation"] = json!("rshared");
    }
    spec["mounts"] = json!(mounts);
    spec["linux"]["namespaces"] = json!(namespaces);

    let mut devices = Vec::new();
    let mut rules: Vec<Value> = spec["linux"]["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if c.linux.allow_all_devices {
        rules = vec![json!({"allow": true, "access": "rwm"})];
    }
    for dev in &p.settings.devices {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let Some(path) = &dev.path else { continue };
        let m = std::fs::metadata(path).map_err(|e| {
            ApiError::internal(format!(
                "plugin {}: device {path}: {}",
                p.name,
                crate::error::go_os_error(&e)
            ))
        })?;
        let typ = if m.file_type().is_block_device() {
            "b"
        } else if m.file_type().is_char_device() {
            "c"
        } else {
            return Err(ApiError::bad_request(format!(
                "plugin {}: {path:?} is not a device",
                p.name
            )));
        };
        let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
        devices.push(json!({"path": path, "type": typ, "major": major, "minor": minor, "fileMode": m.mode() & 0o777, "uid": 0, "gid": 0}));
        rules.push(
            json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": "rwm"}),
        );
    }
    if !devices.is_empty() {
        spec["linux"]["devices"] = json!(devices);
    }
    spec["linux"]["resources"]["devices"] = json!(rules);
    spec["linux"]["cgroupsPath"] = json!(format!(
        "/{}/plugins/{}",
        d.cfg.cgroup_parent.trim_matches('/'),
        p.id
    ));
    Ok(spec)
}
