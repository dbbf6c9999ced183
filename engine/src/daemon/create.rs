//! `POST /containers/create`: the image resolved, its config merged into the
//! request as dockerd merges it, the record made in lifecycled (with a
//! snapshot of the image) and here.

use std::sync::Arc;
use std::time::SystemTime;

use berth_proto::lifecycle::v1 as api;
use serde_json::Value;

use super::container::{Container, State};
use super::recover::MADE_BY;
use super::{Daemon, images, names};
use crate::error::{ApiError, Result};
use crate::types::{CreateRequest, CreateResponse, Entrypoint, HealthConfig, StrSlice};

/// An image found by name, id or id prefix.
pub struct FoundImage {
    pub name: String,
    pub id: String,
    pub config: Value,
}

impl Daemon {
    pub async fn find_image(&self, name: &str) -> Result<FoundImage> {
        let not_found = || ApiError::not_found(format!("No such image: {name}"));
        let hexish = |s: &str| s.len() >= 4 && s.chars().all(|c| c.is_ascii_hexdigit());
        let id_query = name.strip_prefix("sha256:").filter(|s| hexish(s)).or((!name
            .contains(['/', ':'])
            && hexish(name)
            && name.len() >= 12)
            .then_some(name));
        if let Some(prefix) = id_query {
            let list = self
                .lc
                .images()
                .list(self.lc.req(api::ListImagesRequest::default()))
                .await?
                .into_inner()
                .images;
            if let Some(i) = list.into_iter().find(|i| {
                i.config_digest
                    .trim_start_matches("sha256:")
                    .starts_with(prefix)
            }) {
                return Ok(FoundImage {
                    name: i.name,
                    id: i.config_digest,
                    config: serde_json::from_slice(&i.config).unwrap_or_default(),
                });
            }
            if name.starts_with("sha256:") {
                return Err(not_found());
            }
        }
        let full = images::normalize(name).map_err(ApiError::bad_request)?;
        match self
            .lc
            .images()
            .get(self.lc.req(api::ImageRequest { name: full.clone() }))
            .await
        {
            Ok(r) => {
                let i = r.into_inner();
                Ok(FoundImage {
                    name: i.name,
                    id: i.config_digest,
                    config: serde_json::from_slice(&i.config).unwrap_or_default(),
                })
            }
            // Named as dockerd names it: `busybox:latest`, `user/app:1`.
            Err(s) if s.code() == tonic::Code::NotFound => Err(ApiError::not_found(format!(
                "No such image: {}",
                images::familiar(&full)
            ))),
            Err(s) => Err(s.into()),
        }
    }

