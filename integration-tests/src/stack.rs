//! The whole stack of a test's own: berth-lifecycled (see [`Lifecycled`])
//! and berthd on sockets in a temporary root, with clients to drive it:
//! `berth`, the real `docker` CLI and anything that speaks HTTP.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::lifecycled::Lifecycled;

/// How long one client command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Stack {
    /// Always Some until Drop, which must end it before the cgroups go.
    lc: Option<Lifecycled>,
    pub dir: TempDir,
    pub socket: PathBuf,
    /// `unix://…` of berthd.
    pub host: String,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub daemon_json: PathBuf,
    /// Containers' cgroups live under /<cgroup_parent>/<id>.
    pub cgroup_parent: String,
    /// The stack's addresses and bridge names.
    pub net: crate::netblock::NetBlock,
    /// More berthd flags (tcp:// hosts, TLS files).
    pub berthd_args: Vec<String>,
    /// The network namespace berthd runs in (its bridges live there), when
    /// not the host's.
    pub netns: Option<PathBuf>,
    /// The mount namespace the daemons run in, when not the test's.
    pub mount_ns: Option<PathBuf>,
    /// `BERTH_FAULT` for berthd's next spawn.
    pub fault: Option<String>,
    /// berthd started as systemd starts it from berthd.socket: the API
    /// socket bound by `systemd-socket-activate` and passed as `-H fd://`
    /// (LISTEN_FDS, LISTEN_PID), with a NOTIFY_SOCKET at this path.
    pub activated: Option<PathBuf>,
    /// The NOTIFY_SOCKET of an activated berthd: what it tells systemd.
    pub notify: Option<std::os::unix::net::UnixDatagram>,
    child: Option<Child>,
}

