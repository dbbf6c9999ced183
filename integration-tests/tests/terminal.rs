//! Interactive use as a person at a terminal has it: tmux runs `berth` and
//! the real `docker` CLI against a stack of the test's own; keys are typed
//! and the screen is read. Also the streams that are not terminals, byte
//! for byte, signals sent to the CLI, and the WebSocket attach.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::eventually;
use integration_tests::stack::{Stack, docker_cli};
use integration_tests::tmux::{Tmux, reporting};

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

fn running(s: &Stack, name: &str) -> bool {
    s.berth(&["inspect", "-f", "{{.State.Running}}", name])
        .stdout
        .trim()
        == "true"
}

/// Types `stty size` until the terminal inside shows `rows cols`.
fn shows_size(t: &Tmux, rows: u16, cols: u16) -> bool {
    let want = format!("\n{rows} {cols}");
    eventually(15, || {
        t.type_line("stty size");
        std::thread::sleep(Duration::from_millis(300));
        t.screen().contains(&want)
    })
}

/// run -it, resize, detach with ctrl-p ctrl-q, attach again, exit with a
/// code: through `cli_line` (berth's or docker's).
fn interactive_session(s: &Stack, cli_line: impl Fn(&str) -> String, name: &str) {
    let t = Tmux::start(
        s.dir.path(),
        120,
        40,
        &reporting(&cli_line(&format!("run -it --name {name} busybox sh"))),
    );
    t.wait_for(30, "/ #").unwrap();
    assert!(shows_size(&t, 40, 120), "{}", t.screen());
    t.resize(100, 30);
    assert!(shows_size(&t, 30, 100), "{}", t.screen());
    t.type_line("echo $((6*7))");
    t.wait_for(10, "\n42").unwrap();

    // Detached: the CLI ends with 0 and gives the terminal back cooked; the
    // shell goes on.
    t.keys(&["C-p", "C-q"]);
    t.wait_for(15, "EXIT=0").unwrap();
    t.wait_for(5, "MODE=icanon").unwrap();
    assert!(running(s, name), "{}", t.screen());

    t.respawn(&reporting(&cli_line(&format!("attach {name}"))));
    t.keys(&["Enter"]);
    t.wait_for(15, "/ #").unwrap();
    t.type_line("echo $((7*8))");
    t.wait_for(10, "\n56").unwrap();
    t.type_line("exit 3");
    t.wait_for(15, "EXIT=3").unwrap();
    t.wait_for(5, "MODE=icanon").unwrap();
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.ExitCode}}", name])
            .ok(),
        "3"
    );
}

#[test]
fn berth_run_it_resizes_detaches_and_reattaches() {
    let s = stack();
    interactive_session(&s, |a| s.berth_line(a), "term");
}

#[test]
fn docker_run_it_resizes_detaches_and_reattaches() {
    if docker_cli().is_none() {
        eprintln!("no docker CLI here: skipped");
        return;
    }
    let s = stack();
    interactive_session(&s, |a| s.docker_line(a), "dterm");
}

/// config.json's `detachKeys` replaces ctrl-p,ctrl-q when no flag is
/// given, for berth's CLI and Docker's alike.
fn detach_keys_from_config(s: &Stack, cli_line: impl Fn(&str) -> String, dir: &str, name: &str) {
    let cfg = s.dir.path().join(dir);
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"detachKeys": "ctrl-x,x"}"#).unwrap();
    let t = Tmux::start(
        s.dir.path(),
        100,
        30,
        &reporting(&cli_line(&format!("run -it --name {name} busybox sh"))),
    );
    t.wait_for(30, "/ #").unwrap();
    // The old keys are the shell's now: the session goes on.
    t.keys(&["C-p", "C-q"]);
    t.type_line("echo $((6*7))");
    t.wait_for(10, "\n42").unwrap();
    assert!(!t.screen().contains("EXIT="), "{}", t.screen());
    t.keys(&["C-x", "x"]);
    t.wait_for(15, "EXIT=0").unwrap();
    assert!(running(s, name), "{}", t.screen());
    // An exec takes them too (and ends as Docker's CLI ends it: status 1).
    t.respawn(&reporting(&cli_line(&format!("exec -it {name} sh"))));
    t.keys(&["Enter"]);
    t.wait_for(15, "/ #").unwrap();
    t.keys(&["C-x", "x"]);
    t.wait_for(15, "read escape sequence").unwrap();
    t.wait_for(15, "EXIT=1").unwrap();
    assert!(running(s, name), "{}", t.screen());
}

