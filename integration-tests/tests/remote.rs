//! berthd on tcp:// with mutual TLS: berth and the real docker CLI with
//! certificates made by the test (rcgen), every way the TLS can fail, and
//! the refusal to serve tcp:// without it unless the operator insists.

use std::path::{Path, PathBuf};

use integration_tests::stack::{Stack, docker_cli};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA with a server certificate (127.0.0.1, localhost) and a client one,
/// written as Docker names them: ca.pem, cert.pem, key.pem (the client's)
/// and server-cert.pem, server-key.pem.
fn pki(dir: &Path, name: &str) -> PathBuf {
    pki_with(dir, name, &[])
}

/// The same, with more client certificates: `<cn>-cert.pem`, `<cn>-key.pem`.
fn pki_with(dir: &Path, name: &str, clients: &[&str]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("pki dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |sans: Vec<String>, cn: &str| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(sans).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "berthd");
    let (client, client_key) = leaf(Vec::new(), "client");
    for cn in clients {
        let (c, k) = leaf(Vec::new(), cn);
        std::fs::write(out.join(format!("{cn}-cert.pem")), c).expect("writing pem");
        std::fs::write(out.join(format!("{cn}-key.pem")), k).expect("writing pem");
    }
    for (f, text) in [
        ("ca.pem", ca_cert.pem()),
        ("server-cert.pem", server),
        ("server-key.pem", server_key),
        ("cert.pem", client),
        ("key.pem", client_key),
    ] {
        std::fs::write(out.join(f), text).expect("writing pem");
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn tls_stack(pki: &Path, port: u16) -> Stack {
    tls_stack_with(pki, port, serde_json::json!({}))
}

fn tls_stack_with(pki: &Path, port: u16, daemon_json: serde_json::Value) -> Stack {
    let p = |f: &str| pki.join(f).display().to_string();
    let args = vec![
        "-H".to_string(),
        format!("tcp://127.0.0.1:{port}"),
        "--tlsverify".into(),
        "--tlscacert".into(),
        p("ca.pem"),
        "--tlscert".into(),
        p("server-cert.pem"),
        "--tlskey".into(),
        p("server-key.pem"),
    ];
    let s = Stack::start_with_args(daemon_json, &args);
    s.load_busybox();
    s
}

fn berth_tcp(s: &Stack, host: &str, tls: &[&str], args: &[&str]) -> integration_tests::stack::Out {
    let mut all = vec!["-H", host];
    all.extend_from_slice(tls);
    all.extend_from_slice(args);
    s.command(&integration_tests::bin("berth").display().to_string(), &all)
}

#[test]
fn berth_and_docker_work_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = pki(dir.path(), "ours");
    let port = free_port();
    let s = tls_stack(&ours, port);
    let host = format!("tcp://127.0.0.1:{port}");
    let f = |n: &str| ours.join(n).display().to_string();
    let (ca, cert, key) = (f("ca.pem"), f("cert.pem"), f("key.pem"));
    let tls = [
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
    ];
    let out = berth_tcp(
        &s,
        &host,
        &tls,
        &["run", "--rm", "busybox", "echo", "over tls"],
    );
    assert_eq!(out.ok(), "over tls");
    // Attach and stdin through the TLS stream.
    let mut c = s.berth_cmd();
    c.args(["-H", &host])
        .args(tls)
        .args(["run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z"]);
    assert_eq!(s.run(c, Some(b"secret\n")).ok(), "SECRET");
    // A context that carries its TLS files (copied in: the originals may go).
    let ctx_files = format!("host={host},ca={ca},cert={cert},key={key}");
    s.berth(&["context", "create", "remote", "--docker", &ctx_files])
        .ok();
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST").args([
        "--context",
        "remote",
        "run",
        "--rm",
        "busybox",
        "echo",
        "via context",
    ]);
    assert_eq!(s.run(c, None).ok(), "via context");
    // Exported with its files and imported under another name, it works
    // the same; update changes what it points at.
    let archive = dir.path().join("remote.dockercontext");
    s.berth(&[
        "context",
        "export",
        "remote",
        &archive.display().to_string(),
    ])
    .ok();
    s.berth(&["context", "import", "copy", &archive.display().to_string()])
        .ok();
    s.berth(&["context", "update", "--description", "the copy", "copy"])
        .ok();
    let mut c = s.berth_cmd();
    c.env_remove("BERTH_HOST").args([
        "--context",
        "copy",
        "version",
        "-f",
        "{{.Server.APIVersion}}",
    ]);
    s.run(c, None).ok();
    let desc = s
        .berth(&[
            "context",
            "inspect",
            "-f",
            "{{.Metadata.Description}}",
            "copy",
        ])
        .ok()
        .to_string();
    assert_eq!(desc, "the copy");
    // Docker's environment: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    let mut c = s.berth_cmd();
    c.env("BERTH_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &ours)
        .args(["ps", "-a", "--format", "{{.Names}}"]);
    s.run(c, None).ok();

    if docker_cli().is_some() {
        let mut c = s.docker_cmd();
        c.args(["-H", &host])
            .args(tls)
            .args(["run", "--rm", "busybox", "echo", "docker over tls"]);
        assert_eq!(s.run(c, None).ok(), "docker over tls");
        let mut c = s.docker_cmd();
        c.env("DOCKER_HOST", &host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &ours)
            .args(["run", "-i", "--rm", "busybox", "cat"]);
        assert_eq!(s.run(c, Some(b"piped over tls\n")).ok(), "piped over tls");
    }
}

#[test]
fn every_tls_failure_is_refused_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = pki(dir.path(), "ours");
    let rogue = pki(dir.path(), "rogue");
    let port = free_port();
    let s = tls_stack(&ours, port);
    let host = format!("tcp://127.0.0.1:{port}");
    let f = |d: &Path, n: &str| d.join(n).display().to_string();
    let ps = |host: &str, ca: &str, cert: &str, key: &str| {
        let tls = [
            "--tlsverify",
            "--tlscacert",
            ca,
            "--tlscert",
            cert,
            "--tlskey",
            key,
        ];
        berth_tcp(&s, host, &tls, &["ps"])
    };
    let (ca, rca) = (f(&ours, "ca.pem"), f(&rogue, "ca.pem"));
    let (oc, ok) = (f(&ours, "cert.pem"), f(&ours, "key.pem"));
    let (rc, rk) = (f(&rogue, "cert.pem"), f(&rogue, "key.pem"));
    let nothing = dir.path().join("nothing.pem").display().to_string();
    for (what, out, says) in [
        (
            "no client certificate",
            ps(&host, &ca, &nothing, &nothing),
            "TLS with the berth daemon",
        ),
        (
            "a client certificate of another CA",
            ps(&host, &ca, &rc, &rk),
            "TLS with the berth daemon",
        ),
        (
            "a daemon certificate we do not trust",
            ps(&host, &rca, &oc, &ok),
            "certificate",
        ),
    ] {
        assert_ne!(out.code, 0, "{what}: {out:?}");
        assert!(out.stderr.contains(says), "{what}: {out:?}");
    }
    // Plain HTTP to a TLS port.
    let out = berth_tcp(&s, &host, &[], &["ps"]);
    assert_ne!(out.code, 0, "{out:?}");
    // Nothing listens: the connect error, not a TLS one.
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let out = ps(&closed, &ca, &oc, &ok);
    assert!(
        out.stderr
            .contains("Cannot connect to the berth daemon at tcp://"),
        "{out:?}"
    );
    if docker_cli().is_some() {
        let mut c = s.docker_cmd();
        c.args(["-H", &host, "--tlsverify", "--tlscacert", &ca])
            .args(["--tlscert", &rc, "--tlskey", &rk, "ps"]);
        let out = s.run(c, None);
        assert_ne!(out.code, 0, "docker got in with a rogue certificate");
    }
}

