//! The Engine API's long tail as real clients hit it: docker-py (Debian's
//! python3-docker, in `api_longtail.py`) and the real docker CLI, each
//! answer as Debian's dockerd 20.10 gives it.

use std::path::Path;

use integration_tests::stack::{Stack, docker_cli};

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

/// berth's CLI, and Docker's where this machine has it.
fn clis() -> Vec<&'static str> {
    if docker_cli().is_some() {
        vec!["berth", "docker"]
    } else {
        vec!["berth"]
    }
}

/// One command through the CLI named.
fn cli_run(s: &Stack, cli: &str, args: &[&str]) -> integration_tests::stack::Out {
    if cli == "berth" {
        s.berth(args)
    } else {
        s.docker(args)
    }
}

#[test]
fn docker_py_long_tail() {
    let s = Stack::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api_longtail.py");
    let tar = s.busybox_tar();
    let (subnet, bridge) = (s.net.subnet(2), s.net.bridge("py"));
    let plugin = integration_tests::plugin::volume_plugin_dir(s.dir.path(), "pyvol", None);
    let registry = integration_tests::registry::Registry::start();
    let out = s.command(
        "/usr/bin/python3",
        &[
            script.to_str().unwrap(),
            tar.to_str().unwrap(),
            &subnet,
            &bridge,
            plugin.to_str().unwrap(),
            &registry.host,
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
    assert!(out.stdout.contains("longtail: all done"), "{}", out.stdout);
}

#[test]
fn the_cli_on_the_long_tail() {
    if docker_cli().is_none() {
        eprintln!("no docker CLI here: skipped");
        return;
    }
    let s = stack();
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let out = run(&["run", "--rm", "-w", "/does/not/exist", "busybox", "pwd"]);
        assert_eq!(out.ok(), "/does/not/exist", "{cli}");

        let out = run(&[
            "run",
            "--name",
            "quiet",
            "--log-driver",
            "none",
            "busybox",
            "echo",
            "x",
        ]);
        assert_eq!(out.code, 0, "{cli}: {}", out.stderr);
        let out = run(&["logs", "quiet"]);
        assert_ne!(out.code, 0, "{cli}");
        assert!(
            out.stderr
                .contains("configured logging driver does not support reading"),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "quiet"]).ok();

        // A volume made by --mount with the local driver's options.
        let vol = format!("optvol{cli}");
        let spec = format!(
            "type=volume,src={vol},dst=/v,volume-opt=type=tmpfs,volume-opt=device=tmpfs,\"volume-opt=o=size=2m,mode=700\""
        );
        let out = run(&[
            "run",
            "--rm",
            "--mount",
            &spec,
            "busybox",
            "sh",
            "-c",
            "df -k /v | tail -1; stat -c %a /v",
        ]);
        let text = out.ok().to_string();
        assert_eq!(
            text.split_whitespace().nth(1),
            Some("2048"),
            "{cli}: {text}"
        );
        assert!(text.ends_with("700"), "{cli}: {text}");
        let opts = run(&["volume", "inspect", "-f", "{{json .Options}}", &vol])
            .ok()
            .to_string();
        assert_eq!(
            opts, r#"{"device":"tmpfs","o":"size=2m,mode=700","type":"tmpfs"}"#,
            "{cli}"
        );
        run(&["volume", "rm", &vol]).ok();

        // berth's CLI has no swarm commands: berth is no swarm node.
        if cli == "docker" {
            let out = run(&["swarm", "leave"]);
            assert_ne!(out.code, 0, "{cli}");
            assert!(
                out.stderr.contains("This node is not part of a swarm"),
                "{cli}: {}",
                out.stderr
            );
        }
        assert_eq!(
            run(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).ok(),
            "inactive",
            "{cli}"
        );

        run(&[
            "run",
            "--name",
            "changed",
            "busybox",
            "sh",
            "-c",
            "touch /etc/new; echo >> /etc/passwd",
        ])
        .ok();
        let diff = run(&["diff", "changed"]).ok().to_string();
        assert!(diff.contains("A /etc/new"), "{cli}: {diff}");
        assert!(diff.contains("C /etc/passwd"), "{cli}: {diff}");
        assert!(!diff.contains("/etc/hosts"), "{cli}: {diff}");
        // Its commit's history: the container's command, then the image
        // it ran, by id.
        let img = format!("hist{cli}");
        run(&["commit", "changed", &img]).ok();
        let hist = run(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}",
            &img,
        ])
        .ok()
        .to_string();
        let busybox = run(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
            .ok()
            .to_string();
        let rows: Vec<&str> = hist.lines().collect();
        assert!(
            rows[0].ends_with("|sh -c touch /etc/new; echo >> /etc/passwd"),
            "{cli}: {hist}"
        );
        assert!(rows[1].starts_with(&format!("{busybox}|")), "{cli}: {hist}");
        run(&["rmi", &img]).ok();
        run(&["rm", "changed"]).ok();

        // cp reaches a volume, not the root filesystem under it, and
        // streams what it sends.
        let file = s.dir.path().join("cp-in.txt");
        std::fs::write(&file, "into the volume\n").unwrap();
        let vol = format!("{cli}-cpvol");
        run(&[
            "run",
            "-d",
            "--name",
            "cpv",
            "-v",
            &format!("{vol}:/data"),
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
        run(&["cp", file.to_str().unwrap(), "cpv:/data/in.txt"]).ok();
        // --volumes-from takes cpv's volume, read-only when asked.
        let out = run(&[
            "run",
            "--rm",
            "--volumes-from",
            "cpv:ro",
            "busybox",
            "sh",
            "-c",
            "cat /data/in.txt; touch /data/no",
        ]);
        assert_eq!(out.code, 1, "{cli}: {out:?}");
        assert_eq!(out.stdout.trim(), "into the volume", "{cli}");
        assert!(
            out.stderr.contains("Read-only file system"),
            "{cli}: {out:?}"
        );
        run(&["rm", "-f", "cpv"]).ok();
        let out = run(&[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/data"),
            "busybox",
            "cat",
            "/data/in.txt",
        ]);
        assert_eq!(out.ok(), "into the volume", "{cli}");
        run(&["volume", "rm", &vol]).ok();

        run(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]).ok();
        run(&["kill", "victim"]).ok();
        assert_eq!(
            run(&["inspect", "-f", "{{.State.Status}}", "victim"]).ok(),
            "exited",
            "{cli}"
        );
        let nowhere = s.dir.path().join("nowhere");
        let out = run(&["cp", "victim:/nonexistent", nowhere.to_str().unwrap()]);
        assert!(
            out.stderr
                .contains("Could not find the file /nonexistent in container victim"),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "victim"]).ok();

        // cp keeps a directory's time, and copies a directory's contents
        // (dir/.) to a destination that does not exist as the docker CLI
        // renames them: by the "./" they start with.
        let src = s.dir.path().join(format!("cpsrc{cli}"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "in sub").unwrap();
        let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::open(src.join("sub"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(past))
            .unwrap();
        run(&["run", "-d", "--name", "cpd", "busybox", "sleep", "1000"]).ok();
        run(&["cp", src.to_str().unwrap(), "cpd:/dst"]).ok();
        let out = run(&["exec", "cpd", "stat", "-c", "%Y", "/dst/sub"]);
        assert_eq!(out.ok(), "1000000000", "{cli}");
        let back = s.dir.path().join(format!("cpback{cli}"));
        run(&["cp", "cpd:/dst/.", back.to_str().unwrap()]).ok();
        assert_eq!(
            std::fs::read_to_string(back.join("sub/f")).ok().as_deref(),
            Some("in sub"),
            "{cli}"
        );
        assert!(!s.dir.path().join("sub").exists(), "{cli}: a stray copy");
        run(&["rm", "-f", "cpd"]).ok();
        // Into a container that is not there: the daemon's answer, not a
        // connection cut while the client still sends.
        let out = run(&["cp", src.to_str().unwrap(), "nosuchcpd:/x"]);
        assert!(
            out.stderr.contains("No such container: nosuchcpd")
                && !out.stderr.contains("broken pipe"),
            "{cli}: {}",
            out.stderr
        );

        // search, of an index on this machine (Docker Hub's v1 search).
        let index = SearchIndex::start();
        let term = format!("127.0.0.1:{}/clifind", index.port);
        let out = run(&[
            "search",
            &term,
            "--filter",
            "stars=4",
            "--format",
            "{{.Name}}|{{.StarCount}}",
        ]);
        assert_eq!(out.ok(), "clifind-4|4", "{cli}");
        let table = run(&["search", "--limit", "2", &term]).ok().to_string();
        assert!(table.starts_with("NAME"), "{cli}: {table}");
        assert!(table.contains("OFFICIAL"), "{cli}: {table}");
        drop(index);
        // An IPAM driver berth has not; a volume a container has, which
        // even --force does not remove.
        let out = run(&["network", "create", "--ipam-driver", "nosuch", "ipamnet"]);
        assert!(
            out.stderr.contains("plugin \"nosuch\" not found"),
            "{cli}: {out:?}"
        );
        run(&["volume", "create", "inuse"]).ok();
        run(&["create", "--name", "user", "-v", "inuse:/d", "busybox"]).ok();
        let out = run(&["volume", "rm", "-f", "inuse"]);
        assert!(out.stderr.contains("volume is in use"), "{cli}: {out:?}");
        run(&["rm", "user"]).ok();
        run(&["volume", "rm", "inuse"]).ok();
        let out = run(&["push", "nosuchimage"]);
        assert_ne!(out.code, 0, "{cli}");
        assert!(
            out.stderr
                .contains("An image does not exist locally with the tag: nosuchimage"),
            "{cli}: {}",
            out.stderr
        );

        // Pruning with `until` spares what is newer (berth once pruned
        // every unused image whatever the filter said).
        run(&["image", "prune", "-a", "-f", "--filter", "until=1h"]).ok();
        run(&["image", "inspect", "busybox"]).ok();

        // A command that cannot run: 127, said once (no "Error waiting
        // for container" besides the start's error).
        let out = run(&["run", "--rm", "busybox", "/nonexistent"]);
        assert_eq!(out.code, 127, "{cli}: {}", out.stderr);
        assert!(
            out.stderr.contains("no such file or directory"),
            "{cli}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("waiting"), "{cli}: {}", out.stderr);

        // A fresh container's writable layer holds nothing (the runtime's
        // mount points are not its files), as Docker shows it; its full
        // name is in /etc/hosts when it has a domain.
        run(&[
            "run",
            "-d",
            "--name",
            "fresh",
            "--hostname",
            "h1",
            "--domainname",
            "d1.org",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
        assert_eq!(
            run(&[
                "container",
                "inspect",
                "--size",
                "-f",
                "{{.SizeRw}}",
                "fresh"
            ])
            .ok(),
            "0",
            "{cli}"
        );
        assert_eq!(
            run(&["exec", "fresh", "hostname", "-f"]).ok(),
            "h1.d1.org",
            "{cli}"
        );
        run(&["rm", "-f", "fresh"]).ok();

        // --network none still has its loopback up.
        let out = run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "127.0.0.1",
        ]);
        assert!(out.ok().contains("1 packets received"), "{cli}");

        // The primary group is a supplementary one too (dockerd since
        // CVE-2022-36109), and --group-add holds for execs as another user.
        let groups = |out: integration_tests::stack::Out| {
            out.ok()
                .lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.trim().to_string())
        };
        let status = ["grep", "Groups", "/proc/self/status"];
        let out = run(&[&["run", "--rm", "busybox"][..], &status].concat());
        assert_eq!(groups(out).as_deref(), Some("0"), "{cli}");
        run(&[
            "run",
            "-d",
            "--name",
            "grouped",
            "--user",
            "1000:1000",
            "--group-add",
            "55",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
        let out = run(&[&["exec", "grouped"][..], &status].concat());
        assert_eq!(groups(out).as_deref(), Some("55 1000"), "{cli}");
        let out = run(&[&["exec", "-u", "2000", "grouped"][..], &status].concat());
        assert_eq!(groups(out).as_deref(), Some("0 55"), "{cli}");
        run(&["pause", "grouped"]).ok();
        let out = run(&["exec", "grouped", "true"]);
        assert!(
            out.stderr.contains("Container grouped is paused"),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "-f", "grouped"]).ok();

        // --ipc: shared memory of a shareable container, seen by one that
        // joins it; a private one refuses.
        run(&[
            "run",
            "-d",
            "--name",
            "ipcdonor",
            "--ipc",
            "shareable",
            "busybox",
            "sh",
            "-c",
            "echo in-shm > /dev/shm/x; sleep 1000",
        ])
        .ok();
        let read = ["run", "--rm", "--ipc", "container:ipcdonor", "busybox"];
        let mut shared = String::new();
        for _ in 0..100 {
            shared = run(&[&read[..], &["cat", "/dev/shm/x"]].concat())
                .stdout
                .trim()
                .to_string();
            if !shared.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(shared, "in-shm", "{cli}");
        run(&["rm", "-f", "ipcdonor"]).ok();
        run(&[
            "run",
            "-d",
            "--name",
            "ipcprivate",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
        let out = run(&[
            "run",
            "--rm",
            "--ipc",
            "container:ipcprivate",
            "busybox",
            "true",
        ]);
        assert!(
            out.stderr.contains("non-shareable IPC"),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "-f", "ipcprivate"]).ok();

        // Logs: the attributes the log options name, shown by --details.
        run(&[
            "run",
            "--name",
            "detailed",
            "--label",
            "app=web",
            "--log-opt",
            "labels=app",
            "busybox",
            "echo",
            "x",
        ])
        .ok();
        let out = run(&["logs", "--details", "detailed"]);
        assert_eq!(out.ok(), "app=web x", "{cli}");
        run(&["rm", "detailed"]).ok();

        // A host port range publishes on a free port in it.
        let out = run(&[
            "run",
            "-d",
            "--name",
            "ranged",
            "-p",
            "127.0.0.1:18290-18292:80",
            "busybox",
            "sleep",
            "100",
        ]);
        out.ok();
        let port = run(&["port", "ranged", "80"]).ok().to_string();
        assert!(
            ["18290", "18291", "18292"]
                .iter()
                .any(|p| port == format!("127.0.0.1:{p}")),
            "{cli}: {port}"
        );
        run(&["rm", "-f", "ranged"]).ok();
        // A per-device block I/O limit reaches the container's cgroup.
        if let Some((num, dev)) = root_block_device() {
            let limit = format!("{dev}:1mb");
            let out = run(&[
                "run",
                "--rm",
                "--device-read-bps",
                &limit,
                "busybox",
                "sh",
                "-c",
                "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device 2>/dev/null || cat /sys/fs/cgroup/io.max",
            ]);
            let text = out.ok().to_string();
            assert!(
                text.contains(&format!("{num} 1048576"))
                    || text.contains(&format!("{num} rbps=1048576")),
                "{cli}: {text}"
            );
        }

        // The last created container, stopped or not.
        run(&["create", "--name", "newest", "busybox", "true"]).ok();
        let out = run(&["ps", "-l", "--format", "{{.Names}}"]);
        assert_eq!(out.ok(), "newest", "{cli}");
        run(&["rm", "newest"]).ok();

        // resolv.conf as dockerd builds it.
        let out = run(&[
            "run",
            "--rm",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            "ex.com",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ]);
        let text = out.ok().to_string();
        let first: Vec<&str> = text.lines().take(2).collect();
        assert_eq!(first, ["search ex.com", "nameserver 9.9.9.9"], "{cli}");

        // A device the host lacks: Go's words, which the docker CLI
        // turns into exit status 127.
        let out = run(&[
            "run",
            "--rm",
            "--device",
            "/dev/berth-nosuch",
            "busybox",
            "true",
        ]);
        assert!(
            out.stderr
                .contains("adding custom device \"/dev/berth-nosuch\": no such file or directory"),
            "{cli}: {}",
            out.stderr
        );
        if cli == "docker" {
            assert_eq!(out.code, 127, "{cli}");
        }

        // `--security-opt systempaths=unconfined`: nothing masked or
        // read-only under /proc (it was taken and the defaults applied).
        let probe = "grep -c ' /proc/' /proc/self/mountinfo";
        let out = run(&[
            "run",
            "--rm",
            "--security-opt",
            "systempaths=unconfined",
            "busybox",
            "sh",
            "-c",
            probe,
        ]);
        assert_eq!(out.stdout.trim(), "0", "{cli}: {}", out.stderr);
        let out = run(&["run", "--rm", "busybox", "sh", "-c", probe]);
        assert_ne!(out.stdout.trim(), "0", "{cli}: {}", out.stderr);

        // A container run with the docker CLI's network ("default") lists
        // the default bridge once; its events name the image as given.
        let out = run(&["run", "--name", "ev", "busybox", "true"]);
        assert_eq!(out.code, 0, "{cli}: {}", out.stderr);
        let out = run(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "ev",
        ]);
        assert_eq!(out.ok(), "bridge", "{cli}");
        let out = run(&[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "container=ev",
            "--filter",
            "image=busybox",
            "--format",
            "{{.Action}} {{.Actor.Attributes.image}}",
        ]);
        let text = out.ok().to_string();
        assert!(text.contains("attach busybox"), "{cli}: {text}");
        assert!(text.contains("die busybox"), "{cli}: {text}");
        run(&["rm", "ev"]).ok();
    }
}

/// The block device under `/` ("major:minor", its /dev path), when this
/// machine has one.
fn root_block_device() -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").ok()?.dev();
    let num = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{num}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    let path = format!("/dev/{name}");
    std::path::Path::new(&path).exists().then_some((num, path))
}

/// `search_index.py` run as a child: an index answering Docker Hub's v1
/// search on a loopback port, ended (by its PID) when dropped.
struct SearchIndex {
    child: std::process::Child,
    port: String,
}

impl SearchIndex {
    fn start() -> SearchIndex {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/search_index.py");
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting the search index");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut port)
            .expect("its port");
        SearchIndex {
            child,
            port: port.trim().to_string(),
        }
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a sweep of the CLI against dockerd 20.10 found different, each as
/// dockerd answers it, through berth's CLI and Docker's.
#[test]
fn the_cli_as_dockerd_answers_it() {
    let s = stack();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let host = host.trim();
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        // On the host's network a container is named as the host.
        let name = format!("hostnet{cli}");
        let out = run(&[
            "run",
            "--name",
            &name,
            "--network",
            "host",
            "busybox",
            "hostname",
        ]);
        assert_eq!(out.ok(), host, "{cli}");
        let cfg = run(&["inspect", "-f", "{{.Config.Hostname}}", &name]);
        assert_eq!(cfg.ok(), host, "{cli}");
        run(&["rm", &name]).ok();

        // A link from a container without a network still names a
        // container that must exist.
        let out = run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--link",
            "nosuch:a",
            "busybox",
            "true",
        ]);
        assert_eq!(out.code, 125, "{cli}: {}", out.stderr);
        assert!(
            out.stderr.contains("could not get container for nosuch"),
            "{cli}: {}",
            out.stderr
        );

        // An exec's missing working directory, in runc's words.
        let name = format!("wd{cli}");
        let vol = format!("{name}:/v");
        run(&[
            "run", "-d", "--name", &name, "-v", &vol, "busybox", "sleep", "100",
        ])
        .ok();
        // A named volume is no Config.Volumes entry: null, as neither the
        // request nor the image has one; an empty Env (Ansible sends one)
        // is the image's, which has none: null too.
        let vols = run(&["inspect", "-f", "{{json .Config.Volumes}}", &name]);
        assert_eq!(vols.ok(), "null", "{cli}");
        let made = format!("noenv{cli}");
        let (status, body) = s.api(
            "POST",
            &format!("/containers/create?name={made}"),
            Some(r#"{"Image": "busybox", "Env": []}"#),
        );
        assert_eq!(status, 201, "{body}");
        let env = run(&["inspect", "-f", "{{json .Config.Env}}", &made]);
        assert_eq!(env.ok(), "null", "{cli}");
        // PortBindings as sent: none is null (docker-py sends none), the
        // CLIs' `{}` stays `{}`.
        let ports = run(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", &made]);
        assert_eq!(ports.ok(), "null", "{cli}");
        let ports = run(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", &name]);
        assert_eq!(ports.ok(), "{}", "{cli}");
        run(&["rm", &made]).ok();
        // The scheduler's blkio lists: [] where the blkio controller is
        // cgroup v1's (dockerd reads them there), null on v2.
        let (status, body) = s.api("GET", &format!("/containers/{name}/stats?stream=0"), None);
        assert_eq!(status, 200, "{body}");
        let stats: serde_json::Value = serde_json::from_str(&body).expect("stats");
        let want =
            if std::path::Path::new("/sys/fs/cgroup/blkio/blkio.throttle.io_serviced").exists() {
                serde_json::json!([])
            } else {
                serde_json::Value::Null
            };
        assert_eq!(stats["blkio_stats"]["io_merged_recursive"], want, "{body}");
        let out = run(&["exec", "-w", "/nonexistent", &name, "pwd"]);
        assert_eq!(out.code, 126, "{cli}");
        assert!(
            out.stdout.contains(
                r#"chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory"#
            ),
            "{cli}: {}",
            out.stdout
        );
        run(&["rm", "-f", &name]).ok();
        run(&["volume", "rm", &name]).ok();

        // A `dangling` it cannot read is refused, and an image prune that
        // could take it for "false" removes nothing (the CLIs add their
        // own value to a prune's: docker-py sends the caller's alone).
        run(&["tag", "busybox", "kept:1"]).ok();
        let (status, body) = s.api(
            "POST",
            "/images/prune?filters=%7B%22dangling%22%3A%5B%22bogus%22%5D%7D",
            None,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid filter 'dangling=[bogus]'"), "{body}");
        for args in [
            &["images", "--filter", "dangling=bogus"][..],
            &["volume", "ls", "--filter", "dangling=bogus"],
        ] {
            let out = run(args);
            assert_ne!(out.code, 0, "{cli} {args:?}");
            assert!(
                out.stderr.contains("invalid filter 'dangling=[bogus]'"),
                "{cli} {args:?}: {}",
                out.stderr
            );
        }
        let out = run(&["network", "ls", "--filter", "dangling=bogus"]);
        assert!(
            out.stderr.contains(r#"invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")"#),
            "{cli}: {}",
            out.stderr
        );
        assert_eq!(run(&["images", "-q", "kept:1"]).ok().len(), 12, "{cli}");
        run(&["rmi", "kept:1"]).ok();

        // Events filter nothing by a key they do not know.
        let now = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_secs()
                + 1
        );
        let out = run(&[
            "events", "--since", "0", "--until", &now, "--filter", "bogus=1",
        ]);
        assert!(out.ok().contains("container create"), "{cli}");

        // A stopped container connected again to a network it is on keeps
        // its settings and is answered 200 (dockerd's "avoid duplicate
        // config"); a running one is refused. A connect gives a stopped
        // container its short id among the aliases at once.
        let (net, name) = (format!("tw{cli}"), format!("twice{cli}"));
        let bridge = s.net.bridge(&format!("tw{}", &cli[..1]));
        let subnet = s.net.subnet(if cli == "berth" { 5 } else { 6 });
        let opt = format!("com.docker.network.bridge.name={bridge}");
        run(&["network", "create", "-o", &opt, "--subnet", &subnet, &net]).ok();
        let id = run(&[
            "create",
            "--name",
            &name,
            "--network",
            &net,
            "busybox",
            "sleep",
            "100",
        ])
        .ok()
        .to_string();
        let aliases = |run: &dyn Fn(&[&str]) -> integration_tests::stack::Out| {
            let f = format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}");
            run(&["inspect", "-f", &f, &name]).ok().to_string()
        };
        assert_eq!(aliases(&run), "null", "{cli}");
        run(&["network", "connect", "--alias", "again", &net, &name]).ok();
        assert_eq!(aliases(&run), "null", "{cli}: the first settings stay");
        run(&["network", "disconnect", &net, &name]).ok();
        run(&["network", "connect", "--alias", "web", &net, &name]).ok();
        assert_eq!(
            aliases(&run),
            format!(r#"["web","{}"]"#, &id[..12]),
            "{cli}"
        );
        run(&["start", &name]).ok();
        assert_eq!(
            aliases(&run),
            format!(r#"["web","{}"]"#, &id[..12]),
            "{cli}"
        );
        let out = run(&["network", "connect", &net, &name]);
        assert!(
            out.stderr
                .contains(&format!("already exists in network {net}")),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "-f", &name]).ok();
        run(&["network", "rm", &net]).ok();
    }
}

/// A client that does not ask to upgrade gets the stream as a 200's body,
/// as dockerd gives it (curl, scripts).
#[test]
fn attach_without_upgrade_streams_the_body() {
    let s = stack();
    let id = s
        .berth(&["run", "-d", "busybox", "sh", "-c", "echo one; echo two >&2"])
        .ok()
        .to_string();
    s.berth(&["wait", &id]).ok();
    let (status, body) = s.api(
        "POST",
        &format!("/containers/{id}/attach?logs=1&stream=0&stdout=1&stderr=1"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.as_bytes(),
        b"\x01\0\0\0\0\0\0\x04one\n\x02\0\0\0\0\0\0\x04two\n"
    );
    s.berth(&["rm", &id]).ok();
}

/// Legacy links as dockerd 20.10 makes them: variables and an /etc/hosts
/// line on the default bridge, a name of the linking container's own on a
/// user network, `rm --link` to drop one; through berth's CLI and Docker's.
#[test]
fn legacy_links() {
    let s = stack();
    let net = s.net.bridge("ln");
    s.berth(&[
        "network",
        "create",
        "-o",
        &format!("com.docker.network.bridge.name={net}"),
        "--subnet",
        &s.net.subnet(3),
        "ln",
    ])
    .ok();
    s.berth(&[
        "run", "-d", "--name", "web", "-e", "FOO=bar", "--expose", "80", "busybox", "sleep", "1000",
    ])
    .ok();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "uweb",
        "--network",
        "ln",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let ip = s
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.bridge.IPAddress}}",
            "web",
        ])
        .ok()
        .to_string();
    let uip = s
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.ln.IPAddress}}",
            "uweb",
        ])
        .ok()
        .to_string();
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let p = format!("{cli}-p");
        let out = run(&[
            "run",
            "--rm",
            "--name",
            &p,
            "--link",
            "web:my-alias",
            "busybox",
            "sh",
            "-c",
            "echo $MY_ALIAS_NAME $MY_ALIAS_PORT_80_TCP_ADDR $MY_ALIAS_PORT $MY_ALIAS_ENV_FOO; grep -w my-alias /etc/hosts",
        ]);
        let text = out.ok().to_string();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("/{p}/my-alias {ip} tcp://{ip}:80 bar").as_str()),
            "{cli}: {text}"
        );
        let hosts = lines.next().unwrap_or_default();
        assert!(
            hosts.starts_with(&ip) && hosts.ends_with(" web"),
            "{cli}: {hosts}"
        );

        let out = run(&["run", "--rm", "--link", "nosuch:x", "busybox", "true"]);
        assert_ne!(out.code, 0, "{cli}");
        assert!(
            out.stderr.contains("could not get container for nosuch"),
            "{cli}: {}",
            out.stderr
        );

        // A link names its container as it is now; rm --link drops it.
        let q = format!("{cli}-q");
        run(&[
            "create", "--name", &q, "--link", "web:al", "busybox", "sleep", "1000",
        ])
        .ok();
        assert_eq!(
            run(&["inspect", "-f", "{{json .HostConfig.Links}}", &q]).ok(),
            format!("[\"/web:/{q}/al\"]"),
            "{cli}"
        );
        let out = run(&["rm", "--link", &format!("/{q}/al")]);
        assert_eq!(out.code, 0, "{cli}: {}", out.stderr);
        assert_eq!(
            run(&["inspect", "-f", "{{json .HostConfig.Links}}", &q]).ok(),
            "null",
            "{cli}"
        );
        let out = run(&["rm", "--link", &q]);
        assert!(
            out.stderr.contains("cannot remove the default link name"),
            "{cli}: {}",
            out.stderr
        );
        run(&["rm", "-f", &q]).ok();

        // On a user network: the alias is the linking container's name
        // for the other's address there, also after a connect.
        let out = run(&[
            "run",
            "--rm",
            "--network",
            "ln",
            "--link",
            "uweb:ua",
            "busybox",
            "ping",
            "-c1",
            "-W1",
            "ua",
        ]);
        assert!(
            out.stdout.contains(&format!("({uip})")),
            "{cli}: {} {}",
            out.stdout,
            out.stderr
        );
        let r = format!("{cli}-r");
        run(&["run", "-d", "--name", &r, "busybox", "sleep", "1000"]).ok();
        run(&["network", "connect", "--link", "uweb:zz", "ln", &r]).ok();
        assert_eq!(
            run(&[
                "inspect",
                "-f",
                "{{json .NetworkSettings.Networks.ln.Links}}",
                &r
            ])
            .ok(),
            "[\"uweb:zz\"]",
            "{cli}"
        );
        let out = run(&["exec", &r, "ping", "-c1", "-W1", "zz"]);
        assert!(
            out.stdout.contains(&format!("({uip})")),
            "{cli}: {} {}",
            out.stdout,
            out.stderr
        );
        run(&["rm", "-f", &r]).ok();
    }
    // Starting a container whose linked one is down fails, naming both.
    s.berth(&[
        "create", "--name", "late", "--link", "web:w", "busybox", "true",
    ])
    .ok();
    s.berth(&["stop", "-t", "0", "web"]).ok();
    let out = s.berth(&["start", "late"]);
    assert!(
        out.stderr
            .contains("Cannot link to a non running container: /web AS /late/w"),
        "{}",
        out.stderr
    );
    s.berth(&["rm", "-f", "late", "web", "uweb"]).ok();
    s.berth(&["network", "rm", "ln"]).ok();
}

