//! Pods through Kubernetes' CRI (runtime.v1.RuntimeService) on
//! berth-lifecycled, driven as the kubelet drives containerd: sandboxes on a
//! CNI pod network, containers sharing the pod's localhost, logs in the
//! kubelet's format, commands run in containers, host ports, resources,
//! OOM kills, a lifecycled crash under running pods, and requests that are
//! wrong. No engine.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use berth_proto::cri::v1 as cri;
use integration_tests::cri::CriNode;
use tonic::Code;

fn pod_config(name: &str, node: &CriNode, ports: Vec<cri::PortMapping>) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: node
            .dir
            .path()
            .join("pods")
            .join(name)
            .display()
            .to_string(),
        port_mappings: ports,
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}/kubepods/pod{name}", node.l.cgroup_parent),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, node: &CriNode, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: node.image.clone(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("container".to_string(), name.to_string())]),
        ..Default::default()
    }
}

async fn run_pod(node: &mut CriNode, config: cri::PodSandboxConfig) -> String {
    node.runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.l.log()))
        .into_inner()
        .pod_sandbox_id
}

async fn create(
    node: &mut CriNode,
    pod: &str,
    config: cri::ContainerConfig,
    sandbox: &cri::PodSandboxConfig,
) -> Result<String, tonic::Status> {
    node.runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        })
        .await
        .map(|r| r.into_inner().container_id)
}

