//! Crash consistency, step by step: a daemon is made to die at a named
//! point of an operation (BERTH_FAULT, see the berth-fault crate), is
//! started again, and then every container must be in one truthful state
//! with nothing left behind (integration_tests::invariants). Each step's
//! recovery has its own test.

use std::collections::BTreeSet;
use std::time::Duration;

use integration_tests::invariants;
use integration_tests::stack::{Out, Stack};

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

/// Ids of every container the stack has now, added to `ever`.
fn note_ids(s: &Stack, ever: &mut BTreeSet<String>) {
    for c in invariants::containers(s).unwrap_or_default() {
        ever.insert(c.id);
    }
}

/// Waits until the invariants hold; panics with what does not, and the
/// daemons' logs.
fn assert_consistent(s: &Stack, ever: &BTreeSet<String>) {
    let mut last = Vec::new();
    let ok = integration_tests::eventually(30, || {
        last = invariants::check(s, ever);
        last.is_empty()
    });
    assert!(
        ok,
        "after recovery:\n  {}\n--- berthd:\n{}\n--- lifecycled:\n{}",
        last.join("\n  "),
        tail(&s.log()),
        tail(&s.lc().log())
    );
}

fn tail(log: &str) -> String {
    invariants::tail(log, 60)
}

/// Waits until the stack has no container at all; panics with what is left.
fn assert_all_gone(s: &Stack, what: &str) {
    let gone =
        integration_tests::eventually(30, || invariants::containers(s).is_ok_and(|v| v.is_empty()));
    assert!(
        gone,
        "{what}: {:?}\n{}",
        invariants::containers(s),
        tail(&s.log())
    );
}

/// Restarts berthd armed with `point`, runs `client`, and expects berthd
/// to die there; then starts it again unarmed. What the client got.
fn crash_berthd_while<T: std::fmt::Debug>(
    s: &mut Stack,
    point: &str,
    client: impl FnOnce(&Stack) -> T,
) -> T {
    s.fault = Some(point.to_string());
    s.kill9_berthd();
    s.spawn_berthd();
    let out = client(s);
    assert!(
        s.wait_berthd_exit(Duration::from_secs(20)),
        "berthd did not die at {point}; the client saw {out:?}"
    );
    assert!(
        s.log()
            .contains(&format!("berth-fault: aborting at {point}")),
        "berthd died elsewhere than {point}: {}",
        tail(&s.log())
    );
    s.fault = None;
    s.spawn_berthd();
    out
}

/// `crash_berthd_while` running `berth args`, whose client must be told it
/// failed.
fn crash_berthd_during(s: &mut Stack, point: &str, args: &[&str]) -> Out {
    let out = crash_berthd_while(s, point, |s| s.berth(args));
    assert_ne!(out.code, 0, "the client was told it worked: {out:?}");
    out
}

/// A running `sleep 60` container, noted in `ever`.
fn sleeper(s: &Stack, ever: &mut BTreeSet<String>) -> String {
    let id = s
        .berth(&["run", "-d", "busybox", "sleep", "60"])
        .ok()
        .to_string();
    ever.insert(id.clone());
    id
}

/// The same with lifecycled (and the shims it starts) armed.
fn crash_lifecycled_during(s: &mut Stack, point: &str, args: &[&str]) -> Out {
    s.lc_mut().fault = Some(point.to_string());
    s.lc_mut().kill9();
    s.lc_mut().spawn();
    let out = s.berth(args);
    if point.starts_with("lifecycled:") {
        assert!(
            s.lc_mut().wait_exit(Duration::from_secs(20)),
            "lifecycled did not die at {point}; the client saw {out:?}"
        );
    }
    s.lc_mut().fault = None;
    s.lc_mut().kill9();
    s.lc_mut().spawn();
    out
}