/// Dual-stack user networks as dockerd 20.10 makes them: `--ipv6` with an
/// IPv6 subnet, both addresses in inspect and in DNS, `--ip6`; `--ipv6`
/// without an IPv6 subnet is refused as dockerd refuses it; the default
/// bridge stays IPv4. The gateway serves at once, as newer dockerd's.
#[test]
fn ipv6_networks() {
    let s = stack();
    let v6 = s.net.subnet6(1);
    let prefix = v6.trim_end_matches("/64");
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let out = run(&["network", "create", "--ipv6", "v6none"]);
        assert!(
            out.stderr.contains("non-overlapping IPv6 address pool"),
            "{cli}: {}",
            out.stderr
        );
        let bridge = format!(
            "com.docker.network.bridge.name={}",
            s.net.bridge(if cli == "berth" { "b6" } else { "d6" })
        );
        run(&[
            "network", "create", "--ipv6", "--subnet", &v6, "-o", &bridge, "v6",
        ])
        .ok();
        assert_eq!(
            run(&["network", "inspect", "-f", "{{.EnableIPv6}}", "v6"]).ok(),
            "true",
            "{cli}"
        );
        // The new network's gateway answers the first container's first
        // packet (its address is made without DAD, as Docker 23+ makes it;
        // dockerd 20.10's stays tentative for ~2 s).
        let gateway = format!("{prefix}1");
        run(&[
            "run",
            "--rm",
            "--network",
            "v6",
            "busybox",
            "ping",
            "-6",
            "-c1",
            "-W1",
            &gateway,
        ])
        .ok();
        let fixed = format!("{prefix}99");
        run(&[
            "run",
            "-d",
            "--name",
            "six",
            "--network",
            "v6",
            "--ip6",
            &fixed,
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
        let got = run(&["inspect", "-f", "{{.NetworkSettings.Networks.v6.GlobalIPv6Address}}/{{.NetworkSettings.Networks.v6.GlobalIPv6PrefixLen}} {{.NetworkSettings.Networks.v6.IPv6Gateway}} {{.NetworkSettings.Networks.v6.IPAddress}}", "six"]).ok().to_string();
        assert!(
            got.starts_with(&format!("{fixed}/64 {prefix}1 ")),
            "{cli}: {got}"
        );
        assert!(!got.ends_with(' '), "{cli}: no IPv4 address: {got}");
        // Both families by name, and traffic over IPv6.
        let out = run(&[
            "run",
            "--rm",
            "--network",
            "v6",
            "busybox",
            "sh",
            "-c",
            "nslookup -type=AAAA six | grep Address: | tail -1; ping -6 -c1 -W5 six | head -1",
        ]);
        assert!(
            out.stdout.contains(&format!("Address: {fixed}")),
            "{cli}: {} {}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains(&format!("PING six ({fixed})")),
            "{cli}: {}",
            out.stdout
        );
        run(&["rm", "-f", "six"]).ok();
        run(&["network", "rm", "v6"]).ok();
    }
    let out = s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -6 addr show eth0 | grep -c global || true",
    ]);
    assert_eq!(out.ok(), "0", "the default bridge has no IPv6");
}

