//! berth-lifecycled's CRI beside containerd 1.6's (Debian's, with its CRI
//! plugin, runc and its Go shim), driven by the same CRI client, in one run
//! (run by bench/cri.sh):
//!   - pod start: RunPodSandbox + CreateContainer + StartContainer of
//!     busybox until the container runs; and the teardown (StopPodSandbox +
//!     RemovePodSandbox), medians over $RUNS pods, the two alternating;
//!   - the daemon's RSS with $PODS pods running;
//!   - the memory each pod costs beside its container: the sandbox process
//!     and the shims (RSS and PSS).
//!
//! Both get the same CNI plugins (bridge, host-local, portmap on a subnet of
//! their own), the same busybox from a registry on loopback, and the same
//! sandbox process: containerd's sandbox image is made from berth-pause
//! (its usual registry.k8s.io/pause is not reachable here; that pause is
//! larger, so containerd's per-pod figure here is on the low side).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_proto::cri::v1 as cri;
use berth_proto::cri::v1::image_service_client::ImageServiceClient;
use berth_proto::cri::v1::runtime_service_client::RuntimeServiceClient;
use integration_tests::cri::CriNode;
use integration_tests::netblock::NetBlock;
use tonic::transport::Channel;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss(pid: u32) -> u64 {
    kib(pid, "status", "VmRSS:")
}

fn pss(pid: u32) -> u64 {
    kib(pid, "smaps_rollup", "Pss:")
}

/// Every process: pid, parent, command line.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok())
            .unwrap_or(0);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, ppid, cmd));
    }
    out
}

/// The shims whose command line names `marker`, and the sandbox processes
/// (`pause`) under them: their summed RSS and PSS in KiB.
fn overhead(marker: &str) -> (u64, u64, usize, usize) {
    let procs = processes();
    let shims: Vec<u32> = procs
        .iter()
        .filter(|(_, _, c)| c.contains(marker) && c.contains("shim"))
        .map(|p| p.0)
        .collect();
    let pauses: Vec<u32> = procs
        .iter()
        .filter(|(_, pp, c)| shims.contains(pp) && c.trim_end().ends_with("pause"))
        .map(|p| p.0)
        .collect();
    let all = shims.iter().chain(&pauses);
    let (r, p) = all.fold((0, 0), |(r, p), &pid| (r + rss(pid), p + pss(pid)));
    (r, p, shims.len(), pauses.len())
}

