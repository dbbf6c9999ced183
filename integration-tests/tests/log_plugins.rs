//! Log driver plugins (`docker.logdriver/1.0`) through the real docker
//! CLI, as dockerd drives them: `--log-driver PLUGIN` has the plugin read
//! the container's output from a FIFO (`LogDriver.StartLogging`, each line
//! a LogEntry protobuf), `docker logs` reads the local copy (dual logging),
//! the plugin is told to stop after the container stopped, and nothing is
//! lost while berthd is killed and started again.

use integration_tests::plugin::{call, log_plugin_dir, socket_named};
use integration_tests::stack::{Stack, docker_cli};
use serde_json::{Value, json};

fn stack() -> Option<Stack> {
    if docker_cli().is_none() {
        eprintln!("skipped: no docker CLI on this machine");
        return None;
    }
    let s = Stack::start();
    s.load_busybox();
    Some(s)
}

/// What the plugin received for container `id`: its entries as
/// (stream, line, partial), the starts it was told of, the FIFOs stopped.
fn received(s: &Stack, plugin_id: &str, id: &str) -> Value {
    call(
        &socket_named(&s.exec_root, plugin_id, "tlog.sock"),
        "Test.Logs",
        &json!({ "ID": id }),
    )
    .expect("the plugin answers")
}

fn lines(v: &Value) -> Vec<(String, String, bool)> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["line"].as_str().unwrap().to_string(),
                e["partial"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits for container `id` to exit, then for the plugin to have its
/// lines `{prefix}1` to `{prefix}{n}`, each once, in order.
fn every_line_arrives(s: &Stack, plugin_id: &str, id: &str, prefix: &str, n: usize) {
    assert!(integration_tests::eventually(20, || s
        .docker(&["inspect", "-f", "{{.State.Status}}", id])
        .stdout
        .trim()
        == "exited"));
    let want: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}")).collect();
    assert!(
        integration_tests::eventually(15, || {
            let got: Vec<String> = lines(&received(s, plugin_id, id))
                .into_iter()
                .map(|(_, l, _)| l)
                .collect();
            got == want
        }),
        "{}",
        received(s, plugin_id, id)
    );
}