async fn start(node: &mut CriNode, id: &str) {
    node.runtime
        .start_container(cri::StartContainerRequest {
            container_id: id.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", node.l.log()));
}

async fn exec(
    node: &mut CriNode,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<cri::ExecSyncResponse, tonic::Status> {
    node.runtime
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        })
        .await
        .map(|r| r.into_inner())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("an address"),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The value a cgroup file of the container's holds, v1 or v2.
fn cgroup_value(path: &str, v1: &str, v2: &str) -> Option<String> {
    let rel = path.trim_start_matches('/');
    [
        format!("/sys/fs/cgroup/memory/{rel}/{v1}"),
        format!("/sys/fs/cgroup/{rel}/{v2}"),
        format!("/sys/fs/cgroup/unified/{rel}/{v2}"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
}

#[tokio::test]
async fn a_pod_shares_localhost_logs_for_the_kubelet_publishes_a_host_port_and_goes_without_a_trace()
 {
    let mut node = CriNode::start().await;

    let version = node
        .runtime
        .version(cri::VersionRequest::default())
        .await
        .expect("version")
        .into_inner();
    assert_eq!(
        (
            version.runtime_name.as_str(),
            version.runtime_api_version.as_str()
        ),
        ("berth", "v1")
    );
    let status = node
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner();
    let conditions = status.status.expect("conditions").conditions;
    assert!(conditions.iter().all(|c| c.status), "{conditions:?}");
    let rc = node
        .runtime
        .runtime_config(cri::RuntimeConfigRequest {})
        .await
        .expect("runtime config")
        .into_inner();
    assert_eq!(
        rc.linux.expect("linux").cgroup_driver,
        cri::CgroupDriver::Cgroupfs as i32
    );

    let port = free_port();
    let pod_cfg = pod_config(
        "web",
        &node,
        vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 80,
            host_port: port as i32,
            host_ip: String::new(),
        }],
    );
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let ps = node
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        })
        .await
        .expect("sandbox status")
        .into_inner();
    assert!(ps.timestamp > 0 && ps.containers_statuses.is_empty());
    let s = ps.status.expect("a status");
    assert_eq!(s.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = s.network.expect("network").ip;
    assert!(
        ip.starts_with(node.subnet.trim_end_matches("0/24")),
        "{ip} not in {}",
        node.subnet
    );
    let info: serde_json::Value = serde_json::from_str(&ps.info["info"]).expect("verbose info");
    let netns = info["netNamespacePath"]
        .as_str()
        .expect("a netns path")
        .to_string();
    assert!(std::path::Path::new(&netns).exists());
    // The pause process is in the pod's cgroup parent.
    let pause_pid = info["pid"].as_u64().expect("pause pid");
    // containerd's -998 for the sandbox, or as low as lifecycled may go
    // (without CAP_SYS_RESOURCE, its own score).
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    let own = std::fs::read_to_string("/proc/self/oom_score_adj").expect("own score");
    let want = if eff & (1 << 24) != 0 {
        "-998".to_string()
    } else {
        own.trim().to_string()
    };
    let score =
        std::fs::read_to_string(format!("/proc/{pause_pid}/oom_score_adj")).expect("pause's score");
    assert_eq!(score.trim(), want);
    let cg = std::fs::read_to_string(format!("/proc/{pause_pid}/cgroup")).expect("pause cgroup");
    assert!(
        cg.contains(&format!("/{}/kubepods/podweb/", node.l.cgroup_parent)),
        "{cg}"
    );

    let config = container_config(
        "server",
        &node,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    let server = create(&mut node, &pod, config, &pod_cfg)
        .await
        .unwrap_or_else(|e| panic!("create server: {e}\n{}", node.l.log()));
    let config = container_config(
        "client",
        &node,
        &[
            "sh",
            "-c",
            "echo to-stderr >&2; i=0; while [ $i -lt 100 ]; do if wget -q -O- http://127.0.0.1/index.html; then exit 0; fi; i=$((i+1)); sleep 0.1; done; exit 1",
        ],
    );
    let client = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create client");
    let created = node
        .wait_state(&client, cri::ContainerState::ContainerCreated, 1)
        .await;
    assert_eq!(created.started_at, 0);
    let with_containers = node
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .expect("sandbox status")
        .into_inner();
    let mut names: Vec<String> = with_containers
        .containers_statuses
        .iter()
        .filter_map(|c| c.metadata.as_ref().map(|m| m.name.clone()))
        .collect();
    names.sort();
    assert_eq!(names, ["client", "server"]);
    start(&mut node, &server).await;
    start(&mut node, &client).await;

    // The client reached the server on the pod's localhost, and said so in
    // the kubelet's log format.
    let done = node
        .wait_state(&client, cri::ContainerState::ContainerExited, 20)
        .await;
    assert_eq!(
        (done.exit_code, done.reason.as_str()),
        (0, "Completed"),
        "{done:?}"
    );
    assert!(done.finished_at >= done.started_at && done.started_at > 0);
    let log = std::fs::read_to_string(&done.log_path).expect("the client's log");
    assert!(
        done.log_path.ends_with("pods/web/client/0.log"),
        "{}",
        done.log_path
    );
    assert!(log.contains(" stdout F hello-from-pod\n"), "{log}");
    assert!(log.contains(" stderr F to-stderr\n"), "{log}");
    for line in log.lines() {
        let mut f = line.splitn(4, ' ');
        let (t, stream, tag) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        assert!(
            t.len() == 30 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(
            matches!(stream, "stdout" | "stderr") && matches!(tag, "F" | "P"),
            "{line}"
        );
    }

    // Commands in the server: the pod's files, output and status.
    let r = exec(
        &mut node,
        &server,
        &["cat", "/etc/hostname", "/etc/resolv.conf"],
        10,
    )
    .await
    .expect("exec");
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.starts_with("web-host\n"), "{out}");
    assert!(
        out.contains("nameserver 10.96.0.10")
            && out.contains("search default.svc.cluster.local")
            && out.contains("options ndots:5"),
        "{out}"
    );
    let r = exec(
        &mut node,
        &server,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        10,
    )
    .await
    .expect("exec");
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    let e = exec(&mut node, &server, &["sleep", "30"], 1)
        .await
        .expect_err("a timeout");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
    let e = exec(&mut node, &client, &["true"], 1)
        .await
        .expect_err("exec in an exited container");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(e.message().contains("CONTAINER_EXITED"), "{e}");

    // The host port, from the host (through the bridge's address).
    let gateway = format!("{}1:{port}", node.subnet.trim_end_matches("0/24"));
    let page = http_get(&gateway).unwrap_or_else(|e| panic!("GET {gateway}: {e}"));
    assert!(page.contains("hello-from-pod"), "{page}");

    // Resources: an update reaches the container's cgroup.
    let running = node
        .wait_state(&server, cri::ContainerState::ContainerRunning, 1)
        .await;
    assert!(running.log_path.ends_with("server/0.log"));
    node.runtime
        .update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: server.clone(),
            linux: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("update: {e}\n{}", node.l.log()));
    let cg_path = format!("/{}/kubepods/podweb/{server}", node.l.cgroup_parent);
    assert_eq!(
        cgroup_value(&cg_path, "memory.limit_in_bytes", "memory.max").as_deref(),
        Some("100663296")
    );

    // Stats as the kubelet reads them: the server's cgroup and layer, the
    // pod's cgroup, interfaces and processes.
    let stats = |r: cri::ContainerStats| {
        let cpu = r.cpu.expect("cpu");
        let mem = r.memory.expect("memory");
        let layer = r.writable_layer.expect("writable layer");
        (
            cpu.usage_core_nano_seconds.map(|v| v.value).unwrap_or(0),
            cpu.usage_nano_cores.is_some(),
            mem.working_set_bytes.map(|v| v.value).unwrap_or(0),
            mem.available_bytes.map(|v| v.value),
            layer.used_bytes.map(|v| v.value).unwrap_or(0),
        )
    };
    let first = container_stats(&mut node, &server).await;
    assert_eq!(first.attributes.as_ref().expect("attributes").id, server);
    let (cpu, _, working_set, available, layer) = stats(first);
    assert!(cpu > 0 && working_set > 0, "{cpu} {working_set}");
    assert_eq!(available, Some((96 << 20) - working_set));
    // index.html and the /www directory that holds it.
    assert!(layer >= 15, "{layer}");
    let listed = node
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("list container stats")
        .into_inner()
        .stats;
    // Only the running server: the client has exited.
    assert_eq!(
        listed
            .iter()
            .map(|s| s.attributes.as_ref().expect("attributes").id.as_str())
            .collect::<Vec<_>>(),
        [server.as_str()]
    );
    let (_, rate, ws_before, ..) = stats(listed.into_iter().next().expect("one"));
    assert!(rate, "a second sample has a usage rate");
    let pod_stats = node
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("pod stats")
        .into_inner()
        .stats
        .expect("stats")
        .linux
        .expect("linux");
    let eth0 = pod_stats
        .network
        .and_then(|n| n.default_interface)
        .expect("eth0");
    assert_eq!(eth0.name, "eth0");
    // The page went out through eth0 when the host fetched it.
    assert!(eth0.tx_bytes.expect("tx").value > 100, "{eth0:?}");
    let procs = pod_stats
        .process
        .and_then(|p| p.process_count)
        .expect("count");
    assert!(procs.value >= 2, "pause and httpd: {procs:?}");
    // The pod's cgroup holds the server's: its working set is at least the
    // server's, read just before or just after (the server's own moves
    // between samples, a page-cache page going inactive is enough).
    let ws_after = stats(container_stats(&mut node, &server).await).2;
    let pod_ws = pod_stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .expect("ws")
        .value;
    assert!(
        pod_ws >= ws_before.min(ws_after),
        "pod {pod_ws}, server {ws_before} then {ws_after}"
    );
    assert_eq!(pod_stats.containers.len(), 1);
    let all_pods = node
        .runtime
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default())
        .await
        .expect("list pod stats")
        .into_inner()
        .stats;
    assert_eq!(all_pods.len(), 1);

    // A container over its memory limit is killed, and said to be.
    let mut hog = container_config(
        "hog",
        &node,
        &[
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
    );
    hog.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            memory_swap_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog = create(&mut node, &pod, hog, &pod_cfg)
        .await
        .expect("create hog");
    start(&mut node, &hog).await;
    let oom = node
        .wait_state(&hog, cri::ContainerState::ContainerExited, 30)
        .await;
    assert_eq!(
        (oom.reason.as_str(), oom.exit_code),
        ("OOMKilled", 137),
        "{oom:?}"
    );

    // Listing and filters.
    let all = node
        .runtime
        .list_containers(cri::ListContainersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .containers;
    assert_eq!(all.len(), 3);
    let filtered = node
        .runtime
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod[..12].to_string(),
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                label_selector: HashMap::from([("container".to_string(), "server".to_string())]),
                ..Default::default()
            }),
        })
        .await
        .expect("list")
        .into_inner()
        .containers;
    assert_eq!(
        filtered.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [server.as_str()]
    );

    // A second container of the same name and attempt: containerd's error.
    let config = container_config("server", &node, &["true"]);
    let e = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect_err("a duplicate");
    assert!(
        e.message().contains("is reserved for") && e.message().contains(&server),
        "{e}"
    );

    // Stop: every process of the pod ends and its network goes.
    node.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", node.l.log()));
    let stopped = node
        .wait_state(&server, cri::ContainerState::ContainerExited, 1)
        .await;
    assert_eq!(stopped.exit_code, 137);
    let listed = node
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].state,
        cri::PodSandboxState::SandboxNotready as i32
    );
    assert!(
        !std::path::Path::new(&netns).exists(),
        "{netns} is still there"
    );
    assert!(
        node.bridge_ports().trim().is_empty(),
        "{}",
        node.bridge_ports()
    );
    assert!(node.leases().is_empty(), "{:?}", node.leases());
    assert!(http_get(&gateway).is_err(), "the host port still answers");
    assert!(!std::path::Path::new(&format!("/proc/{pause_pid}")).exists());
    // Stopping again is fine, as the CRI wants.
    node.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("a second stop");

    // Remove: nothing of the pod is left.
    node.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", node.l.log()));
    assert!(
        node.runtime
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .expect("list")
            .into_inner()
            .items
            .is_empty()
    );
    assert!(
        node.runtime
            .list_containers(cri::ListContainersRequest::default())
            .await
            .expect("list")
            .into_inner()
            .containers
            .is_empty()
    );
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
    let sandboxes = node.l.state.join("cri/sandboxes");
    assert_eq!(
        std::fs::read_dir(&sandboxes)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory{cg_path}")).exists());
    node.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .expect("removing a removed pod is fine");
}