/// containerd with the CRI plugin, in roots and a socket of its own.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Containerd {
    fn start(registry: &str, pause: &str, conf_dir: &Path) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-ctd")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # The machine may lack CAP_SYS_RESOURCE, which the sandbox's -998 needs.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            opt = d.join("opt").display(),
            conf = conf_dir.display(),
        );
        std::fs::write(d.join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian's containerd package)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Containerd { child, dir, socket }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("containerd's log, last lines first:\n{}", tail.join("\n"));
            if std::env::var_os("KEEP").is_some() {
                let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
                eprintln!("kept {}", kept.keep().display());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims that outlived their pods, by their socket's name.
        let marker = self.socket.display().to_string();
        for (pid, _, cmd) in processes() {
            if cmd.contains(&marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        // Mounts under its root (snapshots, shm, netns bind mounts).
        let root = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn conflist(dir: &Path, name: &str, bridge: &str, subnet: &str, ipam: &Path) -> PathBuf {
    let conf_dir = dir.join(format!("net.d-{name}"));
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    std::fs::write(conf_dir.join("10-pods.conflist"), conf.to_string()).expect("conflist");
    conf_dir
}

/// What the run made outside the fixtures: the pods' cgroup parent and
/// containerd's bridge, removed even when the run fails.
struct Leftovers {
    cgroup: String,
    bridge: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        testsupport::remove_cgroups(&self.cgroup);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// One CRI endpoint under test.
struct Side {
    name: &'static str,
    rt: RuntimeServiceClient<Channel>,
    image: String,
    cgroup_parent: String,
}

impl Side {
    fn pod_config(&self, n: usize) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("bench{n}"),
                uid: format!("uid-{}-{n}", self.name),
                namespace: "bench".into(),
                attempt: 0,
            }),
            hostname: format!("bench{n}"),
            log_directory: String::new(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod{n}", self.cgroup_parent),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A pod with busybox sleeping in it, running: the pod's id.
    async fn start_pod(&mut self, n: usize) -> String {
        let config = self.pod_config(n);
        let pod = self
            .rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: RunPodSandbox: {e}", self.name))
            .into_inner()
            .pod_sandbox_id;
        let c = self
            .rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: "sleep".into(),
                        attempt: 0,
                    }),
                    image: Some(cri::ImageSpec {
                        image: self.image.clone(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "3600".into()],
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: CreateContainer: {e}", self.name))
            .into_inner()
            .container_id;
        self.rt
            .start_container(cri::StartContainerRequest {
                container_id: c.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: StartContainer: {e}", self.name));
        loop {
            let s = self
                .rt
                .container_status(cri::ContainerStatusRequest {
                    container_id: c.clone(),
                    verbose: false,
                })
                .await
                .expect("status")
                .into_inner()
                .status
                .expect("a status");
            if s.state == cri::ContainerState::ContainerRunning as i32 {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn remove_pod(&mut self, pod: &str) {
        self.rt
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: StopPodSandbox: {e}", self.name));
        self.rt
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("{}: RemovePodSandbox: {e}", self.name));
    }
}

/// A docker-save archive of berth-pause as `/pause`, its entrypoint.
fn pause_archive(dir: &Path, pause: &Path) -> PathBuf {
    let sha = |p: &Path| {
        let out = Command::new("sha256sum")
            .arg(p)
            .output()
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("a digest")
            .to_string()
    };
    let work = dir.join("pause-image");
    std::fs::create_dir_all(&work).expect("dir");
    let layer = work.join("layer.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&layer).expect("layer"));
    let mut h = tar::Header::new_gnu();
    let bin = std::fs::read(pause).expect("berth-pause");
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "pause", bin.as_slice())
        .expect("layer");
    b.finish().expect("layer");
    drop(b);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&layer))]},
    });
    std::fs::write(work.join("config.json"), config.to_string()).expect("config");
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["local/pause:1"],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(work.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = dir.join("pause.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", "config.json", "layer.tar"])
        .status()
        .expect("tar");
    assert!(st.success());
    archive
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}", a / b)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs = env("RUNS", 20);
    let pods = env("PODS", 20);

    let node = CriNode::start().await;
    let berth_pid = node.l.pid().expect("lifecycled's pid");
    let pause_bin = node.l.state.join("cri/pause/pause");
    let archive = pause_archive(node.dir.path(), &pause_bin);
    let ctr = |args: &[&str]| integration_tests::cri::ctr(&node.l, args);
    ctr(&["images", "import", archive.to_str().expect("utf-8")]);
    let pause_ref = format!("{}/berth/pause:1", node.reg.host);
    ctr(&[
        "images",
        "push",
        "--insecure",
        &node.reg.host,
        "docker.io/local/pause:1",
        &pause_ref,
    ]);

    let block = NetBlock::claim();
    let conf = conflist(
        node.dir.path(),
        "bench-containerd",
        &block.bridge("c"),
        &block.subnet(3),
        &node.dir.path().join("ipam-containerd"),
    );
    let parent = format!("/{}", testsupport::unique("berth-bench-cri"));
    let leftovers = Leftovers {
        cgroup: parent.trim_start_matches('/').to_string(),
        bridge: block.bridge("c"),
    };
    let ctd = Containerd::start(&node.reg.host, &pause_ref, &conf);
    let ch = integration_tests::cri::channel(&ctd.socket).await;
    let mut images = ImageServiceClient::new(ch.clone());
    images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: node.image.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("containerd pulls busybox");
    let mut berth = Side {
        name: "berth",
        rt: node.runtime.clone(),
        image: node.image.clone(),
        cgroup_parent: format!("{parent}/berth"),
    };
    let mut containerd = Side {
        name: "containerd",
        rt: RuntimeServiceClient::new(ch),
        image: node.image.clone(),
        cgroup_parent: format!("{parent}/containerd"),
    };

    println!(
        "== 1. pod start until the container runs, and teardown ({runs} pods each, alternating)"
    );
    let mut times: HashMap<&str, (Vec<Duration>, Vec<Duration>)> = HashMap::new();
    // One of each first, so that both have pulled and unpacked everything.
    for side in [&mut berth, &mut containerd] {
        let p = side.start_pod(9999).await;
        side.remove_pod(&p).await;
    }
    for i in 0..runs {
        for side in [&mut berth, &mut containerd] {
            let t = Instant::now();
            let p = side.start_pod(i).await;
            let started = t.elapsed();
            let t = Instant::now();
            side.remove_pod(&p).await;
            let e = times.entry(side.name).or_default();
            e.0.push(started);
            e.1.push(t.elapsed());
        }
    }
    let (bs, bt) = times.remove("berth").expect("berth");
    let (cs, ct) = times.remove("containerd").expect("containerd");
    let (bs, bt, cs, ct) = (median(bs), median(bt), median(cs), median(ct));
    println!(
        "pod start   berth {:7.1} ms   containerd {:7.1} ms   ratio {} (goal <= 0.3)",
        ms(bs),
        ms(cs),
        ratio(ms(bs), ms(cs))
    );
    println!(
        "teardown    berth {:7.1} ms   containerd {:7.1} ms   ratio {}",
        ms(bt),
        ms(ct),
        ratio(ms(bt), ms(ct))
    );

    println!("== 2. {pods} pods running: the daemon, and what each pod costs");
    let mut running: Vec<(usize, String)> = Vec::new();
    for i in 0..pods {
        running.push((0, berth.start_pod(1000 + i).await));
        running.push((1, containerd.start_pod(1000 + i).await));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (b_rss, c_rss) = (rss(berth_pid), rss(ctd.child.id()));
    println!(
        "daemon RSS  berth-lifecycled {:6} KiB   containerd {:6} KiB   ratio {} (goal <= 0.3)",
        b_rss,
        c_rss,
        ratio(b_rss as f64, c_rss as f64)
    );
    println!(
        "            berth-lifecycled: {} KiB anonymous, {} KiB file-backed; containerd: {} KiB anonymous, {} KiB file-backed",
        kib(berth_pid, "smaps_rollup", "Anonymous:"),
        b_rss - kib(berth_pid, "smaps_rollup", "Anonymous:"),
        kib(ctd.child.id(), "smaps_rollup", "Anonymous:"),
        c_rss - kib(ctd.child.id(), "smaps_rollup", "Anonymous:"),
    );
    let berth_marker = node.l.state.display().to_string();
    let (br, bp, bshims, bpauses) = overhead(&berth_marker);
    let (cr, cp, cshims, cpauses) = overhead(&ctd.socket.display().to_string());
    let n = pods as f64;
    println!(
        "per pod     berth {:6.0} KiB RSS {:6.0} KiB PSS ({bshims} shims, {bpauses} pauses)",
        br as f64 / n,
        bp as f64 / n
    );
    println!(
        "per pod     containerd {:6.0} KiB RSS {:6.0} KiB PSS ({cshims} shims, {cpauses} pauses)",
        cr as f64 / n,
        cp as f64 / n
    );
    println!(
        "per-pod overhead ratio: RSS {} PSS {} (goal <= 0.25)",
        ratio(br as f64, cr as f64),
        ratio(bp as f64, cp as f64)
    );
    for (side, pod) in running {
        if side == 0 {
            berth.remove_pod(&pod).await;
        } else {
            containerd.remove_pod(&pod).await;
        }
    }
    drop(ctd);
    drop(leftovers);
    drop(block);
}
