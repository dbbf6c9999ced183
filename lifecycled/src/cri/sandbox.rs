//! Pod sandboxes: run, stop, remove, status, list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_proto::cri::v1 as cri;
use berth_proto::types::v1 as pb;
use serde_json::json;
use tonic::Status;

use super::spec::{self, NODE, PodFiles};
use super::{Cri, KIND, META, NAMESPACE, SandboxMeta, nanos, network, new_id, sandbox_meta};
use crate::store::Record;

const SHM_SIZE: &str = "size=65536k";

impl Cri {
    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.state.join("sandboxes").join(id)
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.state.join("netns").join(id)
    }

    pub async fn run_sandbox(
        self: &Arc<Self>,
        req: cri::RunPodSandboxRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("no pod sandbox config given"))?;
        let md = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("sandbox config must include metadata"))?;
        if md.name.is_empty() {
            return Err(Status::invalid_argument(
                "sandbox config must include metadata.name",
            ));
        }
        let runtime = self
            .tasks
            .runtime_entry(&req.runtime_handler)
            .map_err(|e| {
                Status::invalid_argument(format!("failed to get sandbox runtime: {}", e.message()))
            })?;
        let linux = config.linux.clone().unwrap_or_default();
        let nso = linux
            .security_context
            .as_ref()
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let host_hostname = || {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let hostname = if config.hostname.is_empty() && nso.network == NODE {
            host_hostname()
        } else if config.hostname.is_empty() {
            md.name.clone()
        } else {
            config.hostname.clone()
        };
        let id = new_id()?;
        let mut meta = SandboxMeta {
            name: md.name,
            uid: md.uid,
            namespace: md.namespace,
            attempt: md.attempt,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: req.runtime_handler,
            created_at: nanos(SystemTime::now()),
            ready: false,
            hostname,
            log_directory: config.log_directory.clone(),
            cgroup_parent: linux.cgroup_parent.clone(),
            network_mode: nso.network,
            pid_mode: nso.pid,
            ipc_mode: nso.ipc,
            ..Default::default()
        };
        let name = meta.reserved_name();
        self.reserve("sandbox", &name, &id)?;
        match self.run_inner(&id, &mut meta, &config, &runtime.name).await {
            Ok(()) => {
                self.emit(&id, &id, super::Created).await;
                self.emit(&id, &id, super::Started).await;
                Ok(id)
            }
            Err(e) => {
                self.release(&name);
                Err(e)
            }
        }
    }

    async fn run_inner(
        &self,
        id: &str,
        meta: &mut SandboxMeta,
        config: &cri::PodSandboxConfig,
        runtime: &str,
    ) -> Result<(), Status> {
        let dir = self.sandbox_dir(id);
        let files = PodFiles { dir: &dir };
        if let Err(e) = write_files(&dir, meta, config) {
            remove_files(&dir);
            return Err(Status::internal(format!(
                "setting up the sandbox's files in {}: {e}",
                dir.display()
            )));
        }
        if meta.network_mode != NODE
            && let Err(e) = self.prepare_network(id, meta, config).await
        {
            remove_files(&dir);
            return Err(e);
        }
        let undo = |meta: SandboxMeta| async move {
            self.teardown_network(id, &meta).await;
            remove_files(&self.sandbox_dir(id));
        };
        let spec = spec::sandbox(meta, config, &self.pause_root, &files, id);
        let mut labels: BTreeMap<String, String> = config.labels.clone().into_iter().collect();
        labels.insert(KIND.into(), "sandbox".into());
        let now = SystemTime::now();
        let record = Record {
            id: id.to_string(),
            labels,
            image: String::new(),
            runtime: runtime.to_string(),
            spec: spec.to_string(),
            rootfs: vec![],
            snapshot_key: String::new(),
            created_at: now,
            updated_at: now,
            extensions: [(META.to_string(), json!(meta).to_string())].into(),
        };
        if let Err(e) = self.store.create(NAMESPACE, record) {
            undo(meta.clone()).await;
            return Err(super::store_status(e));
        }
        // The pause process joins the namespace by its path while the
        // plugins wire it: neither waits for the other, and the pod's
        // containers come only after both.
        let mut attachment = meta.network.clone();
        let network = async {
            match (&mut attachment, &meta.netns) {
                (Some(a), Some(netns)) => network::add(&self.cni, a, id, netns).await,
                _ => Ok(()),
            }
        };
        let started = async {
            self.tasks
                .create(NAMESPACE, id, pb::Stdio::default())
                .await?;
            self.tasks.start(NAMESPACE, id, "").await
        };
        let (wired, started) = tokio::join!(network, started);
        let failed = match (&wired, &started) {
            (_, Err(e)) => Some(Status::new(
                e.code(),
                format!(
                    "failed to start sandbox container task {id:?}: {}",
                    e.message()
                ),
            )),
            (Err(e), _) => Some(Status::internal(format!(
                "failed to setup network for sandbox {id:?}: {e}"
            ))),
            _ => None,
        };
        if let Some(e) = failed {
            let _ = self
                .stop_task(id, libc::SIGKILL as u32, Duration::ZERO)
                .await;
            self.delete_task(id).await;
            let _ = self.store.delete(NAMESPACE, id);
            // What ADD made, if it made anything, goes with DEL.
            let mut undone = meta.clone();
            if wired.is_ok() {
                undone.network = attachment;
            }
            undo(undone).await;
            return Err(e);
        }
        let pid = started.unwrap_or_default();
        if let Some(a) = &attachment {
            let mut ips = network::addresses(&a.result).into_iter();
            meta.ip = ips.next().unwrap_or_default();
            meta.additional_ips = ips.collect();
        }
        meta.network = attachment;
        meta.pid = pid;
        let done = meta.clone();
        self.update_meta::<SandboxMeta>(id, |m| {
            m.ready = true;
            m.pid = pid;
            m.ip = done.ip;
            m.additional_ips = done.additional_ips;
            m.network = done.network;
        })?;
        Ok(())
    }

    /// The pod's network namespace, and what CNI ADD will be given,
    /// recorded before it runs.
    async fn prepare_network(
        &self,
        id: &str,
        meta: &mut SandboxMeta,
        config: &cri::PodSandboxConfig,
    ) -> Result<(), Status> {
        let conflist = network::load(&self.cfg.cni_conf_dir).map_err(|e| {
            Status::failed_precondition(format!(
                "failed to setup network for sandbox {id:?}: cni plugin not initialized: {e}"
            ))
        })?;
        let netns = self.netns_path(id);
        let made = netns.clone();
        tokio::task::spawn_blocking(move || berth_cni::netns::create(&made))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("failed to create network namespace: {e}")))?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={}",
            meta.namespace, meta.name, meta.uid
        );
        let rc = network::runtime_config(&config.port_mappings);
        meta.network = Some(network::prepare(conflist, rc, args));
        meta.netns = Some(netns);
        Ok(())
    }

    /// CNI DEL of what ADD made, then the namespace goes.
    async fn teardown_network(&self, id: &str, meta: &SandboxMeta) {
        if let (Some(a), Some(netns)) = (&meta.network, &meta.netns)
            && let Err(e) = network::del(&self.cni, a, id, netns).await
        {
            tracing::warn!("CNI DEL for sandbox {id}: {e}");
        }
        if let Some(netns) = meta.netns.clone() {
            let shown = netns.display().to_string();
            match tokio::task::spawn_blocking(move || berth_cni::netns::remove(&netns)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("removing {shown}: {e}"),
                Err(e) => tracing::warn!("removing {shown}: {e}"),
            }
        }
    }

    /// The pod's containers, then its pause process, then its network:
    /// nothing of it runs or holds an address afterwards.
    pub async fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        let r = self.find("sandbox", id)?;
        let id = r.id.as_str();
        // The containers at once, then the pause process while the plugins
        // unwire its namespace (it holds the namespace, nothing in it).
        let containers = self.containers_of(id);
        futures::future::try_join_all(containers.iter().map(|c| self.stop_container_now(&c.id)))
            .await?;
        let meta = sandbox_meta(&r).unwrap_or_default();
        let pause = async {
            self.stop_task(id, libc::SIGKILL as u32, Duration::ZERO)
                .await?;
            self.delete_task(id).await;
            Ok::<_, Status>(())
        };
        let (stopped, ()) = tokio::join!(pause, self.teardown_network(id, &meta));
        stopped?;
        unmount_shm(&self.sandbox_dir(id));
        let mut was_ready = false;
        self.update_meta::<SandboxMeta>(id, |m| {
            was_ready = std::mem::replace(&mut m.ready, false);
            m.network = None;
            m.netns = None;
        })?;
        if was_ready {
            self.emit(id, id, super::Stopped).await;
        }
        Ok(())
    }

    pub async fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        let r = match self.find("sandbox", id) {
            Ok(r) => r,
            // Removing what is gone is done, as the CRI asks.
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop_sandbox(&r.id).await?;
        let containers = self.containers_of(&r.id);
        futures::future::try_join_all(containers.iter().map(|c| self.remove_container(&c.id)))
            .await?;
        if let Err(e) = self.store.delete(NAMESPACE, &r.id) {
            return Err(super::store_status(e));
        }
        remove_files(&self.sandbox_dir(&r.id));
        if let Some(m) = sandbox_meta(&r) {
            self.release(&m.reserved_name());
        }
        self.forget_sample(&r.id);
        self.emit(&r.id, &r.id, super::Deleted).await;
        Ok(())
    }

    pub fn containers_of(&self, sandbox: &str) -> Vec<Record> {
        self.store
            .list(NAMESPACE)
            .into_iter()
            .filter(|r| super::container_meta(r).is_some_and(|m| m.sandbox_id == sandbox))
            .collect()
    }

    fn to_sandbox(r: &Record, m: &SandboxMeta) -> cri::PodSandbox {
        cri::PodSandbox {
            id: r.id.clone(),
            metadata: Some(m.metadata()),
            state: if m.ready {
                cri::PodSandboxState::SandboxReady as i32
            } else {
                cri::PodSandboxState::SandboxNotready as i32
            },
            created_at: m.created_at,
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            runtime_handler: m.runtime_handler.clone(),
        }
    }

    pub fn sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::PodSandboxStatusResponse, Status> {
        let r = self.find("sandbox", id)?;
        let m = sandbox_meta(&r).unwrap_or_default();
        let s = Self::to_sandbox(&r, &m);
        let status = cri::PodSandboxStatus {
            id: s.id,
            metadata: s.metadata,
            state: s.state,
            created_at: s.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: m.ip.clone(),
                additional_ips: m
                    .additional_ips
                    .iter()
                    .map(|ip| cri::PodIp { ip: ip.clone() })
                    .collect(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        network: m.network_mode,
                        pid: m.pid_mode,
                        ipc: m.ipc_mode,
                        ..Default::default()
                    }),
                }),
            }),
            labels: s.labels,
            annotations: s.annotations,
            runtime_handler: s.runtime_handler,
        };
        let mut info = std::collections::HashMap::new();
        if verbose {
            let spec: serde_json::Value = serde_json::from_str(&r.spec).unwrap_or_default();
            info.insert(
                "info".to_string(),
                json!({
                    "pid": m.pid,
                    "runtimeHandler": m.runtime_handler,
                    "runtimeType": r.runtime,
                    "netNamespacePath": m.netns,
                    "cniResult": m.network.as_ref().map(|a| &a.result),
                    "runtimeSpec": spec,
                })
                .to_string(),
            );
        }
        Ok(cri::PodSandboxStatusResponse {
            status: Some(status),
            info,
            ..Default::default()
        })
    }

    pub fn list_sandboxes(&self, filter: Option<cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let f = filter.unwrap_or_default();
        self.store
            .list(NAMESPACE)
            .iter()
            .filter_map(|r| sandbox_meta(r).map(|m| Self::to_sandbox(r, &m)))
            .filter(|s| f.id.is_empty() || s.id.starts_with(&f.id))
            .filter(|s| f.state.as_ref().is_none_or(|v| v.state == s.state))
            .filter(|s| super::selected(&s.labels, &f.label_selector))
            .collect()
    }
}