/// What a client command did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The trimmed stdout of a command that must have succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed ({}):\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self.stdout.trim()
    }
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(serde_json::json!({}))
    }

    /// Starts the stack with these daemon.json keys (a test cgroup parent
    /// is added).
    pub fn start_with(daemon_json: serde_json::Value) -> Stack {
        Stack::start_with_args(daemon_json, &[])
    }

    /// The stack with more berthd flags.
    pub fn start_with_args(daemon_json: serde_json::Value, args: &[String]) -> Stack {
        Stack::start_in(daemon_json, args, None)
    }

    /// The stack with berthd in the network namespace at `netns`. Keys set
    /// to null in `daemon_json` are left out of the defaults (a null
    /// `bridge` lets the engine pick its own).
    pub fn start_in(
        daemon_json: serde_json::Value,
        args: &[String],
        netns: Option<PathBuf>,
    ) -> Stack {
        Stack::start_full(daemon_json, args, netns, false)
    }

    /// The stack with berthd socket-activated, as from berthd.socket (see
    /// [`Stack::activated`]).
    pub fn start_activated() -> Stack {
        Stack::start_full(serde_json::json!({}), &[], None, true)
    }

    /// The stack with both daemons (and so the shims) in the mount
    /// namespace at `mount_ns` (`/proc/<pid>/ns/mnt`).
    pub fn start_in_mount_ns(daemon_json: serde_json::Value, mount_ns: PathBuf) -> Stack {
        Stack::start_inner(daemon_json, &[], None, false, Some(mount_ns))
    }

    fn start_full(
        daemon_json: serde_json::Value,
        args: &[String],
        netns: Option<PathBuf>,
        activated: bool,
    ) -> Stack {
        Stack::start_inner(daemon_json, args, netns, activated, None)
    }

    fn start_inner(
        mut daemon_json: serde_json::Value,
        args: &[String],
        netns: Option<PathBuf>,
        activated: bool,
        mount_ns: Option<PathBuf>,
    ) -> Stack {
        let lc = Lifecycled::start_in(&[], mount_ns.clone());
        let dir = tempfile::Builder::new()
            .prefix("berth-stack")
            .tempdir()
            .expect("tempdir");
        let cgroup_parent = testsupport::unique("berth-it-engine");
        daemon_json["cgroup-parent"] = serde_json::json!(cgroup_parent);
        let net = crate::netblock::NetBlock::claim();
        let (bridge, bip, pools) = net.default_bridge_json();
        for (k, v) in [
            ("bridge", serde_json::json!(bridge)),
            ("bip", serde_json::json!(bip)),
            ("default-address-pools", pools),
            // Legacy plugins only from the test's own directory, never
            // the host's /run/docker/plugins.
            (
                "plugin-dirs",
                serde_json::json!([dir.path().join("plugins-v1")]),
            ),
        ] {
            if daemon_json.get(k).is_none() {
                daemon_json[k] = v;
            }
        }
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, daemon_json.to_string()).expect("writing daemon.json");
        let socket = dir.path().join("berthd.sock");
        let mut s = Stack {
            host: format!("unix://{}", socket.display()),
            socket,
            data_root: dir.path().join("engine"),
            exec_root: dir.path().join("engine-run"),
            daemon_json: config,
            cgroup_parent,
            net,
            berthd_args: args.to_vec(),
            netns,
            mount_ns,
            fault: None,
            activated: None,
            notify: None,
            lc: Some(lc),
            child: None,
            dir,
        };
        if activated {
            let path = s.dir.path().join("notify.sock");
            s.notify = Some(std::os::unix::net::UnixDatagram::bind(&path).expect("notify socket"));
            s.activated = Some(path);
        }
        s.spawn_berthd();
        s
    }

    /// Where this stack's berthd looks for legacy plugins' sockets and
    /// specs (made on first use).
    pub fn legacy_plugin_dir(&self) -> PathBuf {
        let d = self.dir.path().join("plugins-v1");
        std::fs::create_dir_all(&d).expect("legacy plugin directory");
        d
    }

    /// Runs berthd with this stack's configuration and paths while the
    /// stack's own is stopped, until it exits (a start it must refuse);
    /// one still running after 30 s is killed and the test fails.
    pub fn run_berthd_to_exit(&self) -> std::process::Output {
        let mut child = Command::new(crate::bin("berthd"))
            .arg("--config-file")
            .arg(&self.daemon_json)
            .arg("-H")
            .arg(&self.host)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--lifecycled")
            .arg(&self.lc().address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running berthd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berthd did not exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("berthd's output")
    }

    /// The host pid of managed plugin `id`'s process, as lifecycled keeps
    /// it (None while it has none).
    pub fn plugin_pid(&self, id: &str) -> Option<i32> {
        let f = self
            .lc()
            .state
            .join("tasks/plugins.berth")
            .join(id)
            .join("init.pid");
        std::fs::read_to_string(f).ok()?.trim().parse().ok()
    }

    /// SIGHUP to berthd: it reads its configuration again.
    pub fn reload_berthd(&self) {
        let pid = self.berthd_pid().expect("berthd runs") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP to berthd");
    }

    /// (Re)starts berthd and waits until /_ping answers.
    pub fn spawn_berthd(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .expect("log file");
        let mut cmd = match (&self.netns, &self.mount_ns) {
            (None, None) if self.activated.is_some() => {
                // It passes on no environment of its own: -E sets it.
                let notify = self.activated.as_ref().map(|p| p.display().to_string());
                let mut c = Command::new("systemd-socket-activate");
                c.arg("-l")
                    .arg(&self.socket)
                    .arg(format!("-ENOTIFY_SOCKET={}", notify.unwrap_or_default()))
                    .arg(crate::bin("berthd"));
                c
            }
            (net, mnt) => crate::command_in(&crate::bin("berthd"), net.as_deref(), mnt.as_deref()),
        };
        match &self.fault {
            Some(f) => cmd.env("BERTH_FAULT", f),
            None => cmd.env_remove("BERTH_FAULT"),
        };
        let host = match &self.activated {
            Some(_) => "fd://".to_string(),
            None => self.host.clone(),
        };
        let child = cmd
            .arg("--config-file")
            .arg(&self.daemon_json)
            .arg("-H")
            .arg(&host)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--lifecycled")
            .arg(&self.lc().address)
            .arg("--log-level")
            .arg("debug")
            .args(&self.berthd_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("berthd exited ({status}): {}", self.log());
            }
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: berth\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
    }

    pub fn lc(&self) -> &Lifecycled {
        self.lc
            .as_ref()
            .expect("lifecycled runs until the stack is dropped")
    }

    pub fn lc_mut(&mut self) -> &mut Lifecycled {
        self.lc
            .as_mut()
            .expect("lifecycled runs until the stack is dropped")
    }

    pub fn berthd_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits for berthd to die on its own (a fault point fired); whether
    /// it did within `timeout`.
    pub fn wait_berthd_exit(&mut self, timeout: Duration) -> bool {
        crate::wait_child_exit(&mut self.child, timeout)
    }

    /// SIGKILL berthd, as a crash would.
    pub fn kill9_berthd(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM berthd and wait for it to exit.
    pub fn stop_berthd(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of the child we started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("berthd did not stop on SIGTERM: {}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// Runs a prepared command (input on its stdin); what it did.
    pub fn run(&self, mut cmd: Command, input: Option<&[u8]>) -> Out {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting a client");
        if let Some(data) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(o) => o.expect("waiting for a client"),
            Err(_) => {
                // SAFETY: kill(2) on the pid of the client we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("{cmd:?} did not finish in {COMMAND_TIMEOUT:?}");
            }
        };
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A `berth` command against this stack, with a config dir of its own.
    pub fn berth_cmd(&self) -> Command {
        let mut c = Command::new(crate::bin("berth"));
        c.env("BERTH_HOST", &self.host)
            .env("BERTH_CONFIG", self.dir.path().join("berth-cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_DEBUG");
        c
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        let mut c = self.berth_cmd();
        c.args(args);
        self.run(c, None)
    }

    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut c = self.berth_cmd();
        c.args(args);
        self.run(c, Some(input))
    }

    /// A command of the real Docker CLI against this stack.
    pub fn docker_cmd(&self) -> Command {
        let mut c = Command::new(docker_cli().expect("the docker CLI"));
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-cli"))
            .env_remove("DOCKER_CONTEXT");
        c
    }

    pub fn docker(&self, args: &[&str]) -> Out {
        let mut c = self.docker_cmd();
        c.args(args);
        self.run(c, None)
    }

    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut c = self.docker_cmd();
        c.args(args);
        self.run(c, Some(input))
    }

    /// A shell command line running `berth ARGS` against this stack, for a
    /// terminal (see [`crate::tmux`]).
    pub fn berth_line(&self, args: &str) -> String {
        format!(
            "env -u DOCKER_HOST BERTH_HOST={} BERTH_CONFIG={} {} {args}",
            self.host,
            self.dir.path().join("berth-cli").display(),
            crate::bin("berth").display()
        )
    }

    /// The same for the real Docker CLI.
    pub fn docker_line(&self, args: &str) -> String {
        format!(
            "env -u DOCKER_CONTEXT DOCKER_HOST={} DOCKER_CONFIG={} {} {args}",
            self.host,
            self.dir.path().join("docker-cli").display(),
            docker_cli().expect("the docker CLI").display()
        )
    }

    /// Any other client (curl, python), pointed at this stack.
    pub fn command(&self, program: &str, args: &[&str]) -> Out {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", &self.host).args(args);
        self.run(c, None)
    }

    /// One raw HTTP/1.1 request on berthd's socket as root: the status and
    /// the body (chunked bodies joined). For what no client would send.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        api_on(&self.socket, method, path, body)
    }

    /// A tarball of a busybox root filesystem, in the stack's directory.
    pub fn busybox_tar(&self) -> PathBuf {
        crate::busybox_tar(self.dir.path())
    }

    /// A running busybox container that wrote "mine" to /own (its own
    /// layer's change), once the file is there.
    pub fn run_with_own_file(&self) -> String {
        let id = self
            .berth(&[
                "run",
                "-d",
                "busybox",
                "sh",
                "-c",
                "echo mine > /own; sleep 60",
            ])
            .ok()
            .to_string();
        assert!(
            crate::eventually(10, || self
                .berth(&["exec", &id, "cat", "/own"])
                .stdout
                .contains("mine")),
            "{id} never wrote /own"
        );
        id
    }

    /// An image `name`: busybox plus /own, a layer busybox does not have,
    /// so that pulling it downloads and unpacks.
    pub fn image_with_own_layer(&self, name: &str) {
        let c = self.run_with_own_file();
        self.berth(&["commit", &c, name]).ok();
        self.berth(&["rm", "-f", &c]).ok();
    }

    /// `busybox:latest` (Cmd ["sh"]), imported from Debian's busybox-static.
    pub fn load_busybox(&self) {
        let tar = self.busybox_tar();
        let tar = tar.to_string_lossy();
        self.berth(&[
            "import",
            "--change",
            r#"CMD ["sh"]"#,
            &tar,
            "busybox:latest",
        ])
        .ok();
    }
}

impl Stack {
    /// Removes what the engine made outside its directories: containers
    /// through the engine (their veths, firewall rules and leases), then
    /// whatever is left if it could not (bridges, namespaces, the DNS
    /// server).
    fn teardown_network(&mut self) {
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
            let _ = self.berth(&["network", "prune", "-f"]);
        }
        self.kill9_berthd();
        let netns = self.exec_root.join("netns");
        for e in std::fs::read_dir(&netns).into_iter().flatten().flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
        // In a namespace of its own, the engine's bridges and rules go with
        // the namespace (and names there may be the host's too).
        let records = if self.netns.is_none() {
            std::fs::read_dir(self.data_root.join("network")).ok()
        } else {
            None
        };
        for e in records.into_iter().flatten().flatten() {
            let rec: serde_json::Value = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            if let Some(br) = rec["bridge"].as_str().filter(|b| !b.is_empty()) {
                remove_bridge(br);
            }
        }
        let pid_file = self.exec_root.join("dns/server.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*self.exec_root.to_string_lossy()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Deletes a bridge an engine of a test made, with its firewall rules.
pub fn remove_bridge(br: &str) {
    let _ = Command::new("ip")
        .args(["link", "delete", br, "type", "bridge"])
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for t in filter nat; do iptables-save -t $t | grep '^-A' | grep -E -- '-[io] {br}( |$)' | sed 's/^-A //' | while read -r r; do eval \"iptables -w -t $t -D $r\"; done; done"
        ))
        .status();
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.teardown_network();
        // Lifecycled's Drop ends the shims and containers; the cgroups are
        // the engine's, named by it.
        drop(self.lc.take());
        testsupport::remove_cgroups(&self.cgroup_parent);
        unmount_under(self.dir.path());
    }
}

/// Unmounts what is left mounted under `root` (a shareable container's
/// /dev/shm, a volume's options' mount) by an engine that could not, the
/// deepest first.
fn unmount_under(root: &std::path::Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| std::path::Path::new(p).starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The real Docker CLI, when this machine has one.
pub fn docker_cli() -> Option<PathBuf> {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// One raw HTTP/1.1 request on a unix socket (see [`Stack::api`]).
pub fn api_on(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connecting to berthd");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("sending a request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
        }
        out
    } else {
        rest.to_string()
    };
    (status, body)
}