/// daemon.json `ipv6` with `fixed-cidr-v6` puts the default bridge on both
/// families; without the subnet berthd refuses to start, naming it.
#[test]
fn the_default_bridge_takes_ipv6_from_daemon_json() {
    let v6 = format!("fd01:{:x}:{:x}::/64", std::process::id() % 0xffff, 7);
    let s = Stack::start_with(serde_json::json!({"ipv6": true, "fixed-cidr-v6": v6}));
    s.load_busybox();
    let prefix = v6.trim_end_matches("/64");
    let out = s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -6 addr show eth0 | grep global",
    ]);
    assert!(
        out.ok().contains(&format!("inet6 {prefix}")),
        "{}",
        out.stdout
    );
    let cfg = s.berth(&[
        "network",
        "inspect",
        "-f",
        "{{.EnableIPv6}} {{json .IPAM.Config}}",
        "bridge",
    ]);
    assert!(
        cfg.ok().starts_with("true ") && cfg.stdout.contains(&v6),
        "{}",
        cfg.stdout
    );

    let bad = s.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"ipv6": true}"#).unwrap();
    let out = s.command(
        integration_tests::bin("berthd").to_str().unwrap(),
        &["--validate", "--config-file", bad.to_str().unwrap()],
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("fixed-cidr-v6"), "{}", out.stderr);
}

