//! docker-compose 1.29 (Debian's package, which talks to the engine through
//! docker-py) running a realistic project against berthd, unmodified: two
//! networks and the project's default, a named volume and a bind, env_file
//! and interpolation, healthchecks and depends_on conditions, a published
//! port, restart policies, scale, and the verbs people use.

use std::path::PathBuf;

use integration_tests::eventually;
use integration_tests::stack::{Out, Stack};
use integration_tests::tmux::{Tmux, reporting};

const COMPOSE: &str = "/usr/bin/docker-compose";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn curl(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "3", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A compose project in the stack's directory, taken down however the test
/// ends.
struct Project<'a> {
    s: &'a Stack,
    dir: PathBuf,
    name: &'static str,
}

impl Project<'_> {
    fn new<'a>(s: &'a Stack, name: &'static str, files: &[(&str, &str)]) -> Project<'a> {
        let dir = s.dir.path().join(name);
        for (p, data) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&f, data).expect("writing the project");
        }
        Project { s, dir, name }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(COMPOSE);
        c.current_dir(&self.dir)
            .env("DOCKER_HOST", &self.s.host)
            .env_remove("DOCKER_CONTEXT")
            // `run` and `exec` hand over to the docker CLI, compose's
            // default. Its other path (COMPOSE_INTERACTIVE_NO_CLI) attaches
            // only after the start (dockerpty opens its sockets lazily), so
            // what a short process writes is lost to a race on any engine:
            // CI saw `run --rm worker echo ran` print nothing.
            .env("DOCKER_CONFIG", self.s.dir.path().join("docker-cli"))
            .args(["-p", self.name])
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        self.s.run(self.cmd(args), None)
    }

    /// A compose command line for a terminal.
    fn line(&self, args: &str) -> String {
        format!(
            "cd {} && DOCKER_HOST={} {COMPOSE} -p {} {args}",
            self.dir.display(),
            self.s.host,
            self.name
        )
    }

    /// The id of a service's container (`-q` of `ps`).
    fn id(&self, service: &str) -> String {
        self.run(&["ps", "-q", service]).ok().trim().to_string()
    }
}

/// The stdout of a command that attaches stdin (compose `run`), its stdin
/// held open until it ends, as from a terminal or a pipe.
fn held_stdin(mut cmd: std::process::Command) -> String {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting compose");
    let held = child.stdin.take();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(out) => out.expect("compose's output"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("compose did not end within 120 s");
        }
    };
    drop(held);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "0"]);
    }
}

fn state(s: &Stack, id: &str) -> String {
    s.berth(&["inspect", "-f", "{{.State.Status}}", id])
        .stdout
        .trim()
        .to_string()
}

fn health(s: &Stack, id: &str) -> String {
    s.berth(&["inspect", "-f", "{{.State.Health.Status}}", id])
        .stdout
        .trim()
        .to_string()
}

fn project_files(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("www/index.html", "hello-web\n".to_string()),
        (".env", format!("PORT={port}\n")),
        ("client.env", "GREETING=from-env-file\n".to_string()),
        (
            "docker-compose.yml",
            r#"services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /www
    volumes:
      - ./www:/www:ro
      - data:/data
    ports: ["127.0.0.1:${PORT}:80"]
    networks:
      front:
        aliases: [site]
      back: {}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/"]
      interval: 1s
      timeout: 2s
      retries: 3
    restart: unless-stopped
    stop_signal: SIGKILL
  init:
    image: busybox
    command: sh -c "echo init > /data/init"
    volumes: [data:/data]
  client:
    image: busybox
    command: sh -c 'echo "$$GREETING ${USER_NAME:-nobody}"; while true; do wget -q -O- http://site/ ; sleep 1; done'
    env_file: client.env
    depends_on:
      web: {condition: service_healthy}
      init: {condition: service_completed_successfully}
    networks: [front]
    stop_grace_period: 1s
  worker:
    image: busybox
    command: sleep 1000
    init: true
    restart: always
networks:
  front:
  back:
volumes:
  data:
"#
            .to_string(),
        ),
    ]
}