async fn container_stats(node: &mut CriNode, id: &str) -> cri::ContainerStats {
    node.runtime
        .container_stats(cri::ContainerStatsRequest {
            container_id: id.to_string(),
        })
        .await
        .expect("container stats")
        .into_inner()
        .stats
        .expect("stats")
}

async fn sandbox_state(node: &mut CriNode, pod: &str) -> (i32, String) {
    let s = node
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.to_string(),
            verbose: false,
        })
        .await
        .unwrap_or_else(|e| panic!("sandbox status: {e}\n{}", node.l.log()))
        .into_inner()
        .status
        .expect("a status");
    (s.state, s.network.map(|n| n.ip).unwrap_or_default())
}

async fn container_pid(node: &mut CriNode, id: &str) -> u64 {
    let s = node
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        })
        .await
        .expect("status")
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&s.info["info"]).expect("verbose info");
    info["pid"].as_u64().expect("a pid")
}

async fn remove_pod(node: &mut CriNode, pod: &str) {
    for step in ["stop", "remove"] {
        let r = if step == "stop" {
            node.runtime
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: pod.to_string(),
                })
                .await
                .map(|_| ())
        } else {
            node.runtime
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: pod.to_string(),
                })
                .await
                .map(|_| ())
        };
        r.unwrap_or_else(|e| panic!("{step} {pod}: {e}\n{}", node.l.log()));
    }
}

