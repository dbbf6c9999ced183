//! berthd through the `berth` CLI: the whole stack as real processes, each
//! test with its own lifecycled, berthd, sockets and state.

use std::time::Duration;

use integration_tests::eventually;
use integration_tests::stack::Stack;

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

/// berth's CLI, and Docker's where it is installed.
fn clis() -> &'static [&'static str] {
    if integration_tests::stack::docker_cli().is_some() {
        &["berth", "docker"]
    } else {
        &["berth"]
    }
}

/// `args` through the CLI named.
fn cli_run(s: &Stack, cli: &str, args: &[&str]) -> integration_tests::stack::Out {
    if cli == "berth" {
        s.berth(args)
    } else {
        s.docker(args)
    }
}

/// A UDP socket on loopback (a syslog or GELF server) that waits up to
/// ten seconds for each datagram.
fn udp_listener() -> std::net::UdpSocket {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    udp
}

#[test]
fn run_passes_output_and_exit_status_through() {
    let s = stack();
    assert_eq!(
        s.berth(&["run", "--rm", "busybox", "echo", "hello"]).ok(),
        "hello"
    );
    let out = s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout.trim(), "out");
    assert_eq!(out.stderr.trim(), "err");
    // A command that does not exist: 127, as Docker.
    let out = s.berth(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(out.stderr.contains("no-such-command"), "{out:?}");
    // --rm removed every one of them.
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), "");
    // Piped stdin with -i.
    let out = s.berth_stdin(
        &["run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z"],
        b"shout\n",
    );
    assert_eq!(out.ok(), "SHOUT");
    // The image's config and the request merged: env, workdir, user.
    let out = s.berth(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "user",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -un) $(hostname | wc -c)",
    ]);
    assert_eq!(out.ok(), "1 /tmp user 13");
}

#[test]
fn a_missing_image_is_pulled_and_a_failed_pull_is_reported() {
    let s = stack();
    // 127.0.0.1:1 refuses connections: nothing leaves the machine.
    let out = s.berth(&["run", "--rm", "127.0.0.1:1/nothing:here", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("Unable to find image '127.0.0.1:1/nothing:here' locally"),
        "{out:?}"
    );
    let out = s.berth(&["run", "--rm", "--pull=never", "nothing-here", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("No such image"), "{out:?}");
}

#[test]
fn containers_go_through_their_lifecycle() {
    let s = stack();
    let id = s
        .berth(&[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "tier=front",
            "busybox",
            "sh",
            "-c",
            "echo started; exec sleep 1000",
        ])
        .ok()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(s.berth(&["ps", "-q"]).ok(), &id[..12]);
    assert_eq!(
        s.berth(&["ps", "--no-trunc", "-q", "-f", "label=tier=front"])
            .ok(),
        id
    );
    assert_eq!(s.berth(&["ps", "-q", "-f", "name=nope"]).ok(), "");
    let ps = s
        .berth(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .ok()
        .to_string();
    assert!(ps.starts_with("web Up"), "{ps}");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Running}} {{.Name}}", "web"])
            .ok(),
        "true /web"
    );
    assert!(eventually(10, || s
        .berth(&["logs", "web"])
        .stdout
        .contains("started")));

    s.berth(&["pause", "web"]).ok();
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Status}}", "web"]).ok(),
        "paused"
    );
    assert!(
        s.berth(&["ps", "--format", "{{.Status}}"])
            .ok()
            .contains("(Paused)")
    );
    s.berth(&["unpause", "web"]).ok();

    s.berth(&["stop", "-t", "1", "web"]).ok();
    let status = s
        .berth(&["ps", "-a", "--format", "{{.Status}}"])
        .ok()
        .to_string();
    assert!(
        status.starts_with("Exited (137)") || status.starts_with("Exited (143)"),
        "{status}"
    );
    s.berth(&["start", "web"]).ok();
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Running}}", "web"])
            .ok(),
        "true"
    );
    s.berth(&["restart", "-t", "0", "web"]).ok();
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Running}}", "web"])
            .ok(),
        "true"
    );
    s.berth(&["rename", "web", "www"]).ok();
    let top = s.berth(&["top", "www"]).ok().to_string();
    assert!(top.contains("sleep 1000"), "{top}");
    // A memory limit on a container made without one takes a swap limit
    // with it (dockerd refuses it alone: the container's swap limit is 0).
    let alone = s.berth(&["update", "--memory", "64m", "www"]);
    assert_ne!(alone.code, 0);
    assert!(
        alone
            .stderr
            .contains("update the memoryswap at the same time"),
        "{}",
        alone.stderr
    );
    s.berth(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        "www",
    ])
    .ok();
    assert_eq!(
        s.berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "www"
        ])
        .ok(),
        "67108864 50"
    );

    s.berth(&["kill", "www"]).ok();
    assert_eq!(s.berth(&["wait", "www"]).ok(), "137");
    // A running container cannot be removed without force.
    s.berth(&["start", "www"]).ok();
    let out = s.berth(&["rm", "www"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("Error response from daemon:"),
        "{out:?}"
    );
    s.berth(&["rm", "-f", "www"]).ok();
    let out = s.berth(&["inspect", "www"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("No such object: www"), "{out:?}");
}

#[test]
fn logs_follow_tail_and_timestamps() {
    let s = stack();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 1000",
    ])
    .ok();
    assert!(eventually(10, || s
        .berth(&["logs", "talker"])
        .stderr
        .contains("oops")));
    let out = s.berth(&["logs", "--tail", "2", "talker"]);
    assert_eq!(out.stdout, "line5\n");
    assert_eq!(out.stderr, "oops\n");
    let out = s.berth(&["logs", "-t", "talker"]);
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        first.ends_with(" line1") && first.contains('T') && first.contains('Z'),
        "{first}"
    );
    s.berth(&["rm", "-f", "talker"]).ok();
}

#[test]
fn files_go_in_and_out_with_cp_diff_and_export() {
    let s = stack();
    s.berth(&["create", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("greeting.txt");
    std::fs::write(&src, "hi from the host\n").unwrap();
    s.berth(&["cp", src.to_str().unwrap(), "box:/tmp/"]).ok();
    s.berth(&["start", "box"]).ok();
    let out = s.berth(&[
        "cp",
        "box:/tmp/greeting.txt",
        host.path().join("back.txt").to_str().unwrap(),
    ]);
    out.ok();
    assert_eq!(
        std::fs::read_to_string(host.path().join("back.txt")).unwrap(),
        "hi from the host\n"
    );
    // A directory, into an existing directory.
    s.berth(&["cp", "box:/etc", host.path().to_str().unwrap()])
        .ok();
    assert!(host.path().join("etc/passwd").exists());
    let out = s.berth(&["cp", "box:/no/such/file", host.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Could not find the file /no/such/file"),
        "{out:?}"
    );

    let diff = s.berth(&["diff", "box"]).ok().to_string();
    assert!(diff.lines().any(|l| l == "A /tmp/greeting.txt"), "{diff}");
    assert!(diff.lines().any(|l| l == "C /tmp"), "{diff}");

    let tar = host.path().join("box.tar");
    s.berth(&["export", "-o", tar.to_str().unwrap(), "box"])
        .ok();
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "tmp/greeting.txt"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox")
    );
    s.berth(&["rm", "-f", "box"]).ok();
}

#[test]
fn images_tag_save_load_commit_and_remove() {
    let s = stack();
    let images = s
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .to_string();
    assert_eq!(images, "busybox:latest");
    s.berth(&["tag", "busybox", "mine:1"]).ok();
    let ids = s.berth(&["images", "-q"]).ok().to_string();
    assert_eq!(ids.lines().count(), 1, "one image, two names: {ids}");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("mine.tar");
    s.berth(&["save", "-o", saved.to_str().unwrap(), "mine:1"])
        .ok();
    let out = s.berth(&["rmi", "mine:1"]).ok().to_string();
    assert_eq!(out, "Untagged: mine:1");
    let out = s
        .berth(&["load", "-i", saved.to_str().unwrap()])
        .ok()
        .to_string();
    assert!(out.contains("Loaded image: mine:1"), "{out}");
    assert_eq!(
        s.berth(&["run", "--rm", "mine:1", "echo", "loaded"]).ok(),
        "loaded"
    );

    s.berth(&[
        "run",
        "--name",
        "builder",
        "busybox",
        "sh",
        "-c",
        "echo baked > /baked",
    ])
    .ok();
    let id = s
        .berth(&["commit", "-m", "bake", "builder", "baked:v1"])
        .ok()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        s.berth(&["run", "--rm", "baked:v1", "cat", "/baked"]).ok(),
        "baked"
    );
    let history = s
        .berth(&["history", "--format", "{{.Comment}}", "baked:v1"])
        .ok()
        .to_string();
    assert!(history.lines().any(|l| l == "bake"), "{history}");
    // Deletions in an upper layer (whiteouts, opaque directories) show
    // inside a container of the committed image.
    s.berth(&["run", "--name", "shaper", "busybox", "sh", "-c",
        "rm /etc/group && rm -rf /home && echo now-a-file > /home && rm -rf /usr && mkdir -p /usr/fresh"]).ok();
    s.berth(&["commit", "shaper", "shaped:1"]).ok();
    let tree = s
        .berth(&[
            "run",
            "--rm",
            "shaped:1",
            "sh",
            "-c",
            "ls /etc | grep -c -e group -e passwd; cat /home; ls -A /usr",
        ])
        .ok()
        .to_string();
    assert_eq!(tree, "1\nnow-a-file\nfresh", "{tree}");
    s.berth(&["rm", "shaper"]).ok();
    // A name of an image with several names is only untagged.
    assert_eq!(s.berth(&["rmi", "mine:1"]).ok(), "Untagged: mine:1");
    // An image a container uses is not removed without force.
    s.berth(&["create", "--name", "user", "baked:v1"]).ok();
    let out = s.berth(&["rmi", "baked:v1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("conflict"), "{out:?}");
    s.berth(&["rm", "builder", "user"]).ok();
    let out = s.berth(&["rmi", "baked:v1"]).ok().to_string();
    assert!(
        out.starts_with("Untagged: baked:v1\nDeleted: sha256:"),
        "{out}"
    );
    let out = s.berth(&["image", "inspect", "baked:v1"]);
    assert_eq!(out.code, 1);
}

#[test]
fn volumes_keep_data_between_containers() {
    let s = stack();
    assert_eq!(s.berth(&["volume", "create", "data"]).ok(), "data");
    s.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    assert_eq!(
        s.berth(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ])
        .ok(),
        "kept"
    );
    let out = s.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert_ne!(out.code, 0, "a read-only volume was written: {out:?}");
    assert_eq!(s.berth(&["volume", "ls", "-q"]).ok(), "data");
    s.berth(&["create", "--name", "user", "-v", "data:/data", "busybox"])
        .ok();
    let out = s.berth(&["volume", "rm", "data"]);
    assert_eq!(out.code, 1, "a volume in use was removed: {out:?}");
    s.berth(&["rm", "user"]).ok();
    s.berth(&["volume", "rm", "data"]).ok();
    // A bind mount of a host directory.
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/host", host.path().display());
    s.berth(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo bound > /host/f",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "bound\n"
    );
}

#[test]
fn restart_policies_fire() {
    let s = stack();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ])
    .ok();
    assert!(
        eventually(30, || {
            s.berth(&[
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.Running}}",
                "flaky",
            ])
            .stdout
            .trim()
                == "2 false"
        }),
        "{}",
        s.berth(&["inspect", "flaky"]).stdout
    );
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.ExitCode}}", "flaky"])
            .ok(),
        "1"
    );
    s.berth(&["rm", "flaky"]).ok();
}

