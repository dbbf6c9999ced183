//! berth-lifecycled, its shims and the runtimes as real processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::envelope::Event;
use berth_proto::types::v1 as pb;
use integration_tests::lifecycled::{Client, Lifecycled};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// The runtimes every behaviour test goes through: berth's, Debian's runc,
/// and crun through its wrapper for this host's hybrid cgroups.
fn runtimes() -> Vec<(&'static str, Option<PathBuf>)> {
    let mut v = vec![("berth-runtime", None), ("runc", None)];
    if Path::new("/usr/bin/crun").exists() {
        let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/crun-hybrid");
        v.push(("crun", Some(wrapper)));
    }
    v
}

fn start_lifecycled() -> Lifecycled {
    let extra: Vec<(&str, PathBuf)> = runtimes()
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
        .collect();
    let refs: Vec<(&str, &Path)> = extra.iter().map(|(n, p)| (*n, p.as_path())).collect();
    Lifecycled::start(&refs)
}

struct Output {
    stdout: String,
    stderr: String,
}

/// Opens an attach stream (before start), feeds `input` then closes stdin,
/// and returns a handle that collects the output until it ends.
async fn attach(
    c: &Client,
    id: &str,
    exec_id: &str,
    input: Option<&'static [u8]>,
) -> tokio::task::JoinHandle<Output> {
    let (tx, mut stream) = open_attach(
        c,
        api::AttachOpen {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdin: input.is_some(),
            stdout: true,
            stderr: true,
        },
        8,
    )
    .await;
    tokio::spawn(async move {
        if let Some(data) = input {
            tx.send(api::AttachRequest {
                kind: Some(api::attach_request::Kind::Stdin(data.to_vec())),
            })
            .await
            .unwrap();
            tx.send(api::AttachRequest {
                kind: Some(api::attach_request::Kind::CloseStdin(true)),
            })
            .await
            .unwrap();
        }
        let mut out = Output {
            stdout: String::new(),
            stderr: String::new(),
        };
        while let Ok(Some(chunk)) = stream.message().await {
            let s = String::from_utf8_lossy(&chunk.data);
            if chunk.stream == pb::chunk::Stream::Stderr as i32 {
                out.stderr.push_str(&s);
            } else {
                out.stdout.push_str(&s);
            }
        }
        drop(tx);
        out
    })
}

/// Tasks.Attach opened with `open`: the sender of what follows it (a
/// queue of `queue` requests) and the output stream.
async fn open_attach(
    c: &Client,
    open: api::AttachOpen,
    queue: usize,
) -> (
    tokio::sync::mpsc::Sender<api::AttachRequest>,
    tonic::Streaming<pb::Chunk>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(queue);
    tx.send(api::AttachRequest {
        kind: Some(api::attach_request::Kind::Open(open)),
    })
    .await
    .unwrap();
    let stream = c
        .tasks()
        .attach(c.req(ReceiverStream::new(rx)))
        .await
        .expect("attach")
        .into_inner();
    (tx, stream)
}

fn log_entries(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json log line"))
        .collect()
}