#[test]
fn tcp_without_tls_needs_the_operator_to_insist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(dir.path().join("none.json"), "{}").expect("daemon.json");
    let out = std::process::Command::new(integration_tests::bin("berthd"))
        .args(["--validate", "-H", &format!("tcp://127.0.0.1:{port}")])
        .arg("--config-file")
        .arg(dir.path().join("none.json"))
        .output()
        .expect("berthd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on a tcp:// host without --tlsverify"),
        "{err}"
    );
    // --tls=false: served in the clear, with a warning in the log.
    let s = Stack::start_with_args(
        serde_json::json!({}),
        &[
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--tls=false".into(),
        ],
    );
    let out = berth_tcp(
        &s,
        &format!("tcp://127.0.0.1:{port}"),
        &[],
        &["version", "-f", "{{.Server.APIVersion}}"],
    );
    assert_eq!(out.ok(), "1.43");
    assert!(s.log().contains("WITHOUT TLS"), "{}", s.log());
}

/// An OpenSSH server of the test's own on a loopback port: its host key,
/// the client's key authorized with an environment that points `berth`
/// and `docker` at the stack. Killed by its PID.
struct Sshd {
    child: std::process::Child,
    port: u16,
    /// A directory with an `ssh` that uses the test's key, for PATH.
    wrapper: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("running");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sshd(dir: &Path, s: &Stack) -> Option<Sshd> {
    let bin = PathBuf::from("/usr/sbin/sshd");
    if !bin.exists() {
        eprintln!("no sshd here (scripts/deps installs openssh-server): skipped");
        return None;
    }
    std::fs::create_dir_all("/run/sshd").expect("privilege separation dir");
    let keygen = |f: &Path| {
        run_ok(
            std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(f),
        );
    };
    let (host_key, id) = (dir.join("host_key"), dir.join("id"));
    keygen(&host_key);
    keygen(&id);
    let bins = integration_tests::bin("berth")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let pubkey = std::fs::read_to_string(dir.join("id.pub")).expect("pub key");
    std::fs::write(
        dir.join("authorized_keys"),
        format!(
            "environment=\"PATH={}:/usr/local/bin:/usr/bin:/bin\",environment=\"BERTH_HOST={}\",environment=\"DOCKER_HOST={}\",environment=\"BERTH_CONFIG={}\" {pubkey}",
            bins.display(),
            s.host,
            s.host,
            dir.join("remote-cli").display()
        ),
    )
    .expect("authorized_keys");
    let port = free_port();
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitUserEnvironment yes\nPidFile {}\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .expect("sshd_config");
    let child = std::process::Command::new(&bin)
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sshd");
    let wrapper = dir.join("bin");
    std::fs::create_dir_all(&wrapper).expect("wrapper dir");
    let ssh = wrapper.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \"$@\"\n",
            id.display()
        ),
    )
    .expect("ssh wrapper");
    run_ok(std::process::Command::new("chmod").arg("755").arg(&ssh));
    let d = Sshd {
        child,
        port,
        wrapper,
    };
    assert!(
        integration_tests::eventually(10, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "sshd did not come up"
    );
    Some(d)
}