    pub async fn create(
        self: &Arc<Self>,
        name: Option<String>,
        req: CreateRequest,
        owner: Option<String>,
    ) -> Result<CreateResponse> {
        let CreateRequest {
            mut config,
            host_config: mut hc,
            mut networking_config,
            runtime,
        } = req;
        if hc.runtime.is_empty() {
            hc.runtime = runtime;
        }
        if config.image.is_empty() {
            // dockerd's words: without an image, a command is what it
            // misses first.
            command(&config)?;
            return Err(ApiError::bad_request(
                "Config cannot be empty in order to create a container",
            ));
        }
        validate_net_container_mode(&config, &hc)?;
        let image = self.find_image(&config.image).await?;
        merge_image_config(&mut config, &image.config);
        let mut warnings = Vec::new();
        // As dockerd: a container without a driver gets the daemon's.
        if hc.log_config.typ.is_empty() {
            hc.log_config.typ = self.cfg.log_driver.clone();
        }
        // Checked as they will be used: daemon.json's log-opts fill what a
        // container of the daemon's driver leaves out (dockerd merges, then
        // checks; berth merges again at each start, so a reload reaches it).
        let mut checked = hc.clone();
        checked.log_config.config =
            super::ops::with_daemon_log_opts(self, &hc.log_config.typ, &hc.log_config.config);
        validate_host_config(&checked, &mut warnings)?;
        let driver = hc.log_config.typ.as_str();
        if !super::plugins::logging::BUILTIN.contains(&driver) {
            self.log_plugin(driver).map_err(|why| {
                ApiError::bad_request(format!("error looking up logging plugin {driver}: {why}"))
            })?;
        }
        host_config_defaults(&mut hc);
        super::resources::default_swap(&mut hc);
        super::resources::discard_unsupported(&mut hc, &mut warnings);
        for rule in &hc.device_cgroup_rules {
            super::spec::device_rule(rule).map_err(ApiError::bad_request)?;
        }
        // One network at create (API 1.44 took more); the others are
        // connected after, as the CLI and compose do.
        if networking_config.endpoints_config.len() > 1 {
            let names: Vec<&str> = networking_config
                .endpoints_config
                .keys()
                .map(String::as_str)
                .collect();
            return Err(ApiError::bad_request(format!(
                "Container cannot be connected to network endpoints: {}",
                names.join(", ")
            )));
        }
        for (network, ep) in &networking_config.endpoints_config {
            super::netsetup::validate_endpoint(network, ep)?;
        }
        super::netsetup::validate_mac(&config.mac_address)?;
        if !config.stop_signal.is_empty() {
            super::ops::parse_signal(&config.stop_signal)?;
        }
        super::lines::validate(&config, &hc)?;
        if let Some(h) = &config.healthcheck {
            validate_healthcheck(h)?;
        }
        validate_env(&config.env)?;

        let (path, args) = command(&config)?;
        let id = hex::encode(rand::random::<[u8; 32]>());
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => names::validate(&n).map_err(ApiError::bad_request)?,
            None => {
                let mut n = names::generate(0);
                for retry in 1..10 {
                    if !self.name_taken(&n) {
                        break;
                    }
                    n = names::generate(retry);
                }
                n
            }
        };
        self.name_joined(&mut hc)?;
        self.plan_links(&name, &mut hc, &mut networking_config)?;
        self.reserve_name(&name, &id)?;
        let result = self
            .create_inner(
                &id,
                &name,
                config,
                hc,
                networking_config,
                &image,
                path,
                args,
                owner,
            )
            .await;
        if result.is_err() {
            self.release_name(&name);
            let _ = std::fs::remove_dir_all(self.containers_dir().join(&id));
        }
        result.map(|()| CreateResponse { id, warnings })
    }

    /// As dockerd: the modes that join another container's namespaces name
    /// it by id (a rename does not break them), and the container an IPC
    /// or PID mode names must exist (400, as dockerd's) — the one whose
    /// network it joins too (berth says so at create, dockerd at start;
    /// a 400, not a 404, which the docker CLI takes for a missing image
    /// and goes to pull).
    fn name_joined(&self, hc: &mut crate::types::HostConfig) -> Result<()> {
        for mode in [&mut hc.ipc_mode, &mut hc.pid_mode, &mut hc.network_mode] {
            let Some(other) = mode.strip_prefix("container:") else {
                continue;
            };
            match self.find(other) {
                Ok(e) => *mode = format!("container:{}", e.id),
                Err(err) => return Err(ApiError::bad_request(err.message)),
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_inner(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        config: crate::types::Config,
        mut hc: crate::types::HostConfig,
        networking: crate::types::NetworkingConfig,
        image: &FoundImage,
        path: String,
        args: Vec<String>,
        owner: Option<String>,
    ) -> Result<()> {
        let dir = self.containers_dir().join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
        // Inspect names the runtime, as dockerd's does.
        if hc.runtime.is_empty() {
            hc.runtime = self.live().default_runtime.clone();
        }
        let runtime = self.lifecycled_runtime(&hc.runtime).await?;
        let mut config = config;
        // On the host's network it is named as the host, as dockerd names
        // it at create (monitoring agents report that name).
        if hc.network_mode == "host"
            && config.hostname.is_empty()
            && let Ok(name) = nix::unistd::gethostname()
        {
            config.hostname = name.to_string_lossy().into_owned();
        }
        let mut c = Container {
            id: id.to_string(),
            name: name.to_string(),
            created: SystemTime::now(),
            path,
            args,
            config,
            host_config: hc,
            networking,
            image_id: image.id.clone(),
            image_ref: image.name.clone(),
            state: State::default(),
            restart_count: 0,
            mounts: Vec::new(),
            runtime: runtime.clone(),
            dir: dir.clone(),
            exec_ids: Vec::new(),
            anonymous_volumes: Vec::new(),
            net: None,
            published: Default::default(),
            owner,
            mode_detached: false,
            joined: Default::default(),
            inherited_mounts: Vec::new(),
            graph_data: None,
            log_fifo: None,
        };
        // The networks it names are looked up at start, as dockerd does: a
        // project may create its network after its containers.
        // Volumes are planned (and named ones made) now, so that create fails
        // on a bad -v and inspect shows the mounts before the first start.
        c.inherited_mounts = self.volumes_from(&c.host_config.volumes_from).await?;
        let image_volumes: Vec<String> = c.config.volumes.keys().cloned().collect();
        // A plugin's anonymous volumes are made first (the plugin is asked)
        // and given to the plan as the container's own.
        let premade = self
            .create_plugin_volumes(&c.host_config, &image_volumes, &c.inherited_mounts, true)
            .await?;
        let plan = match super::volumes::plan(
            &self.volumes,
            &c.host_config.binds,
            &c.host_config.mounts,
            &c.host_config.tmpfs,
            &image_volumes,
            &c.inherited_mounts,
            &premade,
        ) {
            Ok(plan) => plan,
            Err(e) => {
                self.drop_plugin_volumes(&premade).await;
                return Err(e);
            }
        };
        c.mounts = plan.points.clone();
        c.anonymous_volumes = plan.anonymous.clone();
        // A provisional spec; start builds the final one (users resolved in
        // the image, volumes filled).
        let spec = self
            .spec_for(
                &c,
                (0, 0, Vec::new()),
                plan.oci.clone(),
                &Default::default(),
                false,
            )
            .await?;
        let mut labels: std::collections::HashMap<String, String> = Default::default();
        labels.insert("berth.name".into(), name.to_string());
        labels.insert(MADE_BY.into(), self.start_mark());
        let record = api::Container {
            id: id.to_string(),
            labels,
            image: image.name.clone(),
            runtime,
            spec: spec.to_string().into_bytes(),
            rootfs: Vec::new(),
            snapshot_key: id.to_string(),
            created_at: None,
            updated_at: None,
        };
        let made = self
            .lc
            .containers()
            .create(self.lc.req(api::CreateContainerRequest {
                container: Some(record),
            }))
            .await;
        if let Err(e) = made {
            // Cut off mid-way (lifecycled died, say), it may have made the
            // container all the same: nothing else would ever remove it.
            self.forget_in_lifecycled(id.to_string());
            return Err(e.into());
        }
        berth_fault::point("berthd:create.after-lifecycled-create");
        let prepared = match self.init_layer(id).await {
            Ok(()) => self.make_working_dir(id, &c.config.working_dir).await,
            Err(e) => Err(e),
        };
        let saved = match prepared {
            Ok(()) => c
                .save()
                .map_err(|e| ApiError::internal(format!("saving container {id}: {e}"))),
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            self.forget_in_lifecycled(id.to_string());
            return Err(e);
        }
        self.volume_events(&c, "create");
        self.container_event(&c, "create", &[]);
        self.note_links(&c);
        self.insert(c);
        Ok(())
    }
}

impl Daemon {
    /// The mounts `--volumes-from` (`name[:ro|rw]`) takes from other
    /// containers, as dockerd copies them at create: their volumes and
    /// binds (not their tmpfs), read-only where the source is or `ro` asks.
    async fn volumes_from(&self, specs: &[String]) -> Result<Vec<crate::types::MountPoint>> {
        let mut out: Vec<crate::types::MountPoint> = Vec::new();
        for spec in specs {
            let (name, mode) = spec.split_once(':').unwrap_or((spec, ""));
            if !matches!(mode, "" | "ro" | "rw") {
                return Err(ApiError::bad_request(format!("invalid mode: {mode}")));
            }
            // dockerd's 400, not a 404: the create's body is what is wrong.
            let e = self
                .find(name)
                .map_err(|e| ApiError::bad_request(e.message))?;
            let donor = tokio::time::timeout(std::time::Duration::from_secs(5), e.c.lock())
                .await
                .map_err(|_| {
                    ApiError::conflict(format!(
                        "cannot take the volumes of {name}: it is busy starting or stopping"
                    ))
                })?;
            for m in donor
                .mounts
                .iter()
                .filter(|m| matches!(m.typ.as_str(), "volume" | "bind"))
            {
                if out.iter().any(|o| o.destination == m.destination) {
                    continue;
                }
                let mut m = m.clone();
                m.rw = m.rw && mode != "ro";
                if !m.rw {
                    m.mode = "ro".into();
                }
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The lifecycled runtime a requested name stands for. Clients written
    /// for Docker name its default, `runc`: when lifecycled has no runtime
    /// of that name, it is this engine's default. A name lifecycled does
    /// not know is refused in dockerd's words.
    async fn lifecycled_runtime(&self, name: &str) -> Result<String> {
        let default = self.live().default_runtime.clone();
        if name == default {
            return Ok(name.to_string());
        }
        // Without lifecycled's list, lifecycled itself judges the name.
        let Ok(v) = self.lc.version().version(self.lc.req(())).await else {
            return Ok(name.to_string());
        };
        let known = v.into_inner().runtimes;
        if known.iter().any(|r| r == name) {
            Ok(name.to_string())
        } else if name == "runc" {
            Ok(default)
        } else {
            Err(ApiError::bad_request(format!(
                "Unknown runtime specified {name}"
            )))
        }
    }

    /// Deletes lifecycled's container of a create that failed after
    /// lifecycled made it, asking again while lifecycled is away (dying
    /// is what made the create fail, often): no record will own it, and
    /// only an engine restart would otherwise find it.
    fn forget_in_lifecycled(self: &Arc<Self>, id: String) {
        let d = self.clone();
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(100);
            for _ in 0..40 {
                let req = d.lc.req(api::ContainerRequest { id: id.clone() });
                match d.lc.containers().delete(req).await {
                    Ok(_) => return,
                    Err(s) if s.code() == tonic::Code::NotFound => return,
                    Err(s) => tracing::debug!("deleting {id} from lifecycled: {}", s.message()),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            tracing::warn!("gave up deleting {id} from lifecycled: the next engine start will");
        });
    }

    /// Unpacks dockerd's init-layer files into the new container's root
    /// (diff and commit leave them out, as they leave out dockerd's).
    async fn init_layer(&self, id: &str) -> Result<()> {
        let tar = super::files::init_layer_tar()
            .map_err(|e| ApiError::internal(format!("init layer: {e}")))?;
        self.write_into(id, "/", false, tar)
            .await
            .map_err(|s| ApiError::internal(format!("init layer: {}", s.message())))
    }

    /// Makes the working directory in the container's filesystem when it
    /// is missing, owned by root, as dockerd does at create (the process
    /// would otherwise fail to chdir).
    async fn make_working_dir(&self, id: &str, dir: &str) -> Result<()> {
        if dir.is_empty() || dir == "/" {
            return Ok(());
        }
        // An empty tar: only the path is made.
        self.write_into(id, dir, true, vec![0u8; 1024])
            .await
            .map_err(|s| {
                ApiError::bad_request(if s.message().contains("not a directory") {
                    format!("Cannot mkdir: {dir} is not a directory")
                } else {
                    format!("Cannot mkdir: {dir}: {}", s.message())
                })
            })
    }

    /// Unpacks `tar` at `path` in a container's filesystem, the path made
    /// first (root-owned, as a build's COPY makes it) when `create_path`.
    async fn write_into(
        &self,
        id: &str,
        path: &str,
        create_path: bool,
        tar: Vec<u8>,
    ) -> std::result::Result<(), tonic::Status> {
        let target = api::WriteArchiveRequest {
            kind: Some(api::write_archive_request::Kind::Target(
                api::ArchiveRequest {
                    key: id.to_string(),
                    path: path.to_string(),
                    ..Default::default()
                },
            )),
            no_overwrite_dir_non_dir: false,
            create_path,
        };
        let body = api::WriteArchiveRequest {
            kind: Some(api::write_archive_request::Kind::Chunk(tar)),
            no_overwrite_dir_non_dir: false,
            create_path: false,
        };
        self.lc
            .snapshots()
            .write_archive(self.lc.req(futures::stream::iter([target, body])))
            .await
            .map(|_| ())
    }
}

/// dockerd's merge: what the request leaves empty comes from the image.
pub fn merge_image_config(c: &mut crate::types::Config, img: &Value) {
    let ic = &img["config"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if c.user.is_empty() {
        c.user = ic["User"].as_str().unwrap_or("").to_string();
    }
    if c.working_dir.is_empty() {
        c.working_dir = ic["WorkingDir"].as_str().unwrap_or("").to_string();
    }
    // Image env first; the request's entries replace them by key.
    let mut env = strs(&ic["Env"]);
    for e in c.env.drain(..) {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = env;
    // dockerd's merge: no entrypoint given, or an empty one, takes the
    // image's command; only an unset one takes the image's entrypoint.
    // `[""]` clears it and is stored as unset.
    if c.entrypoint.0.as_ref().is_none_or(Vec::is_empty) && c.cmd.0.is_empty() {
        c.cmd = StrSlice(strs(&ic["Cmd"]));
    }
    match c.entrypoint.0.as_deref() {
        None => {
            let image = strs(&ic["Entrypoint"]);
            c.entrypoint = Entrypoint((!image.is_empty()).then_some(image));
        }
        Some([only]) if only.is_empty() => c.entrypoint = Entrypoint(None),
        Some(_) => {}
    }
    if let Some(ports) = ic["ExposedPorts"].as_object() {
        for k in ports.keys() {
            c.exposed_ports
                .entry(k.clone())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    if let Some(vols) = ic["Volumes"].as_object() {
        for k in vols.keys() {
            c.volumes
                .entry(k.clone())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    if let Some(labels) = ic["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                c.labels.entry(k.clone()).or_insert_with(|| v.to_string());
            }
        }
    }
    if c.stop_signal.is_empty() {
        c.stop_signal = ic["StopSignal"].as_str().unwrap_or("").to_string();
    }
    // dockerd's merge: what the request's healthcheck leaves empty (no
    // test, a 0 duration or count) comes from the image's.
    if let Ok(img) = serde_json::from_value::<HealthConfig>(ic["Healthcheck"].clone())
        && !img.test.is_empty()
    {
        match &mut c.healthcheck {
            None => c.healthcheck = Some(img),
            Some(h) => {
                if h.test.is_empty() {
                    h.test = img.test;
                }
                for (mine, theirs) in [
                    (&mut h.interval, img.interval),
                    (&mut h.timeout, img.timeout),
                    (&mut h.start_period, img.start_period),
                    (&mut h.start_interval, img.start_interval),
                    (&mut h.retries, img.retries),
                ] {
                    if *mine == 0 {
                        *mine = theirs;
                    }
                }
            }
        }
    }
    let on_build = strs(&ic["OnBuild"]);
    if c.on_build.is_empty() && !on_build.is_empty() {
        c.on_build = on_build.into();
    }
    if c.shell.is_empty() {
        c.shell = strs(&ic["Shell"]);
    }
}

/// Path and arguments: entrypoint then cmd; `Entrypoint: [""]` clears it.
pub fn command(c: &crate::types::Config) -> Result<(String, Vec<String>)> {
    let mut argv: Vec<String> = c.entrypoint.args().cloned().collect();
    argv.extend(c.cmd.0.iter().cloned());
    if argv.is_empty() {
        return Err(ApiError::bad_request("No command specified"));
    }
    let path = argv.remove(0);
    Ok((path, argv))
}

/// dockerd's warning for a kernel memory limit (deprecated, not applied).
pub const KERNEL_MEMORY_DEPRECATED: &str =
    "Specifying a kernel memory limit is deprecated and will be removed in a future release.";

/// What dockerd writes into a new container's HostConfig where the
/// client left it unset (inspect shows them; the spec is built from them):
/// the /dev/shm size, the cgroup namespace mode (private on a cgroup v2
/// host, privileged or not; the host's on v1 and hybrid hosts), the
/// masked and read-only paths of an unprivileged container, and no pids
/// or swappiness setting for "unlimited"/"default".
pub fn host_config_defaults(hc: &mut crate::types::HostConfig) {
    if hc.shm_size == 0 {
        hc.shm_size = super::ipc::DEFAULT_SHM_SIZE;
    }
    if hc.cgroupns_mode.is_empty() {
        let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        hc.cgroupns_mode = if unified { "private" } else { "host" }.into();
    }
    if !hc.privileged {
        let list = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        hc.masked_paths
            .get_or_insert_with(|| list(specgen::defaults::MASKED_PATHS));
        hc.readonly_paths
            .get_or_insert_with(|| list(specgen::defaults::READONLY_PATHS));
    }
    if hc.pids_limit.is_some_and(|p| p <= 0) {
        hc.pids_limit = None;
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
}

pub fn validate_host_config(
    hc: &crate::types::HostConfig,
    warnings: &mut Vec<String>,
) -> Result<()> {
    validate_restart_policy(hc)?;
    super::resources::validate(hc, false)?;
    super::resources::validate_sysctls(hc)?;
    super::resources::validate_cgroup_parent(&hc.cgroup_parent)?;
    validate_log_config(hc)?;
    if hc.annotations.contains_key("") {
        return Err(ApiError::bad_request(
            "invalid Annotations: the empty string is not permitted as an annotation key",
        ));
    }
    if !matches!(hc.cgroupns_mode.as_str(), "" | "host" | "private") {
        return Err(ApiError::bad_request(format!(
            "invalid cgroup namespace mode: {}",
            hc.cgroupns_mode
        )));
    }
    if hc.network_mode == "host"
        && (hc.port_bindings.as_ref().is_some_and(|m| !m.is_empty()) || hc.publish_all_ports)
    {
        warnings.push("Published ports are discarded when using host network mode".into());
    }
    if hc.kernel_memory != 0 {
        warnings.push(KERNEL_MEMORY_DEPRECATED.into());
    }
    if hc.oom_kill_disable == Some(true) && hc.memory == 0 {
        warnings.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources."
                .into(),
        );
    }
    super::spec::parse_security_opts(&hc.security_opt)?;
    Ok(())
}

/// What a container that joins another's network (or the host's) cannot
/// also ask for, checked on the request as dockerd checks it (before the
/// image's config is merged in: an image's EXPOSE is no conflict).
pub fn validate_net_container_mode(
    c: &crate::types::Config,
    hc: &crate::types::HostConfig,
) -> Result<()> {
    let mode = hc.network_mode.as_str();
    let container = mode.starts_with("container:");
    if mode == "container" || mode == "container:" {
        return Err(ApiError::bad_request(
            "Invalid network mode: invalid container format container:<name|id>",
        ));
    }
    let conflict = if container && !c.hostname.is_empty() {
        "conflicting options: hostname and the network mode"
    } else if hc.uts_mode == "host" && !c.hostname.is_empty() {
        "conflicting options: hostname and the UTS mode"
    } else if container && hc.dns.as_ref().is_some_and(|d| !d.is_empty()) {
        "conflicting options: dns and the network mode"
    } else if container && !hc.extra_hosts.is_empty() {
        "conflicting options: custom host-to-IP mapping and the network mode"
    } else if (container || mode == "host") && !c.mac_address.is_empty() {
        "conflicting options: mac-address and the network mode"
    } else if container
        && (hc.port_bindings.as_ref().is_some_and(|m| !m.is_empty()) || hc.publish_all_ports)
    {
        "conflicting options: port publishing and the container type network mode"
    } else if container && !c.exposed_ports.is_empty() {
        "conflicting options: port exposing and the container type network mode"
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(conflict))
}

/// The restart policy's name and retry count, and that it does not fight
/// AutoRemove.
pub fn validate_restart_policy(hc: &crate::types::HostConfig) -> Result<()> {
    let rp = &hc.restart_policy;
    match rp.name.as_str() {
        // No policy: a retry count means nothing, as dockerd lets it be.
        "" => {}
        name @ ("no" | "always" | "unless-stopped") => {
            if rp.maximum_retry_count != 0 {
                return Err(ApiError::bad_request(format!(
                    "maximum retry count cannot be used with restart policy '{name}'"
                )));
            }
        }
        "on-failure" => {
            if rp.maximum_retry_count < 0 {
                return Err(ApiError::bad_request(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )));
        }
    }
    if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return Err(ApiError::bad_request(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

/// Docker's limits: each interval 0 (the default) or at least 1 ms, so a
/// probe cannot run back to back.
fn validate_healthcheck(h: &HealthConfig) -> Result<()> {
    for (what, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if v != 0 && v < 1_000_000 {
            return Err(ApiError::bad_request(format!(
                "{what} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(ApiError::bad_request(
            "Retries in Healthcheck cannot be negative",
        ));
    }
    Ok(())
}

/// Every entry names a variable (dockerd's ValidateEnv): "=x" or "" would
/// reach the process as an environment no shell can read.
fn validate_env(env: &[String]) -> Result<()> {
    match env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        Some(e) => Err(ApiError::bad_request(format!(
            "invalid environment variable: {e}"
        ))),
        None => Ok(()),
    }
}

fn validate_log_config(hc: &crate::types::HostConfig) -> Result<()> {
    let opts = &hc.log_config.config;
    if let Some(checked) = super::logship::validate(&hc.log_config.typ, opts) {
        return checked.map_err(ApiError::bad_request);
    }
    match hc.log_config.typ.as_str() {
        "" => super::logopts::check("json-file", opts).map_err(ApiError::bad_request),
        driver @ ("json-file" | "local") => {
            super::logopts::check(driver, opts).map_err(ApiError::bad_request)
        }
        // Nothing kept: `logs` says so, as dockerd's.
        "none" => Ok(()),
        "journald" => super::journal::validate(opts).map_err(ApiError::bad_request),
        known if super::plugins::logging::DOCKER_ONLY.contains(&known) => {
            Err(ApiError::bad_request(format!(
                "logger: berth keeps logs with the json-file, local, journald, syslog, gelf or fluentd driver (or none), not {known}"
            )))
        }
        // A plugin's, whose options are its own: looked up by the create
        // (see `Daemon::log_plugin`).
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Config;

    #[test]
    fn unset_host_config_gets_dockerds_defaults_and_given_values_stay() {
        let mut hc = crate::types::HostConfig {
            pids_limit: Some(-1),
            memory_swappiness: Some(-1),
            ..Default::default()
        };
        host_config_defaults(&mut hc);
        assert_eq!(hc.shm_size, 64 << 20);
        assert!(["host", "private"].contains(&hc.cgroupns_mode.as_str()));
        assert!(
            hc.masked_paths
                .as_ref()
                .is_some_and(|p| p.iter().any(|p| p == "/proc/kcore"))
        );
        assert!(
            hc.readonly_paths
                .as_ref()
                .is_some_and(|p| p.iter().any(|p| p == "/proc/sys"))
        );
        assert_eq!((hc.pids_limit, hc.memory_swappiness), (None, None));

        // systempaths=unconfined (empty lists), a size and a mode asked for.
        let mut hc = crate::types::HostConfig {
            masked_paths: Some(Vec::new()),
            readonly_paths: Some(Vec::new()),
            shm_size: 1 << 20,
            cgroupns_mode: "private".into(),
            pids_limit: Some(10),
            ..Default::default()
        };
        host_config_defaults(&mut hc);
        assert_eq!(hc.masked_paths, Some(Vec::new()));
        assert_eq!(hc.readonly_paths, Some(Vec::new()));
        assert_eq!(
            (hc.shm_size, hc.cgroupns_mode.as_str()),
            (1 << 20, "private")
        );
        assert_eq!(hc.pids_limit, Some(10));

        // A privileged container masks nothing: none are written.
        let mut hc = crate::types::HostConfig {
            privileged: true,
            ..Default::default()
        };
        host_config_defaults(&mut hc);
        assert_eq!((hc.masked_paths, hc.readonly_paths), (None, None));
    }

    #[test]
    fn every_env_entry_names_a_variable() {
        let env = |e: &[&str]| validate_env(&e.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert!(env(&["A=1", "B", "C="]).is_ok());
        for bad in ["=", "=foo", ""] {
            let e = env(&["A=1", bad]).unwrap_err();
            assert_eq!(e.message, format!("invalid environment variable: {bad}"));
        }
    }

    #[test]
    fn a_healthcheck_inherits_what_it_leaves_zero_from_the_image() {
        let img = serde_json::json!({"config": {"Healthcheck": {
            "Test": ["CMD", "true"], "Interval": 5, "Timeout": 6, "Retries": 7}}});
        let mut c = crate::types::Config {
            healthcheck: Some(HealthConfig {
                interval: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, ["CMD", "true"]);
        assert_eq!((h.interval, h.timeout, h.retries), (1, 6, 7));
    }

    #[test]
    fn image_config_fills_what_the_request_leaves_empty() {
        let img = serde_json::json!({"config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "u", "Labels": {"l": "v"}}});
        let mut c = Config {
            env: vec!["A=2".into()],
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(c.env, vec!["PATH=/bin", "A=2"]);
        assert_eq!(c.cmd.0, vec!["sh"]);
        assert_eq!(c.working_dir, "/w");
        assert_eq!(c.user, "u");
        assert_eq!(c.labels["l"], "v");
        assert_eq!(command(&c).unwrap(), ("sh".to_string(), vec![]));
    }

    #[test]
    fn an_entrypoint_given_drops_the_images_cmd() {
        let img = serde_json::json!({"config": {"Cmd": ["sh"], "Entrypoint": ["/init"]}});
        let mut c = Config {
            entrypoint: Entrypoint::set(vec!["echo".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(command(&c).unwrap(), ("echo".to_string(), vec![]));
        let mut c = Config {
            cmd: StrSlice(vec!["hi".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(
            command(&c).unwrap(),
            ("/init".to_string(), vec!["hi".to_string()])
        );
        // `[]`: no entrypoint, the image's command; `[""]`: no entrypoint,
        // stored as unset (dockerd reads it back null).
        let mut c = Config {
            entrypoint: Entrypoint::set(Vec::new()),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(c.entrypoint, Entrypoint::set(Vec::new()));
        assert_eq!(command(&c).unwrap(), ("sh".to_string(), vec![]));
        let mut c = Config {
            entrypoint: Entrypoint::set(vec![String::new()]),
            cmd: StrSlice(vec!["true".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(c.entrypoint, Entrypoint(None));
        assert_eq!(command(&c).unwrap(), ("true".to_string(), vec![]));
    }
}