#[test]
fn a_log_driver_plugin_gets_every_line_and_logs_still_reads_them() {
    let Some(mut s) = stack() else { return };
    let dir = log_plugin_dir(s.dir.path());
    // Not there yet, then disabled: refused at create with dockerd's words.
    let out = s.docker(&["create", "--log-driver", "tlog", "busybox"]);
    assert!(
        out.stderr
            .contains("error looking up logging plugin tlog: plugin \"tlog\" not found"),
        "{out:?}"
    );
    s.docker(&["plugin", "create", "tlog", dir.to_str().unwrap()])
        .ok();
    let out = s.docker(&["create", "--log-driver", "tlog", "busybox"]);
    assert!(out.stderr.contains("found but disabled"), "{out:?}");
    s.docker(&["plugin", "enable", "tlog"]).ok();
    let plugin_id = s
        .docker(&["plugin", "inspect", "-f", "{{.Id}}", "tlog"])
        .ok()
        .to_string();

    let run = s.docker(&[
        "run",
        "--name",
        "l1",
        "--log-driver",
        "tlog",
        "--log-opt",
        "any-option=its-own",
        "--label",
        "team=a",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; printf three",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let id = s
        .docker(&["inspect", "-f", "{{.Id}}", "l1"])
        .ok()
        .to_string();
    let want = vec![
        ("stdout".to_string(), "one".to_string(), false),
        ("stderr".to_string(), "two".to_string(), false),
        ("stdout".to_string(), "three".to_string(), false),
    ];
    assert!(
        integration_tests::eventually(10, || {
            let mut got = lines(&received(&s, &plugin_id, &id));
            got.sort();
            let mut w = want.clone();
            w.sort();
            got == w
        }),
        "{}",
        received(&s, &plugin_id, &id)
    );
    let r = received(&s, &plugin_id, &id);
    let start = &r["starts"][0];
    let file = start["File"].as_str().unwrap();
    assert!(file.starts_with("/run/docker/logging/"), "{start}");
    let info = &start["Info"];
    assert_eq!(info["ContainerID"], id.as_str());
    assert_eq!(info["ContainerName"], "/l1");
    assert_eq!(info["ContainerImageName"], "busybox");
    assert_eq!(info["ContainerEntrypoint"], "sh");
    assert_eq!(info["ContainerLabels"]["team"], "a");
    assert_eq!(info["Config"], json!({"any-option": "its-own"}));
    assert_eq!(info["DaemonName"], "docker");
    assert_eq!(info["LogPath"], "");
    // Told to stop once the container stopped; its FIFO gone.
    assert!(
        integration_tests::eventually(10, || received(&s, &plugin_id, &id)["stopped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == file)),
        "{}",
        received(&s, &plugin_id, &id)
    );
    let fifo = s
        .data_root
        .join("plugins")
        .join(&plugin_id)
        .join("rootfs")
        .join(file.trim_start_matches('/'));
    assert!(!fifo.exists(), "{} left", fifo.display());
    // The local copy: docker logs reads it, as dockerd's dual logging.
    let logs = s.docker(&["logs", "l1"]);
    assert_eq!(logs.stdout, "one\nthree");
    assert_eq!(logs.stderr, "two\n");

    // A running container's output reaches the plugin while berthd is
    // killed and started again: the shim holds the FIFO, not the engine.
    let id2 = s
        .docker(&[
            "run",
            "-d",
            "--log-driver",
            "tlog",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 1 100); do echo line$i; sleep 0.05; done",
        ])
        .ok()
        .to_string();
    let refused = s.docker(&["plugin", "disable", "tlog"]);
    assert!(
        refused.stderr.contains("plugin tlog:latest is in use"),
        "{refused:?}"
    );
    // A FIFO no record names (a start the engine died in) goes at the
    // next start; the running container's stays.
    let logging = s
        .data_root
        .join("plugins")
        .join(&plugin_id)
        .join("rootfs/run/docker/logging");
    let stray = logging.join("stray");
    nix::unistd::mkfifo(&stray, nix::sys::stat::Mode::from_bits_truncate(0o700)).unwrap();
    s.kill9_berthd();
    std::thread::sleep(std::time::Duration::from_millis(800));
    s.spawn_berthd();
    assert!(integration_tests::eventually(10, || !stray.exists()));
    let fifos = std::fs::read_dir(&logging).unwrap().count();
    let running = s
        .docker(&["inspect", "-f", "{{.State.Running}}", &id2])
        .ok()
        .to_string();
    assert!(
        fifos == 1 || running == "false",
        "the running container's FIFO stays ({fifos} there)"
    );
    every_line_arrives(&s, &plugin_id, &id2, "line", 100);
    // Stopped by the engine that saw it exit, though another started it.
    assert!(integration_tests::eventually(10, || {
        received(&s, &plugin_id, &id2)["stopped"]
            .as_array()
            .unwrap()
            .len()
            == 2
    }));

    // The plugin dies while a container writes: started again, it is
    // handed the container's FIFO, which kept what was written meanwhile.
    let id3 = s
        .docker(&[
            "run",
            "-d",
            "--log-driver",
            "tlog",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 1 60); do echo n$i; sleep 0.05; done",
        ])
        .ok()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = s.plugin_pid(&plugin_id).expect("the plugin's pid");
    // SAFETY: kill(2) on the plugin process this test's stack started.
    unsafe { libc::kill(before, libc::SIGKILL) };
    every_line_arrives(&s, &plugin_id, &id3, "n", 60);
    assert!(s.plugin_pid(&plugin_id).is_some_and(|p| p != before));

    // Disabled by force while a container writes, then enabled: handed
    // the FIFO again, nothing of it lost.
    let id5 = s
        .docker(&[
            "run",
            "-d",
            "--log-driver",
            "tlog",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 1 60); do echo f$i; sleep 0.05; done",
        ])
        .ok()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.docker(&["plugin", "disable", "-f", "tlog"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.docker(&["plugin", "enable", "tlog"]).ok();
    every_line_arrives(&s, &plugin_id, &id5, "f", 60);
    s.docker(&["rm", "-f", &id5]).ok();

    // daemon.json's log-driver names the plugin: containers that name no
    // driver log through it; one naming a plugin that is not there stops
    // the start.
    s.docker(&["rm", "-f", "l1", &id2, &id3]).ok();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.daemon_json).unwrap()).unwrap();
    s.stop_berthd();
    cfg["log-driver"] = json!("nope");
    std::fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    let out = s.run_berthd_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error looking up logging plugin: plugin \"nope\" not found"),
        "{stderr}"
    );
    cfg["log-driver"] = json!("tlog");
    std::fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    s.spawn_berthd();
    let id4 = s
        .docker(&["run", "-d", "busybox", "echo", "by default"])
        .ok()
        .to_string();
    assert_eq!(
        s.docker(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", &id4])
            .ok(),
        "tlog"
    );
    assert!(
        integration_tests::eventually(10, || lines(&received(&s, &plugin_id, &id4))
            == [("stdout".to_string(), "by default".to_string(), false)]),
        "{}",
        received(&s, &plugin_id, &id4)
    );
    s.docker(&["rm", "-f", &id4]).ok();
    s.docker(&["plugin", "disable", "tlog"]).ok();
    s.docker(&["plugin", "rm", "tlog"]).ok();
}