#[test]
fn detach_keys_come_from_the_config_file() {
    let s = stack();
    detach_keys_from_config(&s, |a| s.berth_line(a), "berth-cli", "keys");
}

#[test]
fn docker_detach_keys_come_from_the_config_file() {
    if docker_cli().is_none() {
        eprintln!("no docker CLI here: skipped");
        return;
    }
    // A stack of its own: one tmux server per test directory.
    let s = stack();
    detach_keys_from_config(&s, |a| s.docker_line(a), "docker-cli", "dkeys");
}

#[test]
fn exec_it_gets_its_own_terminal() {
    let s = stack();
    s.berth(&["run", "-dit", "--name", "box", "busybox", "sh"])
        .ok();
    let t = Tmux::start(
        s.dir.path(),
        90,
        25,
        &reporting(&s.berth_line("exec -it box sh")),
    );
    t.wait_for(30, "/ #").unwrap();
    assert!(shows_size(&t, 25, 90), "{}", t.screen());
    t.resize(70, 20);
    assert!(shows_size(&t, 20, 70), "{}", t.screen());
    t.type_line("tty");
    t.wait_for(10, "/dev/pts/").unwrap();
    t.type_line("exit 5");
    t.wait_for(15, "EXIT=5").unwrap();
    t.wait_for(5, "MODE=icanon").unwrap();
    if docker_cli().is_some() {
        t.respawn(&reporting(&s.docker_line("exec -it box sh")));
        t.wait_for(30, "/ #").unwrap();
        assert!(shows_size(&t, 20, 70), "{}", t.screen());
        t.type_line("exit 6");
        t.wait_for(15, "EXIT=6").unwrap();
    }
    // The container's own shell never noticed.
    assert!(running(&s, "box"));
}

#[test]
fn a_terminal_is_refused_without_one() {
    let s = stack();
    let out = s.berth_stdin(&["run", "-it", "--rm", "busybox", "true"], b"");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.trim(), "the input device is not a TTY");
    // Nothing was created.
    assert_eq!(s.berth(&["ps", "-aq"]).ok(), "");
    let out = s.berth_stdin(&["run", "-t", "--rm", "busybox", "tty"], b"");
    assert_eq!(out.ok(), "/dev/pts/0");
}