#[test]
fn events_report_what_happened() {
    let s = stack();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let since = now();
    s.berth(&["run", "--rm", "--name", "ev", "busybox", "true"])
        .ok();
    let until = now() + 1;
    let out = s
        .berth(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok()
        .to_string();
    for action in ["create ev", "start ev", "die ev", "destroy ev"] {
        assert!(out.lines().any(|l| l == action), "no {action:?} in {out}");
    }
    // The default format is Docker's line.
    let out = s
        .berth(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "event=die",
        ])
        .ok()
        .to_string();
    assert!(
        out.contains(" container die ") && out.contains("exitCode=0") && out.contains("name=ev"),
        "{out}"
    );
}

#[test]
fn errors_say_whose_they_are() {
    let s = stack();
    let out = s.berth(&["rm", "nothing"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: No such container: nothing"
    );
    let out = s.berth(&["ps", "--no-such-flag"]);
    assert_eq!(out.code, 125);
    let mut c = s.berth_cmd();
    c.env("BERTH_HOST", "unix:///nonexistent/berthd.sock")
        .arg("ps");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Cannot connect to the berth daemon at unix:///nonexistent/berthd.sock. Is the daemon running?"
    );
    // Bad input changes nothing.
    let out = s.berth(&["run", "--memory", "lots", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), "");
}

#[test]
fn debug_shows_the_api_calls() {
    let s = stack();
    let out = s.berth(&["--debug", "ps"]);
    out.ok();
    assert!(out.stderr.contains("> HEAD /_ping"), "{}", out.stderr);
    assert!(out.stderr.contains("< api-version: 1.43"), "{}", out.stderr);
    assert!(
        out.stderr.contains("> GET /v1.43/containers/json"),
        "{}",
        out.stderr
    );
}

#[test]
fn contexts_point_the_cli_at_a_daemon() {
    let s = stack();
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST").args([
        "context",
        "create",
        "mine",
        "--docker",
        &format!("host={}", s.host),
    ]);
    assert!(c.status().unwrap().success());
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST").args(["context", "use", "mine"]);
    assert!(c.status().unwrap().success());
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST").args(["images", "-q"]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST")
        .args(["context", "ls", "--format", "{{.Name}}"]);
    let out = c.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "default\nmine *\n");
}

#[test]
fn containers_outlive_a_killed_engine() {
    let mut s = stack();
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("c{i}");
        s.berth(&[
            "run",
            "-d",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done",
        ])
        .ok();
        names.push(name);
    }
    s.berth(&[
        "run",
        "-d",
        "--name",
        "quitter",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 5",
    ])
    .ok();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "ender",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 4",
    ])
    .ok();
    let pids_before = s
        .berth(&["inspect", "-f", "{{.State.Pid}}", "c0"])
        .ok()
        .to_string();
    s.kill9_berthd();
    // While the engine is down: containers run, write output, and exit.
    std::thread::sleep(Duration::from_secs(4));
    s.spawn_berthd();
    let running = s.berth(&["ps", "-q", "-f", "name=c"]).ok().lines().count();
    assert_eq!(running, 20, "{}", s.berth(&["ps", "-a"]).stdout);
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Pid}}", "c0"]).ok(),
        pids_before
    );
    // Output written while berthd was down is in the logs.
    let logs = s.berth(&["logs", "c0"]).ok().to_string();
    assert!(logs.lines().count() >= 15, "{logs}");
    // The one that exited meanwhile shows its status.
    assert!(eventually(10, || s
        .berth(&["ps", "-a", "-f", "name=ender", "--format", "{{.Status}}"])
        .stdout
        .starts_with("Exited (4)")));
    // The restart policy of the one that failed meanwhile fired.
    assert!(eventually(10, || s
        .berth(&["inspect", "-f", "{{.RestartCount}}", "quitter"])
        .stdout
        .trim()
        == "1"));
    // And the engine still drives them.
    s.berth(&["stop", "-t", "0", "c0"]).ok();
    assert_eq!(
        s.berth(&["ps", "-q", "-f", "name=c"]).ok().lines().count(),
        19
    );
    let mut args = vec!["rm", "-f"];
    let all: Vec<String> = names
        .iter()
        .cloned()
        .chain(["quitter".into(), "ender".into()])
        .collect();
    args.extend(all.iter().map(String::as_str));
    s.berth(&args).ok();
}

#[test]
fn without_live_restore_a_clean_stop_stops_containers() {
    let mut s = Stack::start_with(serde_json::json!({"live-restore": false}));
    s.load_busybox();
    s.berth(&["run", "-d", "--name", "short", "busybox", "sleep", "1000"])
        .ok();
    s.stop_berthd();
    s.spawn_berthd();
    let status = s
        .berth(&["ps", "-a", "--format", "{{.Status}}"])
        .ok()
        .to_string();
    assert!(status.starts_with("Exited"), "{status}");
}