#[test]
fn ssh_hosts_reach_the_engine_through_dial_stdio() {
    let s = Stack::start();
    s.load_busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(d) = sshd(dir.path(), &s) else {
        return;
    };
    let path = format!(
        "{}:{}",
        d.wrapper.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let host = format!("ssh://root@127.0.0.1:{}", d.port);
    // berth with the test's ssh first on PATH, against `host`.
    let berth = |host: &str, args: &[&str]| {
        let mut c = s.berth_cmd();
        c.env("PATH", &path)
            .env("BERTH_CONFIG", dir.path().join("local-cli"))
            .env_remove("BERTH_HOST")
            .args(["-H", host])
            .args(args);
        s.run(c, None)
    };
    let out = berth(&host, &["run", "--rm", "busybox", "echo", "over ssh"]);
    assert_eq!(out.ok(), "over ssh");
    berth(&host, &["ps", "-a"]).ok();
    if docker_cli().is_some() {
        let mut c = s.docker_cmd();
        c.env("PATH", &path).env_remove("DOCKER_HOST").args([
            "-H",
            &host,
            "run",
            "--rm",
            "busybox",
            "echo",
            "docker over ssh",
        ]);
        assert_eq!(s.run(c, None).ok(), "docker over ssh");
    }
    // ssh's own message, then ours.
    let closed = format!("ssh://root@127.0.0.1:{}", free_port());
    let out = berth(&closed, &["ps"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Connection refused"), "{out:?}");
    assert!(out.stderr.contains("ssh to ssh://"), "{out:?}");
}

#[test]
fn roles_keep_operators_and_viewers_off_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = pki_with(dir.path(), "ours", &["opclient", "viewclient"]);
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(&allowed).expect("allowed dir");
    let audit = dir.path().join("audit.log");
    let port = free_port();
    let s = tls_stack_with(
        &ours,
        port,
        serde_json::json!({"authorization": {
            "roles": {"cn:opclient": "operator", "cn:viewclient": "viewer"},
            "allowed-bind-paths": [allowed],
            "audit-log": audit,
        }}),
    );
    let host = format!("tcp://127.0.0.1:{port}");
    let f = |n: &str| ours.join(n).display().to_string();
    let ca = f("ca.pem");
    let as_who = |cn: &str, args: &[&str]| {
        let (cert, key) = (f(&format!("{cn}-cert.pem")), f(&format!("{cn}-key.pem")));
        berth_tcp(
            &s,
            &host,
            &[
                "--tlsverify",
                "--tlscacert",
                &ca,
                "--tlscert",
                &cert,
                "--tlskey",
                &key,
            ],
            args,
        )
    };
    // An operator runs containers…
    assert_eq!(
        as_who("opclient", &["run", "--rm", "busybox", "echo", "op"]).ok(),
        "op"
    );
    let bind = format!("{}:/data", allowed.display());
    as_who("opclient", &["run", "--rm", "-v", &bind, "busybox", "true"]).ok();
    // …but nothing that is root on the host.
    for (args, rule) in [
        (
            vec!["run", "--rm", "--privileged", "busybox", "true"],
            "no-privileged",
        ),
        (
            vec!["run", "--rm", "-v", "/:/host", "busybox", "true"],
            "bind-outside-allowed",
        ),
        (
            vec!["run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "true"],
            "no-added-capabilities",
        ),
        (
            vec!["run", "--rm", "--network", "host", "busybox", "true"],
            "no-host-namespaces",
        ),
    ] {
        let out = as_who("opclient", &args);
        assert_eq!(out.code, 125, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("(rule {rule})")),
            "{args:?}: {out:?}"
        );
        assert!(out.stderr.contains("role operator may not"), "{out:?}");
    }
    as_who(
        "opclient",
        &["run", "-d", "--name", "opbox", "busybox", "sleep", "600"],
    )
    .ok();
    let out = as_who("opclient", &["exec", "--privileged", "opbox", "true"]);
    assert!(out.stderr.contains("(rule no-privileged)"), "{out:?}");
    // A viewer reads and changes nothing.
    assert!(
        as_who("viewclient", &["ps", "--format", "{{.Names}}"])
            .ok()
            .contains("opbox")
    );
    as_who("viewclient", &["logs", "opbox"]).ok();
    let out = as_who("viewclient", &["run", "--rm", "busybox", "true"]);
    assert!(out.stderr.contains("(rule viewer-read-only)"), "{out:?}");
    let out = as_who("viewclient", &["rm", "-f", "opbox"]);
    assert!(out.stderr.contains("(rule viewer-read-only)"), "{out:?}");
    // root on the socket is admin.
    s.berth(&["run", "--rm", "--privileged", "busybox", "true"])
        .ok();
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        lines.iter().any(|l| l["identity"] == "cn:opclient"
            && l["decision"] == "denied"
            && l["rule"] == "no-privileged"),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["identity"] == "cn:viewclient" && l["rule"] == "viewer-read-only"),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l["identity"] == "uid:0 gid:0"
            && l["decision"] == "allowed"
            && l["rule"] == "privileged"),
        "{log}"
    );
    if docker_cli().is_some() {
        let (cert, key) = (f("opclient-cert.pem"), f("opclient-key.pem"));
        let mut c = s.docker_cmd();
        c.args(["-H", &host, "--tlsverify", "--tlscacert", &ca])
            .args(["--tlscert", &cert, "--tlskey", &key])
            .args(["run", "--rm", "--privileged", "busybox", "true"]);
        let out = s.run(c, None);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("(rule no-privileged)"), "{out:?}");
    }
}