/// The files the pod's containers share: hostname, hosts, resolv.conf, and
/// a /dev/shm of its own (a tmpfs) unless it uses the host's IPC.
fn write_files(
    dir: &Path,
    meta: &SandboxMeta,
    config: &cri::PodSandboxConfig,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("hostname"), format!("{}\n", meta.hostname))?;
    let hosts = if meta.network_mode == NODE {
        std::fs::read("/etc/hosts").unwrap_or_default()
    } else {
        b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n".to_vec()
    };
    std::fs::write(dir.join("hosts"), hosts)?;
    let resolv = match &config.dns_config {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            let mut t = String::new();
            if !d.searches.is_empty() {
                t.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for s in &d.servers {
                t.push_str(&format!("nameserver {s}\n"));
            }
            if !d.options.is_empty() {
                t.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            t.into_bytes()
        }
        _ => std::fs::read("/etc/resolv.conf").unwrap_or_default(),
    };
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    if meta.ipc_mode != NODE {
        let shm = dir.join("shm");
        std::fs::create_dir_all(&shm)?;
        use nix::mount::{MsFlags, mount};
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,{SHM_SIZE}").as_str()),
        )
        .map_err(std::io::Error::from)?;
    }
    Ok(())
}

fn unmount_shm(dir: &Path) {
    let shm = dir.join("shm");
    match nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::warn!("unmounting {}: {e}", shm.display()),
    }
}

/// Removes the pod's files; never descends into a mount still there.
fn remove_files(dir: &Path) {
    unmount_shm(dir);
    let _ = std::fs::remove_dir(dir.join("shm"));
    if dir.join("shm").exists() {
        tracing::warn!("not removing {}: its shm is still there", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}