#[tokio::test]
async fn run_with_stdin_output_log_and_exit_code_through_each_runtime() {
    let l = start_lifecycled();
    let c = l.client("default").await;
    for (runtime, _) in runtimes() {
        let id = format!("io-{runtime}");
        c.create_container(
            &id,
            runtime,
            &[
                "sh",
                "-c",
                "echo out; echo err >&2; read line; echo got $line; exit 5",
            ],
            l.dir.path(),
        )
        .await
        .unwrap();
        let log = l.dir.path().join(format!("{id}-json.log"));
        c.tasks()
            .create(c.req(api::CreateTaskRequest {
                container_id: id.clone(),
                stdio: Some(pb::Stdio {
                    stdin: true,
                    log_path: log.to_string_lossy().into_owned(),
                    ..Default::default()
                }),
            }))
            .await
            .unwrap_or_else(|e| panic!("{runtime}: create task: {e}"));
        let out = attach(&c, &id, "", Some(b"hello\n")).await;
        c.tasks().start(c.process(&id, "")).await.unwrap();
        let out = out.await.unwrap();
        assert_eq!(out.stdout, "out\ngot hello\n", "{runtime}");
        assert_eq!(out.stderr, "err\n", "{runtime}");
        let exit = c
            .tasks()
            .wait(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exit.exit_status, 5, "{runtime}");

        let entries = log_entries(&log);
        let lines: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                (
                    e["stream"].as_str().unwrap().to_string(),
                    e["log"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            lines.contains(&("stdout".into(), "out\n".into())),
            "{runtime}: {lines:?}"
        );
        assert!(
            lines.contains(&("stderr".into(), "err\n".into())),
            "{runtime}: {lines:?}"
        );
        assert!(
            lines.contains(&("stdout".into(), "got hello\n".into())),
            "{runtime}: {lines:?}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z')))
        );

        let e = c
            .tasks()
            .exec(c.req(api::ExecRequest {
                container_id: id.clone(),
                exec_id: "late".into(),
                spec: br#"{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}}"#.to_vec(),
                stdio: None,
            }))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::FailedPrecondition,
            "{runtime}: exec into a stopped task: {e}"
        );

        let d = c
            .tasks()
            .delete(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.exit_status, 5);
        c.containers()
            .delete(c.req(api::ContainerRequest { id: id.clone() }))
            .await
            .unwrap();
        assert!(
            !l.task_dir("default", &id).exists(),
            "{runtime}: task dir left"
        );
    }
}