#[test]
fn a_user_outside_the_socket_group_is_refused() {
    let s = Stack::start();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(integration_tests::bin("berth"))
        .args(["-H", &s.host, "ps"])
        .env("BERTH_CONFIG", "/nonexistent")
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "permission denied while trying to connect to the berth daemon socket at unix://"
        ),
        "{err}"
    );
}

#[test]
fn clients_in_parallel_see_one_consistent_state() {
    let s = Stack::start();
    s.load_busybox();
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..5)
            .map(|w| {
                let s = &s;
                sc.spawn(move || {
                    for i in 0..50 {
                        let name = format!("w{w}-{i}");
                        let out = s.berth(&[
                            "create",
                            "--network",
                            "none",
                            "--name",
                            &name,
                            "busybox",
                            "true",
                        ]);
                        assert_eq!(out.code, 0, "{name}: {out:?}");
                        if i % 2 == 1 {
                            let out = s.berth(&["rm", &name]);
                            assert_eq!(out.code, 0, "{name}: {out:?}");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    });
    let names = s
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .to_string();
    let mut got: Vec<&str> = names.lines().collect();
    got.sort();
    let mut want: Vec<String> = (0..5)
        .flat_map(|w| {
            (0..50)
                .filter(|i| i % 2 == 0)
                .map(move |i| format!("w{w}-{i}"))
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}
