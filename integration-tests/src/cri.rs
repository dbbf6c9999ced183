//! A berth-lifecycled serving Kubernetes' CRI, as the kubelet would find it
//! on a node: a pod network of the test's own (the CNI bridge, host-local
//! and portmap plugins on a subnet and bridge no other test uses), busybox
//! pulled through the CRI from a registry on loopback, and clients built
//! from the CRI's protos. Drop takes down what a failed test left: the
//! shims and containers (Lifecycled's Drop), the pods' namespaces and
//! mounts, the bridge, and the port-mapping rules of the pods' addresses.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_proto::cri::v1 as cri;
use berth_proto::cri::v1::image_service_client::ImageServiceClient;
use berth_proto::cri::v1::runtime_service_client::RuntimeServiceClient;
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::lifecycled::Lifecycled;
use crate::netblock::NetBlock;
use crate::registry::Registry;

pub struct CriNode {
    pub l: Lifecycled,
    pub reg: Registry,
    pub block: NetBlock,
    pub dir: TempDir,
    /// Where the pod network's config is (lifecycled's cni_conf_dir).
    pub conf_dir: PathBuf,
    pub bridge: String,
    /// The pod subnet, `a.b.c.0/24`.
    pub subnet: String,
    /// The busybox image as pulled (a name in the registry).
    pub image: String,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// A gRPC channel over the unix socket at `socket`.
pub async fn channel(socket: &std::path::Path) -> Channel {
    let socket = socket.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connecting over a unix socket")
}

/// Runs berth-ctr against `l`, failing the test when it fails.
pub fn ctr(l: &Lifecycled, args: &[&str]) -> String {
    let out = Command::new(crate::bin("berth-ctr"))
        .arg("--address")
        .arg(&l.address)
        .args(args)
        .output()
        .expect("running berth-ctr");
    assert!(
        out.status.success(),
        "berth-ctr {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        l.log()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// busybox pushed to `reg` as `<host>/berth/bb:1`, through berth-ctr in
/// lifecycled's default namespace; the manifest digest it went up with.
pub fn push_busybox(l: &Lifecycled, reg: &Registry) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tar = crate::busybox_tar(tmp.path());
    ctr(
        l,
        &[
            "images",
            "import",
            "--rootfs",
            "local/bb:1",
            tar.to_str().expect("utf-8"),
        ],
    );
    let remote = format!("{}/berth/bb:1", reg.host);
    let pushed = ctr(
        l,
        &[
            "images",
            "push",
            "--insecure",
            &reg.host,
            "local/bb:1",
            &remote,
        ],
    );
    let digest = pushed.rsplit(' ').next().expect("a digest").to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    digest
}

impl CriNode {
    /// A node with the pod network configured and busybox pulled.
    pub async fn start() -> CriNode {
        CriNode::start_with_network(true).await
    }

    /// A node; without `network`, its CNI config directory stays empty (a
    /// node whose network plugin is not set up yet).
    pub async fn start_with_network(network: bool) -> CriNode {
        CriNode::start_with(network, "").await
    }

    /// A node with more lines for the `[cri]` table of lifecycled's config
    /// (`{registry}` in them stands for the test registry's `host:port`).
    pub async fn start_with(network: bool, cri_toml: &str) -> CriNode {
        let dir = tempfile::Builder::new()
            .prefix("berth-cri")
            .tempdir()
            .expect("tempdir");
        let block = NetBlock::claim();
        let bridge = block.bridge("p");
        let subnet = block.subnet(3);
        let conf_dir = dir.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        if network {
            let conf = serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "berth-it-pods",
                "plugins": [
                    {"type": "bridge", "bridge": bridge, "isGateway": true,
                     "ipMasq": false, "hairpinMode": true,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                              "routes": [{"dst": "0.0.0.0/0"}],
                              "dataDir": dir.path().join("ipam")}},
                    {"type": "portmap", "capabilities": {"portMappings": true}}
                ]
            });
            std::fs::write(conf_dir.join("10-pods.conflist"), conf.to_string())
                .expect("writing the CNI config");
        }
        // The registry first: the config may name it (`{registry}`).
        let reg = Registry::start();
        let tail = format!(
            "[cri]\ncni_conf_dir = \"{}\"\n{}\n",
            conf_dir.display(),
            cri_toml.replace("{registry}", &reg.host)
        );
        let l = Lifecycled::start_with(&[], None, &tail);
        push_busybox(&l, &reg);
        let c = l.client("k8s.io").await;
        let mut images = ImageServiceClient::new(c.channel.clone());
        let runtime = RuntimeServiceClient::new(c.channel.clone());
        let image = format!("{}/berth/bb:1", reg.host);
        images
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("pull: {e}\n{}", l.log()));
        CriNode {
            l,
            reg,
            block,
            dir,
            conf_dir,
            bridge,
            subnet,
            image,
            runtime,
            images,
        }
    }

    /// New clients, for a lifecycled started again on the same socket.
    pub async fn reconnect(&mut self) {
        let c = self.l.client("k8s.io").await;
        self.images = ImageServiceClient::new(c.channel.clone());
        self.runtime = RuntimeServiceClient::new(c.channel.clone());
    }

    /// The host-local leases of the pod network: one file per address.
    pub fn leases(&self) -> Vec<String> {
        let dir = self.dir.path().join("ipam").join("berth-it-pods");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// The interfaces enslaved to the pod bridge (the pods' veths).
    pub fn bridge_ports(&self) -> String {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Mount points under the node's lifecycled directories.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.l.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&root))
            .map(String::from)
            .collect()
    }

    /// Waits for a container to reach `state`; its status then.
    pub async fn wait_state(
        &mut self,
        id: &str,
        state: cri::ContainerState,
        secs: u64,
    ) -> cri::ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self
                .runtime
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: false,
                })
                .await
                .unwrap_or_else(|e| panic!("status of {id}: {e}\n{}", self.l.log()))
                .into_inner()
                .status
                .expect("a status");
            if s.state == state as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not reach {state:?}: {s:?}\n{}",
                self.l.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Deletes the NAT chains that hold an address of `subnet` (portmap's
/// per-pod chains) and the rules that jump to them.
fn remove_pod_rules(subnet: &str) {
    let prefix = subnet.trim_end_matches("0/24");
    let saved = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let chains: Vec<String> = saved
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .filter(|r| {
            r.contains(&format!(" {prefix}")) || r.contains(&format!("--to-destination {prefix}"))
        })
        .filter_map(|r| r.split(' ').next())
        .filter(|c| c.starts_with("CNI-") && *c != "CNI-HOSTPORT-DNAT")
        .map(String::from)
        .collect();
    for chain in &chains {
        for rule in saved.lines().filter_map(|l| l.strip_prefix("-A ")) {
            if rule.ends_with(&format!("-j {chain}")) {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!("iptables -w -t nat -D {rule}"))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for op in ["-F", "-X"] {
            let _ = Command::new("iptables")
                .args(["-w", "-t", "nat", op, chain])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        remove_pod_rules(&self.subnet);
        crate::stack::remove_bridge(&self.bridge);
    }
}

/// kubestream (integration-tests/go/kubestream): a SPDY client of the
/// Kubernetes streaming protocols built on moby/spdystream, the library
/// kubectl and the kubelet use, from Debian's Go packages. Built once per
/// test run next to the test binaries.
pub fn kubestream() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target directory")
                .join("kubestream");
            let gopath = dir.join("gopath");
            let link = gopath.join("src/github.com/moby/spdystream");
            std::fs::create_dir_all(link.parent().expect("a parent")).expect("gopath");
            // Debian ships moby/spdystream under its old import path.
            let debian = std::path::Path::new("/usr/share/gocode/src/github.com/docker/spdystream");
            assert!(
                debian.exists(),
                "golang-github-docker-spdystream-dev is not installed (scripts/deps installs it)"
            );
            if std::fs::symlink_metadata(&link).is_err() {
                let _ = std::os::unix::fs::symlink(debian, &link);
            }
            let src =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("go/kubestream/main.go");
            // Each builder writes a file of its own and renames it in place,
            // so test binaries building at once never see half a file.
            let tmp = dir.join(format!("kubestream.{}", std::process::id()));
            let out = Command::new("go")
                .args(["build", "-o"])
                .arg(&tmp)
                .arg(&src)
                .env("GO111MODULE", "off")
                .env("GOPATH", &gopath)
                .env("GOCACHE", dir.join("cache"))
                .env("GOFLAGS", "")
                .output()
                .expect("running go (golang-go)");
            assert!(
                out.status.success(),
                "building kubestream: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let bin = dir.join("kubestream");
            std::fs::rename(&tmp, &bin).expect("kubestream in place");
            bin
        })
        .clone()
}

/// The outcome of a kubestream run: stdout, stderr, the remote status (the
/// JSON the error stream carried) and kubestream's exit code.
pub struct Streamed {
    pub stdout: String,
    pub stderr: String,
    pub status: String,
    pub code: i32,
}

/// Runs kubestream with `args`, `input` on its stdin.
pub fn kubestream_run(args: &[&str], input: &[u8]) -> Streamed {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (mut status_r, status_w) = std::io::pipe().expect("a pipe");
    let fd = status_w.as_raw_fd();
    let mut cmd = Command::new(kubestream());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the status pipe becomes fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("running kubestream");
    drop(status_w);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("kubestream's stdin");
    drop(stdin);
    let mut status = String::new();
    let reader = std::thread::spawn(move || {
        let _ = status_r.read_to_string(&mut status);
        status
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("kubestream").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("kubestream's output");
    Streamed {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: reader.join().unwrap_or_default(),
        code: out.status.code().unwrap_or(-1),
    }
}
