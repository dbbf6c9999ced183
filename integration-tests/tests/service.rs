//! berth installed and run as a service: scripts/install and uninstall
//! into a staging root, the systemd units (checked by systemd-analyze), the
//! API socket passed by systemd (`-H fd://`) and the daemons' readiness
//! notification (Type=notify), completions that load in bash, man pages.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::stack::Stack;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

fn bin_dir() -> PathBuf {
    integration_tests::bin("berthd")
        .parent()
        .expect("the binaries' directory")
        .to_path_buf()
}

fn script(name: &str, destdir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(repo().join("scripts").join(name))
        .args(args)
        .env("DESTDIR", destdir)
        .env("BERTH_BIN", bin_dir())
        .env_remove("PREFIX")
        .output()
        .expect("running the script")
}

fn files_under(root: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((format!("/{rel}"), meta.permissions().mode() & 0o7777));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_puts_every_file_with_its_mode_and_uninstall_takes_exactly_them() {
    let dest = tempfile::tempdir().unwrap();
    let o = script("install", dest.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut want: Vec<(String, u32)> = [
        "berth",
        "berthd",
        "berth-lifecycled",
        "berth-shim",
        "berth-runtime",
        "berth-dns",
        "berth-ctr",
    ]
    .iter()
    .map(|b| (format!("/usr/local/bin/{b}"), 0o755))
    .collect();
    for f in [
        "/etc/berth/daemon.json",
        "/etc/systemd/system/berth-lifecycled.service",
        "/etc/systemd/system/berthd.service",
        "/etc/systemd/system/berthd.socket",
        "/usr/local/share/bash-completion/completions/berth",
        "/usr/local/share/zsh/vendor-completions/_berth",
        "/usr/local/share/fish/vendor_completions.d/berth.fish",
        "/usr/local/share/berth/install-manifest",
    ] {
        want.push((f.to_string(), 0o644));
    }
    want.sort();
    let (man, other): (Vec<_>, Vec<_>) = files_under(dest.path())
        .into_iter()
        .partition(|(f, _)| f.starts_with("/usr/local/share/man/"));
    assert_eq!(other, want);
    // A page for each command and subcommand, from the clap definitions.
    for page in [
        "man1/berth.1",
        "man1/berth-run.1",
        "man1/berth-ctr.1",
        "man8/berthd.8",
        "man8/berth-lifecycled.8",
        "man8/berth-runtime.8",
        "man8/berth-runtime-events.8",
        "man8/berth-dns.8",
    ] {
        let f = format!("/usr/local/share/man/{page}");
        assert!(man.contains(&(f.clone(), 0o644)), "{f} missing");
    }
    assert!(man.len() > 100, "{} man pages", man.len());
    let rendered = Command::new("man")
        .arg("-l")
        .arg(dest.path().join("usr/local/share/man/man8/berthd.8"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man (Debian's man-db)");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success() && text.contains("NAME") && text.contains("--config-file"),
        "{text}"
    );
    // The units run the binaries where they were installed.
    let unit = fs::read_to_string(dest.path().join("etc/systemd/system/berthd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/berthd -H fd://"),
        "{unit}"
    );
    // The operator's configuration survives a second install.
    let config = dest.path().join("etc/berth/daemon.json");
    fs::write(&config, "{\"debug\": true}\n").unwrap();
    let o = script("install", dest.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read_to_string(&config).unwrap(), "{\"debug\": true}\n");

    let o = script("uninstall", dest.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        files_under(dest.path()),
        [("/etc/berth/daemon.json".to_string(), 0o644)]
    );
    let o = script("uninstall", dest.path(), &[]);
    assert!(
        !o.status.success(),
        "a second uninstall finds nothing to remove"
    );
}

/// The units, with ExecStart pointing at the binaries under test, pass
/// `systemd-analyze verify` (syntax, dependencies, executables).
#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units: Vec<PathBuf> = [
        "berth-lifecycled.service",
        "berthd.service",
        "berthd.socket",
    ]
    .iter()
    .map(|u| {
        let text = fs::read_to_string(repo().join("contrib/systemd").join(u)).unwrap();
        let p = dir.path().join(u);
        fs::write(
            &p,
            text.replace("@bindir@", &bin_dir().display().to_string()),
        )
        .unwrap();
        p
    })
    .collect();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// berthd as berthd.socket starts it: the socket made by systemd (here
/// `systemd-socket-activate`) and passed as LISTEN_FDS/LISTEN_PID, served
/// with `-H fd://`, and READY=1 on NOTIFY_SOCKET once it serves.
#[test]
fn berthd_serves_the_socket_systemd_passes_and_says_when_it_is_ready() {
    let s = Stack::start_activated();
    let notify = s.notify.as_ref().expect("the notify socket");
    assert!(said_ready(notify), "berthd said no READY=1");
    s.load_busybox();
    assert_eq!(
        s.berth(&["run", "--rm", "busybox", "echo", "activated"])
            .ok(),
        "activated"
    );
    // The socket is systemd's: berthd never made it, and it stays.
    assert!(s.socket.exists());
}

/// `-H fd://` without sockets passed (berthd started by hand, not by
/// berthd.socket) is a start error that says so, before berthd makes
/// anything; a malformed fd host is refused by `--validate`.
#[test]
fn berthd_refuses_fd_hosts_without_passed_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let data_root = dir.path().join("engine");
    let config = dir.path().join("daemon.json");
    fs::write(&config, "{}").unwrap();
    let o = Command::new(integration_tests::bin("berthd"))
        .args(["-H", "fd://", "--config-file"])
        .arg(&config)
        .arg("--data-root")
        .arg(&data_root)
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .arg("--lifecycled")
        .arg(dir.path().join("none.sock"))
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("no sockets were passed"), "{err}");
    assert!(
        !data_root.exists(),
        "berthd made its data root before failing"
    );
    let o = Command::new(integration_tests::bin("berthd"))
        .args(["-H", "fd://x", "--validate"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("fd://"));
}

/// Whether the next message on a NOTIFY_SOCKET (within 10 s) has READY=1.
fn said_ready(notify: &std::os::unix::net::UnixDatagram) -> bool {
    let mut buf = [0u8; 256];
    let _ = notify.set_read_timeout(Some(Duration::from_secs(10)));
    notify.recv(&mut buf).is_ok_and(|n| {
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
    })
}

/// berth-lifecycled with its socket (`l.sock`) and roots in `dir`.
fn lifecycled_in(dir: &Path, config: &Path) -> Command {
    let mut c = Command::new(integration_tests::bin("berth-lifecycled"));
    c.arg("--config")
        .arg(config)
        .arg("--address")
        .arg(dir.join("l.sock"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--state")
        .arg(dir.join("state"));
    c
}

/// berth-lifecycled tells systemd it is ready once its socket serves.
#[test]
fn lifecycled_says_when_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let address = dir.path().join("l.sock");
    let mut child = lifecycled_in(dir.path(), Path::new("/dev/null"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = said_ready(&notify);
    let connected = std::os::unix::net::UnixStream::connect(&address).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "lifecycled said no READY=1");
    assert!(connected, "READY=1 before the socket served");
}

#[test]
fn completions_load_in_bash() {
    let berth = integration_tests::bin("berth");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completion bash) && complete -p berth",
            berth.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("-F _berth berth"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    for shell in ["zsh", "fish"] {
        let o = Command::new(&berth)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
    let o = Command::new(&berth)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
}

/// SIGHUP reads daemon.json again, as dockerd's reload: debug and the
/// registry mirrors change live, a key that needs a restart is named in
/// the log, running containers are untouched, and a broken file changes
/// nothing (berthd keeps running with what it had).
#[test]
fn sighup_reloads_the_configuration_live() {
    let s = Stack::start();
    s.load_busybox();
    let id = s
        .berth(&["run", "-d", "busybox", "sleep", "300"])
        .ok()
        .to_string();
    let pid_of = |id: &str| {
        s.berth(&["inspect", "-f", "{{.State.Pid}}", id])
            .ok()
            .to_string()
    };
    let pid = pid_of(&id);
    let info = || -> serde_json::Value {
        serde_json::from_str(&s.api("GET", "/info", None).1).expect("info JSON")
    };
    assert_eq!(info()["Debug"], false);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&s.daemon_json).unwrap()).unwrap();
    cfg["debug"] = serde_json::json!(true);
    cfg["registry-mirrors"] = serde_json::json!(["http://127.0.0.1:5999"]);
    cfg["shutdown-timeout"] = serde_json::json!(31);
    fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    s.reload_berthd();
    assert!(integration_tests::eventually(10, || info()["Debug"] == true));
    let i = info();
    // Written as dockerd writes a mirror: scheme://host/.
    assert_eq!(
        i["RegistryConfig"]["Mirrors"],
        serde_json::json!(["http://127.0.0.1:5999/"])
    );
    // As the docker CLI sees it.
    let mirrors = s.docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert_eq!(mirrors.ok(), r#"["http://127.0.0.1:5999/"]"#);
    assert!(
        integration_tests::eventually(10, || s.log().contains("shutdown-timeout")),
        "{}",
        s.log()
    );
    // A broken file: nothing changes, berthd goes on.
    fs::write(&s.daemon_json, "{").unwrap();
    s.reload_berthd();
    assert!(
        integration_tests::eventually(10, || s.log().contains("the configuration in use stays")),
        "{}",
        s.log()
    );
    assert_eq!(info()["Debug"], true);
    assert_eq!(pid_of(&id), pid, "the container was not touched");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Running}}", &id]).ok(),
        "true"
    );
}

/// SIGHUP makes lifecycled read its configuration file again: a runtime
/// added there, and a new default runtime, are in use without a restart;
/// a broken file changes nothing.
#[test]
fn sighup_reloads_lifecycled_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lifecycled.toml");
    fs::write(&config, "").unwrap();
    let address = dir.path().join("l.sock");
    let mut child = lifecycled_in(dir.path(), &config)
        .stderr(fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _guard = Kill(&mut child);
    let version = || {
        let o = Command::new(integration_tests::bin("berth-ctr"))
            .arg("--address")
            .arg(&address)
            .arg("version")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(integration_tests::eventually(10, || version().contains(
        "runtimes:         berth-runtime (default berth-runtime)"
    )));
    fs::write(
        &config,
        "default_runtime = \"runc\"\n[runtimes.runc]\npath = \"/usr/sbin/runc\"\n",
    )
    .unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        integration_tests::eventually(10, || version().contains("(default runc)")),
        "{}",
        version()
    );
    fs::write(&config, "default_runtime = [").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let log = || fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(
        integration_tests::eventually(10, || log().contains("the configuration in use stays")),
        "{}",
        log()
    );
    assert!(version().contains("(default runc)"), "{}", version());
}

/// Logs in a form the journal and collectors read: `--log-format json`
/// is one JSON object per line; text has no colour codes when stderr is
/// not a terminal.
#[test]
fn daemons_log_json_or_plain_text() {
    for format in ["json", "text"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut child = lifecycled_in(dir.path(), Path::new("/dev/null"))
            .args(["--log-format", format])
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let serving = integration_tests::eventually(10, || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("serving on")
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(serving, "{format}: {}", fs::read_to_string(&log).unwrap());
        let text = fs::read_to_string(&log).unwrap();
        assert!(!text.contains('\x1b'), "{format}: colour codes in {text:?}");
        if format == "json" {
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect(line);
                assert!(
                    v["level"].is_string() && v["fields"]["message"].is_string(),
                    "{line}"
                );
            }
        }
    }
    let o = Command::new(integration_tests::bin("berthd"))
        .args(["--log-format", "json", "--validate"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `info` and `version` tell what this machine really has: each runtime's
/// binary and version, what the cgroups can limit (with Docker's warnings
/// for what they cannot), the file system under the data root.
#[test]
fn info_and_version_report_true_figures() {
    let s = Stack::start();
    let get = |path: &str| -> serde_json::Value {
        serde_json::from_str(&s.api("GET", path, None).1).expect("JSON")
    };
    let version = get("/version");
    let runtime = version["Components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "berth-runtime")
        .expect("berth-runtime among the components")
        .clone();
    let path = runtime["Details"]["Path"].as_str().unwrap();
    assert!(
        Path::new(path).is_absolute() && Path::new(path).exists(),
        "{runtime}"
    );
    assert_eq!(runtime["Version"], env!("CARGO_PKG_VERSION"), "{runtime}");

    let info = get("/info");
    assert_eq!(
        info["Runtimes"]["berth-runtime"]["path"], path,
        "{}",
        info["Runtimes"]
    );
    let v1_memory = Path::new("/sys/fs/cgroup/memory");
    if v1_memory.is_dir() {
        let swap = v1_memory.join("memory.memsw.limit_in_bytes").exists();
        assert_eq!(info["SwapLimit"], swap);
        // null when there is nothing to warn about, as dockerd's.
        let warned = info["Warnings"]
            .as_array()
            .is_some_and(|a| a.iter().any(|w| w == "WARNING: No swap limit support"));
        assert_eq!(warned, !swap, "{}", info["Warnings"]);
    }
    let fs_name = info["DriverStatus"][0][1].as_str().unwrap();
    assert!(!fs_name.is_empty() && fs_name != "<unknown>", "{fs_name}");

    // The real docker CLI shows them as Docker's.
    let v = s.docker(&["version"]);
    assert!(
        v.ok().contains(" berth-runtime:") && v.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        v.stdout
    );
    let runtimes = s.docker(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(runtimes.ok().contains(path), "{}", runtimes.stdout);
}

/// A systemd-journald of the test's own, in a mount namespace where
/// /run/systemd, /run/log and /var/log/journal are the test's directories:
/// daemons started in that namespace log to it, and the host's journal
/// never sees the test.
struct Journald {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Journald {
    fn start() -> Option<Journald> {
        const BIN: &str = "/lib/systemd/systemd-journald";
        for need in [BIN, "/run/systemd", "/run/log"] {
            if !Path::new(need).exists() {
                eprintln!("skipped: no {need} here to run a systemd-journald of the test's own");
                return None;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-journald")
            .tempdir()
            .unwrap();
        for d in ["systemd", "log", "var"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let script = r#"mount --bind "$1/systemd" /run/systemd &&
            mount --bind "$1/log" /run/log &&
            { [ ! -d /var/log/journal ] || mount --bind "$1/var" /var/log/journal; } &&
            exec "$2""#;
        let log = fs::File::create(dir.path().join("journald.log")).unwrap();
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(dir.path())
            .arg(BIN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let j = Journald { child, dir };
        let socket = j.dir.path().join("systemd/journal/socket");
        assert!(
            integration_tests::eventually(10, || socket.exists()),
            "journald did not come up: {}",
            fs::read_to_string(j.dir.path().join("journald.log")).unwrap_or_default()
        );
        Some(j)
    }

    fn mount_ns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/mnt", self.child.id()))
    }

    /// The entries matching `matches`, once journald has taken in all
    /// that was sent to it.
    fn entries(&self, matches: &[&str]) -> Vec<serde_json::Value> {
        let ns = format!("--mount={}", self.mount_ns().display());
        let sync = Command::new("nsenter")
            .args([&ns, "journalctl", "--sync"])
            .status()
            .unwrap();
        assert!(sync.success());
        let o = Command::new("nsenter")
            .args([&ns, "journalctl", "--no-pager", "--all", "--output=json"])
            .args(matches)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `log-driver: journald`: each line a journal entry with Docker's fields
/// (the tag, the labels and variables the options name), `docker logs`
/// reads them back (streams apart, a line cut at 16 KiB whole again,
/// `--tail`, `-f` ending with the container), a container may still pick
/// json-file, and another driver's options are refused.
#[test]
fn journald_driver_logs_to_the_journal_and_reads_it_back() {
    let Some(j) = Journald::start() else { return };
    let s = Stack::start_in_mount_ns(
        serde_json::json!({"log-driver": "journald",
            "log-opts": {"tag": "{{.Name}}", "labels": "tier", "env": "APP_ENV"}}),
        j.mount_ns(),
    );
    s.load_busybox();
    assert_eq!(
        s.docker(&["info", "--format", "{{.LoggingDriver}}"]).ok(),
        "journald"
    );
    let long = "x".repeat(20_000);
    // stderr first and apart: the streams are relayed side by side, so
    // only time orders one against the other.
    let script = format!("echo err >&2; sleep 0.2; echo out; echo {long}; printf end");
    s.docker(&[
        "run",
        "--name",
        "jl",
        "-l",
        "tier=web",
        "-e",
        "APP_ENV=prod",
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    assert_eq!(
        s.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]",
            "jl"
        ])
        .ok(),
        "journald []"
    );
    let logs = s.docker(&["logs", "jl"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_eq!(logs.stdout, format!("out\n{long}\nend\n"));
    assert_eq!(logs.stderr, "err\n");
    let tail = s.docker(&["logs", "--tail", "1", "jl"]);
    assert_eq!(tail.stdout, "end\n", "{}", tail.stderr);

    let id = s
        .docker(&["inspect", "-f", "{{.Id}}", "jl"])
        .ok()
        .to_string();
    let entries = j.entries(&["CONTAINER_NAME=jl"]);
    assert_eq!(entries.len(), 5, "{entries:?}");
    for e in &entries {
        for (field, want) in [
            ("CONTAINER_ID_FULL", id.as_str()),
            ("CONTAINER_ID", &id[..12]),
            ("CONTAINER_TAG", "jl"),
            ("SYSLOG_IDENTIFIER", "jl"),
            ("IMAGE_NAME", "busybox"),
            ("TIER", "web"),
            ("APP_ENV", "prod"),
        ] {
            assert_eq!(e[field], want, "{field} in {e}");
        }
    }
    let by_message = |m: &str| entries.iter().find(|e| e["MESSAGE"] == m).cloned();
    assert_eq!(by_message("err").unwrap()["PRIORITY"], "3");
    assert_eq!(by_message("out").unwrap()["PRIORITY"], "6");
    let cut: Vec<_> = entries
        .iter()
        .filter(|e| e["CONTAINER_PARTIAL_MESSAGE"] == "true")
        .collect();
    assert_eq!(cut.len(), 1, "{entries:?}");
    assert_eq!(cut[0]["MESSAGE"].as_str().unwrap().len(), 16 * 1024);

    s.docker(&[
        "run",
        "-d",
        "--name",
        "jf",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo l$i; sleep 0.2; done",
    ])
    .ok();
    let followed = s.docker(&["logs", "-f", "jf"]);
    assert_eq!(followed.stdout, "l1\nl2\nl3\n", "{}", followed.stderr);

    s.docker(&[
        "run",
        "--name",
        "jj",
        "--log-driver",
        "json-file",
        "busybox",
        "echo",
        "file",
    ])
    .ok();
    assert_eq!(s.docker(&["logs", "jj"]).stdout, "file\n");
    assert!(j.entries(&["CONTAINER_NAME=jj"]).is_empty());

    let bad = s.docker(&[
        "run",
        "--log-driver",
        "journald",
        "--log-opt",
        "max-size=1m",
        "busybox",
        "true",
    ]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr
            .contains("unknown log opt 'max-size' for journald log driver"),
        "{}",
        bad.stderr
    );
}

/// On a host where journald does not run, a journald container fails to
/// start with Docker's words, and the engine goes on.
#[test]
fn journald_driver_without_a_journal_says_so() {
    if Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("skipped: this host runs journald");
        return;
    }
    let s = Stack::start();
    s.load_busybox();
    let o = s.docker(&["run", "--log-driver", "journald", "busybox", "true"]);
    assert_eq!(o.code, 125, "{}", o.stdout);
    assert!(
        o.stderr.contains("journald is not enabled on this host"),
        "{}",
        o.stderr
    );
    s.docker(&["run", "--rm", "busybox", "true"]).ok();
}

/// The value of the first `key=` line of a unit in contrib/systemd, with
/// `@bindir@` as the install would write it (here: the binaries under test).
fn unit_value(unit: &str, key: &str) -> String {
    let text = fs::read_to_string(repo().join("contrib/systemd").join(unit)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{unit} has no {key}="))
        .replace("@bindir@", &bin_dir().display().to_string())
}

/// A process holding a mount namespace in which /etc/berth, /var/lib/berth
/// and /run/berth are directories of the test's (and /etc, /var/lib and /run
/// take new entries in overlays of their own): the daemons started there
/// with no flags at all find berth's default paths, and the host's are
/// never touched.
struct DefaultPaths {
    holder: std::process::Child,
    dir: tempfile::TempDir,
}

impl DefaultPaths {
    fn new() -> DefaultPaths {
        let dir = tempfile::Builder::new()
            .prefix("berth-units")
            .tempdir()
            .unwrap();
        for d in ["etc-berth", "var-lib-berth", "run-berth"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let script = r#"set -e
            for top in /etc /var/lib /run; do
                o="$1/overlay$(echo $top | tr / -)"
                mkdir -p "$o/upper" "$o/work"
                mount -t overlay overlay -o "lowerdir=$top,upperdir=$o/upper,workdir=$o/work" "$top"
            done
            for p in /etc/berth /var/lib/berth /run/berth; do
                mkdir -p "$p"
                mount --bind "$1/$(echo ${p#/} | tr / -)" "$p"
            done
            touch "$1/ready"
            exec sleep infinity"#;
        let holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let p = DefaultPaths { holder, dir };
        let ready = p.dir.path().join("ready");
        assert!(
            integration_tests::eventually(10, || ready.exists()),
            "the mount namespace was not made"
        );
        p
    }

    fn ns(&self) -> String {
        format!("--mount=/proc/{}/ns/mnt", self.holder.id())
    }

    /// `argv` (a unit's command line) run in the namespace.
    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(self.ns()).arg("--").args(argv);
        c
    }
}

impl Drop for DefaultPaths {
    /// Ends what the test started in the namespace and did not stop (the
    /// daemons and shims of a failed run), found by their namespace, then
    /// the holder: the mounts go with the namespace.
    fn drop(&mut self) {
        let holder = self.holder.id();
        let ns = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        if let Some(ours) = ns(&holder.to_string()) {
            for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(pid) = name.parse::<i32>() else {
                    continue;
                };
                if pid as u32 != holder && ns(&name).as_ref() == Some(&ours) {
                    // SAFETY: kill(2) on a process in the namespace this test made.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The daemons started exactly as the units' ExecStart= lines say (no
/// flags beyond them: berth's default paths, config files and sockets, in
/// a mount namespace where those paths are the test's), berthd on the
/// socket berthd.socket names, as systemd would pass it: both say READY=1,
/// a container runs, ExecReload= reloads berthd, and a container outlives
/// a stop of berthd (KillMode=process) and is there again when the unit
/// starts it anew.
#[test]
fn the_units_exec_start_lines_run_the_stack() {
    let paths = DefaultPaths::new();
    let root = paths.dir.path();
    let net = integration_tests::netblock::NetBlock::claim();
    let (bridge, bip, pools) = net.default_bridge_json();
    let cgroup_parent = testsupport::unique("berth-it-units");
    fs::write(
        root.join("etc-berth/daemon.json"),
        serde_json::json!({"cgroup-parent": cgroup_parent, "bridge": bridge, "bip": bip,
            "default-address-pools": pools})
        .to_string(),
    )
    .unwrap();
    fs::write(
        root.join("etc-berth/lifecycled.toml"),
        format!("cgroup_parent = \"{cgroup_parent}\"\n"),
    )
    .unwrap();

    let pre = unit_value("berth-lifecycled.service", "ExecStartPre");
    let pre: Vec<&str> = pre.trim_start_matches('-').split_whitespace().collect();
    let _ = paths.command(&pre).status();

    let notify = |name: &str| {
        let path = root.join(name);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        (path, sock)
    };
    let (lc_notify_path, lc_notify) = notify("lifecycled-notify.sock");
    let lc_line = unit_value("berth-lifecycled.service", "ExecStart");
    let lc_argv: Vec<&str> = lc_line.split_whitespace().collect();
    let mut lifecycled = paths
        .command(&lc_argv)
        .env("NOTIFY_SOCKET", &lc_notify_path)
        .stderr(fs::File::create(root.join("lifecycled.log")).unwrap())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(said_ready(&lc_notify), "lifecycled said no READY=1");
        assert!(root.join("run-berth/lifecycled.sock").exists());

        let listen = unit_value("berthd.socket", "ListenStream");
        let berthd_line = unit_value("berthd.service", "ExecStart");
        let (bd_notify_path, bd_notify) = notify("berthd-notify.sock");
        let start_berthd = || {
            let mut argv = vec![
                "systemd-socket-activate".to_string(),
                "-l".to_string(),
                listen.clone(),
                format!("-ENOTIFY_SOCKET={}", bd_notify_path.display()),
            ];
            argv.extend(berthd_line.split_whitespace().map(str::to_string));
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let child = paths
                .command(&argv)
                .stderr(
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(root.join("berthd.log"))
                        .unwrap(),
                )
                .spawn()
                .unwrap();
            // As systemd, the activator starts berthd at the first client.
            // (The last run's socket file stays until the new one is bound.)
            let sock = root.join("run-berth/berthd.sock");
            let mut first = None;
            assert!(integration_tests::eventually(10, || {
                first = std::os::unix::net::UnixStream::connect(&sock).ok();
                first.is_some()
            }));
            assert!(said_ready(&bd_notify), "berthd said no READY=1");
            child
        };
        let mut berthd = start_berthd();
        let host = format!("unix://{}/run-berth/berthd.sock", root.display());
        let docker = |args: &[&str]| {
            let o = Command::new("docker")
                .env("DOCKER_HOST", &host)
                .env("DOCKER_CONFIG", root.join("docker-cli"))
                .env_remove("DOCKER_CONTEXT")
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        let rootfs = root.join("busybox-rootfs");
        testsupport::make_rootfs(&rootfs);
        let tar = root.join("busybox.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        docker(&[
            "import",
            "--change",
            r#"CMD ["sh"]"#,
            &tar.display().to_string(),
            "busybox",
        ]);
        assert_eq!(
            docker(&["run", "--rm", "busybox", "echo", "from the units"]),
            "from the units"
        );
        let id = docker(&["run", "-d", "busybox", "sleep", "300"]);
        let pid: i32 = docker(&["inspect", "-f", "{{.State.Pid}}", &id])
            .parse()
            .unwrap();

        // ExecReload=, with $MAINPID as systemd gives it.
        let reload = unit_value("berthd.service", "ExecReload")
            .replace("$MAINPID", &berthd.id().to_string());
        let reload: Vec<&str> = reload.split_whitespace().collect();
        assert!(
            Command::new(reload[0])
                .args(&reload[1..])
                .status()
                .unwrap()
                .success()
        );
        let log = root.join("berthd.log");
        assert!(integration_tests::eventually(10, || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("reloaded the configuration")
        }));
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Running}}", &id]),
            "true"
        );

        // systemctl stop with KillMode=process: SIGTERM to the main process.
        // SAFETY: kill(2) on the pid of the berthd this test started.
        unsafe { libc::kill(berthd.id() as i32, libc::SIGTERM) };
        let _ = berthd.wait();
        // SAFETY: signal 0 only asks whether the container's process exists.
        assert_eq!(
            unsafe { libc::kill(pid, 0) },
            0,
            "the container died with berthd"
        );
        berthd = start_berthd();
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Pid}}", &id]),
            pid.to_string()
        );
        docker(&["rm", "-f", &id]);
        // SAFETY: as above.
        unsafe { libc::kill(berthd.id() as i32, libc::SIGTERM) };
        let _ = berthd.wait();
    }));
    // SAFETY: kill(2) on the pid of the lifecycled this test started.
    unsafe { libc::kill(lifecycled.id() as i32, libc::SIGTERM) };
    let _ = lifecycled.wait();
    // A failed run's containers: their processes are in these cgroups.
    testsupport::remove_cgroups(&cgroup_parent);
    // The default bridge berthd made (it keeps it across restarts, as
    // dockerd keeps docker0).
    integration_tests::stack::remove_bridge(&bridge);
    if let Err(e) = result {
        eprintln!(
            "lifecycled: {}\nberthd: {}",
            fs::read_to_string(root.join("lifecycled.log")).unwrap_or_default(),
            fs::read_to_string(root.join("berthd.log")).unwrap_or_default()
        );
        std::panic::resume_unwind(e);
    }
}