#[test]
fn images_push_to_and_pull_from_a_registry() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start();
    let name = format!("{}/team/bb:v1", reg.host);
    s.berth(&["tag", "busybox", &name]).ok();
    let out = s.berth(&["push", &name]).ok().to_string();
    assert!(out.contains("Pushed"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    // What the registry holds, asked without pulling (docker-py's
    // inspect_distribution), as dockerd answers it.
    let pushed = out
        .split("digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let (code, body) = s.api("GET", &format!("/distribution/{name}/json"), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], pushed.as_str(), "{body}");
    assert!(v["Descriptor"]["size"].as_u64().unwrap_or(0) > 0, "{body}");
    assert_eq!(
        v["Platforms"],
        serde_json::json!([{"architecture": "amd64", "os": "linux"}]),
        "{body}"
    );
    // dockerd quotes the registry's answer here.
    let missing = format!("/distribution/{}/team/none:v1/json", reg.host);
    let (code, body) = s.api("GET", &missing, None);
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("\"manifest unknown: manifest unknown\""),
        "{body}"
    );
    let (code, body) = s.api("GET", "/distribution/127.0.0.1:1/x:y/json", None);
    assert_eq!(code, 500, "{body}");
    let (code, body) = s.api("GET", "/distribution/UPPER/x/json", None);
    assert_eq!(code, 400, "{body}");
    s.berth(&["rmi", &name]).ok();
    s.berth(&["rmi", "busybox"]).ok();
    assert_eq!(s.berth(&["images", "-q"]).ok(), "");
    // Not a terminal: one line per layer state, as Docker prints to a log.
    let out = s.berth(&["pull", &name]).ok().to_string();
    assert!(out.contains("Pull complete"), "{out}");
    // The repository's path on its registry, as dockerd names it.
    assert!(out.starts_with("v1: Pulling from team/bb\n"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert!(out.ends_with(&name), "{out}");
    let digests = s
        .berth(&["images", "--digests", "--format", "{{.Digest}}"])
        .ok()
        .to_string();
    assert!(digests.starts_with("sha256:"), "{digests}");
    assert_eq!(
        s.berth(&["run", "--rm", &name, "echo", "pulled"]).ok(),
        "pulled"
    );
    // Pulled again: nothing new, no layer shown, as dockerd says it.
    let out = s.berth(&["pull", &name]).ok().to_string();
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}")),
        "{out}"
    );
    assert!(
        !out.contains("exists") && !out.contains("fs layer"),
        "{out}"
    );
    // By digest: the line is named by the whole reference, as dockerd
    // names it.
    let repo = name.rsplit_once(':').expect("a tag").0;
    let by_digest = format!("{repo}@{}", digests.lines().next().unwrap_or(""));
    let out = s.berth(&["pull", &by_digest]).ok().to_string();
    assert!(
        out.starts_with(&format!("{by_digest}: Pulling from team/bb\n")),
        "{out}"
    );
    // `run` of an image not here pulls it first, its progress on stderr.
    s.berth(&["rmi", &name]).ok();
    let out = s.berth(&["run", "--rm", &name, "echo", "again"]);
    assert_eq!(out.ok(), "again");
    assert!(
        out.stderr
            .contains(&format!("Unable to find image '{name}' locally")),
        "{out:?}"
    );
    // What is not there, in dockerd's words, through both CLIs.
    let none = format!("{}/team/none", reg.host);
    for cli in ["berth", "docker"] {
        let out = match cli {
            "berth" => s.berth(&["pull", &format!("{none}:v1")]),
            _ => s.docker(&["pull", &format!("{none}:v1")]),
        };
        assert_eq!(out.code, 1, "{cli}: {out:?}");
        assert_eq!(
            out.stderr.trim_end(),
            format!(
                "Error response from daemon: manifest for {none}:v1 not found: \
                 manifest unknown: manifest unknown"
            ),
            "{cli}"
        );
    }
    let out = s.docker(&["pull", "-a", &none]);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "Error response from daemon: repository {none} not found: \
             name unknown: repository name not known to registry"
        )
    );
    // Every tag of the repository, in the registry's order, as dockerd
    // pulls a name without a tag (`pull --all-tags`, docker-py's
    // all_tags=True); the last line is about the repository.
    let repo = format!("{}/team/bb", reg.host);
    s.berth(&["tag", &name, &format!("{repo}:v2")]).ok();
    s.berth(&["push", &format!("{repo}:v2")]).ok();
    s.berth(&["rmi", &format!("{repo}:v2")]).ok();
    for cli in ["berth", "docker"] {
        let out = match cli {
            "berth" => s.berth(&["pull", "-a", &repo]),
            _ => s.docker(&["pull", "-a", &repo]),
        };
        let out = out.ok().to_string();
        assert!(out.contains("v1: Pulling from team/bb\n"), "{cli}: {out}");
        assert!(out.contains("v2: Pulling from team/bb\n"), "{cli}: {out}");
        assert!(
            out.ends_with(&format!("for {repo}\n{repo}")),
            "{cli}: {out}"
        );
        let listed = s
            .berth(&["images", &repo, "--format", "{{.Tag}}"])
            .ok()
            .to_string();
        let mut tags: Vec<&str> = listed.lines().collect();
        tags.sort_unstable();
        assert_eq!(tags, ["v1", "v2"], "{cli}");
        s.berth(&["rmi", &format!("{repo}:v2")]).ok();
    }
    let out = s.berth(&["pull", "-a", &name]);
    assert!(
        out.stderr.contains("tag can't be used with --all-tags/-a"),
        "{out:?}"
    );
}

#[test]
fn login_checks_credentials_and_pull_uses_them() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start_with_user("alice", "s3cret");
    let name = format!("{}/private/bb:1", reg.host);
    s.berth(&["tag", "busybox", &name]).ok();
    let out = s.berth(&["push", &name]);
    assert_eq!(out.code, 1, "an anonymous push was accepted: {out:?}");
    let out = s.berth_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.host],
        b"wrong\n",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Error response from daemon:"),
        "{out:?}"
    );
    let out = s.berth_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.host],
        b"s3cret\n",
    );
    assert_eq!(out.ok(), "Login Succeeded");
    // Docker's config.json format.
    let cfg = std::fs::read_to_string(s.dir.path().join("berth-cli/config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["auths"][&reg.host]["auth"], "YWxpY2U6czNjcmV0");
    s.berth(&["push", &name]).ok();
    s.berth(&["rmi", &name]).ok();
    s.berth(&["pull", &name]).ok();
    assert_eq!(
        s.berth(&["logout", &reg.host]).ok(),
        format!("Removing login credentials for {}", reg.host)
    );
    s.berth(&["rmi", &name]).ok();
    let out = s.berth(&["pull", &name]);
    assert_eq!(out.code, 1, "an anonymous pull was accepted: {out:?}");

    // The real docker CLI: wrong password refused, right one stored and used.
    let out = s.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.host],
        b"nope\n",
    );
    assert_ne!(out.code, 0, "{out:?}");
    let out = s.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.host],
        b"s3cret\n",
    );
    assert!(out.ok().contains("Login Succeeded"));
    s.docker(&["pull", &name]).ok();
    s.docker(&["rmi", &name]).ok();
}

/// An insecure registry that speaks TLS with a certificate nobody trusts
/// (self-signed here; loopback registries are insecure) is reached over
/// TLS without the certificate checked, as dockerd reaches it: login, push
/// and pull, from both CLIs. berth spoke plain HTTP to it and failed.
#[test]
fn an_insecure_registry_speaking_tls_is_reached_without_its_certificate_checked() {
    let s = stack();
    let reg = integration_tests::registry::Registry::start_tls_with_user("bob", "pw");
    let name = format!("{}/tls/bb:1", reg.host);
    let out = s.berth_stdin(
        &["login", "-u", "bob", "--password-stdin", &reg.host],
        b"pw\n",
    );
    assert_eq!(out.ok(), "Login Succeeded");
    s.berth(&["tag", "busybox", &name]).ok();
    s.berth(&["push", &name]).ok();
    s.berth(&["rmi", &name]).ok();
    let out = s.berth(&["pull", &name]).ok().to_string();
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        s.berth(&["run", "--rm", &name, "echo", "over-tls"]).ok(),
        "over-tls"
    );
    s.berth(&["rmi", &name]).ok();

    let out = s.docker_stdin(
        &["login", "-u", "bob", "--password-stdin", &reg.host],
        b"pw\n",
    );
    assert!(out.ok().contains("Login Succeeded"));
    s.docker(&["pull", &name]).ok();
    s.docker(&["rmi", &name]).ok();
}

#[test]
fn lifecycled_stops_on_sigterm_under_berthd_and_comes_back_to_it() {
    let mut s = stack();
    let id = s
        .berth(&["run", "-d", "--name", "keep", "busybox", "sleep", "600"])
        .ok()
        .to_string();
    // berthd holds an event stream open: lifecycled must not wait for it.
    let took = s.lc_mut().stop();
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(5)),
        "lifecycled took {took:?} to stop: {}",
        s.lc().log()
    );
    s.lc_mut().spawn();
    assert!(
        eventually(10, || s.berth(&["ps", "-q", "--no-trunc"]).stdout.trim()
            == id),
        "{:?}",
        s.berth(&["ps", "-a"])
    );
    // Events flow again: a stop is seen as a die.
    s.berth(&["stop", "-t", "0", "keep"]).ok();
    assert!(eventually(10, || s
        .berth(&["inspect", "-f", "{{.State.Status}}", "keep"])
        .stdout
        .trim()
        == "exited"));
}