#[tokio::test]
async fn lifecycled_killed_under_running_pods_comes_back_with_the_same_answers() {
    let mut node = CriNode::start().await;
    let pod_cfg = pod_config("db", &node, Vec::new());
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let config = container_config(
        "long",
        &node,
        &["sh", "-c", "while true; do echo tick; sleep 0.1; done"],
    );
    let long = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create long");
    let config = container_config("short", &node, &["sh", "-c", "read _; echo bye; exit 5"]);
    let mut short_cfg = config;
    short_cfg.stdin = true;
    short_cfg.stdin_once = true;
    let short = create(&mut node, &pod, short_cfg, &pod_cfg)
        .await
        .expect("create short");
    let config = container_config("later", &node, &["sh", "-c", "echo later"]);
    let later = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create later");
    start(&mut node, &long).await;
    start(&mut node, &short).await;
    let before = sandbox_state(&mut node, &pod).await;
    assert_eq!(before.0, cri::PodSandboxState::SandboxReady as i32);
    let long_pid = container_pid(&mut node, &long).await;
    let short_pid = container_pid(&mut node, &short).await;

    // The daemon dies; while it is away, one container exits (killed by
    // the test: its stdin is the shim's, which keeps it waiting).
    node.l.kill9();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &short_pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{short_pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{short_pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "short did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.l.spawn();
    node.reconnect().await;

    // The same pod, the same address, the same running container.
    assert_eq!(sandbox_state(&mut node, &pod).await, before);
    let running = node
        .wait_state(&long, cri::ContainerState::ContainerRunning, 1)
        .await;
    assert!(running.started_at > 0);
    assert_eq!(container_pid(&mut node, &long).await, long_pid);
    // The exit that happened while lifecycled was away is known.
    let gone = node
        .wait_state(&short, cri::ContainerState::ContainerExited, 10)
        .await;
    assert_eq!(
        (gone.exit_code, gone.reason.as_str()),
        (143, "Error"),
        "{gone:?}"
    );
    assert!(gone.finished_at >= gone.started_at);
    // The container created before the crash starts after it.
    node.wait_state(&later, cri::ContainerState::ContainerCreated, 1)
        .await;
    start(&mut node, &later).await;
    let done = node
        .wait_state(&later, cri::ContainerState::ContainerExited, 10)
        .await;
    assert_eq!(done.exit_code, 0);
    let log = std::fs::read_to_string(&done.log_path).expect("log");
    assert!(log.ends_with(" stdout F later\n"), "{log}");
    let r = exec(&mut node, &long, &["hostname"], 10)
        .await
        .expect("exec after the restart");
    assert_eq!(r.stdout, b"db-host\n");

    // The kubelet rotates the log: renames it, asks for it to be reopened.
    let log_path = running.log_path.clone();
    let rotated = format!("{log_path}.20261204-000000");
    std::fs::rename(&log_path, &rotated).expect("rename the log");
    node.runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: long.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}\n{}", node.l.log()));
    let old_len = std::fs::metadata(&rotated).expect("rotated").len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log_path)
        .map(|l| !l.contains(" stdout F tick\n"))
        .unwrap_or(true)
    {
        assert!(std::time::Instant::now() < deadline, "no new log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::metadata(&rotated).expect("rotated").len(),
        old_len,
        "the rotated file is still written"
    );
    let e = node
        .runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: short.clone(),
        })
        .await
        .expect_err("an exited container has no log open");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");

    remove_pod(&mut node, &pod).await;
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
    assert!(node.leases().is_empty(), "{:?}", node.leases());
    assert!(!std::path::Path::new(&format!("/proc/{long_pid}")).exists());
}

