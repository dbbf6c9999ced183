//! A berth-lifecycled of a test's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::{
    containers_client::ContainersClient, events_client::EventsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use berth_proto::types::v1 as pb;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::UnixStream;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Lifecycled {
    pub dir: TempDir,
    pub address: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// Containers' cgroups live under /<cgroup_parent>/<namespace>/<id>.
    pub cgroup_parent: String,
    /// `BERTH_FAULT` for the next spawn (and the shims it starts).
    pub fault: Option<String>,
    /// The mount namespace it runs in (with its shims), when not the
    /// test's: `/proc/<pid>/ns/mnt` of a process holding it.
    pub mount_ns: Option<PathBuf>,
    child: Option<Child>,
}

impl Lifecycled {
    /// Starts lifecycled with berth-runtime (the default), Debian's runc as
    /// `runc`, and the given extra runtimes.
    pub fn start(extra: &[(&str, &Path)]) -> Lifecycled {
        Lifecycled::start_in(extra, None)
    }

    /// Lifecycled in the mount namespace at `mount_ns`.
    pub fn start_in(extra: &[(&str, &Path)], mount_ns: Option<PathBuf>) -> Lifecycled {
        Lifecycled::start_with(extra, mount_ns, "")
    }

    /// Lifecycled whose config file ends with `toml` (tables of its own,
    /// e.g. `[cri]`).
    pub fn start_with(
        extra: &[(&str, &Path)],
        mount_ns: Option<PathBuf>,
        toml_tail: &str,
    ) -> Lifecycled {
        let dir = tempfile::Builder::new()
            .prefix("berth-it")
            .tempdir()
            .expect("tempdir");
        let cgroup_parent = testsupport::unique("berth-it");
        // Benchmarks point these at the static builds.
        let shim = std::env::var_os("BERTH_SHIM")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::bin("berth-shim"));
        let runtime = std::env::var_os("BERTH_RUNTIME")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::bin("berth-runtime"));
        let mut toml = format!(
            "cgroup_parent = \"{cgroup_parent}\"\nshim = \"{}\"\n[runtimes.berth-runtime]\npath = \"{}\"\n[runtimes.runc]\npath = \"{}\"\n",
            shim.display(),
            runtime.display(),
            crate::runc().display(),
        );
        for (name, path) in extra {
            toml.push_str(&format!(
                "[runtimes.{name}]\npath = \"{}\"\n",
                path.display()
            ));
        }
        toml.push_str(toml_tail);
        let config = dir.path().join("lifecycled.toml");
        std::fs::write(&config, toml).expect("writing config");
        let mut l = Lifecycled {
            address: dir.path().join("lifecycled.sock"),
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            config,
            cgroup_parent,
            dir,
            fault: None,
            mount_ns,
            child: None,
        };
        l.spawn();
        l
    }

    /// (Re)starts the daemon process and waits until its socket answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("lifecycled.log"))
            .expect("log file");
        // Benchmarks measure the installed (static) build.
        let program = std::env::var_os("BERTH_LIFECYCLED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::bin("berth-lifecycled"));
        let mut cmd = crate::command_in(&program, None, self.mount_ns.as_deref());
        match &self.fault {
            Some(f) => cmd.env("BERTH_FAULT", f),
            None => cmd.env_remove("BERTH_FAULT"),
        };
        let child = cmd
            .arg("--address")
            .arg(&self.address)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berth-lifecycled");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "lifecycled did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, as an orderly stop; how long it took to exit (None: it had
    /// not after 10 s, and was killed).
    pub fn stop(&mut self) -> Option<Duration> {
        let mut c = self.child.take()?;
        let t0 = Instant::now();
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Waits for the daemon to die on its own (a fault point fired);
    /// whether it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        crate::wait_child_exit(&mut self.child, timeout)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lifecycled.log")).unwrap_or_default()
    }

    pub async fn client(&self, namespace: &str) -> Client {
        let path = self.address.clone();
        let channel =
            Endpoint::try_from("http://[::]:50051")
                .expect("endpoint")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .expect("connecting to lifecycled");
        Client {
            channel,
            namespace: namespace.to_string(),
        }
    }

    /// The task directory lifecycled keeps for a container.
    pub fn task_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("tasks").join(ns).join(id)
    }
}

impl Drop for Lifecycled {
    fn drop(&mut self) {
        self.kill9();
        // Shims and containers outlive lifecycled by design: end them here.
        let tasks = self.state.join("tasks");
        for ns in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            for t in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let dir = t.path();
                if let Ok(pid) = std::fs::read_to_string(dir.join("shim.pid"))
                    && let Ok(pid) = pid.trim().parse::<i32>()
                {
                    // SAFETY: kill(2) on a pid this test's lifecycled started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                if let Ok(info) = std::fs::read(dir.join("task.json"))
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&info)
                {
                    let id = t.file_name().to_string_lossy().into_owned();
                    let args: Vec<String> = v["args"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(path) = v["path"].as_str() {
                        let _ = Command::new(path)
                            .args(&args)
                            .args(["delete", "--force", &id])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
                let _ = nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        // The CRI's pods: their network namespaces and /dev/shm mounts.
        let cri = self.state.join("cri");
        for e in std::fs::read_dir(cri.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
        for e in std::fs::read_dir(cri.join("sandboxes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = nix::mount::umount2(&e.path().join("shm"), nix::mount::MntFlags::MNT_DETACH);
        }
        testsupport::remove_cgroups(&self.cgroup_parent);
    }
}

/// gRPC clients for one namespace.
pub struct Client {
    pub channel: Channel,
    pub namespace: String,
}

impl Client {
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            berth_proto::NAMESPACE_HEADER,
            self.namespace.parse().expect("namespace is ASCII"),
        );
        r
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }

    pub fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }

    /// Records a container running `args` on a fresh busybox rootfs (kept in
    /// `rootfs_parent`), with Docker's default spec.
    pub async fn create_container(
        &self,
        id: &str,
        runtime: &str,
        args: &[&str],
        rootfs_parent: &Path,
    ) -> Result<api::Container, tonic::Status> {
        let rootfs = rootfs_parent.join(format!("rootfs-{id}"));
        if !rootfs.exists() {
            testsupport::make_rootfs(&rootfs);
        }
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut spec = specgen::defaults::spec(&args, false);
        spec["hostname"] = serde_json::json!(id.chars().take(12).collect::<String>());

        self.containers()
            .create(self.req(api::CreateContainerRequest {
                container: Some(api::Container {
                    id: id.to_string(),
                    runtime: runtime.to_string(),
                    spec: spec.to_string().into_bytes(),
                    rootfs: vec![pb::Mount {
                        r#type: "bind".into(),
                        source: rootfs.to_string_lossy().into_owned(),
                        target: String::new(),
                        options: vec!["rbind".into()],
                    }],
                    ..Default::default()
                }),
            }))
            .await
            .map(|r| r.into_inner())
    }

    pub fn process(&self, id: &str, exec_id: &str) -> Request<api::ProcessRequest> {
        self.req(api::ProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        })
    }
}
