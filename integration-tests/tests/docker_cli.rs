//! berthd driven by clients that were written for Docker, unmodified: the
//! real `docker` CLI, docker-py, and curl.

use std::path::Path;

use integration_tests::eventually;
use integration_tests::stack::{Stack, docker_cli};

fn stack() -> Stack {
    assert!(
        docker_cli().is_some(),
        "these tests need the docker CLI (v28) on this machine"
    );
    let s = Stack::start();
    let tar = s.busybox_tar();
    s.docker(&[
        "import",
        "--change",
        r#"CMD ["sh"]"#,
        tar.to_str().unwrap(),
        "busybox:latest",
    ])
    .ok();
    s
}

#[test]
fn docker_cli_runs_containers() {
    let s = stack();
    assert_eq!(
        s.docker(&["run", "--rm", "busybox", "echo", "hello"]).ok(),
        "hello"
    );
    let out = s.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out:?}");
    let out = s.docker(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{out:?}");
    let out = s.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"piped\n");
    assert_eq!(out.ok(), "piped");
    // A user with an explicit group gets that gid and, as dockerd gives it,
    // no groups but that one (its primary gid, CVE-2022-36109) and
    // --group-add's.
    assert_eq!(
        s.docker(&[
            "run",
            "--rm",
            "-u",
            "user:users",
            "--group-add",
            "1234",
            "busybox",
            "sh",
            "-c",
            "echo $(id -u) $(id -g) / $(grep ^Groups: /proc/self/status | cut -f2)"
        ])
        .ok(),
        "1000 100 / 100 1234"
    );
    // dockerd's filters: ps's name is a regular expression on "/name",
    // images' reference lists only the names that matched.
    s.docker(&["create", "--name", "clifilter", "busybox", "true"])
        .ok();
    let names = |f: &str| {
        s.docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", f])
            .ok()
            .to_string()
    };
    assert_eq!(names("name=^/clifilter$").trim(), "clifilter");
    assert_eq!(names("name=^clifilter").trim(), "");
    s.docker(&["rm", "clifilter"]).ok();
    s.docker(&["tag", "busybox", "clifilter/x:one"]).ok();
    let listed = s
        .docker(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=clifilter/*",
        ])
        .ok()
        .to_string();
    assert_eq!(listed.trim(), "clifilter/x:one");
    s.docker(&["rmi", "clifilter/x:one"]).ok();
    // A pull that cannot start is the daemon's error answer, not a stream.
    let out = s.docker(&["pull", "127.0.0.1:1/nothing:x"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("Error response from daemon") && out.stderr.contains("127.0.0.1:1"),
        "{out:?}"
    );

    let id = s
        .docker(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 1000",
        ])
        .ok()
        .to_string();
    assert_eq!(s.docker(&["ps", "-q"]).ok(), &id[..12]);
    let ps = s
        .docker(&["ps", "--format", "{{.Names}}\t{{.Image}}\t{{.Command}}"])
        .ok()
        .to_string();
    assert_eq!(ps, "web\tbusybox\t\"sh -c 'echo up; exe…\"");
    assert_eq!(
        s.docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.Config.Image}}",
            "web"
        ])
        .ok(),
        "true busybox"
    );
    assert!(eventually(10, || s
        .docker(&["logs", "web"])
        .stdout
        .contains("up")));
    s.docker(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(s.docker(&["ps", "-q"]).ok(), "");
    s.docker(&["start", "web"]).ok();
    s.docker(&["kill", "web"]).ok();
    assert_eq!(s.docker(&["wait", "web"]).ok(), "137");
    s.docker(&["rm", "web"]).ok();
    assert_eq!(s.docker(&["ps", "-aq"]).ok(), "");

    s.docker(&["create", "--name", "later", "busybox", "echo", "created"])
        .ok();
    let out = s.docker(&["start", "-a", "later"]);
    assert_eq!(out.ok(), "created");
    s.docker(&["rm", "later"]).ok();

    s.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ])
    .ok();
    assert!(eventually(30, || s
        .docker(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Running}}",
            "flaky"
        ])
        .stdout
        .trim()
        == "1 false"));
    s.docker(&["rm", "flaky"]).ok();

    // On another container's network: its names and hostname.
    s.docker(&[
        "run",
        "-d",
        "--name",
        "netowner",
        "--hostname",
        "owner1",
        "--add-host",
        "db.local:10.1.2.3",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let seen = s
        .docker(&[
            "run",
            "--rm",
            "--network",
            "container:netowner",
            "busybox",
            "sh",
            "-c",
            "grep db.local /etc/hosts; hostname",
        ])
        .ok()
        .to_string();
    assert_eq!(seen, "10.1.2.3\tdb.local\nowner1", "{seen}");
    s.docker(&["rm", "-f", "netowner"]).ok();
}

/// `--blkio-weight` through the docker CLI: applied where the kernel
/// weighs block I/O; elsewhere the container is made and updated without
/// it, and the CLI prints dockerd's warning from the answer.
#[test]
fn docker_cli_blkio_weight_follows_what_the_kernel_can_do() {
    let s = stack();
    let run = s.docker(&[
        "run",
        "-d",
        "--name",
        "bw",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "600",
    ]);
    run.ok();
    let up = s.docker(&[
        "update",
        "--blkio-weight",
        "500",
        "--cpu-shares",
        "512",
        "bw",
    ]);
    up.ok();
    let weight = s
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.BlkioWeight}} {{.HostConfig.CpuShares}}",
            "bw",
        ])
        .ok()
        .to_string();
    if integration_tests::kernel_weighs_block_io() {
        assert_eq!(weight, "500 512");
    } else {
        // The CLI prints a create's warnings on stderr, an update's on
        // stdout.
        assert!(run.stderr.contains("Weight discarded"), "{run:?}");
        assert!(up.stdout.contains("Weight discarded"), "{up:?}");
        assert_eq!(weight, "0 512");
    }
    assert_eq!(
        s.docker(&["inspect", "-f", "{{.State.Status}}", "bw"]).ok(),
        "running"
    );
    s.docker(&["rm", "-f", "bw"]).ok();
}

#[test]
fn docker_cli_moves_files_images_and_volumes() {
    let s = stack();
    s.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    let host = tempfile::tempdir().unwrap();
    let f = host.path().join("in.txt");
    std::fs::write(&f, "copied in\n").unwrap();
    s.docker(&["cp", f.to_str().unwrap(), "box:/in.txt"]).ok();
    let back = host.path().join("back.txt");
    s.docker(&["cp", "box:/in.txt", back.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");
    let diff = s.docker(&["diff", "box"]).ok().to_string();
    assert!(diff.lines().any(|l| l == "A /in.txt"), "{diff}");
    s.docker(&["rm", "-f", "box"]).ok();

    s.docker(&["tag", "busybox", "copy:1"]).ok();
    let saved = host.path().join("saved.tar");
    s.docker(&["save", "-o", saved.to_str().unwrap(), "copy:1"])
        .ok();
    s.docker(&["rmi", "copy:1"]).ok();
    let out = s
        .docker(&["load", "-i", saved.to_str().unwrap()])
        .ok()
        .to_string();
    assert!(out.contains("copy:1"), "{out}");
    let images = s
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .to_string();
    let mut images: Vec<&str> = images.lines().collect();
    images.sort();
    assert_eq!(images, vec!["busybox:latest", "copy:1"]);
    s.docker(&["rmi", "copy:1"]).ok();

    s.docker(&["volume", "create", "vol"]).ok();
    s.docker(&[
        "run",
        "--rm",
        "-v",
        "vol:/v",
        "busybox",
        "sh",
        "-c",
        "echo in-volume > /v/f",
    ])
    .ok();
    assert_eq!(
        s.docker(&["run", "--rm", "-v", "vol:/v", "busybox", "cat", "/v/f"])
            .ok(),
        "in-volume"
    );
    assert_eq!(s.docker(&["volume", "ls", "-q"]).ok(), "vol");
    assert!(
        s.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"])
            .ok()
            .starts_with('/')
    );
    s.docker(&["volume", "rm", "vol"]).ok();

    let reg = integration_tests::registry::Registry::start();
    let remote = format!("{}/x/bb:1", reg.host);
    s.docker(&["tag", "busybox", &remote]).ok();
    s.docker(&["push", &remote]).ok();
    s.docker(&["rmi", &remote]).ok();
    let out = s.docker(&["pull", &remote]).ok().to_string();
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        s.docker(&["run", "--rm", &remote, "echo", "from-registry"])
            .ok(),
        "from-registry"
    );

    let since = unix_now();
    s.docker(&["run", "--rm", "--name", "ev", "busybox", "true"])
        .ok();
    let until = unix_now() + 1;
    let ev = s
        .docker(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "container=ev",
            "--format",
            "{{.Action}}",
        ])
        .ok()
        .to_string();
    for a in ["create", "start", "die", "destroy"] {
        assert!(ev.lines().any(|l| l == a), "no {a} in {ev}");
    }
    let version = s
        .docker(&["version", "--format", "{{.Server.APIVersion}}"])
        .ok()
        .to_string();
    assert_eq!(version, "1.43");
    s.docker(&["info"]).ok();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn docker_py_does_the_same_work() {
    let s = Stack::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker_py.py");
    let tar = s.busybox_tar();
    let (subnet, bridge) = (s.net.subnet(1), s.net.bridge("py"));
    let out = s.command(
        "python3",
        &[
            script.to_str().unwrap(),
            tar.to_str().unwrap(),
            &subnet,
            &bridge,
        ],
    );
    assert_eq!(
        out.code,
        0,
        "docker-py:\n{}\n{}\nberthd: {}",
        out.stdout,
        out.stderr,
        s.log()
    );
    assert!(out.stdout.contains("docker-py: all done"), "{}", out.stdout);
}

#[test]
fn curl_gets_dockers_errors() {
    let s = Stack::start();
    let sock = s.socket.to_str().unwrap().to_string();
    let curl = |args: &[&str]| {
        let mut a = vec![
            "-s",
            "-o",
            "/dev/stdout",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            &sock,
        ];
        a.extend_from_slice(args);
        let out = s.command("curl", &a);
        let text = out.stdout.trim().to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.to_string(), body.to_string())
    };
    let (code, body) = curl(&["http://berth/v1.99/version"]);
    assert_eq!(code, "400");
    assert!(
        body.contains("client version 1.99 is too new. Maximum supported API version is 1.43"),
        "{body}"
    );
    // dockerd's words for an until that is no time (it answers 500).
    let (code, body) = curl(&[
        "-X",
        "POST",
        "http://berth/v1.43/containers/prune?filters=%7B%22until%22%3A%5B%22bogus%22%5D%7D",
    ]);
    assert_eq!(code, "400", "{body}");
    assert_eq!(
        body,
        "{\"message\":\"failed to parse value as time or duration: \\\"bogus\\\"\"}\n"
    );
    let (code, body) = curl(&["http://berth/v1.43/version"]);
    assert_eq!(code, "200");
    assert!(body.ends_with("}\n"), "{body:?}");
    let (code, _) = curl(&["-I", "http://berth/_ping"]);
    assert!(code.ends_with("200"), "{code}");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"Image\": 5}",
        "http://berth/v1.43/containers/create",
    ]);
    assert_eq!(code, "400");
    assert!(body.contains("Image"), "the error names the field: {body}");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{not json",
        "http://berth/v1.43/containers/create",
    ]);
    assert_eq!(code, "400", "{body}");
    let (code, body) = curl(&["http://berth/v1.43/containers/nope/json"]);
    assert_eq!(code, "404");
    // Byte for byte dockerd's, its encoder's newline included.
    assert_eq!(body, "{\"message\":\"No such container: nope\"}\n");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "http://berth/v1.43/containers/create",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"Image\": \"nothing-here\"}",
    ]);
    assert_eq!(code, "404", "{body}");
    // Nothing was created by any of it.
    let (code, body) = curl(&["http://berth/containers/json?all=1"]);
    assert_eq!((code.as_str(), body.as_str()), ("200", "[]\n"));
}

#[test]
fn docker_cli_execs() {
    let s = stack();
    s.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"])
        .ok();
    let out = s.docker(&["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert_eq!(
        s.docker(&[
            "exec",
            "-e",
            "B=2",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "box",
            "sh",
            "-c",
            "echo $B $(pwd) $(id -u)"
        ])
        .ok(),
        "2 /tmp 1000"
    );
    assert_eq!(
        s.docker_stdin(&["exec", "-i", "box", "cat"], b"piped\n")
            .ok(),
        "piped"
    );
    // dockerd 20.10 ends an exec the runtime could not start with 126.
    assert_eq!(s.docker(&["exec", "box", "nosuchcommand"]).code, 126);
    let docker = integration_tests::stack::docker_cli().expect("the docker CLI");
    let out = s.command(
        "script",
        &[
            "-qc",
            &format!(
                "stty cols 77 rows 19; DOCKER_CONFIG={} {} exec -it box stty size",
                s.dir.path().join("docker-cli").display(),
                docker.display()
            ),
            "/dev/null",
        ],
    );
    assert!(out.stdout.contains("19 77"), "{out:?}");
    let id = s
        .docker(&["inspect", "-f", "{{.Id}}", "box"])
        .ok()
        .to_string();
    s.docker(&["rm", "-f", &id]).ok();
}

/// Docker fills an empty named volume with what the image has at its mount
/// point, once, and never over what the volume holds.
#[test]
fn an_empty_named_volume_is_filled_from_the_image_at_first_use() {
    let s = stack();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        s.docker(&all).ok().trim().to_string()
    };
    // Over /bin the container has a shell only if the volume was filled.
    assert_eq!(
        run(&[
            "-v",
            "tools:/bin",
            "busybox",
            "sh",
            "-c",
            "echo mine > /bin/note; rm /bin/vi; echo filled"
        ]),
        "filled"
    );
    let listed = run(&["-v", "tools:/t", "busybox", "ls", "/t"]);
    assert!(
        listed.lines().any(|l| l == "busybox") && listed.lines().any(|l| l == "note"),
        "{listed}"
    );
    // Not empty any more: a second use over /bin keeps the volume as it is
    // (the file it got, and not the image's file it lost).
    assert_eq!(
        run(&[
            "-v",
            "tools:/bin",
            "busybox",
            "sh",
            "-c",
            "cat /bin/note; test -e /bin/vi || echo no-vi"
        ]),
        "mine\nno-vi"
    );
    // Nothing in the image there: the volume stays empty, the start is fine.
    assert_eq!(
        run(&[
            "-v",
            "blank:/nothing/here",
            "busybox",
            "ls",
            "-A",
            "/nothing/here"
        ]),
        ""
    );
    // Two containers starting at once on one empty volume, nothing in the
    // image there: both run.
    let ids: Vec<String> = (0..2)
        .map(|_| {
            s.docker(&[
                "run",
                "-d",
                "-v",
                "shared:/shared",
                "busybox",
                "sleep",
                "60",
            ])
            .ok()
            .trim()
            .to_string()
        })
        .collect();
    for id in &ids {
        assert_eq!(
            s.docker(&["inspect", "-f", "{{.State.Running}}", id])
                .ok()
                .trim(),
            "true"
        );
    }
    s.docker(&["rm", "-f", &ids[0], &ids[1]]).ok();
}

#[test]
fn system_df_counts_what_is_in_use_as_the_docker_cli_does() {
    let s = stack();
    s.docker(&[
        "run", "-d", "--name", "user", "-v", "dfvol:/v", "busybox", "sleep", "1000",
    ])
    .ok();
    s.docker(&["exec", "user", "sh", "-c", "echo hi > /x"]).ok();
    s.docker(&["commit", "user", "child:1"]).ok();
    // The busybox image is in use and shares all its bytes with the child;
    // the volume has a user: nothing of either is reclaimable but the
    // child's own bytes.
    let docker = s.docker(&["system", "df"]).ok().to_string();
    let rows: Vec<Vec<&str>> = docker
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows[1][..3], ["Images", "2", "1"], "{docker}");
    assert_eq!(rows[3][..3], ["Local Volumes", "1", "1"], "{docker}");
    assert_eq!(rows[3][4], "0B", "{docker}");
    assert_eq!(rows[4][..2], ["Build Cache", "0"], "{docker}");
    // berth's CLI prints the same table from the same answer.
    assert_eq!(s.berth(&["system", "df"]).ok(), docker.trim_end());
    let verbose = s.docker(&["system", "df", "-v"]).ok().to_string();
    let busybox = verbose
        .lines()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    // REPOSITORY TAG ID CREATED(3 words) SIZE SHARED UNIQUE CONTAINERS
    assert_eq!(busybox.last(), Some(&"1"), "{verbose}");
    assert_eq!(busybox[busybox.len() - 2], "0B", "{verbose}");
    s.docker(&["rm", "-f", "user"]).ok();
    s.docker(&["rmi", "child:1"]).ok();
    s.docker(&["volume", "rm", "dfvol"]).ok();
}