#[tokio::test]
async fn wrong_requests_get_a_clear_status_and_change_nothing() {
    let mut node = CriNode::start().await;
    let pod_cfg = pod_config("q", &node, Vec::new());

    // A container in a sandbox that does not exist.
    let config = container_config("c", &node, &["true"]);
    let e = create(&mut node, "no-such-sandbox", config, &pod_cfg)
        .await
        .expect_err("no sandbox");
    assert_eq!(e.code(), Code::NotFound, "{e}");
    assert!(e.message().contains("no-such-sandbox"), "{e}");

    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    // The same pod again: its name is taken.
    let e = node
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect_err("a duplicate sandbox");
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");
    assert!(
        e.message().contains("is reserved for") && e.message().contains(&pod),
        "{e}"
    );
    // An image that was never pulled.
    let mut config = container_config("c", &node, &["true"]);
    config.image = Some(cri::ImageSpec {
        image: format!("{}/berth/absent:1", node.reg.host),
        ..Default::default()
    });
    let e = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect_err("an absent image");
    assert_eq!(e.code(), Code::NotFound, "{e}");
    assert!(e.message().contains("berth/absent:1"), "{e}");
    // A runtime handler that is not configured.
    let mut other = pod_config("r", &node, Vec::new());
    other.metadata.as_mut().expect("metadata").uid = "uid-r2".into();
    let e = node
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(other),
            runtime_handler: "no-such-handler".into(),
        })
        .await
        .expect_err("an unknown handler");
    assert!(e.message().contains("no-such-handler"), "{e}");
    // Unknown ids.
    for (what, e) in [
        (
            "status",
            node.runtime
                .container_status(cri::ContainerStatusRequest {
                    container_id: "nope".into(),
                    verbose: false,
                })
                .await
                .map(|_| ()),
        ),
        (
            "start",
            node.runtime
                .start_container(cri::StartContainerRequest {
                    container_id: "nope".into(),
                })
                .await
                .map(|_| ()),
        ),
        (
            "sandbox status",
            node.runtime
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: "nope".into(),
                    verbose: false,
                })
                .await
                .map(|_| ()),
        ),
    ] {
        let e = e.expect_err(what);
        assert_eq!(e.code(), Code::NotFound, "{what}: {e}");
    }
    // Removing what is not there is fine, as the kubelet retries removals.
    node.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: "nope".into(),
        })
        .await
        .expect("removing an unknown container");

    // Nothing of the failed requests is left: one pod, no containers.
    let pods = node
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(
        pods.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        [pod.as_str()]
    );
    assert!(
        node.runtime
            .list_containers(cri::ListContainersRequest::default())
            .await
            .expect("list")
            .into_inner()
            .containers
            .is_empty()
    );
    assert_eq!(node.leases().len(), 1, "{:?}", node.leases());
    remove_pod(&mut node, &pod).await;
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}