#[test]
fn registry_mirrors_serve_docker_hub_names() {
    // A local registry as a pull-through mirror of Docker Hub, which this
    // machine cannot reach: a pull of `busybox` can only come from it.
    let reg = integration_tests::registry::Registry::start();
    let seed = stack();
    let on_mirror = format!("{}/library/busybox:latest", reg.host);
    seed.berth(&["tag", "busybox", &on_mirror]).ok();
    seed.berth(&["push", &on_mirror]).ok();

    let s = Stack::start_with(serde_json::json!({
        "registry-mirrors": [format!("http://{}", reg.host)]
    }));
    let out = s.berth(&["pull", "busybox"]).ok().to_string();
    assert!(
        out.starts_with("latest: Pulling from library/busybox\n"),
        "{out}"
    );
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    assert_eq!(
        s.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok(),
        "busybox:latest"
    );
    assert_eq!(
        s.berth(&["run", "--rm", "busybox", "echo", "mirrored"])
            .ok(),
        "mirrored"
    );
    // Mirrors are for Docker Hub names only: another registry is asked
    // itself (a closed loopback port here), never the mirror.
    let out = s.berth(&["pull", "127.0.0.1:1/library/busybox:latest"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Error response from daemon"), "{out:?}");
}

#[test]
fn exec_runs_commands_in_a_running_container() {
    let mut s = stack();
    s.berth(&[
        "run", "-d", "--name", "box", "-e", "A=1", "busybox", "sleep", "600",
    ])
    .ok();
    let out = s.berth(&["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert_eq!(
        s.berth(&[
            "exec",
            "-e",
            "B=2",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "box",
            "sh",
            "-c",
            "echo $A $B $(pwd) $(id -u)"
        ])
        .ok(),
        "1 2 /tmp 65534"
    );
    assert_eq!(
        s.berth_stdin(&["exec", "-i", "box", "cat"], b"through stdin\n")
            .ok(),
        "through stdin"
    );
    // Detached: runs on after the command returns.
    s.berth(&["exec", "-d", "box", "sh", "-c", "sleep 0.2; touch /tmp/bg"])
        .ok();
    assert!(eventually(10, || s
        .berth(&["exec", "box", "test", "-f", "/tmp/bg"])
        .code
        == 0));
    // Docker's exit codes for what cannot run: dockerd 20.10 ends every
    // exec the runtime cannot start with 126, a missing command included.
    let out = s.berth(&["exec", "box", "nosuchcommand"]);
    assert_eq!(out.code, 126, "{out:?}");
    // The runtime's words inside containerd's and dockerd's, as with runc.
    assert!(
        out.stdout.contains(
            "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"nosuchcommand\": executable file not found in $PATH: unknown"
        ),
        "{out:?}"
    );
    let out = s.berth(&["exec", "-u", "nosuchuser", "box", "true"]);
    assert_eq!(out.code, 126, "{out:?}");
    // A terminal, its size from ours.
    let out = s.command(
        "script",
        &[
            "-qc",
            &format!(
                "stty cols 91 rows 21; {} exec -it box sh -c 'tty; stty size'",
                integration_tests::bin("berth").display()
            ),
            "/dev/null",
        ],
    );
    assert!(out.stdout.contains("/dev/pts/"), "{out:?}");
    assert!(out.stdout.contains("21 91"), "{out:?}");
    // An exec running when berthd dies is found again, with its exit code.
    let socket = s.host.trim_start_matches("unix://").to_string();
    fn curl_on(s: &Stack, socket: &str, args: &[&str]) -> String {
        let mut a = vec!["-s", "--unix-socket", socket];
        a.extend_from_slice(args);
        s.command("curl", &a).ok().to_string()
    }
    let created = curl_on(
        &s,
        &socket,
        &[
            "-XPOST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Cmd": ["sh", "-c", "sleep 1; exit 5"]}"#,
            "http://berth/v1.43/containers/box/exec",
        ],
    );
    let exec_id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    curl_on(
        &s,
        &socket,
        &[
            "-XPOST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Detach": true}"#,
            &format!("http://berth/v1.43/exec/{exec_id}/start"),
        ],
    );
    s.kill9_berthd();
    s.spawn_berthd();
    let inspect = || {
        serde_json::from_str::<serde_json::Value>(&curl_on(
            &s,
            &socket,
            &[&format!("http://berth/v1.43/exec/{exec_id}/json")],
        ))
        .unwrap_or_default()
    };
    assert!(
        eventually(10, || inspect()["ExitCode"] == 5
            && inspect()["Running"] == false),
        "{}",
        inspect()
    );
    assert_eq!(s.berth(&["exec", "box", "echo", "again"]).ok(), "again");
    // Not running: refused.
    s.berth(&["stop", "-t", "0", "box"]).ok();
    let out = s.berth(&["exec", "box", "true"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is not running"), "{out:?}");
}

#[test]
fn stats_show_cpu_memory_and_pids() {
    let s = stack();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 600 & while true; do :; done",
    ])
    .ok();
    s.berth(&["create", "--name", "stopped", "busybox"]).ok();
    let fmt = "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}";
    let out = s
        .berth(&["stats", "--no-stream", "--format", fmt, "busy"])
        .ok()
        .to_string();
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[0], "busy", "{out}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().expect("a CPU %");
    assert!(cpu > 20.0, "a busy loop at {cpu}%: {out}");
    assert_eq!(f[4], "64MiB", "{out}");
    assert_eq!(f[5], "2", "{out}");
    // Docker's table, every running container by default, -a adds the rest.
    let out = s.berth(&["stats", "--no-stream"]).ok().to_string();
    assert!(out.starts_with("CONTAINER ID   NAME"), "{out}");
    assert!(
        out.contains("BLOCK I/O") && !out.contains("stopped"),
        "{out}"
    );
    let out = s.berth(&["stats", "--no-stream", "-a"]).ok().to_string();
    assert!(out.contains("stopped"), "{out}");
    // The real docker CLI renders the same figures.
    if integration_tests::stack::docker_cli().is_some() {
        let out = s
            .docker(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.MemUsage}} {{.PIDs}}",
                "busy",
            ])
            .ok()
            .to_string();
        assert!(
            out.starts_with("busy ") && out.contains("/ 64MiB") && out.ends_with(" 2"),
            "{out}"
        );
    }
    let out = s.berth(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("No such container: nosuch"), "{out:?}");
    s.berth(&["rm", "-f", "busy"]).ok();
}

#[test]
fn health_checks_report_status_and_events() {
    let s = stack();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let status = || {
        s.berth(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .stdout
            .trim()
            .to_string()
    };
    assert!(eventually(10, || status() == "unhealthy"), "{}", status());
    let log = s
        .berth(&["inspect", "-f", "{{json .State.Health}}", "hc"])
        .ok()
        .to_string();
    let h: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert!(h["FailingStreak"].as_i64().unwrap_or(0) >= 2, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 1, "{h}");
    assert!(
        s.berth(&[
            "ps",
            "--filter",
            "health=unhealthy",
            "--format",
            "{{.Names}} {{.Status}}"
        ])
        .ok()
        .ends_with("(unhealthy)"),
        "{:?}",
        s.berth(&["ps"])
    );
    s.berth(&["exec", "hc", "touch", "/tmp/ok"]).ok();
    assert!(eventually(10, || status() == "healthy"), "{}", status());
    assert!(
        s.berth(&["ps", "--format", "{{.Status}}"])
            .ok()
            .ends_with("(healthy)")
    );
    // The transitions are events.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = s
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Action}}",
        ])
        .ok()
        .to_string();
    assert!(
        ev.contains("health_status: unhealthy") && ev.contains("health_status: healthy"),
        "{ev}"
    );
    s.berth(&["rm", "-f", "hc"]).ok();
}

/// A checked container says "starting" as soon as its start returns (a
/// client that waits for health inspects right after), and the status it
/// reached is in the record an engine killed with -9 comes back to, even
/// though passing probes after the first are not written one by one.
#[test]
fn health_is_starting_at_once_and_survives_an_engine_kill() {
    let mut s = stack();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "hck",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let status = |s: &Stack| {
        s.berth(&["inspect", "-f", "{{.State.Health.Status}}", "hck"])
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(status(&s), "starting");
    assert!(eventually(10, || status(&s) == "healthy"), "{}", status(&s));
    // A few passing probes more, then the engine dies.
    std::thread::sleep(Duration::from_millis(2500));
    s.kill9_berthd();
    s.spawn_berthd();
    assert_eq!(status(&s), "healthy");
    let h: serde_json::Value = serde_json::from_str(
        s.berth(&["inspect", "-f", "{{json .State.Health}}", "hck"])
            .ok(),
    )
    .unwrap();
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert!(!h["Log"].as_array().is_none_or(|l| l.is_empty()), "{h}");
    // Probing goes on after the restart.
    let probes = || {
        serde_json::from_str::<serde_json::Value>(
            &s.berth(&["inspect", "-f", "{{json .State.Health.Log}}", "hck"])
                .stdout,
        )
        .ok()
        .and_then(|l| l.as_array().and_then(|a| a.last().cloned()))
        .map(|p| p["Start"].to_string())
    };
    let last = probes();
    assert!(eventually(10, || probes() != last), "{last:?}");
    s.berth(&["rm", "-f", "hck"]).ok();
}

/// The container's user as runc (and so dockerd) reads it from the
/// image's /etc/passwd and /etc/group: the default user is passwd's uid 0
/// with the groups that list it, a user without a group gets the groups
/// that list it, an explicit group gets none, --group-add comes on top.
#[test]
fn supplementary_groups_follow_the_image_files_as_runc_reads_them() {
    let s = stack();
    s.berth(&[
        "run",
        "--name",
        "grp",
        "busybox",
        "sh",
        "-c",
        "echo wheel:x:10:root,user >> /etc/group",
    ])
    .ok();
    s.berth(&["commit", "grp", "grouped"]).ok();
    let ids = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "grouped",
            "sh",
            "-c",
            "echo $(id -u) $(id -g) / $(grep ^Groups: /proc/self/status | cut -f2)",
        ]);
        s.berth(&a).ok().trim().to_string()
    };
    // The primary gid is always among them too, as dockerd has it since
    // CVE-2022-36109.
    assert_eq!(ids(&[]), "0 0 / 0 10");
    assert_eq!(ids(&["-u", "user"]), "1000 1000 / 10 1000");
    assert_eq!(ids(&["-u", "1000"]), "1000 1000 / 10 1000");
    assert_eq!(ids(&["-u", "user:users"]), "1000 100 / 100");
    assert_eq!(
        ids(&["-u", "user:users", "--group-add", "wheel"]),
        "1000 100 / 10 100"
    );
    assert_eq!(ids(&["-u", "4242", "--group-add", "77"]), "4242 0 / 0 77");
    s.berth(&["rm", "grp"]).ok();
    s.berth(&["rmi", "grouped"]).ok();
}