#[tokio::test]
async fn exec_pids_stats_pause_and_kill_through_each_runtime() {
    let l = start_lifecycled();
    let c = l.client("default").await;
    for (runtime, _) in runtimes() {
        let id = format!("long-{runtime}");
        c.create_container(
            &id,
            runtime,
            &["sh", "-c", "while true; do sleep 1; done"],
            l.dir.path(),
        )
        .await
        .unwrap();
        c.tasks()
            .create(c.req(api::CreateTaskRequest {
                container_id: id.clone(),
                stdio: None,
            }))
            .await
            .unwrap();
        let pid = c
            .tasks()
            .start(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner()
            .pid;

        c.tasks()
            .exec(
                c.req(api::ExecRequest {
                    container_id: id.clone(),
                    exec_id: "e1".into(),
                    spec: serde_json::json!({
                        "args": ["sh", "-c", "echo exec out; hostname; exit 3"],
                        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
                    })
                    .to_string()
                    .into_bytes(),
                    stdio: None,
                }),
            )
            .await
            .unwrap();
        let out = attach(&c, &id, "e1", None).await;
        c.tasks().start(c.process(&id, "e1")).await.unwrap();
        let out = out.await.unwrap();
        assert_eq!(
            out.stdout,
            format!("exec out\n{}\n", &id[..id.len().min(12)]),
            "{runtime}"
        );
        let exit = c
            .tasks()
            .wait(c.process(&id, "e1"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exit.exit_status, 3, "{runtime}");
        c.tasks().delete(c.process(&id, "e1")).await.unwrap();

        // A program that is not there: the runtime's words inside
        // containerd's, the same from berth-runtime as from runc.
        c.tasks()
            .exec(
                c.req(api::ExecRequest {
                    container_id: id.clone(),
                    exec_id: "missing".into(),
                    spec: serde_json::json!({
                        "args": ["nonexist"], "cwd": "/", "env": ["PATH=/bin"],
                        "user": {"uid": 0, "gid": 0}
                    })
                    .to_string()
                    .into_bytes(),
                    stdio: None,
                }),
            )
            .await
            .unwrap();
        let e = c
            .tasks()
            .start(c.process(&id, "missing"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unknown, "{runtime}: {e}");
        let want = "OCI runtime exec failed: exec failed: unable to start container process: \
                    exec: \"nonexist\": executable file not found in $PATH: unknown";
        if runtime == "crun" {
            assert!(e.message().starts_with("OCI runtime exec failed: "), "{e}");
            assert!(e.message().ends_with(": unknown"), "{e}");
        } else {
            assert_eq!(e.message(), want, "{runtime}");
        }
        c.tasks().delete(c.process(&id, "missing")).await.unwrap();

        let pids = c
            .tasks()
            .pids(c.req(api::ContainerRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .processes;
        assert!(
            pids.iter().any(|p| p.pid == pid),
            "{runtime}: {pids:?} lacks {pid}"
        );

        let stats = c
            .tasks()
            .stats(c.req(api::ContainerRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert!(stats.memory_usage > 0, "{runtime}: {stats:?}");
        assert!(stats.pids_current >= 1, "{runtime}: {stats:?}");
        assert!(stats.cpu_usage_total > 0, "{runtime}: {stats:?}");

        c.tasks()
            .pause(c.req(api::ContainerRequest { id: id.clone() }))
            .await
            .unwrap();
        let st = c
            .tasks()
            .get(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.status, pb::Status::Paused as i32, "{runtime}");
        c.tasks()
            .resume(c.req(api::ContainerRequest { id: id.clone() }))
            .await
            .unwrap();
        let st = c
            .tasks()
            .get(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.status, pb::Status::Running as i32, "{runtime}");

        let e = c.tasks().delete(c.process(&id, "")).await.unwrap_err();
        assert_eq!(
            e.code(),
            Code::FailedPrecondition,
            "{runtime}: deleting a running task"
        );

        c.tasks()
            .kill(c.req(api::KillRequest {
                container_id: id.clone(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            }))
            .await
            .unwrap();
        let exit = c
            .tasks()
            .wait(c.process(&id, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exit.exit_status, 137, "{runtime}");
        c.tasks().delete(c.process(&id, "")).await.unwrap();
    }
}

async fn start_detached(c: &Client, l: &Lifecycled, id: &str, script: &str) -> u32 {
    c.create_container(id, "", &["sh", "-c", script], l.dir.path())
        .await
        .unwrap();
    let log = l.dir.path().join(format!("{id}-json.log"));
    c.tasks()
        .create(c.req(api::CreateTaskRequest {
            container_id: id.into(),
            stdio: Some(pb::Stdio {
                log_path: log.to_string_lossy().into_owned(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    c.tasks()
        .start(c.process(id, ""))
        .await
        .unwrap()
        .into_inner()
        .pid
}

#[tokio::test]
async fn sigkill_of_lifecycled_under_20_containers_loses_nothing() {
    let mut l = start_lifecycled();
    let c = l.client("default").await;
    for i in 0..20 {
        let script = if i % 2 == 0 {
            // Runs on, writing a line every 100 ms.
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done".to_string()
        } else {
            // Exits while lifecycled is down, with its own status.
            format!("sleep 1; exit {i}")
        };
        start_detached(&c, &l, &format!("c{i}"), &script).await;
    }
    drop(c);
    l.kill9();
    let down_at = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    l.spawn();
    let c = l.client("default").await;

    let tasks = c
        .tasks()
        .list(c.req(api::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 20, "every task is still known: {tasks:?}");
    let by_id: HashMap<String, pb::Process> = tasks
        .into_iter()
        .map(|t| (t.container_id.clone(), t))
        .collect();
    for i in 0..20 {
        let t = &by_id[&format!("c{i}")];
        if i % 2 == 0 {
            assert_eq!(t.status, pb::Status::Running as i32, "c{i}");
            // Output written while lifecycled was down reached the log.
            let entries = log_entries(&l.dir.path().join(format!("c{i}-json.log")));
            let written_while_down = entries.iter().any(|e| {
                e["time"]
                    .as_str()
                    .and_then(humantime_parse)
                    .is_some_and(|t| t > down_at && t < down_at + Duration::from_millis(1900))
            });
            assert!(
                written_while_down,
                "c{i}: no log lines from while lifecycled was down"
            );
        } else {
            assert_eq!(t.status, pb::Status::Stopped as i32, "c{i}");
            assert_eq!(t.exit_status, i as u32, "c{i} keeps its true exit status");
        }
    }
    for i in 0..20 {
        let id = format!("c{i}");
        if i % 2 == 0 {
            c.tasks()
                .kill(c.req(api::KillRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                    signal: 9,
                    all: false,
                }))
                .await
                .unwrap();
            c.tasks().wait(c.process(&id, "")).await.unwrap();
        }
        c.tasks().delete(c.process(&id, "")).await.unwrap();
    }
}

fn humantime_parse(t: &str) -> Option<std::time::SystemTime> {
    // RFC 3339 with nanoseconds, UTC: 2026-11-22T10:00:00.123456789Z
    let out = std::process::Command::new("date")
        .args(["-d", t, "+%s.%N"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let (secs, nanos) = s.trim().split_once('.')?;
    Some(std::time::UNIX_EPOCH + Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

#[tokio::test]
async fn killed_shim_reports_exit_and_frees_its_container() {
    let l = start_lifecycled();
    let c = l.client("default").await;
    let mut events = c
        .events()
        .subscribe(c.req(api::SubscribeRequest {
            filters: vec!["topic==/tasks/exit".into()],
        }))
        .await
        .unwrap()
        .into_inner();
    for id in ["a", "b", "c"] {
        start_detached(&c, &l, id, "while true; do sleep 1; done").await;
    }
    let dir = l.task_dir("default", "b");
    let shim_pid: i32 = std::fs::read_to_string(dir.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let rootfs = dir.join("rootfs");
    // SAFETY: SIGKILL to the shim this test's lifecycled started.
    unsafe { libc::kill(shim_pid, libc::SIGKILL) };

    let exit = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.message().await.unwrap().unwrap();
            if let Some(Event::TaskExit(x)) = e.event
                && x.container_id == "b"
            {
                return x;
            }
        }
    })
    .await
    .expect("an exit event for the task whose shim died");
    assert_eq!(exit.exit_status, 255);
    // Cleaned up: no task, no mount, no task directory, no cgroup.
    for _ in 0..100 {
        if !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = c.tasks().get(c.process("b", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(rootfs.to_str().unwrap()),
        "rootfs of b still mounted"
    );
    assert!(!dir.exists(), "task dir of b left");
    assert!(
        testsupport::cgroup_dirs(&l.cgroup_parent)
            .iter()
            .all(|d| !d.ends_with("default/b"))
    );
    // The others did not notice.
    for id in ["a", "c"] {
        let st = c.tasks().get(c.process(id, "")).await.unwrap().into_inner();
        assert_eq!(st.status, pb::Status::Running as i32, "{id}");
    }
}

#[tokio::test]
async fn reflection_lists_services_and_health_says_serving() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let l = start_lifecycled();
    let c = l.client("default").await;
    let mut r = ServerReflectionClient::new(c.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer {msg:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    // Exactly the services this socket serves (the shim's, also in the
    // descriptor set, is not one of them).
    assert_eq!(
        names,
        [
            "berth.lifecycle.v1.Containers",
            "berth.lifecycle.v1.Content",
            "berth.lifecycle.v1.Events",
            "berth.lifecycle.v1.Images",
            "berth.lifecycle.v1.Snapshots",
            "berth.lifecycle.v1.Tasks",
            "berth.lifecycle.v1.Version",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "runtime.v1.ImageService",
            "runtime.v1.RuntimeService",
        ]
    );
    let v = c.version().version(c.req(())).await.unwrap().into_inner();
    assert!(v.runtimes.contains(&"runc".to_string()));
    assert_eq!(v.default_runtime, "berth-runtime");

    let mut h = tonic_health::pb::health_client::HealthClient::new(c.channel.clone());
    let s = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "berth.lifecycle.v1.Tasks".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        s.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// Python's grpcio from PyPI (the venv scripts/deps makes) with its default
/// options: it sends the socket's path, percent-encoded, as :authority, and
/// with `grpc.default_authority` the raw path as grpc-java and older grpc-go
/// do. Health, reflection, a unary call and a server stream must all work.
#[test]
fn grpcio_works_over_the_socket_whatever_authority_it_sends() {
    let python = Path::new("/var/cache/berth-tests/grpc-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/deps",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpcio_client.py");
    let l = start_lifecycled();
    let sock = l.address.to_str().unwrap().to_string();
    for authority in [None, Some(sock.as_str())] {
        let out = std::process::Command::new(python)
            .arg(&script)
            .arg(&sock)
            .args(authority)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "authority {authority:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"))
                .to_string()
        };
        assert_eq!(line("health "), "SERVING");
        let services = line("services ");
        assert!(
            services.contains("berth.lifecycle.v1.Tasks")
                && services.contains("grpc.reflection.v1alpha.ServerReflection"),
            "{services}"
        );
        assert!(
            line("version runtimes ")
                .split(' ')
                .any(|r| r == "berth-runtime")
        );
        let events = line("events ");
        assert!(
            events.contains("/containers/create") && events.contains("/containers/delete"),
            "{events}"
        );
    }
}

#[tokio::test]
async fn events_follow_a_container_through_its_life() {
    let l = start_lifecycled();
    let c = l.client("ev").await;
    let mut events = c
        .events()
        .subscribe(c.req(api::SubscribeRequest {
            filters: vec!["namespace==ev".into()],
        }))
        .await
        .unwrap()
        .into_inner();
    c.create_container("e", "", &["sh", "-c", "exit 7"], l.dir.path())
        .await
        .unwrap();
    c.tasks()
        .create(c.req(api::CreateTaskRequest {
            container_id: "e".into(),
            stdio: None,
        }))
        .await
        .unwrap();
    c.tasks().start(c.process("e", "")).await.unwrap();
    c.tasks().wait(c.process("e", "")).await.unwrap();
    c.tasks().delete(c.process("e", "")).await.unwrap();
    c.containers()
        .delete(c.req(api::ContainerRequest { id: "e".into() }))
        .await
        .unwrap();
    let mut topics = Vec::new();
    let mut exit_code = None;
    while topics.last().map(String::as_str) != Some("/containers/delete") {
        let e = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        assert_eq!(e.namespace, "ev");
        if let Some(Event::TaskExit(x)) = &e.event {
            exit_code = Some(x.exit_status);
        }
        topics.push(e.topic);
    }
    assert_eq!(
        topics,
        [
            "/containers/create",
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete",
            "/containers/delete"
        ]
    );
    assert_eq!(exit_code, Some(7));
}

#[tokio::test]
async fn bad_requests_get_the_right_code_and_change_nothing() {
    let l = start_lifecycled();
    let c = l.client("default").await;
    let create = |id: &str, spec: &[u8], runtime: &str| {
        let mut containers = c.containers();
        let req = c.req(api::CreateContainerRequest {
            container: Some(api::Container {
                id: id.into(),
                runtime: runtime.into(),
                spec: spec.to_vec(),
                rootfs: vec![pb::Mount {
                    r#type: "bind".into(),
                    source: "/".into(),
                    target: String::new(),
                    options: vec!["rbind".into()],
                }],
                ..Default::default()
            }),
        });
        async move { containers.create(req).await }
    };
    let good = specgen::defaults::spec(&["true".into()], false).to_string();
    let e = create("x", b"{not json", "").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("spec"), "{e}");
    let e = create("x", good.as_bytes(), "no-such-runtime")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("no-such-runtime"), "{e}");
    let e = create("../x", good.as_bytes(), "").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let list = c
        .containers()
        .list(c.req(api::ListContainersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(list.is_empty(), "a refused create left {list:?}");

    c.create_container("dup", "", &["true"], l.dir.path())
        .await
        .unwrap();
    let e = c
        .create_container("dup", "", &["true"], l.dir.path())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");

    // Another namespace sees nothing of this one.
    let other = l.client("other").await;
    let e = other
        .containers()
        .get(other.req(api::ContainerRequest { id: "dup".into() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let e = other
        .tasks()
        .create(other.req(api::CreateTaskRequest {
            container_id: "dup".into(),
            stdio: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");

    let e = c.tasks().start(c.process("dup", "")).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "starting a task never created: {e}"
    );

    // A program that does not exist: the runtime's words come back, and no
    // task is left half-made.
    c.create_container("noprog", "", &["/no/such/program"], l.dir.path())
        .await
        .unwrap();
    let e = c
        .tasks()
        .create(c.req(api::CreateTaskRequest {
            container_id: "noprog".into(),
            stdio: None,
        }))
        .await
        .unwrap_err();
    // containerd's words around runc's: ctr prints the same line.
    assert_eq!(e.code(), Code::Unknown, "{e}");
    assert_eq!(
        e.message(),
        "failed to create shim task: OCI runtime create failed: berth-runtime create failed: \
         unable to start container process: exec: \"/no/such/program\": \
         stat /no/such/program: no such file or directory: unknown",
    );
    assert!(!l.task_dir("default", "noprog").exists());
    let e = c.tasks().get(c.process("noprog", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let bad_ns = {
        let mut r = tonic::Request::new(api::ListContainersRequest::default());
        r.metadata_mut()
            .insert(berth_proto::NAMESPACE_HEADER, "../etc".parse().unwrap());
        c.containers().list(r).await.unwrap_err()
    };
    assert_eq!(bad_ns.code(), Code::InvalidArgument);
}

#[test]
fn berth_ctr_runs_a_container_and_names_the_layer_that_failed() {
    let l = start_lifecycled();
    let rootfs = l.dir.path().join("ctr-rootfs");
    testsupport::make_rootfs(&rootfs);
    let ctr = integration_tests::bin("berth-ctr");
    let out = std::process::Command::new(&ctr)
        .arg("--address")
        .arg(&l.address)
        .args(["run", "--rm", "--rootfs"])
        .arg(&rootfs)
        .args(["hello", "sh", "-c", "echo hi from ctr; exit 2"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from ctr\n");
    assert_eq!(out.status.code(), Some(2));
    let ls = std::process::Command::new(&ctr)
        .arg("--address")
        .arg(&l.address)
        .args(["containers", "ls", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "", "--rm removed it");

    let down = std::process::Command::new(&ctr)
        .args(["--address", "/nonexistent/lifecycled.sock", "version"])
        .output()
        .unwrap();
    assert_ne!(down.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot connect to berth-lifecycled"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let refused = std::process::Command::new(&ctr)
        .arg("--address")
        .arg(&l.address)
        .args(["containers", "info", "nope"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("berth-lifecycled: container nope not found"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn a_container_runs_again_right_after_its_task_is_deleted() {
    // The old shim exits just after Delete; it must not take the new shim's
    // socket (same id, same path) with it.
    let l = start_lifecycled();
    let c = l.client("default").await;
    c.create_container("again", "", &["sh", "-c", "exit 3"], l.dir.path())
        .await
        .unwrap();
    for round in 0..8 {
        c.tasks()
            .create(c.req(api::CreateTaskRequest {
                container_id: "again".into(),
                stdio: None,
            }))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        c.tasks().start(c.process("again", "")).await.unwrap();
        let exit = c
            .tasks()
            .wait(c.process("again", ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exit.exit_status, 3);
        c.tasks().delete(c.process("again", "")).await.unwrap();
    }
}

/// An attached client that reads slowly holds the output back, as Docker's
/// attached streams do; it never loses any of it.
#[tokio::test]
async fn a_slow_attached_client_gets_every_byte() {
    let l = start_lifecycled();
    let c = l.client("default").await;
    const SIZE: usize = 64 << 20;
    let cmd = format!("head -c {SIZE} /dev/zero");
    c.create_container("slow", "", &["sh", "-c", &cmd], l.dir.path())
        .await
        .unwrap();
    c.tasks()
        .create(c.req(api::CreateTaskRequest {
            container_id: "slow".into(),
            stdio: None,
        }))
        .await
        .unwrap();
    let (tx, mut stream) = open_attach(
        &c,
        api::AttachOpen {
            container_id: "slow".into(),
            exec_id: String::new(),
            stdin: false,
            stdout: true,
            stderr: false,
        },
        1,
    )
    .await;
    c.tasks().start(c.process("slow", "")).await.unwrap();
    // Not a byte read for a while: far more than any buffer on the way
    // could hold is written meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = 0;
    while let Some(chunk) = stream.message().await.expect("the stream") {
        assert!(chunk.data.iter().all(|&b| b == 0));
        got += chunk.data.len();
    }
    drop(tx);
    assert_eq!(got, SIZE);
    let exit = c
        .tasks()
        .wait(c.process("slow", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exit.exit_status, 0);
    c.tasks().delete(c.process("slow", "")).await.unwrap();
}