#[tokio::test]
async fn a_node_without_a_pod_network_says_so_and_still_runs_host_network_pods() {
    let mut node = CriNode::start_with_network(false).await;
    let status = node
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("conditions");
    let net = status
        .conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("NetworkReady");
    assert!(
        !net.status && net.reason == "NetworkPluginNotReady",
        "{net:?}"
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status)
    );

    let pod_cfg = pod_config("nonet", &node, Vec::new());
    let e = node
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg),
            runtime_handler: String::new(),
        })
        .await
        .expect_err("no pod network");
    assert!(e.message().contains("cni"), "{e}");
    assert!(
        node.runtime
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .expect("list")
            .into_inner()
            .items
            .is_empty()
    );
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
    let netns_dir = node.l.state.join("cri/netns");
    assert_eq!(
        std::fs::read_dir(&netns_dir)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    // A pod on the node's own network needs no plugin.
    let mut pod_cfg = pod_config("hostnet", &node, Vec::new());
    pod_cfg.hostname = String::new();
    pod_cfg.linux = Some(cri::LinuxPodSandboxConfig {
        cgroup_parent: format!("/{}/kubepods/podhostnet", node.l.cgroup_parent),
        security_context: Some(cri::LinuxSandboxSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                network: cri::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let config = container_config("c", &node, &["sleep", "1000"]);
    let c = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create");
    start(&mut node, &c).await;
    let pid = container_pid(&mut node, &c).await;
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).expect("netns");
    assert_eq!(ns(&pid.to_string()), ns("self"));
    let r = exec(&mut node, &c, &["hostname"], 10).await.expect("exec");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(String::from_utf8_lossy(&r.stdout), host);
    remove_pod(&mut node, &pod).await;
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}

#[tokio::test]
async fn container_events_follow_a_pod_through_its_life() {
    let mut node = CriNode::start().await;
    let mut events = node
        .runtime
        .get_container_events(cri::GetEventsRequest {})
        .await
        .expect("events")
        .into_inner();
    let mut next = async move |want: cri::ContainerEventType| {
        let e = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} event"))
            .expect("the stream")
            .expect("an event");
        assert_eq!(e.container_event_type, want as i32, "{e:?}");
        e
    };
    use cri::ContainerEventType::*;
    let pod_cfg = pod_config("ev", &node, Vec::new());
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    for kind in [ContainerCreatedEvent, ContainerStartedEvent] {
        let e = next(kind).await;
        assert_eq!(e.container_id, pod);
        assert_eq!(
            e.pod_sandbox_status.expect("pod status").state,
            cri::PodSandboxState::SandboxReady as i32
        );
    }
    let config = container_config("c", &node, &["sh", "-c", "read _; exit 2"]);
    let mut config = config;
    config.stdin = true;
    let c = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create");
    let e = next(ContainerCreatedEvent).await;
    assert_eq!(e.container_id, c);
    assert_eq!(e.containers_statuses.len(), 1);
    start(&mut node, &c).await;
    let e = next(ContainerStartedEvent).await;
    assert_eq!(e.container_id, c);
    assert_eq!(
        e.containers_statuses[0].state,
        cri::ContainerState::ContainerRunning as i32
    );
    let pid = container_pid(&mut node, &c).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let e = next(ContainerStoppedEvent).await;
    assert_eq!(e.container_id, c);
    let s = &e.containers_statuses[0];
    assert_eq!(
        (s.state, s.exit_code),
        (cri::ContainerState::ContainerExited as i32, 143)
    );
    remove_pod(&mut node, &pod).await;
    let e = next(ContainerStoppedEvent).await;
    assert_eq!(e.container_id, pod);
    assert_eq!(
        e.pod_sandbox_status.expect("pod status").state,
        cri::PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(next(ContainerDeletedEvent).await.container_id, c);
    let e = next(ContainerDeletedEvent).await;
    assert_eq!(e.container_id, pod);
    assert!(e.pod_sandbox_status.is_none() && e.containers_statuses.is_empty());
}

/// A WebSocket to a streaming URL, speaking `protocol`.
async fn websocket(
    url: &str,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("a request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        protocol.parse().expect("a header value"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("WebSocket to {url}: {e}"));
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(protocol)
    );
    ws
}

/// Reads channel messages until the server closes: the bytes of each
/// channel, in order.
async fn channels(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> HashMap<u8, Vec<u8>> {
    use futures::StreamExt;
    let mut got: HashMap<u8, Vec<u8>> = HashMap::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server answers");
        match msg {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b))) if !b.is_empty() => {
                got.entry(b[0]).or_default().extend_from_slice(&b[1..]);
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None | Some(Err(_)) => {
                return got;
            }
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn exec_attach_and_port_forward_stream_over_spdy_and_websockets() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut node = CriNode::start().await;
    let pod_cfg = pod_config("st", &node, Vec::new());
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let config = container_config(
        "web",
        &node,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-through-a-tunnel > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    let web = create(&mut node, &pod, config, &pod_cfg)
        .await
        .expect("create web");
    start(&mut node, &web).await;
    let mut talk = container_config(
        "talk",
        &node,
        &[
            "sh",
            "-c",
            "while read l; do echo \"got $l\"; done; echo bye >&2",
        ],
    );
    talk.stdin = true;
    talk.stdin_once = true;
    let talk = create(&mut node, &pod, talk, &pod_cfg)
        .await
        .expect("create talk");
    start(&mut node, &talk).await;

    let exec_url = |node: &mut CriNode, cmd: &[&str], stdin: bool, tty: bool| {
        let req = cri::ExecRequest {
            container_id: web.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        };
        let mut rt = node.runtime.clone();
        async move {
            rt.exec(req)
                .await
                .unwrap_or_else(|e| panic!("Exec: {e}"))
                .into_inner()
                .url
        }
    };

    // SPDY, as kubectl exec: stdin in, both outputs back, the exit code in
    // the status on the error stream.
    let url = exec_url(
        &mut node,
        &["sh", "-c", "cat; echo err >&2; exit 3"],
        true,
        false,
    )
    .await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = integration_tests::cri::kubestream_run(&["exec", &url, "-stdin"], b"hello\n");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("hello\n", "err\n"),
        "{}",
        node.l.log()
    );
    let status: serde_json::Value = serde_json::from_str(&r.status).expect("a status");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    // A URL is good once.
    let again = integration_tests::cri::kubestream_run(&["exec", &url], b"");
    assert_eq!(again.code, 101, "{}", again.stderr);
    assert!(again.stderr.starts_with("404"), "{}", again.stderr);

    // A terminal: the size the client sends reaches it.
    let url = exec_url(
        &mut node,
        &["sh", "-c", "sleep 0.5; stty size"],
        false,
        true,
    )
    .await;
    let r = integration_tests::cri::kubestream_run(&["exec", &url, "-tty"], b"");
    assert_eq!(r.stdout, "45 123\r\n", "{}", r.stderr);
    assert_eq!(r.status, r#"{"metadata":{},"status":"Success"}"#);

    // WebSocket, v5: stdin closed by its own message, success.
    let url = exec_url(&mut node, &["sh", "-c", "cat; echo done >&2"], true, false).await;
    let mut ws = websocket(&url, "v5.channel.k8s.io").await;
    ws.send(Message::binary(b"\x00ws-in\n".to_vec()))
        .await
        .expect("stdin");
    ws.send(Message::binary(vec![255, 0]))
        .await
        .expect("close stdin");
    let got = channels(&mut ws).await;
    assert_eq!(got.get(&1).map(Vec::as_slice), Some(&b"ws-in\n"[..]));
    assert_eq!(got.get(&2).map(Vec::as_slice), Some(&b"done\n"[..]));
    assert_eq!(
        got.get(&3).map(Vec::as_slice),
        Some(&br#"{"metadata":{},"status":"Success"}"#[..])
    );
    // v4 carries the exit code the same way.
    let url = exec_url(&mut node, &["sh", "-c", "exit 7"], false, false).await;
    let mut ws = websocket(&url, "v4.channel.k8s.io").await;
    let got = channels(&mut ws).await;
    let status: serde_json::Value =
        serde_json::from_slice(got.get(&3).expect("a status")).expect("json");
    assert_eq!(status["details"]["causes"][0]["message"], "7");

    // A client that goes away takes its command with it, as containerd
    // kills an exec whose stream ended.
    let url = exec_url(&mut node, &["sleep", "1234"], false, false).await;
    let mut ws = websocket(&url, "v4.channel.k8s.io").await;
    {
        use futures::StreamExt;
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the session opens");
        assert!(matches!(first, Some(Ok(Message::Binary(_)))), "{first:?}");
    }
    let sleeping = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x001234\x00")
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sleeping() {
        assert!(std::time::Instant::now() < deadline, "the exec never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sleeping() {
        assert!(
            std::time::Instant::now() < deadline,
            "the exec outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Attach to the container's own stdin (stdin_once: the client's end of
    // input ends the container's).
    let url = node
        .runtime
        .attach(cri::AttachRequest {
            container_id: talk.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await
        .expect("Attach")
        .into_inner()
        .url;
    let r = integration_tests::cri::kubestream_run(&["exec", &url, "-stdin"], b"one\ntwo\n");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("got one\ngot two\n", "bye\n"),
        "{}",
        node.l.log()
    );
    assert_eq!(r.status, r#"{"metadata":{},"status":"Success"}"#);
    let done = node
        .wait_state(&talk, cri::ContainerState::ContainerExited, 10)
        .await;
    let log = std::fs::read_to_string(&done.log_path).expect("log");
    assert!(log.contains(" stdout F got two\n"), "{log}");

    // Port forwarding into the pod's own localhost.
    let pf_url = |node: &mut CriNode| {
        let mut rt = node.runtime.clone();
        let pod = pod.clone();
        async move {
            rt.port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod,
                port: vec![80],
            })
            .await
            .expect("PortForward")
            .into_inner()
            .url
        }
    };
    let url = pf_url(&mut node).await;
    let r = integration_tests::cri::kubestream_run(
        &["portforward", &url, "80", "GET /index.html HTTP/1.0\\n\\n"],
        b"",
    );
    assert!(
        r.stdout.contains("hello-through-a-tunnel"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let url = pf_url(&mut node).await;
    let r = integration_tests::cri::kubestream_run(&["portforward", &url, "81", "x"], b"");
    assert_eq!(r.code, 102, "{}", r.stderr);
    assert!(
        r.stderr.contains("error forwarding port 81") && r.stderr.contains("refused"),
        "{}",
        r.stderr
    );
    let url = pf_url(&mut node).await;
    let mut ws = websocket(&format!("{url}?port=80"), "v4.channel.k8s.io").await;
    ws.send(Message::binary(
        b"\x00GET /index.html HTTP/1.0\r\n\r\n".to_vec(),
    ))
    .await
    .expect("request");
    let got = channels(&mut ws).await;
    let data = String::from_utf8_lossy(got.get(&0).expect("data"));
    // The port comes first on each channel, then the answer.
    assert!(data.starts_with("P\0HTTP/1.1 200 OK"), "{data}");
    assert!(data.contains("hello-through-a-tunnel"), "{data}");
    assert_eq!(got.get(&1).map(Vec::as_slice), Some(&b"P\0"[..]));

    // Requests the streaming library refuses, and an exited container.
    let e = node
        .runtime
        .exec(cri::ExecRequest {
            container_id: web.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stderr: true,
            ..Default::default()
        })
        .await
        .expect_err("tty with stderr");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = node
        .runtime
        .attach(cri::AttachRequest {
            container_id: talk.clone(),
            stdout: true,
            ..Default::default()
        })
        .await
        .expect_err("attach to an exited container");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    remove_pod(&mut node, &pod).await;
}

#[tokio::test]
async fn the_cri_alone_on_a_socket_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let mut node = CriNode::start_with(true, &format!("address = \"{}\"", socket.display())).await;
    let ch = integration_tests::cri::channel(&socket).await;
    let mut rt = cri::runtime_service_client::RuntimeServiceClient::new(ch.clone());
    let v = rt
        .version(cri::VersionRequest::default())
        .await
        .expect("version")
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    let images = cri::image_service_client::ImageServiceClient::new(ch.clone())
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("images")
        .into_inner()
        .images;
    assert!(
        images.iter().any(|i| i.repo_tags.contains(&node.image)),
        "{images:?}"
    );
    // The same pods whichever socket is asked.
    let pod_cfg = pod_config("apart", &node, Vec::new());
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.l.log()))
        .into_inner()
        .pod_sandbox_id;
    let listed = node
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, pod);
    // Only the CRI there: berth's own services stay on lifecycled's socket.
    let e = berth_proto::lifecycle::v1::containers_client::ContainersClient::new(ch)
        .list(berth_proto::lifecycle::v1::ListContainersRequest::default())
        .await
        .expect_err("not served there");
    assert_eq!(e.code(), Code::Unimplemented, "{e}");
    remove_pod(&mut node, &pod).await;
    node.l.stop();
    assert!(!socket.exists(), "the CRI socket outlived lifecycled");
}

#[tokio::test]
async fn a_container_gets_the_security_context_it_asks_for() {
    let mut node = CriNode::start().await;
    let pod_cfg = pod_config("sec", &node, Vec::new());
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let mut config = container_config("locked", &node, &["sleep", "1000"]);
    config.envs = vec![cri::KeyValue {
        key: "GREETING".into(),
        value: "hi".into(),
    }];
    config.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            run_as_group: Some(cri::Int64Value { value: 1000 }),
            supplemental_groups: vec![2000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(cri::Capability {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                add_ambient_capabilities: vec![],
            }),
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = create(&mut node, &pod, config, &pod_cfg)
        .await
        .unwrap_or_else(|e| panic!("create: {e}\n{}", node.l.log()));
    start(&mut node, &c).await;
    let out = |r: cri::ExecSyncResponse| {
        (
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).trim().to_string(),
        )
    };
    let r = exec(
        &mut node,
        &c,
        &["sh", "-c", "id -u; id -g; id -G; echo $GREETING"],
        10,
    )
    .await
    .expect("exec");
    let (code, text) = out(r);
    assert_eq!(code, 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{text}");
    assert!(lines[2].split(' ').any(|g| g == "2000"), "{text}");
    assert_eq!(lines[3], "hi");
    // The root is read-only; /tmp is not there to write either.
    let r = exec(&mut node, &c, &["touch", "/x"], 10)
        .await
        .expect("exec");
    assert_ne!(r.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("Read-only file system"),
        "{r:?}"
    );
    // Only the capability asked for is in the bounding set; no new
    // privileges; a seccomp filter; /proc/timer_list masked (root's alone
    // otherwise: this user could not open it, masked it reads empty).
    let r = exec(
        &mut node,
        &c,
        &[
            "sh",
            "-c",
            "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; wc -c < /proc/timer_list",
        ],
        10,
    )
    .await
    .expect("exec");
    let (_, text) = out(r);
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    assert_eq!(fields.get("CapBnd"), Some(&"0000000000000400"), "{text}");
    assert_eq!(fields.get("NoNewPrivs"), Some(&"1"), "{text}");
    assert_eq!(fields.get("Seccomp"), Some(&"2"), "{text}");
    assert_eq!(text.lines().last(), Some("0"), "{text}");
    remove_pod(&mut node, &pod).await;
}

/// The pid of the shim serving a task, as the shim recorded it.
fn shim_pid(node: &CriNode, id: &str) -> i32 {
    let dir = node.l.task_dir("k8s.io", id);
    std::fs::read_to_string(dir.join("shim.pid"))
        .unwrap_or_else(|e| panic!("{}/shim.pid: {e}", dir.display()))
        .trim()
        .parse()
        .expect("a pid in shim.pid")
}

fn parent_of(pid: u64) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok())
        .expect("a parent pid")
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test]
async fn a_pod_is_served_by_one_shim_process_that_ends_with_its_last_task() {
    let mut node = CriNode::start().await;
    let pod_cfg = pod_config("grouped", &node, Vec::new());
    let pod = run_pod(&mut node, pod_cfg.clone()).await;
    let sandbox_shim = shim_pid(&node, &pod);

    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let config = container_config(name, &node, &["sleep", "1000"]);
        let id = create(&mut node, &pod, config, &pod_cfg)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}\n{}", node.l.log()));
        start(&mut node, &id).await;
        ids.push(id);
    }
    // Both containers are the sandbox's shim's: their tasks name it, and
    // it is the subreaper their processes hang from.
    for id in &ids {
        assert_eq!(shim_pid(&node, id), sandbox_shim, "task {id}");
        let pid = container_pid(&mut node, id).await;
        assert_eq!(parent_of(pid), sandbox_shim, "container {id}'s process");
    }

    // One container goes: its task stops being served, the others are not
    // disturbed, and a container created afterwards joins the same shim.
    node.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: ids[0].clone(),
            timeout: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("stop: {e}\n{}", node.l.log()));
    node.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: ids[0].clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("remove: {e}\n{}", node.l.log()));
    assert!(alive(sandbox_shim));
    let r = exec(&mut node, &ids[1], &["echo", "still"], 10)
        .await
        .unwrap_or_else(|e| panic!("exec: {e}\n{}", node.l.log()));
    assert_eq!(r.stdout, b"still\n");
    let config = container_config("three", &node, &["sleep", "1000"]);
    let three = create(&mut node, &pod, config, &pod_cfg)
        .await
        .unwrap_or_else(|e| panic!("create three: {e}\n{}", node.l.log()));
    start(&mut node, &three).await;
    assert_eq!(shim_pid(&node, &three), sandbox_shim);
    let r = exec(&mut node, &three, &["sh", "-c", "echo three; exit 3"], 10)
        .await
        .unwrap_or_else(|e| panic!("exec: {e}\n{}", node.l.log()));
    assert_eq!((r.stdout.as_slice(), r.exit_code), (&b"three\n"[..], 3));

    // The pod goes: its pause task is deleted first, then its containers';
    // the shim process ends with the last of them, not before.
    remove_pod(&mut node, &pod).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(sandbox_shim) {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod's shim {sandbox_shim} outlived the pod\n{}",
            node.l.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}