/// Files of a container that is not running are read from its snapshot,
/// mounted for the call: many copies at once, in and out, all go through
/// and see the same files (two writable mounts of one snapshot at once
/// broke each other: ENOENT, or an empty archive).
#[test]
fn concurrent_copies_of_a_stopped_container_all_go_through() {
    let s = stack();
    s.berth(&["create", "--name", "cc", "busybox"]).ok();
    let src = s.dir.path().join("in.txt");
    std::fs::write(&src, "copied in\n").unwrap();
    let src = src.to_str().unwrap();
    let s = &s;
    let outs: Vec<String> = std::thread::scope(|t| {
        let readers: Vec<_> = (0..10)
            .map(|_| t.spawn(|| s.berth(&["cp", "cc:/etc/passwd", "-"]).ok().to_string()))
            .collect();
        let writers: Vec<_> = (0..3)
            .map(|i| {
                let dest = format!("cc:/in-{i}.txt");
                t.spawn(move || s.berth(&["cp", src, &dest]).ok().to_string())
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.contains("root:x:0:0:"), "{out}");
    }
    for i in 0..3 {
        let out = s.berth(&["cp", &format!("cc:/in-{i}.txt"), "-"]);
        assert!(out.ok().contains("copied in"), "{out:?}");
    }
    // An export nobody reads holds its mount (32 MiB: more than the
    // stream windows and pipes between hold); a copy meanwhile uses the
    // same mount instead of waiting for it.
    let big = s.dir.path().join("big");
    // Not sparse: a hole costs a tar nothing.
    std::fs::write(&big, vec![b'x'; 32 << 20]).unwrap();
    s.berth(&["cp", big.to_str().unwrap(), "cc:/big"]).ok();
    let mut export = s.berth_cmd();
    export
        .args(["export", "cc"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut export = export.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|t| {
        t.spawn(|| {
            let _ = tx.send(s.berth(&["cp", "cc:/etc/passwd", "-"]));
        });
        let copied = rx.recv_timeout(Duration::from_secs(30));
        let stalled = export.try_wait().unwrap().is_none();
        // Reading the export lets it (and a waiting copy) finish.
        let mut tar = Vec::new();
        std::io::Read::read_to_end(export.stdout.as_mut().unwrap(), &mut tar).unwrap();
        assert!(export.wait().unwrap().success());
        assert!(stalled, "the export ended before the copy was checked");
        let copied = copied.expect("a copy waited for an export nobody read");
        assert!(copied.ok().contains("root:x:0:0:"), "{copied:?}");
        assert!(tar.len() > 32 << 20, "{}", tar.len());
    });
    s.berth(&["rm", "cc"]).ok();
}

#[test]
fn logs_follow_keeps_every_line_across_rotations() {
    let s = stack();
    // ~100 lines a file, rotating every 50 ms or so: several rotations
    // between two reads of the follower, and files deleted behind it. Five
    // files: a file lives ~250 ms, so that a follower starved of CPU for a
    // moment by the whole suite running beside it still gets to open it
    // (with three, ~150 ms, it lost lines under full load).
    s.berth(&[
        "run", "-d", "--name", "rot", "--log-opt", "max-size=10k", "--log-opt", "max-file=5",
        "busybox", "sh", "-c",
        "sleep 0.3; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; [ $((i % 100)) = 0 ] && sleep 0.05; done",
    ])
    .ok();
    let out = s.berth(&["logs", "-f", "rot"]).ok().to_string();
    let numbers: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split('-').nth(1)?.parse().ok())
        .collect();
    let want: Vec<u32> = (1..=3000).collect();
    assert!(
        numbers == want,
        "{} lines, first gap after {:?}",
        numbers.len(),
        numbers.windows(2).find(|w| w[1] != w[0] + 1)
    );
    s.berth(&["rm", "rot"]).ok();
}

/// The local log driver as dockerd's: five files of 20 MiB unless told,
/// the rotated ones gzipped, read back by `logs` (and followed across
/// rotations), its file never shown; its options refused in dockerd's
/// words. json-file's `compress` gzips too. Through berth's CLI and
/// Docker's.
#[test]
fn the_local_log_driver_keeps_gzipped_files() {
    let s = stack();
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        // ~29 entries a file (~105 bytes each), a file every ~0.5 s: a
        // follower keeps up with one rotation of slack (all a gzipped log
        // leaves it).
        let name = format!("loc{cli}");
        let id = run(&[
            "run", "-d", "--name", &name, "--log-driver", "local", "--log-opt", "max-size=3k",
            "busybox", "sh", "-c",
            "sleep 0.3; i=0; while [ $i -lt 250 ]; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; [ $((i % 3)) = 0 ] && sleep 0.05; done",
        ])
        .ok()
        .to_string();
        let numbers = |out: &str| -> Vec<u32> {
            out.lines()
                .filter_map(|l| l.split('-').nth(1)?.parse().ok())
                .collect()
        };
        let followed = numbers(run(&["logs", "-f", &name]).ok());
        let want: Vec<u32> = (1..=250).collect();
        assert!(
            followed == want,
            "{cli}: {} lines, first gap after {:?}",
            followed.len(),
            followed.windows(2).find(|w| w[1] != w[0] + 1)
        );
        // Five files kept: the live one and four gzipped (the last gzip
        // runs beside the container's end).
        let dir = s.data_root.join("containers").join(&id).join("local-logs");
        let listing = || {
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .expect("the local driver's directory")
                .map(|e| {
                    e.expect("an entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            files.sort();
            files
        };
        let want = [
            "container.log",
            "container.log.1.gz",
            "container.log.2.gz",
            "container.log.3.gz",
            "container.log.4.gz",
        ];
        assert!(
            eventually(10, || listing() == want),
            "{cli}: {:?}",
            listing()
        );
        // What is kept reads back whole, in order, to the last line.
        let kept = numbers(run(&["logs", &name]).ok());
        assert_eq!(kept.last(), Some(&250), "{cli}");
        assert!(
            kept.len() > 4 * 25 && kept[0] > 1,
            "{cli}: {} lines",
            kept.len()
        );
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{cli}");
        assert_eq!(run(&["logs", "--tail", "2", &name]).ok().lines().count(), 2);
        assert_eq!(
            run(&[
                "inspect",
                "-f",
                "{{.HostConfig.LogConfig.Type}}|{{.LogPath}}",
                &name
            ])
            .ok(),
            "local|",
            "{cli}"
        );
        run(&["rm", &name]).ok();

        for (opts, why) in [
            (
                &["--log-driver", "local", "--log-opt", "tag=x"][..],
                "unknown log opt 'tag' for log driver local",
            ),
            (
                &["--log-driver", "local", "--log-opt", "max-file=1"],
                "compression cannot be enabled when max file count is 1",
            ),
            (
                &["--log-opt", "compress=true"],
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
        ] {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(opts);
            args.extend(["busybox", "true"]);
            let out = run(&args);
            assert_eq!(out.code, 125, "{cli} {opts:?}");
            assert!(out.stderr.contains(why), "{cli} {opts:?}: {}", out.stderr);
        }
    }
    // json-file's compress: its rotated files gzipped beside its name.
    s.berth(&[
        "run",
        "-d",
        "--name",
        "jz",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line-$i; done",
    ])
    .ok();
    s.berth(&["wait", "jz"]).ok();
    let id = s
        .berth(&["inspect", "-f", "{{.Id}}", "jz"])
        .ok()
        .to_string();
    let dir = s.data_root.join("containers").join(&id);
    let gz = |n: u32| dir.join(format!("{id}-json.log.{n}.gz"));
    assert!(eventually(10, || gz(1).exists()
        && gz(2).exists()
        && !gz(3).exists()));
    let kept = s.berth(&["logs", "jz"]).ok().to_string();
    assert!(kept.ends_with("line-200"), "{kept}");
    s.berth(&["rm", "jz"]).ok();
}

/// A container's log options are checked with daemon.json's filled in, as
/// dockerd checks them: `compress=true` where daemon.json sets the size
/// and count is taken, and gzips.
#[test]
fn log_options_are_checked_with_daemon_json_s() {
    let s = Stack::start_with(serde_json::json!({"log-opts": {"max-size": "1k", "max-file": "3"}}));
    s.load_busybox();
    s.berth(&[
        "run",
        "--name",
        "dz",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line-$i; done",
    ])
    .ok();
    let id = s
        .berth(&["inspect", "-f", "{{.Id}}", "dz"])
        .ok()
        .to_string();
    let gz = s
        .data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log.1.gz"));
    assert!(eventually(10, || gz.exists()), "{}", gz.display());
    assert!(s.berth(&["logs", "dz"]).ok().ends_with("line-100"));
    s.berth(&["rm", "dz"]).ok();
}

/// Through the whole stack, the cgroup2 device filter holds a container's
/// device rules on its own: with the v1 devices controller of a hybrid
/// host opened wide for the container (by the test, as root), a device
/// outside Docker's default rules still cannot be opened, though the
/// container may mknod it (CAP_MKNOD). A privileged container, whose rules
/// allow every device, reaches the same node and gets the driver's answer
/// (240:0 is kept for local use; no driver takes it: ENXIO), so the EPERM
/// above is the filter's.
#[test]
fn device_rules_hold_on_cgroup2_through_the_whole_stack() {
    let v2_root = testsupport::cgroup2_root()
        .expect("a cgroup2 hierarchy (pure v2, or the unified part of a hybrid host)");
    let s = stack();
    let probe = "mknod /tmp/m c 240 0 && head -c1 /tmp/m; echo status=$?";
    let id = s
        .berth(&["run", "-d", "busybox", "sleep", "300"])
        .ok()
        .to_string();
    assert!(
        v2_root.join(&s.cgroup_parent).join(&id).is_dir(),
        "the container has a cgroup2 cgroup"
    );
    let v1 = std::path::Path::new("/sys/fs/cgroup/devices")
        .join(&s.cgroup_parent)
        .join(&id);
    if v1.is_dir() {
        std::fs::write(v1.join("devices.allow"), "a *:* rwm").unwrap();
        assert_eq!(
            std::fs::read_to_string(v1.join("devices.list"))
                .unwrap()
                .trim(),
            "a *:* rwm"
        );
    }
    let out = s.berth(&["exec", &id, "sh", "-c", probe]);
    assert!(
        out.stderr.contains("Operation not permitted") && out.stdout.contains("status=1"),
        "{out:?}"
    );
    // Docker's default devices still open.
    assert_eq!(
        s.berth(&["exec", &id, "sh", "-c", "head -c0 /dev/null && echo ok"])
            .ok(),
        "ok"
    );
    let out = s.berth(&["run", "--rm", "--privileged", "busybox", "sh", "-c", probe]);
    assert!(
        out.stderr.contains("No such device or address") && out.stdout.contains("status=1"),
        "{out:?}"
    );
    s.berth(&["rm", "-f", &id]).ok();
}

/// A shareable container's /dev/shm is a mount on the host while it runs;
/// one that ends while the engine is down has it unmounted by the engine
/// that comes back (nothing left mounted), and a new start gets a new one.
#[test]
fn a_shareable_ipc_mount_is_released_after_an_exit_the_engine_missed() {
    let mut s = stack();
    let id = s
        .berth(&[
            "run",
            "-d",
            "--ipc",
            "shareable",
            "busybox",
            "sh",
            "-c",
            "echo kept > /dev/shm/x; sleep 2",
        ])
        .ok()
        .to_string();
    let shm = format!("{id}/mounts/shm");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .contains(&shm)
    };
    assert!(mounted(), "no host mount for the shareable /dev/shm");
    s.kill9_berthd();
    // It exits while the engine is down.
    std::thread::sleep(Duration::from_secs(3));
    s.spawn_berthd();
    assert!(
        eventually(10, || !mounted()),
        "the /dev/shm of a container that ended stayed mounted"
    );
    s.berth(&["start", &id]).ok();
    assert!(mounted(), "a new start did not mount its /dev/shm");
    s.berth(&["rm", "-f", &id]).ok();
    assert!(!mounted(), "rm -f left its /dev/shm mounted");
}

/// A syslog listener's messages: each datagram, or each line of a stream.
fn syslog_messages(udp: &std::net::UdpSocket, n: usize) -> Vec<String> {
    let mut buf = [0u8; 2048];
    (0..n)
        .map(|_| {
            let got = udp.recv(&mut buf).expect("a syslog message in time");
            String::from_utf8_lossy(&buf[..got]).into_owned()
        })
        .collect()
}

/// The syslog driver as dockerd's: a message per line (empty ones left
/// out) in the format and facility asked, over UDP, a unix datagram socket
/// and TCP; `logs` reads the cache kept beside unless `cache-disabled`;
/// an address that cannot be reached fails the start; options refused in
/// dockerd's words; through berth's CLI and Docker's.
#[test]
fn the_syslog_driver_sends_each_line_and_keeps_a_cache() {
    let s = stack();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let host = host.trim();
    let udp = udp_listener();
    let to_udp = format!("syslog-address=udp://{}", udp.local_addr().expect("addr"));
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let name = format!("sl{cli}");
        run(&[
            "run",
            "--name",
            &name,
            "--log-driver",
            "syslog",
            "--log-opt",
            &to_udp,
            "--log-opt",
            "syslog-format=rfc5424",
            "--log-opt",
            "syslog-facility=local3",
            "--log-opt",
            "tag={{.Name}}",
            "busybox",
            "sh",
            "-c",
            "echo out; echo; echo err >&2",
        ])
        .ok();
        // stdout and stderr are read apart: either may come first.
        let mut got = syslog_messages(&udp, 2);
        got.sort();
        for (m, (pri, text)) in got.iter().zip([("<155>1", "err"), ("<158>1", "out")]) {
            let f: Vec<&str> = m.split(' ').collect();
            assert_eq!(f.len(), 8, "{cli}: {m:?}");
            assert_eq!(f[0], pri, "{cli}: {m:?}");
            // RFC 3339 to the second: 2026-12-07T11:45:03Z (or +hh:mm).
            assert_eq!(f[1].as_bytes().get(10), Some(&b'T'), "{cli}: {m:?}");
            assert!(!f[1].contains('.'), "{cli}: {m:?}");
            assert_eq!([f[2], f[3], f[5], f[6]], [host, &name, &name, "-"], "{cli}");
            assert!(f[4].parse::<u32>().is_ok(), "{cli}: {m:?}");
            assert_eq!(f[7], format!("{text}\n"), "{cli}");
        }
        let logs = run(&["logs", &name]);
        assert_eq!(
            (logs.stdout.trim(), logs.stderr.trim()),
            ("out", "err"),
            "{cli}"
        );
        let path = run(&["inspect", "-f", "{{.LogPath}}", &name]);
        assert_eq!(path.ok(), "", "{cli}");
        run(&["rm", &name]).ok();
    }

    // Each run of a restarting container sends its own lines, once.
    let id = s
        .berth(&[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "--log-driver",
            "syslog",
            "--log-opt",
            &to_udp,
            "busybox",
            "sh",
            "-c",
            "echo run-$(cat /proc/uptime); exit 1",
        ])
        .ok()
        .to_string();
    let runs = syslog_messages(&udp, 3);
    let mut distinct = runs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{runs:?}");
    assert!(eventually(20, || {
        s.berth(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", &id])
            .stdout
            .trim()
            == "exited 2"
    }));
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    assert!(udp.recv(&mut buf).is_err(), "a line sent twice");
    udp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.berth(&["rm", &id]).ok();

    // A unix datagram socket, dockerd's default (Unix) format, the tag
    // the short id; with the cache off `logs` has nothing to read.
    let sock = s.dir.path().join("syslog.sock");
    let unix = std::os::unix::net::UnixDatagram::bind(&sock).expect("unixgram");
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let id = s
        .berth(&[
            "run",
            "-d",
            "--log-driver",
            "syslog",
            "--log-opt",
            &format!("syslog-address=unixgram://{}", sock.display()),
            "--log-opt",
            "cache-disabled=true",
            "busybox",
            "echo",
            "hello",
        ])
        .ok()
        .to_string();
    let mut buf = [0u8; 512];
    let n = unix.recv(&mut buf).expect("a message");
    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(m.starts_with("<30>"), "{m:?}");
    assert!(m.contains(&format!(" {}[", &id[..12])), "{m:?}");
    assert!(m.ends_with("]: hello\n"), "{m:?}");
    s.berth(&["wait", &id]).ok();
    let out = s.berth(&["logs", &id]);
    assert!(
        out.stderr
            .contains("configured logging driver does not support reading"),
        "{out:?}"
    );
    s.berth(&["rm", &id]).ok();

    // TCP, rfc3164: the host's name before the tag.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let to_tcp = format!("syslog-address=tcp://{}", tcp.local_addr().expect("addr"));
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let (conn, _) = tcp.accept().expect("a connection");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        std::io::BufReader::new(conn)
            .lines()
            .take(2)
            .map(|l| l.expect("a line"))
            .collect::<Vec<String>>()
    });
    s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &to_tcp,
        "--log-opt",
        "syslog-format=rfc3164",
        "--log-opt",
        "tag=t",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b",
    ])
    .ok();
    let lines = reader.join().expect("the reader");
    for (l, text) in lines.iter().zip(["a", "b"]) {
        assert!(l.starts_with("<30>"), "{l:?}");
        assert!(l.contains(&format!(" {host} t[")), "{l:?}");
        assert!(l.ends_with(&format!("]: {text}")), "{l:?}");
    }

    // Where nothing listens the start fails; bad options are refused.
    let out = s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-address=tcp://127.0.0.1:1",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "failed to initialize logging driver: dial tcp 127.0.0.1:1: connect: connection refused"
        ),
        "{out:?}"
    );
    for (opt, why) in [
        ("syslog-facility=bogus", "invalid syslog facility"),
        ("syslog-format=json", "Invalid syslog format"),
        ("syslog-address=http://x", "unsupported scheme: 'http'"),
        ("bogus=1", "unknown log opt 'bogus' for syslog log driver"),
    ] {
        let out = s.berth(&[
            "create",
            "--log-driver",
            "syslog",
            "--log-opt",
            opt,
            "busybox",
            "true",
        ]);
        assert_ne!(out.code, 0, "{opt}");
        assert!(out.stderr.contains(why), "{opt}: {out:?}");
    }
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), "", "nothing made");
}