/// The stack still does its job afterwards.
fn still_works(s: &Stack, ever: &mut BTreeSet<String>) {
    let out = s.berth(&["run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "60"]);
    let id = out.ok().to_string();
    ever.insert(id.clone());
    assert_consistent(s, ever);
    s.berth(&["rm", "-f", &id]).ok();
    assert_consistent(s, ever);
}

fn only_container(s: &Stack) -> invariants::Seen {
    let all = invariants::containers(s).expect("listing containers");
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[test]
fn a_start_cut_after_its_task_was_made_is_rolled_back() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    crash_berthd_during(
        &mut s,
        "berthd:start.after-task-create",
        &["run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "60"],
    );
    note_ids(&s, &mut ever);
    assert_consistent(&s, &ever);
    let c = only_container(&s);
    assert_eq!(c.status, "created", "{c:?}");
    // It starts as any created container does.
    s.berth(&["start", &c.id]).ok();
    assert_consistent(&s, &ever);
    assert_eq!(only_container(&s).status, "running");
    s.berth(&["rm", "-f", &c.id]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn a_start_cut_after_its_process_started_is_adopted() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    crash_berthd_during(
        &mut s,
        "berthd:start.after-task-start",
        &["run", "-d", "busybox", "sleep", "60"],
    );
    note_ids(&s, &mut ever);
    assert_consistent(&s, &ever);
    let c = only_container(&s);
    assert_eq!(c.status, "running", "{c:?}");
    // Stopping it works, and its exit is seen.
    s.berth(&["stop", "-t", "1", &c.id]).ok();
    assert_eq!(only_container(&s).status, "exited");
    assert_consistent(&s, &ever);
    still_works(&s, &mut ever);
}

#[test]
fn a_run_rm_whose_engine_died_leaves_no_container() {
    for point in [
        "berthd:start.after-net-up",
        "berthd:start.after-task-create",
        "berthd:start.after-task-start",
        "berthd:net.before-cni-add",
        "berthd:net.after-cni-add",
    ] {
        let mut s = stack();
        let mut ever = BTreeSet::new();
        crash_berthd_during(
            &mut s,
            point,
            &[
                "run",
                "--rm",
                "-p",
                "127.0.0.1::80",
                "busybox",
                "sleep",
                "1",
            ],
        );
        note_ids(&s, &mut ever);
        assert_all_gone(&s, point);
        assert_consistent(&s, &ever);
    }
}

#[test]
fn a_create_cut_before_its_record_was_saved_leaves_nothing() {
    let mut s = stack();
    let ever = BTreeSet::new();
    crash_berthd_during(
        &mut s,
        "berthd:create.after-lifecycled-create",
        &["create", "--name", "half", "busybox", "true"],
    );
    assert_consistent(&s, &ever);
    assert!(invariants::containers(&s).expect("list").is_empty());
    // The name is free again.
    s.berth(&["create", "--name", "half", "busybox", "true"])
        .ok();
    s.berth(&["rm", "half"]).ok();
    assert_consistent(&s, &ever);
}

#[test]
fn a_removal_cut_midway_is_finished() {
    for point in [
        "berthd:rm.after-task-delete",
        "berthd:rm.after-container-delete",
    ] {
        let mut s = stack();
        let mut ever = BTreeSet::new();
        let id = s
            .berth(&["run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "60"])
            .ok()
            .to_string();
        ever.insert(id.clone());
        crash_berthd_during(&mut s, point, &["rm", "-f", &id]);
        assert_all_gone(&s, point);
        assert_consistent(&s, &ever);
    }
}

#[test]
fn a_task_create_cut_in_lifecycled_is_rolled_back() {
    for point in [
        "lifecycled:task-create.after-shim-spawn",
        "lifecycled:task-create.after-shim-create",
        "shim:create.after-runtime-create",
    ] {
        let mut s = stack();
        let mut ever = BTreeSet::new();
        let out = crash_lifecycled_during(&mut s, point, &["run", "-d", "busybox", "sleep", "60"]);
        assert_ne!(out.code, 0, "{point}: {out:?}");
        note_ids(&s, &mut ever);
        assert_consistent(&s, &ever);
        let c = only_container(&s);
        assert!(
            matches!(c.status.as_str(), "created" | "exited"),
            "{point}: {c:?}"
        );
        // Starting it again works, and so does removing it.
        let started = s.berth(&["start", &c.id]);
        assert_eq!(
            started.code,
            0,
            "{point}: {started:?}\n--- lifecycled:\n{}",
            tail(&s.lc().log())
        );
        assert_eq!(only_container(&s).status, "running", "{point}");
        s.berth(&["rm", "-f", &c.id]).ok();
        still_works(&s, &mut ever);
    }
}

#[test]
fn a_task_delete_cut_in_lifecycled_can_be_removed() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let id = sleeper(&s, &mut ever);
    crash_lifecycled_during(
        &mut s,
        "lifecycled:task-delete.after-shim-delete",
        &["rm", "-f", &id],
    );
    // The client may have been told either; removing again must work.
    let _ = s.berth(&["rm", "-f", &id]);
    assert_all_gone(&s, "after a cut task delete");
    assert_consistent(&s, &ever);
}

/// An exec started with the API, detached; its id.
fn exec_detached(s: &Stack, container: &str, script: &str) -> String {
    let body = serde_json::json!({"Cmd": ["sh", "-c", script]}).to_string();
    let (code, out) = s.api(
        "POST",
        &format!("/containers/{container}/exec"),
        Some(&body),
    );
    assert_eq!(code, 201, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("exec create answer");
    let id = v["Id"].as_str().expect("exec id").to_string();
    let (code, out) = s.api(
        "POST",
        &format!("/exec/{id}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert_eq!(code, 200, "{out}");
    id
}

fn exec_state(s: &Stack, id: &str) -> (bool, i64) {
    let (_, out) = s.api("GET", &format!("/exec/{id}/json"), None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    (
        v["Running"].as_bool().unwrap_or(true),
        v["ExitCode"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn exits_while_a_daemon_is_down_keep_their_codes() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let c = s
        .berth(&["run", "-d", "--name", "host", "busybox", "sleep", "60"])
        .ok()
        .to_string();
    let quits = s
        .berth(&["run", "-d", "busybox", "sh", "-c", "sleep 2; exit 3"])
        .ok()
        .to_string();
    let again = s
        .berth(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "sleep 2; exit 4",
        ])
        .ok()
        .to_string();
    ever.extend([c.clone(), quits.clone(), again.clone()]);
    let by_lifecycled = exec_detached(&s, &c, "sleep 2; exit 7");
    let also = exec_detached(&s, &c, "sleep 2; exit 8");

    // lifecycled is away while the exec and both containers exit.
    s.lc_mut().kill9();
    std::thread::sleep(Duration::from_secs(3));
    s.lc_mut().spawn();
    assert!(
        integration_tests::eventually(20, || exec_state(&s, &by_lifecycled) == (false, 7)),
        "exec across a lifecycled restart: {:?}",
        exec_state(&s, &by_lifecycled)
    );
    assert!(
        integration_tests::eventually(20, || {
            s.berth(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &quits,
            ])
            .stdout
            .trim()
                == "exited 3"
        }),
        "{}",
        s.berth(&["inspect", &quits]).stdout
    );
    assert!(
        integration_tests::eventually(20, || {
            s.berth(&["inspect", "-f", "{{.RestartCount}}", &again])
                .stdout
                .trim()
                .parse::<u32>()
                .is_ok_and(|n| n >= 1)
        }),
        "the restart policy did not fire: {}",
        s.berth(&["inspect", &again]).stdout
    );

    assert!(integration_tests::eventually(20, || exec_state(&s, &also) == (false, 8)));

    // And the engine is away while another exec exits.
    let by_engine = exec_detached(&s, &c, "sleep 2; exit 9");
    s.kill9_berthd();
    std::thread::sleep(Duration::from_secs(3));
    s.spawn_berthd();
    assert!(
        integration_tests::eventually(20, || exec_state(&s, &by_engine) == (false, 9)),
        "exec across an engine restart: {:?}",
        exec_state(&s, &by_engine)
    );
    s.berth(&["rm", "-f", &c, &quits, &again]).ok();
    assert_consistent(&s, &ever);
}

#[test]
fn a_network_connect_cut_midway_is_undone() {
    for point in ["berthd:net.before-cni-add", "berthd:net.after-cni-add"] {
        let mut s = stack();
        let mut ever = BTreeSet::new();
        let id = sleeper(&s, &mut ever);
        s.berth(&["network", "create", "second"]).ok();
        crash_berthd_during(&mut s, point, &["network", "connect", "second", &id]);
        assert_consistent(&s, &ever);
        // Its client was told it failed: the container is not on the network.
        let nets = s
            .berth(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", &id])
            .ok()
            .to_string();
        assert!(
            integration_tests::eventually(20, || !s
                .berth(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", &id])
                .stdout
                .contains("\"second\"")),
            "{point}: {nets}"
        );
        let leases = std::fs::read_dir(s.exec_root.join("ipam"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten().flatten())
            .filter(|f| {
                f.file_name()
                    .to_string_lossy()
                    .parse::<std::net::IpAddr>()
                    .is_ok()
            })
            .count();
        assert_eq!(
            leases, 1,
            "{point}: only the default bridge's address is leased"
        );
        // Connecting again works.
        s.berth(&["network", "connect", "second", &id]).ok();
        s.berth(&["rm", "-f", &id]).ok();
        assert_consistent(&s, &ever);
    }
}

#[test]
fn a_stop_cut_after_its_signal_is_not_undone_by_the_restart_policy() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let id = s
        .berth(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' TERM; while :; do usleep 100000; done",
        ])
        .ok()
        .to_string();
    ever.insert(id.clone());
    crash_berthd_during(
        &mut s,
        "berthd:stop.after-signal",
        &["stop", "-t", "10", &id],
    );
    assert_consistent(&s, &ever);
    // The container ended on the signal while the engine was down; the
    // user stopped it, so its policy does not bring it back.
    let state = || {
        s.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}",
            &id,
        ])
        .stdout
        .trim()
        .to_string()
    };
    assert!(
        integration_tests::eventually(20, || state() == "exited 3 0"),
        "{}\n{}",
        state(),
        tail(&s.log())
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(), "exited 3 0");
    s.berth(&["rm", &id]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn a_pause_cut_midway_is_rolled_back() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let id = sleeper(&s, &mut ever);
    crash_berthd_during(&mut s, "berthd:pause.after-task-pause", &["pause", &id]);
    // Its client was told it failed: running, and thawed (the invariants
    // compare the status with the freezer).
    assert_consistent(&s, &ever);
    assert_eq!(only_container(&s).status, "running");
    s.berth(&["pause", &id]).ok();
    assert_eq!(only_container(&s).status, "paused");
    assert_consistent(&s, &ever);
    s.berth(&["unpause", &id]).ok();
    s.berth(&["rm", "-f", &id]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn an_unpause_whose_answer_was_lost_finds_the_task_running() {
    let s = stack();
    let mut ever = BTreeSet::new();
    let id = sleeper(&s, &mut ever);
    s.berth(&["pause", &id]).ok();
    // What a daemon dying between lifecycled's resume and berthd's record
    // leaves when no reconcile saw it yet (the chaos test met it): the
    // task running, the record paused.
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let lc = s.lc().client("berth").await;
        lc.tasks()
            .resume(lc.req(berth_proto::lifecycle::v1::ContainerRequest { id: id.clone() }))
            .await
            .expect("resuming the task behind berthd");
    });
    assert_eq!(only_container(&s).status, "paused");
    // The unpause asks for what is already so: the record catches up.
    s.berth(&["unpause", &id]).ok();
    assert_eq!(only_container(&s).status, "running");
    assert_consistent(&s, &ever);
    s.berth(&["rm", "-f", &id]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn an_exec_cut_after_its_start_keeps_its_exit_code() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let c = sleeper(&s, &mut ever);
    let x = crash_berthd_while(&mut s, "berthd:exec.after-process-start", |s| {
        let body = serde_json::json!({"Cmd": ["sh", "-c", "sleep 2; exit 7"]}).to_string();
        let (code, out) = s.api("POST", &format!("/containers/{c}/exec"), Some(&body));
        assert_eq!(code, 201, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("exec create answer");
        let x = v["Id"].as_str().expect("exec id").to_string();
        let _ = s.api(
            "POST",
            &format!("/exec/{x}/start"),
            Some(r#"{"Detach":true}"#),
        );
        x
    });
    // The process ran on without the engine; its code is kept.
    assert!(
        integration_tests::eventually(20, || exec_state(&s, &x) == (false, 7)),
        "{:?}\n{}",
        exec_state(&s, &x),
        tail(&s.log())
    );
    // A started exec cannot be started twice.
    let (code, _) = s.api(
        "POST",
        &format!("/exec/{x}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert_eq!(code, 409);
    assert_consistent(&s, &ever);
    s.berth(&["rm", "-f", &c]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn a_volume_create_or_removal_cut_midway_is_finished() {
    let mut s = stack();
    let ever = BTreeSet::new();
    let vols = s.data_root.join("volumes");
    let names = |s: &Stack| s.berth(&["volume", "ls", "-q"]).ok().to_string();
    crash_berthd_during(
        &mut s,
        "berthd:volume-create.after-mkdir",
        &["volume", "create", "cut"],
    );
    assert_eq!(names(&s), "", "a create its client saw fail is rolled back");
    assert!(!vols.join("cut").exists());
    s.berth(&["volume", "create", "cut"]).ok();
    s.berth(&[
        "run",
        "--rm",
        "-v",
        "cut:/v",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /v/a/b && echo x > /v/a/b/f",
    ])
    .ok();
    crash_berthd_during(
        &mut s,
        "berthd:volume-rm.after-rename",
        &["volume", "rm", "cut"],
    );
    assert_eq!(names(&s), "");
    let left: Vec<_> = std::fs::read_dir(&vols)
        .expect("volumes dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    s.berth(&["volume", "create", "cut"]).ok();
    s.berth(&["volume", "rm", "cut"]).ok();
    assert_consistent(&s, &ever);
}

fn ctr(s: &Stack, args: &[&str]) -> String {
    let mut all = vec![
        "--address",
        s.lc().address.to_str().expect("utf-8 path"),
        "-n",
        "berth",
    ];
    all.extend_from_slice(args);
    let out = s.command(
        integration_tests::bin("berth-ctr")
            .to_str()
            .expect("utf-8 path"),
        &all,
    );
    assert_eq!(out.code, 0, "berth-ctr {args:?}: {out:?}");
    out.stdout
}

/// Blobs and unpacked layers in the store, after a garbage collection.
fn store_after_gc(s: &Stack) -> (String, String) {
    ctr(s, &["content", "gc"]);
    (ctr(s, &["content", "ls"]), ctr(s, &["snapshots", "ls"]))
}

#[test]
fn a_pull_cut_in_lifecycled_leaves_only_what_gc_removes() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let reg = integration_tests::registry::Registry::start();
    let remote = format!("{}/crash/own:1", reg.host);
    s.image_with_own_layer(&remote);
    s.berth(&["push", &remote]).ok();
    s.berth(&["rmi", &remote]).ok();
    let before = store_after_gc(&s);
    let out = crash_lifecycled_during(
        &mut s,
        "lifecycled:pull.after-layer-unpack",
        &["pull", &remote],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        s.lc()
            .log()
            .contains("berth-fault: aborting at lifecycled:pull.after-layer-unpack"),
        "{}",
        tail(&s.lc().log())
    );
    assert_consistent(&s, &ever);
    assert_eq!(s.berth(&["images", "-q", &remote]).ok(), "");
    // What the cut pull wrote is garbage the next collection removes.
    assert_eq!(store_after_gc(&s), before);
    // And pulling again works.
    s.berth(&["pull", &remote]).ok();
    let out = s.berth(&["run", "--rm", &remote, "cat", "/own"]);
    assert_eq!(out.ok(), "mine");
    still_works(&s, &mut ever);
}

#[test]
fn a_commit_cut_in_lifecycled_leaves_its_container_running_and_no_garbage() {
    let mut s = stack();
    let mut ever = BTreeSet::new();
    let c = s.run_with_own_file();
    ever.insert(c.clone());
    let before = store_after_gc(&s);
    let out = crash_lifecycled_during(
        &mut s,
        "lifecycled:commit.after-layer",
        &["commit", &c, "cut:1"],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert_consistent(&s, &ever);
    assert_eq!(only_container(&s).status, "running");
    assert_eq!(s.berth(&["images", "-q", "cut:1"]).ok(), "");
    assert_eq!(store_after_gc(&s), before);
    s.berth(&["commit", &c, "cut:1"]).ok();
    let out = s.berth(&["run", "--rm", "cut:1", "cat", "/own"]);
    assert_eq!(out.ok(), "mine");
    s.berth(&["rm", "-f", &c]).ok();
    still_works(&s, &mut ever);
}

#[test]
fn logs_follow_resumes_across_engine_restarts_without_gaps_or_repeats() {
    let mut s = stack();
    let id = s
        .berth(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo line-$i; [ $((i % 3)) = 0 ] && echo err-$i >&2; usleep 10000; done",
        ])
        .ok()
        .to_string();
    let mut follower = s.berth_cmd();
    follower
        .args(["logs", "-f", "-t", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = follower.spawn().expect("starting berth logs -f");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    // Two engine deaths while the container writes, one of them long
    // enough for lines to pile up unseen.
    for down in [Duration::from_millis(50), Duration::from_millis(1500)] {
        std::thread::sleep(Duration::from_millis(1500));
        s.kill9_berthd();
        std::thread::sleep(down);
        s.spawn_berthd();
    }
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(Ok(o)) => o,
        _ => {
            // SAFETY: kill(2) on the pid of the client this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("berth logs -f did not end with its container");
        }
    };
    assert!(out.status.success(), "{out:?}");
    let numbers = |text: &[u8], prefix: &str| -> Vec<u32> {
        String::from_utf8_lossy(text)
            .lines()
            .map(|l| {
                // -t: each line keeps its own time, then the text.
                let (time, text) = l.split_once(' ').expect("a timestamp");
                assert!(time.ends_with('Z') && time.contains('T'), "{l}");
                text.strip_prefix(prefix)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected line {l:?}"))
            })
            .collect()
    };
    let stdout = numbers(&out.stdout, "line-");
    let stderr = numbers(&out.stderr, "err-");
    assert_eq!(stdout, (1..=600).collect::<Vec<_>>(), "stdout");
    assert_eq!(
        stderr,
        (1..=200).map(|i| i * 3).collect::<Vec<_>>(),
        "stderr"
    );
    s.berth(&["rm", "-f", &id]).ok();
}