/// Sends `sig` to the CLI running a container that reports the signals it
/// gets; the CLI's exit status and what the container printed.
fn signal_cli(mut cli: Command, sig: nix::sys::signal::Signal) -> (Option<i32>, String) {
    let mut child = cli
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the CLI");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let n = stdout.read(&mut buf).expect("reading the CLI");
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
        .expect("signalling the CLI");
    let mut rest = Vec::new();
    // The CLI ends by itself: with the container, or on the signal.
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_end(&mut rest);
        rest
    });
    let mut status = None;
    for _ in 0..200 {
        if let Ok(Some(st)) = child.try_wait() {
            status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    seen.extend(reader.join().unwrap_or_default());
    (
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

const TRAPPER: &str =
    "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";

#[test]
fn signals_to_the_cli_reach_the_container_with_sig_proxy() {
    use nix::sys::signal::Signal::SIGTERM;
    let s = stack();
    let mut cli = s.berth_cmd();
    cli.args(["run", "--name", "sp", "busybox", "sh", "-c", TRAPPER]);
    let (code, out) = signal_cli(cli, SIGTERM);
    assert_eq!(code, Some(7), "{out}");
    assert!(out.contains("got TERM"), "{out}");

    // --sig-proxy=false: the signal is the CLI's alone.
    let mut cli = s.berth_cmd();
    cli.args([
        "run",
        "--sig-proxy=false",
        "--name",
        "nosp",
        "busybox",
        "sh",
        "-c",
        TRAPPER,
    ]);
    let (code, out) = signal_cli(cli, SIGTERM);
    assert_eq!(code, None, "the CLI should have died of SIGTERM: {out}");
    assert!(!out.contains("got TERM"), "{out}");
    assert!(running(&s, "nosp"));

    if docker_cli().is_some() {
        let mut cli = s.docker_cmd();
        cli.args(["run", "--name", "dsp", "busybox", "sh", "-c", TRAPPER]);
        let (code, out) = signal_cli(cli, SIGTERM);
        assert_eq!(code, Some(7), "{out}");
        assert!(out.contains("got TERM"), "{out}");
    }
}

/// Pseudo-random bytes with runs of NULs, the same every run.
fn binary_data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(7) {
            out.extend(std::iter::repeat_n(0u8, (x >> 56) as usize));
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Pipes `input` through the command; its stdout and stderr as bytes.
fn pipe_through(mut cmd: Command, input: &std::path::Path) -> (i32, Vec<u8>, Vec<u8>) {
    let out = cmd
        .stdin(std::fs::File::open(input).expect("input"))
        .output()
        .expect("running the CLI");
    (out.status.code().unwrap_or(-1), out.stdout, out.stderr)
}

#[test]
fn binary_streams_pass_byte_for_byte() {
    let s = stack();
    let data = binary_data(100 << 20);
    let input = s.dir.path().join("input.bin");
    std::fs::write(&input, &data).expect("writing the input");
    let mut clis = vec![s.berth_cmd()];
    if docker_cli().is_some() {
        clis.push(s.docker_cmd());
    }
    for mut cli in clis {
        let name = format!("{:?}", cli.get_program());
        cli.args(["run", "-i", "--rm", "busybox", "cat"]);
        let (code, out, err) = pipe_through(cli, &input);
        assert_eq!(code, 0, "{name}: {}", String::from_utf8_lossy(&err));
        assert_eq!(out.len(), data.len(), "{name}");
        assert!(out == data, "{name}: the bytes differ");
    }

    // Both streams at once, NULs and frames larger than a read: each byte
    // on its own stream, in order.
    let script = "printf 'a\\000b\\n'; printf '\\000err\\000' >&2; head -c 70000 /dev/zero; printf end; printf tail >&2";
    let mut want_out = b"a\0b\n".to_vec();
    want_out.extend(std::iter::repeat_n(0u8, 70000));
    want_out.extend_from_slice(b"end");
    let want_err = b"\0err\0tail".to_vec();
    let empty = s.dir.path().join("empty");
    std::fs::write(&empty, b"").expect("writing");
    let mut clis = vec![s.berth_cmd()];
    if docker_cli().is_some() {
        clis.push(s.docker_cmd());
    }
    for mut cli in clis {
        cli.args(["run", "--rm", "busybox", "sh", "-c", script]);
        let (code, out, err) = pipe_through(cli, &empty);
        assert_eq!(code, 0);
        assert!(out == want_out, "stdout: {} bytes", out.len());
        assert_eq!(err, want_err);
    }
}

#[test]
fn top_takes_ps_options() {
    let s = stack();
    s.berth(&["run", "-d", "--name", "tp", "busybox", "sleep", "600"])
        .ok();
    let out = s.berth(&["top", "tp"]).ok().to_string();
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert!(lines.any(|l| l.ends_with("sleep 600")), "{out}");
    let out = s.berth(&["top", "tp", "-o", "pid,comm"]).ok().to_string();
    assert!(out.starts_with("PID"), "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.ends_with("sleep")),
        "{out}"
    );
    assert_eq!(
        out.lines().count(),
        2,
        "only the container's processes: {out}"
    );
    if docker_cli().is_some() {
        let out = s.docker(&["top", "tp", "aux"]).ok().to_string();
        assert!(out.starts_with("USER"), "{out}");
        assert!(out.contains("%CPU"), "{out}");
    }
    let out = s.berth(&["top", "tp", "--no-such-option"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Error response from daemon"), "{out:?}");
}

/// An HTTP request to berthd with curl; the body.
fn curl(s: &Stack, args: &[&str]) -> String {
    let socket = s.socket.to_string_lossy().into_owned();
    let mut all = vec!["-sS", "--unix-socket", socket.as_str()];
    all.extend_from_slice(args);
    s.command("curl", &all).ok().to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn an_exec_outlives_a_lifecycled_restart_and_keeps_its_exit_code() {
    let mut s = stack();
    s.berth(&["run", "-d", "--name", "hold", "busybox", "sleep", "600"])
        .ok();
    let created = curl(
        &s,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Cmd":["sh","-c","sleep 3; exit 4"]}"#,
            "http://d/containers/hold/exec",
        ],
    );
    let id = json(&created)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    curl(
        &s,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Detach":true}"#,
            &format!("http://d/exec/{id}/start"),
        ],
    );
    let inspect = |s: &Stack| json(&curl(s, &[&format!("http://d/exec/{id}/json")]));
    assert_eq!(inspect(&s)["Running"], true);
    s.lc_mut().kill9();
    s.lc_mut().spawn();
    assert!(
        eventually(30, || inspect(&s)["Running"] == false),
        "{}",
        inspect(&s)
    );
    assert_eq!(inspect(&s)["ExitCode"], 4, "{}", inspect(&s));
    assert!(running(&s, "hold"));
}

/// An interactive `exec -i` whose lines come back one by one.
struct LineSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineSession {
    fn start(mut cmd: Command) -> LineSession {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the CLI");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        LineSession {
            child,
            stdin,
            lines,
        }
    }

    /// Sends `line`; what came back within 10 s.
    fn ask(&mut self, line: &str) -> Option<String> {
        writeln!(self.stdin, "{line}").ok()?;
        self.stdin.flush().ok()?;
        self.lines.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// Closes stdin; the CLI's exit code.
    fn finish(self) -> Option<i32> {
        let LineSession {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        for _ in 0..100 {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

const ECHO_LINES: &str = "while read l; do echo \"got $l\"; done";

#[test]
fn an_attached_exec_goes_on_while_lifecycled_is_down() {
    // The engine moves stdio over the shim's attach socket: lifecycled is
    // not on the way, so its death does not cut an attached client off.
    let mut s = stack();
    s.berth(&["run", "-d", "--name", "hold", "busybox", "sleep", "600"])
        .ok();
    let mut clis = vec![s.berth_cmd()];
    if docker_cli().is_some() {
        clis.push(s.docker_cmd());
    }
    for mut cli in clis {
        let name = format!("{:?}", cli.get_program());
        cli.args(["exec", "-i", "hold", "sh", "-c", ECHO_LINES]);
        let mut session = LineSession::start(cli);
        assert_eq!(session.ask("one").as_deref(), Some("got one"), "{name}");
        s.lc_mut().kill9();
        assert_eq!(session.ask("two").as_deref(), Some("got two"), "{name}");
        s.lc_mut().spawn();
        assert_eq!(session.ask("three").as_deref(), Some("got three"), "{name}");
        assert_eq!(session.finish(), Some(0), "{name}");
    }
    assert!(running(&s, "hold"));
}

#[test]
fn a_shim_without_an_attach_socket_is_attached_through_lifecycled() {
    // A shim started by an older berth has no attach socket: the engine
    // falls back to lifecycled's Attach, with the same bytes.
    let s = stack();
    let id = s
        .berth(&["run", "-d", "--name", "old", "busybox", "sleep", "600"])
        .ok()
        .trim()
        .to_string();
    let task_dir = s.lc().state.join("tasks").join("berth").join(&id);
    let address = task_dir.join("attach-address");
    assert!(address.exists(), "no {}", address.display());
    std::fs::remove_file(&address).expect("removing the attach address");

    let mut cli = s.berth_cmd();
    cli.args(["exec", "-i", "old", "sh", "-c", ECHO_LINES]);
    let mut session = LineSession::start(cli);
    assert_eq!(session.ask("one").as_deref(), Some("got one"));
    assert_eq!(session.finish(), Some(0));
    let data = binary_data(8 << 20);
    let input = s.dir.path().join("input.bin");
    std::fs::write(&input, &data).expect("writing the input");
    let mut cli = s.berth_cmd();
    cli.args(["exec", "-i", "old", "cat"]);
    let (code, out, err) = pipe_through(cli, &input);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(out == data, "{} bytes back of {}", out.len(), data.len());
    assert!(
        s.log().contains("has no attach socket: use Attach"),
        "the engine did not fall back:\n{}",
        s.log()
    );
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

async fn next(
    ws: &mut Ws,
) -> Option<Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
{
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message in time")
}

#[test]
fn websocket_attach_carries_stdin_and_output() {
    let s = stack();
    s.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "wsc",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo \"got $l\"; done",
    ])
    .ok();
    s.berth(&["run", "-dit", "--name", "wst", "busybox", "sh"])
        .ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let connect = |path: String| {
            let socket = s.socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&socket)
                    .await
                    .expect("connecting");
                tokio_tungstenite::client_async(format!("ws://localhost{path}"), stream)
                    .await
                    .expect("websocket handshake")
                    .0
            }
        };
        let mut ws =
            connect("/v1.43/containers/wsc/attach/ws?stream=1&stdin=1&stdout=1&stderr=1".into())
                .await;
        ws.send(Message::binary(b"hello\n".to_vec()))
            .await
            .expect("send");
        let m = next(&mut ws).await.expect("open").expect("message");
        assert_eq!(m, Message::binary(b"got hello\n".to_vec()));
        ws.send(Message::text("second\n")).await.expect("send");
        let m = next(&mut ws).await.expect("open").expect("message");
        assert_eq!(m.into_data().as_ref(), b"got second\n");
        ws.close(None).await.expect("close");

        // Before API 1.42, Docker sent text frames.
        let mut ws =
            connect("/v1.41/containers/wsc/attach/ws?stream=1&stdin=1&stdout=1".into()).await;
        ws.send(Message::text("third\n")).await.expect("send");
        let m = next(&mut ws).await.expect("open").expect("message");
        assert_eq!(m, Message::text("got third\n"));
        ws.close(None).await.expect("close");

        // logs without stream: what was written, then the end. The log is
        // written beside the attached clients, not before them: the last
        // line may reach the file a moment after it reached us.
        let mut got = Vec::new();
        for _ in 0..50 {
            let mut ws = connect("/containers/wsc/attach/ws?logs=1&stdout=1".into()).await;
            got.clear();
            while let Some(Ok(m)) = next(&mut ws).await {
                if m.is_close() {
                    break;
                }
                got.extend_from_slice(&m.into_data());
            }
            if got.len() >= b"got hello\ngot second\ngot third\n".len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, b"got hello\ngot second\ngot third\n");

        // With a terminal, the detach keys end the attach and leave the
        // shell running.
        let mut ws =
            connect("/containers/wst/attach/ws?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x".into())
                .await;
        ws.send(Message::binary(b"echo $((5*5))\n".to_vec()))
            .await
            .expect("send");
        let mut screen = Vec::new();
        while !String::from_utf8_lossy(&screen).contains("\n25") {
            match next(&mut ws).await {
                Some(Ok(m)) => screen.extend_from_slice(&m.into_data()),
                other => panic!("{other:?}: {}", String::from_utf8_lossy(&screen)),
            }
        }
        ws.send(Message::binary(vec![0x18])).await.expect("send");
        loop {
            match next(&mut ws).await {
                Some(Ok(m)) if !m.is_close() => continue,
                _ => break,
            }
        }
    });
    assert!(running(&s, "wsc"));
    assert!(running(&s, "wst"));
    // A bad detach key is the client's error.
    let socket = s.socket.to_string_lossy().into_owned();
    let out = s.command(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            &socket,
            "http://d/containers/wst/attach?stream=1&stdin=1&detachKeys=ctrl-1",
            "-X",
            "POST",
        ],
    );
    assert_eq!(out.stdout, "400");
    let _ = std::io::stdout().flush();
}