/// A daemon.json naming the syslog driver and its address: berthd starts
/// and every container's lines go there.
#[test]
fn daemon_json_can_name_the_syslog_driver() {
    let udp = udp_listener();
    let address = format!("udp://{}", udp.local_addr().expect("addr"));
    let s = Stack::start_with(serde_json::json!({
        "log-driver": "syslog",
        "log-opts": {"syslog-address": address, "tag": "{{.Name}}"},
    }));
    s.load_busybox();
    s.berth(&["run", "--name", "dj", "busybox", "echo", "from-daemon-json"])
        .ok();
    let m = syslog_messages(&udp, 1).remove(0);
    assert!(m.contains(" dj["), "{m:?}");
    assert!(m.ends_with("]: from-daemon-json\n"), "{m:?}");
    assert_eq!(s.berth(&["logs", "dj"]).ok(), "from-daemon-json");
    let driver = s.berth(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "dj"]);
    assert_eq!(driver.ok(), "syslog");
    s.berth(&["rm", "dj"]).ok();
}

/// What a syslog container writes while berthd is down is sent when it is
/// back, from where it was: every line arrives, in order (a line sent in
/// the last second before a kill may arrive twice, never none).
#[test]
fn syslog_lines_written_while_berthd_is_down_are_sent_when_it_is_back() {
    let mut s = stack();
    let udp = udp_listener();
    let to = format!("syslog-address=udp://{}", udp.local_addr().expect("addr"));
    s.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--log-driver",
        "syslog",
        "--log-opt",
        &to,
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 60 ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done",
    ])
    .ok();
    // ~25 lines sent before the kill: sent again from the start (not
    // from the place noted) they would be more than a second's worth.
    std::thread::sleep(Duration::from_millis(2500));
    s.kill9_berthd();
    std::thread::sleep(Duration::from_millis(1500));
    s.spawn_berthd();
    s.berth(&["wait", "ticker"]).ok();
    let mut ticks = Vec::new();
    let mut buf = [0u8; 512];
    while ticks.last() != Some(&59) {
        let n = udp.recv(&mut buf).expect("every tick in time");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        let tick = m
            .trim_end()
            .rsplit("tick-")
            .next()
            .and_then(|t| t.parse::<u32>().ok());
        ticks.push(tick.unwrap_or_else(|| panic!("{m:?}")));
    }
    // In order, but for one step back where berthd came back (what was
    // sent after its last note of the place), and nothing missing.
    let steps_back = ticks.windows(2).filter(|w| w[1] <= w[0]).count();
    assert!(steps_back <= 1, "{ticks:?}");
    let mut seen = ticks.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..60).collect::<Vec<_>>(), "{ticks:?}");
    assert!(ticks.len() - seen.len() <= 12, "{ticks:?}");
    s.berth(&["rm", "ticker"]).ok();
}