#[test]
fn a_project_comes_up_works_and_goes_away_with_compose_verbs() {
    let s = Stack::start();
    s.load_busybox();
    let port = free_port();
    let files = project_files(port);
    let files: Vec<(&str, &str)> = files.iter().map(|(p, d)| (*p, d.as_str())).collect();
    let p = Project::new(&s, "demo", &files);

    // config: the file as compose reads it, interpolated.
    let config = p.run(&["config"]).ok().to_string();
    assert!(
        config.contains(&format!("127.0.0.1:{port}:80/tcp")),
        "{config}"
    );

    p.run(&["up", "-d"]).ok();
    let web = p.id("web");
    assert_eq!(
        health(&s, &web),
        "healthy",
        "up -d returned before web was healthy"
    );
    let init = p.id("init");
    assert_eq!(
        s.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &init
        ])
        .ok()
        .trim(),
        "exited 0"
    );
    let ps = p.run(&["ps"]).ok().to_string();
    assert!(ps.contains("Up (healthy)"), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/")), "hello-web\n");
    // The client reached web by its alias on the front network, with its
    // environment from the env_file and interpolation's default.
    assert!(
        eventually(20, || {
            let logs = p.run(&["logs", "--no-color", "client"]).stdout;
            logs.contains("from-env-file nobody") && logs.contains("hello-web")
        }),
        "{}",
        p.run(&["logs", "--no-color", "client"]).stdout
    );

    // exec, run, top, port.
    assert_eq!(
        p.run(&["exec", "-T", "web", "cat", "/data/init"])
            .ok()
            .trim(),
        "init"
    );
    assert_eq!(
        held_stdin(p.cmd(&["run", "--rm", "worker", "echo", "ran"])),
        "ran"
    );
    assert!(p.run(&["top", "web"]).ok().contains("httpd -f -p 80"));
    assert_eq!(
        p.run(&["port", "web", "80"]).ok().trim(),
        format!("127.0.0.1:{port}")
    );

    // pause, unpause, stop, start, kill, restart.
    let worker = p.id("worker");
    p.run(&["pause", "worker"]).ok();
    assert_eq!(state(&s, &worker), "paused");
    p.run(&["unpause", "worker"]).ok();
    assert_eq!(state(&s, &worker), "running");
    p.run(&["stop", "worker"]).ok();
    assert_eq!(state(&s, &worker), "exited");
    p.run(&["start", "worker"]).ok();
    assert_eq!(state(&s, &worker), "running");
    p.run(&["kill", "worker"]).ok();
    assert_eq!(state(&s, &worker), "exited");
    p.run(&["restart", "web"]).ok();
    assert_eq!(state(&s, &web), "running");
    assert!(eventually(20, || health(&s, &web) == "healthy"));
    p.run(&["rm", "-f", "worker"]).ok();
    assert!(s.berth(&["inspect", &worker]).code != 0);

    // scale, then a change that recreates exactly the changed service.
    p.run(&["up", "-d", "--scale", "worker=3"]).ok();
    let workers = p.run(&["ps", "-q", "worker"]).ok().to_string();
    assert_eq!(workers.split_whitespace().count(), 3, "{workers}");
    let client = p.id("client");
    let yml = p.dir.join("docker-compose.yml");
    let text = std::fs::read_to_string(&yml).expect("the file");
    std::fs::write(&yml, text.replace("sleep 1000", "sleep 2000")).expect("the file");
    let out = p.run(&["up", "-d", "--scale", "worker=1"]);
    out.ok();
    assert!(out.stderr.contains("Recreating"), "{out:?}");
    assert_eq!(p.id("web"), web, "web was recreated: {out:?}");
    assert_eq!(p.id("client"), client, "client was recreated: {out:?}");
    let worker = p.id("worker");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{json .Config.Cmd}}", &worker])
            .ok()
            .trim(),
        r#"["sleep","2000"]"#
    );

    // down -v: nothing of the project is left.
    p.run(&["down", "-v", "--remove-orphans"]).ok();
    assert!(s.berth(&["ps", "-aq"]).ok().is_empty());
    let nets = s
        .berth(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .to_string();
    assert!(!nets.contains("demo_"), "{nets}");
    let vols = s.berth(&["volume", "ls", "-q"]).ok().to_string();
    assert!(!vols.contains("demo_data"), "{vols}");
}

#[test]
fn up_in_the_foreground_stops_the_project_on_ctrl_c() {
    let s = Stack::start();
    s.load_busybox();
    let p = Project::new(
        &s,
        "fg",
        &[(
            "docker-compose.yml",
            "services:\n  talker:\n    image: busybox\n    command: sh -c 'while true; do echo tick; sleep 1; done'\n    stop_grace_period: 1s\n  quiet:\n    image: busybox\n    command: sleep 1000\n    init: true\n",
        )],
    );
    let t = Tmux::start(s.dir.path(), 120, 40, &reporting(&p.line("up")));
    t.wait_for(60, "talker_1  | tick").unwrap();
    let talker = p.id("talker");
    let quiet = p.id("quiet");
    assert_eq!(state(&s, &talker), "running");
    t.keys(&["C-c"]);
    t.wait_for(30, "EXIT=").unwrap();
    let screen = t.screen();
    assert!(screen.contains("Stopping"), "{screen}");
    assert_eq!(state(&s, &talker), "exited", "{screen}");
    assert_eq!(state(&s, &quiet), "exited", "{screen}");
    // exec with a terminal, as `docker-compose exec` is used most.
    p.run(&["start"]).ok();
    t.respawn(&reporting(&p.line("exec quiet sh")));
    t.wait_for(30, "/ #").unwrap();
    t.type_line("tty; echo $((6*7))");
    t.wait_for(10, "42").unwrap();
    assert!(t.screen().contains("/dev/pts/"), "{}", t.screen());
    t.type_line("exit 3");
    t.wait_for(10, "EXIT=3").unwrap();
}