/// OCI annotations (API 1.43, `docker run --annotation`): shown by inspect,
/// written into the runtime's bundle, refused with an empty key, and not
/// read from a client of an older API version, as dockerd 24+ does.
#[test]
fn annotations_reach_the_runtime() {
    let s = stack();
    let bundle_annotations = |id: &str| -> serde_json::Value {
        let path = s
            .lc()
            .state
            .join("tasks/berth")
            .join(id)
            .join("config.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        spec["annotations"].clone()
    };
    let want = serde_json::json!({"com.example.k": "v=w", "flag": ""});
    for cli in clis() {
        let run = |args: &[&str]| cli_run(&s, cli, args);
        let name = format!("ann-{cli}");
        let id = run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--annotation",
            "com.example.k=v=w",
            "--annotation",
            "flag",
            "busybox",
            "sleep",
            "60",
        ])
        .ok()
        .to_string();
        let shown = run(&["inspect", "-f", "{{json .HostConfig.Annotations}}", &name]);
        let shown: serde_json::Value = serde_json::from_str(shown.ok()).unwrap();
        assert_eq!(shown, want, "{cli}");
        assert_eq!(bundle_annotations(&id), want, "{cli}");
        run(&["rm", "-f", &name]).ok();
    }

    // None given: no Annotations key (Go's omitempty), none in the bundle.
    let id = s
        .berth(&["run", "-d", "busybox", "sleep", "60"])
        .ok()
        .to_string();
    let (_, body) = s.api("GET", &format!("/containers/{id}/json"), None);
    let inspect: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(inspect["HostConfig"].get("Annotations").is_none(), "{body}");
    assert!(bundle_annotations(&id).is_null());
    s.berth(&["rm", "-f", &id]).ok();

    // An empty key: 400 in dockerd's words, and nothing is made.
    let before = s.berth(&["ps", "-aq"]).ok().to_string();
    let (code, body) = s.api(
        "POST",
        "/v1.43/containers/create?name=badann",
        Some(r#"{"Image":"busybox","HostConfig":{"Annotations":{"":"a"}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(
            "invalid Annotations: the empty string is not permitted as an annotation key"
        ),
        "{body}"
    );
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), before);

    // A client of API 1.42 knows no annotations: they are not read.
    let (code, body) = s.api(
        "POST",
        "/v1.42/containers/create?name=oldann",
        Some(r#"{"Image":"busybox","HostConfig":{"Annotations":{"a":"b"}}}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (_, body) = s.api("GET", "/containers/oldann/json", None);
    let inspect: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(inspect["HostConfig"].get("Annotations").is_none(), "{body}");

    // docker-py has no keyword for them; its users set the field.
    let script = r#"
import docker
c = docker.from_env(version="1.43").api
hc = c.create_host_config()
hc["Annotations"] = {"org.example.py": "1"}
ctr = c.create_container("busybox", "true", host_config=hc, name="pyann")
print(c.inspect_container(ctr["Id"])["HostConfig"]["Annotations"]["org.example.py"])
c.remove_container(ctr["Id"])
"#;
    let out = s.command("/usr/bin/python3", &["-c", script]);
    assert_eq!(out.ok(), "1");
    s.berth(&["rm", "oldann"]).ok();
}