/// Syslog over TLS (`tcp+tls://`) to a server that `openssl s_server` plays:
/// RFC 5424 framed by octet counting (RFC 5425) as dockerd frames it, the
/// server checked against `syslog-tls-ca-cert`, and refused when it is not
/// the CA's unless `syslog-tls-skip-verify`.
#[test]
fn the_syslog_driver_speaks_tls() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let s = stack();
    let dir = s.dir.path().join("syslog-tls");
    std::fs::create_dir_all(&dir).expect("dir");
    // A CA and the server's certificate for 127.0.0.1, and another CA.
    let ca = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("CA");
        (cert.pem(), Issuer::new(p, key))
    };
    let (ca_pem, issuer) = ca("syslog CA");
    let (other_pem, _) = ca("another CA");
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    p.distinguished_name.push(DnType::CommonName, "syslog");
    let cert = p.signed_by(&key, &issuer).expect("sign");
    for (f, text) in [
        ("ca.pem", ca_pem),
        ("other.pem", other_pem),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(f), text).expect("pem");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let out = std::fs::File::create(dir.join("received")).expect("out");
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _kill = Kill(server.id());
    assert!(eventually(10, || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let address = format!("syslog-address=tcp+tls://127.0.0.1:{port}");
    let trust = |f: &str| format!("syslog-tls-ca-cert={}", dir.join(f).display());
    // Not the server's CA: the start fails, saying why.
    let refused = s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        &trust("other.pem"),
        "busybox",
        "true",
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("failed to initialize logging driver: dial tcp+tls")
            && refused.stderr.contains("invalid peer certificate"),
        "{refused:?}"
    );
    s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        &trust("ca.pem"),
        "--log-opt",
        "syslog-format=rfc5424",
        "--log-opt",
        "tag=sec",
        "busybox",
        "echo",
        "over-tls",
    ])
    .ok();
    let received = dir.join("received");
    assert!(
        eventually(10, || std::fs::read_to_string(&received)
            .is_ok_and(|t| t.contains("over-tls"))),
        "{:?}",
        std::fs::read_to_string(&received)
    );
    let text = std::fs::read_to_string(&received).expect("received");
    // `<len> <message>`, the length the message's with its newline.
    let (len, message) = text.split_once(' ').expect("framed");
    assert_eq!(len.parse::<usize>().ok(), Some(message.len()), "{text:?}");
    assert!(
        message.starts_with("<30>1 ") && message.ends_with(" sec - over-tls\n"),
        "{text:?}"
    );
    // Told not to check the server, a server no CA vouches for is taken.
    s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        &trust("other.pem"),
        "--log-opt",
        "syslog-tls-skip-verify=true",
        "busybox",
        "echo",
        "unchecked",
    ])
    .ok();
    assert!(
        eventually(10, || std::fs::read_to_string(&received)
            .is_ok_and(|t| t.contains("]: unchecked\n"))),
        "{:?}",
        std::fs::read_to_string(&received)
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// A GELF message as it arrives: a gzip or zlib datagram, or plain JSON.
fn gelf_json(datagram: &[u8]) -> serde_json::Value {
    let text = match datagram.get(..2) {
        Some([0x1f, 0x8b]) => {
            let out = std::process::Command::new("gzip")
                .arg("-dc")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child.stdin.take().expect("stdin").write_all(datagram)?;
                    child.wait_with_output()
                })
                .expect("gzip -dc");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        _ => String::from_utf8_lossy(datagram).into_owned(),
    };
    serde_json::from_str(text.trim_end_matches('\0')).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// The gelf driver as dockerd's: a GELF 1.1 message per line (empty ones
/// left out) with the container's fields and the labels and variables
/// asked, gzipped over UDP, NUL-ended over TCP; `logs` reads the cache;
/// nothing listening on TCP fails the start; options refused in
/// dockerd's words; through berth's CLI and Docker's.
#[test]
fn the_gelf_driver_sends_each_line() {
    let s = stack();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let host = host.trim();
    let udp = udp_listener();
    let to_udp = format!("gelf-address=udp://{}", udp.local_addr().expect("addr"));
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let name = format!("gf{cli}");
        let id = run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "app=shop",
            "-e",
            "STAGE=dev",
            "--log-driver",
            "gelf",
            "--log-opt",
            &to_udp,
            "--log-opt",
            "labels=app",
            "--log-opt",
            "env=STAGE",
            "busybox",
            "sh",
            "-c",
            "echo out; echo; echo '<err>' >&2",
        ])
        .ok()
        .to_string();
        run(&["wait", &name]).ok();
        let mut buf = [0u8; 4096];
        let mut got: Vec<serde_json::Value> = (0..2)
            .map(|_| {
                let n = udp.recv(&mut buf).expect("a GELF message in time");
                assert_eq!(&buf[..2], &[0x1f, 0x8b], "{cli}: gzipped");
                gelf_json(&buf[..n])
            })
            .collect();
        got.sort_by_key(|m| m["level"].as_i64());
        for (m, (level, text)) in got.iter().zip([(3, "<err>"), (6, "out")]) {
            assert_eq!(m["version"], "1.1", "{cli}: {m}");
            assert_eq!(m["host"], host, "{cli}: {m}");
            assert_eq!(m["short_message"], text, "{cli}: {m}");
            assert_eq!(m["level"], level, "{cli}: {m}");
            assert!(
                m["timestamp"].as_f64().is_some_and(|t| t > 1.7e9),
                "{cli}: {m}"
            );
            assert_eq!(m["_container_id"], id.as_str(), "{cli}: {m}");
            assert_eq!(m["_container_name"], name.as_str(), "{cli}: {m}");
            assert_eq!(m["_tag"], &id[..12], "{cli}: {m}");
            assert_eq!(m["_image_name"], "busybox", "{cli}: {m}");
            assert!(
                m["_image_id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("sha256:"))
            );
            assert_eq!(m["_app"], "shop", "{cli}: {m}");
            assert_eq!(m["_STAGE"], "dev", "{cli}: {m}");
            assert!(
                m["_command"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("sh -c echo out"))
            );
        }
        let logs = run(&["logs", &name]);
        assert_eq!(
            (logs.stdout.trim(), logs.stderr.trim()),
            ("out", "<err>"),
            "{cli}"
        );
        run(&["rm", &name]).ok();
    }

    // TCP: each message ends in a NUL, uncompressed.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let to_tcp = format!("gelf-address=tcp://{}", tcp.local_addr().expect("addr"));
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let (conn, _) = tcp.accept().expect("a connection");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut r = std::io::BufReader::new(conn);
        (0..2)
            .map(|_| {
                let mut m = Vec::new();
                r.read_until(0, &mut m).expect("a message");
                m
            })
            .collect::<Vec<_>>()
    });
    s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "gelf",
        "--log-opt",
        &to_tcp,
        "busybox",
        "sh",
        "-c",
        "echo a; echo b",
    ])
    .ok();
    let got = reader.join().expect("the reader");
    for (m, text) in got.iter().zip(["a", "b"]) {
        assert_eq!(m.last(), Some(&0), "{m:?}");
        assert_eq!(gelf_json(m)["short_message"], text);
    }

    // Nothing listening: the start fails; options as dockerd words them.
    let out = s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "gelf",
        "--log-opt",
        "gelf-address=tcp://127.0.0.1:1",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("failed to initialize logging driver: gelf: cannot connect to GELF endpoint: 127.0.0.1:1 dial tcp 127.0.0.1:1: connect: connection refused"),
        "{out:?}"
    );
    for (opts, why) in [
        (&[][..], "gelf-address is a required parameter"),
        (
            &["gelf-address=udp://x"][..],
            "gelf: please provide gelf-address as proto://host:port",
        ),
        (
            &[
                "gelf-address=tcp://127.0.0.1:1",
                "gelf-compression-type=gzip",
            ][..],
            "compression is only supported on UDP",
        ),
        (
            &["gelf-address=udp://127.0.0.1:1", "bogus=1"][..],
            r#"unknown log opt "bogus" for gelf log driver"#,
        ),
    ] {
        let mut args = vec!["create", "--log-driver", "gelf"];
        for o in opts {
            args.extend(["--log-opt", o]);
        }
        args.extend(["busybox", "true"]);
        let out = s.berth(&args);
        assert_ne!(out.code, 0, "{opts:?}");
        assert!(out.stderr.contains(why), "{opts:?}: {out:?}");
    }
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), "", "nothing made");
}

/// Reads what a fluentd listener receives on one connection until `want`
/// is in it (or the sender closes).
fn fluent_receive(
    listener: std::net::TcpListener,
    want: &'static [u8],
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        use std::io::Read;
        let (mut conn, _) = listener.accept().expect("a connection");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(want.len()).any(|w| w == want) {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    })
}

/// The fluentd driver as dockerd's: Forward-protocol events in
/// MessagePack (`[tag, time, record, {}]`, the record's container_id,
/// container_name, source, log and the labels asked; EventTime with
/// sub-second precision), `logs` from the cache, a start that fails where
/// nothing listens unless `fluentd-async`, whose lines arrive once a
/// server does; through berth's CLI and Docker's.
/// A TCP port on loopback whose accept queue is full (a backlog of 0 and
/// one connection never accepted): the kernel drops later SYNs, so a
/// connect to it waits as one to a server that drops packets. The port
/// stays so while the returned sockets live.
fn black_hole() -> (u16, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, connect, getsockname, listen,
        socket,
    };
    use std::os::fd::AsRawFd;
    let l = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(l.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    listen(&l, Backlog::new(0).expect("backlog")).expect("listen");
    let port = getsockname::<SockaddrIn>(l.as_raw_fd())
        .expect("its port")
        .port();
    let filler = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(filler.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).expect("the filler");
    (port, vec![l, filler])
}

/// Whether a connection to `port` on loopback is still waiting for its
/// SYN's answer (SYN_SENT in /proc/net/tcp).
fn dialing(port: u16) -> bool {
    let to = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&to.as_str()) && f.get(3) == Some(&"02")
        })
}

#[test]
fn a_start_waiting_for_its_log_server_holds_up_no_listing() {
    let s = stack();
    for cli in clis() {
        let (port, _hole) = black_hole();
        let name = format!("slowlog{cli}");
        let to = format!("fluentd-address=127.0.0.1:{port}");
        cli_run(
            &s,
            cli,
            &[
                "create",
                "--name",
                &name,
                "--log-driver",
                "fluentd",
                "--log-opt",
                &to,
                "busybox",
                "true",
            ],
        )
        .ok();
        let mut start = if *cli == "berth" {
            s.berth_cmd()
        } else {
            s.docker_cmd()
        };
        start.args(["start", &name]);
        let start = std::thread::spawn(move || start.output().expect("the start"));
        // The start holds the container while it dials the server.
        assert!(eventually(10, || dialing(port)), "{cli}: no dial");
        // A list, the engine's counts and its disk use answer meanwhile,
        // from the container as it was (dockerd reads them from its view).
        let ps = cli_run(
            &s,
            cli,
            &[
                "ps",
                "-a",
                "--filter",
                &format!("name={name}"),
                "--format",
                "{{.Status}}",
            ],
        );
        let info = cli_run(&s, cli, &["info", "--format", "{{.ContainersStopped}}"]);
        let df = cli_run(
            &s,
            cli,
            &["system", "df", "--format", "{{.Type}} {{.TotalCount}}"],
        );
        assert!(
            dialing(port) && !start.is_finished(),
            "{cli}: the listings waited for the start"
        );
        assert_eq!(ps.ok(), "Created", "{cli}");
        assert_eq!(info.ok(), "1", "{cli}");
        assert!(df.ok().contains("Containers 1"), "{cli}: {}", df.stdout);
        // fluent-logger-golang's 3 s, as dockerd's driver gives up.
        let out = start.join().expect("the start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains(&format!(
                    "failed to initialize logging driver: dial tcp 127.0.0.1:{port}: i/o timeout"
                )),
            "{cli}: {err}"
        );
        cli_run(&s, cli, &["rm", &name]).ok();
    }
}

#[test]
fn the_fluentd_driver_sends_forward_events() {
    let s = stack();
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        let to = format!("fluentd-address={}", listener.local_addr().expect("addr"));
        let got = fluent_receive(listener, b"\xa3log\xa3err\x80");
        let name = format!("fl{cli}");
        run(&[
            "run",
            "--name",
            &name,
            "--label",
            "app=x",
            "--log-driver",
            "fluentd",
            "--log-opt",
            &to,
            "--log-opt",
            "labels=app",
            "busybox",
            "sh",
            "-c",
            "echo out; sleep 0.2; echo err >&2",
        ])
        .ok();
        let id = run(&["inspect", "-f", "{{.Id}}", &name]).ok().to_string();
        let got = got.join().expect("the listener");
        let has = |b: &[u8]| got.windows(b.len()).any(|w| w == b);
        // Two events, each `[tag (the short id), time (int32), record, {}]`.
        let head = [&[0x94u8, 0xac][..], &id.as_bytes()[..12], &[0xd2]].concat();
        assert_eq!(
            got.windows(head.len())
                .filter(|w| *w == head.as_slice())
                .count(),
            2,
            "{cli}: {got:?}"
        );
        assert!(
            has(&[b"\xaccontainer_id\xd9\x40", id.as_bytes()].concat()),
            "{cli}"
        );
        let cname = format!("/{name}");
        assert!(
            has(&[
                &b"\xaecontainer_name"[..],
                &[0xa0 | cname.len() as u8],
                cname.as_bytes()
            ]
            .concat()),
            "{cli}"
        );
        assert!(has(b"\xa6source\xa6stdout\xa3log\xa3out"), "{cli}: {got:?}");
        assert!(
            has(b"\xa6source\xa6stderr\xa3log\xa3err\x80"),
            "{cli}: {got:?}"
        );
        assert!(has(b"\xa3app\xa1x"), "{cli}: {got:?}");
        let logs = run(&["logs", &name]);
        assert_eq!(
            (logs.stdout.trim(), logs.stderr.trim()),
            ("out", "err"),
            "{cli}"
        );
        run(&["rm", &name]).ok();
    }

    // Sub-second precision: an EventTime (ext 0) instead of seconds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let to = format!(
        "fluentd-address=tcp://{}",
        listener.local_addr().expect("addr")
    );
    let got = fluent_receive(listener, b"\xa3log\xa3sub\x80");
    s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &to,
        "--log-opt",
        "fluentd-sub-second-precision=true",
        "--log-opt",
        "tag=tg",
        "busybox",
        "echo",
        "sub",
    ])
    .ok();
    let got = got.join().expect("the listener");
    assert!(got.starts_with(b"\x94\xa2tg\xd7\x00"), "{got:?}");

    // Nothing listening: the start fails, unless asynchronous; then the
    // lines wait for a server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let to = format!("fluentd-address=127.0.0.1:{port}");
    let out = s.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &to,
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&format!("failed to initialize logging driver: dial tcp 127.0.0.1:{port}: connect: connection refused")),
        "{out:?}"
    );
    let id = s
        .berth(&[
            "run",
            "-d",
            "--log-driver",
            "fluentd",
            "--log-opt",
            &to,
            "--log-opt",
            "fluentd-async=true",
            "--log-opt",
            "fluentd-retry-wait=300ms",
            "busybox",
            "echo",
            "later",
        ])
        .ok()
        .to_string();
    std::thread::sleep(Duration::from_millis(500));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port again");
    let got = fluent_receive(listener, b"\xa3log\xa5later\x80")
        .join()
        .expect("listener");
    assert!(got.ends_with(b"\xa3log\xa5later\x80"), "{got:?}");
    s.berth(&["rm", "-f", &id]).ok();
    let out = s.berth(&[
        "create",
        "--log-driver",
        "fluentd",
        "--log-opt",
        "bogus=1",
        "busybox",
    ]);
    assert!(
        out.stderr
            .contains("unknown log opt 'bogus' for fluentd log driver"),
        "{out:?}"
    );
}
