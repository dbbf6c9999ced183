//! Networking through the CNI plugins, end to end: user networks with DNS,
//! published ports from the host, the network modes, internal networks,
//! bad input, and teardown that leaves nothing behind. Every stack has its
//! own address block and bridge names (see `netblock`).

use std::time::Duration;

use integration_tests::eventually;
use integration_tests::stack::{Stack, docker_cli};

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(url: &str) -> String {
    sh(&format!("curl -s -m 5 {url}"))
}

/// A user network of the stack's own: `i`-th subnet, its own bridge.
fn network(s: &Stack, name: &str, i: u8, extra: &[&str]) -> String {
    let subnet = s.net.subnet(i);
    let bridge = format!(
        "com.docker.network.bridge.name={}",
        s.net.bridge(&i.to_string())
    );
    let mut args = vec!["network", "create", "--subnet", &subnet, "-o", &bridge];
    args.extend_from_slice(extra);
    args.push(name);
    s.berth(&args).ok().to_string()
}

fn httpd(s: &Stack, name: &str, args: &[&str]) -> String {
    let mut a = vec!["run", "-d", "--name", name];
    a.extend_from_slice(args);
    a.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    s.berth(&a).ok().to_string()
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name() {
    let s = stack();
    network(&s, "appnet", 1, &[]);
    let id = httpd(
        &s,
        "web",
        &["--network", "appnet", "--network-alias", "www"],
    );
    let short = &id[..12];
    let out = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "sh",
            "-c",
            &format!(
                "ping -c1 -W3 web >/dev/null && wget -qO- http://www/hostname && wget -qO- http://{short}/hostname && wget -qO- http://web.appnet/hostname && cat /etc/resolv.conf"
            ),
        ])
        .ok()
        .to_string();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(short), "{out}");
    assert_eq!(lines.next(), Some(short), "{out}");
    assert_eq!(lines.next(), Some(short), "{out}: <name>.<network>");
    let gateway = s.net.subnet(1).replace(".0/24", ".1");
    // Docker's embedded resolver, as dockerd writes it.
    assert!(out.contains("nameserver 127.0.0.11\n"), "{out}");
    assert!(out.contains("options ndots:0"), "{out}");
    assert_eq!(out.matches("nameserver").count(), 1, "{out}");
    // The container's own address is in its /etc/hosts and inspect.
    let ip = s
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.appnet.IPAddress}}",
            "web",
        ])
        .ok()
        .to_string();
    assert!(ip.starts_with(&gateway[..gateway.len() - 1]), "{ip}");
    let hosts = s
        .berth(&["exec", "web", "cat", "/etc/hosts"])
        .ok()
        .to_string();
    assert!(hosts.contains(&format!("{ip}\t{short}")), "{hosts}");
    // Its loopback is up with its addresses: the server answers there.
    let lo = s
        .berth(&[
            "exec",
            "web",
            "sh",
            "-c",
            "ip -o addr show lo; wget -qO- http://127.0.0.1/hostname",
        ])
        .ok()
        .to_string();
    assert!(lo.contains("127.0.0.1/8") && lo.ends_with(short), "{lo}");
    s.berth(&["rename", "web", "web2"]).ok();
    ping_on(&s, "appnet", "web2", 3).ok();
    let out = ping_on(&s, "appnet", "web", 1);
    assert_ne!(out.code, 0, "{out:?}");
    s.berth(&["rename", "web2", "web"]).ok();
    // The default bridge gives no names, as Docker's.
    let out = s.berth(&["run", "--rm", "busybox", "ping", "-c1", "-W1", "web"]);
    assert_ne!(out.code, 0, "{out:?}");

    if docker_cli().is_some() {
        let ls = s
            .docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
            .ok()
            .to_string();
        for want in ["appnet bridge", "bridge bridge", "host host", "none null"] {
            assert!(ls.lines().any(|l| l == want), "{ls}");
        }
        let members = s
            .docker(&[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}} {{end}}",
                "appnet",
            ])
            .ok()
            .to_string();
        assert_eq!(members, "web");
        let out = s
            .docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                "busybox",
                "wget",
                "-qO-",
                "http://web/hostname",
            ])
            .ok()
            .to_string();
        assert_eq!(out, short);
    }
}

/// A process resolves names from its first instruction, however long the
/// DNS server takes to take the container's record: the start waits until
/// the server answers for the container (it reads new records on a
/// reload, listens on a new network's gateway only after one, and answers
/// nothing to an asker it does not know), as Docker's resolver has the
/// record before the start. The server is held still (SIGSTOP) while the
/// first container of a new network starts, which makes the slow reload
/// certain: without the wait its first query is refused.
#[test]
fn a_container_resolves_names_from_its_first_instruction() {
    let s = stack();
    network(&s, "keep", 1, &[]);
    httpd(&s, "peer", &["--network", "keep"]);
    let pid_file = s.exec_root.join("dns/server.pid");
    let Some(server) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .map(nix::unistd::Pid::from_raw)
    else {
        eprintln!("skipped: no DNS server runs (berth-dns missing)");
        return;
    };
    network(&s, "fresh", 2, &[]);
    use nix::sys::signal::{Signal, kill};
    // Resumed when the test ends, failed or not.
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    kill(server, Signal::SIGSTOP).expect("stopping the DNS server");
    let resume = Resume(server);
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            s.berth(&[
                "run",
                "--rm",
                "--name",
                "asker",
                "--network",
                "fresh",
                "busybox",
                "nslookup",
                "asker",
            ])
        });
        std::thread::sleep(Duration::from_millis(400));
        drop(resume);
        run.join().expect("run thread")
    });
    assert_eq!(out.code, 0, "{out:?}");
}

/// Docker's embedded DNS answers at 127.0.0.11 in every container on a
/// user network (nginx's `resolver 127.0.0.11` in compose projects): the
/// names of all the container's networks, from its first instruction, in
/// its new namespace after a restart, over UDP and TCP. A container only
/// on the default bridge has no resolver there, as with dockerd.
#[test]
fn containers_on_user_networks_ask_at_127_0_0_11() {
    let s = stack();
    network(&s, "ra", 1, &[]);
    network(&s, "rb", 2, &[]);
    httpd(&s, "peer-b", &["--network", "rb"]);
    let script = "nslookup peer-b 127.0.0.11 && nslookup asker 127.0.0.11";
    let run = s.berth(&[
        "run",
        "--name",
        "asker",
        "--network",
        "ra",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    // Not on rb yet: peer-b is no name of its networks.
    assert_ne!(run.code, 0, "{run:?}");
    s.berth(&["network", "connect", "rb", "asker"]).ok();
    // Started again (a new namespace), now on both networks.
    let again = s.berth(&["start", "-a", "asker"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("Address"), "{again:?}");
    // Over TCP: dig is not in busybox; its nc sends a length-prefixed
    // query and the answer holds the peer's address.
    let ip = s
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.rb.IPAddress}}",
            "peer-b",
        ])
        .ok()
        .trim()
        .to_string();
    let tcp = s.berth(&[
        "run", "--rm", "--network", "rb", "busybox", "sh", "-c",
        // id 0x0102, RD, one question: peer-b A IN.
        "printf '\\000\\030\\001\\002\\001\\000\\000\\001\\000\\000\\000\\000\\000\\000\\006peer-b\\000\\000\\001\\000\\001' | nc -w 2 127.0.0.11 53 | od -An -tu1",
    ]);
    let bytes: Vec<u8> = tcp
        .ok()
        .split_whitespace()
        .filter_map(|b| b.parse().ok())
        .collect();
    let want: Vec<u8> = ip.split('.').filter_map(|b| b.parse().ok()).collect();
    assert_eq!(want.len(), 4, "{ip}");
    assert!(
        bytes.windows(4).any(|w| w == want.as_slice()),
        "{bytes:?} holds {ip}"
    );
    let bridge = s.berth(&["run", "--rm", "busybox", "nslookup", "peer-b", "127.0.0.11"]);
    assert_ne!(bridge.code, 0, "{bridge:?}");
    if docker_cli().is_some() {
        let out = s
            .docker(&[
                "run",
                "--rm",
                "--network",
                "rb",
                "busybox",
                "sh",
                "-c",
                "nslookup peer-b 127.0.0.11 >/dev/null && cat /etc/resolv.conf",
            ])
            .ok()
            .to_string();
        let servers: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect();
        assert_eq!(servers, ["nameserver 127.0.0.11"], "{out}");
        assert!(out.contains("ndots:0"), "{out}");
    }
    // A container that names its own DNS server still finds its peers
    // (resolv.conf names only 127.0.0.11, as dockerd writes it); the
    // resolver forwards other names to its server.
    let own = s.berth(&[
        "run",
        "-d",
        "--name",
        "own-dns",
        "--network",
        "rb",
        "--dns",
        "10.255.255.1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup peer-b; sleep 60",
    ]);
    let id = own.ok().to_string();
    let upstreams = s.exec_root.join("dns/upstreams").join(&id);
    assert!(
        eventually(10, || s
            .berth(&["logs", "own-dns"])
            .stdout
            .contains("Address")),
        "{:?}",
        s.berth(&["logs", "own-dns"])
    );
    let logs = s.berth(&["logs", "own-dns"]).stdout;
    assert!(logs.starts_with("nameserver 127.0.0.11\n"), "{logs}");
    assert!(!logs.contains("10.255.255.1"), "{logs}");
    assert_eq!(
        std::fs::read_to_string(&upstreams).unwrap_or_default(),
        "nameserver 10.255.255.1\n"
    );
    s.berth(&["rm", "-f", "own-dns"]).ok();
    assert!(!upstreams.exists(), "its resolvers go with its records");
    s.berth(&["rm", "-f", "asker", "peer-b"]).ok();
}

/// Every start, stop and connect on a user network has the name server
/// read its files again; lookups made meanwhile are all answered. With
/// aardvark-dns 1.4, which dropped and bound its listeners on each reload,
/// eight containers on two networks started at once failed about one
/// run in two.
#[test]
fn lookups_while_containers_come_and_go_are_all_answered() {
    let s = stack();
    network(&s, "na", 1, &[]);
    network(&s, "nb", 2, &[]);
    httpd(&s, "pa", &["--network", "na"]);
    httpd(&s, "pb", &["--network", "nb"]);
    let outs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let (net, peer) = if i % 2 == 0 { ("na", "pa") } else { ("nb", "pb") };
                    let script = format!(
                        "for i in 1 2 3 4 5 6 7 8 9 10; do nslookup {peer} >/dev/null || exit 1; done"
                    );
                    s.berth(&["run", "--rm", "--network", net, "busybox", "sh", "-c", &script])
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("run thread"))
            .collect()
    });
    for out in outs {
        assert_eq!(out.code, 0, "{out:?}");
    }
    s.berth(&["rm", "-f", "pa", "pb"]).ok();
}

/// berthd starts the name server again when it finds records and no
/// server (it died while berthd was down), and takes over the records an
/// engine that ran aardvark-dns kept (`<exec-root>/aardvark-dns`).
#[test]
fn berthd_brings_names_back_and_takes_over_aardvark_records() {
    let mut s = stack();
    network(&s, "kept", 1, &[]);
    httpd(&s, "svc", &["--network", "kept"]);
    httpd(&s, "asker", &["--network", "kept"]);
    // At the gateway resolv.conf names, and at Docker's 127.0.0.11.
    let ask = |s: &Stack| {
        s.berth(&["exec", "asker", "nslookup", "svc"]).code == 0
            && s.berth(&["exec", "asker", "nslookup", "svc", "127.0.0.11"])
                .code
                == 0
    };
    assert!(ask(&s));
    let dns = s.exec_root.join("dns");
    let server = |dir: &std::path::Path| -> Option<nix::unistd::Pid> {
        let pid: i32 = std::fs::read_to_string(dir.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("berth-dns")
            .then_some(nix::unistd::Pid::from_raw(pid))
    };
    // host-local's directory of a network removed before berthd removed
    // them: gone at the next start; the live network's stays.
    let stale = s.exec_root.join("ipam").join("e".repeat(64));
    std::fs::create_dir_all(&stale).expect("a stale IPAM directory");
    std::fs::write(stale.join("last_reserved_ip.0"), "10.64.9.9").expect("its file");
    for round in ["died", "aardvark"] {
        s.kill9_berthd();
        let pid = server(&dns).expect("the name server runs");
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the server");
        assert!(eventually(5, || server(&dns).is_none()), "{round}");
        if round == "aardvark" {
            let old = s.exec_root.join("aardvark-dns");
            std::fs::rename(&dns, &old).expect("the records where aardvark kept them");
            for f in ["server.pid", "server.log"] {
                let _ = std::fs::remove_file(old.join(f));
            }
        }
        s.spawn_berthd();
        // The start's recovery runs beside serving.
        assert!(eventually(10, || !stale.exists()), "{round}");
        assert!(ask(&s), "{round}: the live network's addresses stay");
        assert!(server(&dns).is_some(), "{round}: berthd started the server");
        assert!(ask(&s), "{round}");
        assert!(!s.exec_root.join("aardvark-dns").exists(), "{round}");
    }
    s.berth(&["rm", "-f", "svc", "asker"]).ok();
}

#[test]
fn published_ports_answer_on_the_host() {
    let s = stack();
    let (p1, p2) = (free_port(), free_port());
    let id = httpd(
        &s,
        "pub",
        &[
            "-p",
            &format!("127.0.0.1:{p1}:80"),
            "-p",
            &format!("{p2}:80/tcp"),
        ],
    );
    let short = &id[..12];
    assert!(eventually(10, || curl(&format!(
        "http://127.0.0.1:{p1}/hostname"
    ))
    .trim()
        == short));
    // The host's own address (the default bridge's gateway is one).
    let host_ip = s.net.subnet(0).replace(".0/24", ".1");
    assert_eq!(
        curl(&format!("http://{host_ip}:{p2}/hostname")).trim(),
        short
    );
    assert_eq!(
        curl(&format!("http://127.0.0.1:{p2}/hostname")).trim(),
        short
    );
    let ports = s.berth(&["port", "pub"]).ok().to_string();
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{p1}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("80/tcp -> 0.0.0.0:{p2}")),
        "{ports}"
    );
    let ps = s.berth(&["ps", "--format", "{{.Ports}}"]).ok().to_string();
    assert!(ps.contains(&format!("{p2}->80/tcp")), "{ps}");
    // On the host's IPv6 addresses too (dockerd's proxy listens on [::]),
    // relayed to the container's IPv4 address; not a port published on
    // 127.0.0.1 alone.
    if has_ipv6() {
        assert_eq!(curl(&format!("http://[::1]:{p2}/hostname")).trim(), short);
        assert!(ports.contains(&format!("80/tcp -> [::]:{p2}")), "{ports}");
        assert!(ps.contains(&format!("[::]:{p2}->80/tcp")), "{ps}");
        assert!(curl(&format!("http://[::1]:{p1}/hostname")).is_empty());
    }
    if docker_cli().is_some() {
        let out = s.docker(&["port", "pub", "80"]).ok().to_string();
        assert!(out.contains(&format!("127.0.0.1:{p1}")), "{out}");
        if has_ipv6() {
            assert!(out.contains(&format!("[::]:{p2}")), "{out}");
        }
    }
    // -P: every exposed port on a port of the host's choosing.
    s.berth(&[
        "run", "-d", "--name", "auto", "-P", "--expose", "80", "busybox", "httpd", "-f", "-p",
        "80", "-h", "/etc",
    ])
    .ok();
    let auto = s.berth(&["port", "auto", "80/tcp"]).ok().to_string();
    let port = auto.rsplit(':').next().unwrap_or_default().to_string();
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{auto}");
    assert!(eventually(10, || !curl(&format!(
        "http://127.0.0.1:{port}/hostname"
    ))
    .is_empty()));
    // Host port 0 is any free one, as dockerd's allocator reads it (the
    // start failed: portmap refused port 0).
    s.berth(&[
        "run",
        "-d",
        "--name",
        "zero",
        "-p",
        "127.0.0.1:0:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ])
    .ok();
    let zero = s.berth(&["port", "zero", "80/tcp"]).ok().to_string();
    let port = zero.rsplit(':').next().unwrap_or_default().to_string();
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{zero}");
    assert!(eventually(10, || !curl(&format!(
        "http://127.0.0.1:{port}/hostname"
    ))
    .is_empty()));
    // The same through the docker CLI, the client users have.
    if docker_cli().is_some() {
        s.docker(&[
            "run",
            "-d",
            "--name",
            "zero2",
            "-p",
            "127.0.0.1:0:80",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ])
        .ok();
        let out = s.docker(&["port", "zero2", "80/tcp"]).ok().to_string();
        let port = out.rsplit(':').next().unwrap_or_default().to_string();
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{out}");
    }

    // A port already published is refused, and nothing is left of the try.
    let out = s.berth(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("port is already allocated"), "{out:?}");
    assert_eq!(
        s.berth(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.NetworkSettings.SandboxKey}}",
            "clash"
        ])
        .ok(),
        "false"
    );
    // A free port before the taken one is let go on every address (its
    // IPv6 side was bound before the clash was found).
    let p3 = free_port();
    let out = s.berth(&[
        "run",
        "-d",
        "--name",
        "clash2",
        "-p",
        &format!("{p3}:80"),
        "-p",
        &format!("{p2}:81"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    if has_ipv6() {
        assert!(
            std::net::TcpListener::bind(("::", p3)).is_ok(),
            "[::]:{p3} kept"
        );
    }

    // Starts at once, each on a port of the host's choosing (compose's
    // `scale`): each gets its own (two once picked the same one).
    let names: Vec<String> = (0..6).map(|i| format!("scaled{i}")).collect();
    for n in &names {
        s.berth(&[
            "create", "--name", n, "-p", "3000", "busybox", "sleep", "60",
        ])
        .ok();
    }
    let started: Vec<integration_tests::stack::Out> = std::thread::scope(|t| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| t.spawn(|| s.berth(&["start", n.as_str()])))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for out in &started {
        assert_eq!(out.code, 0, "{out:?}");
    }
    let mut ports: Vec<String> = names
        .iter()
        .map(|n| s.berth(&["port", n, "3000"]).ok().to_string())
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), names.len(), "{ports:?}");
}

#[test]
fn network_modes_none_host_and_container() {
    let s = stack();
    let links = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok()
        .to_string();
    assert_eq!(links, "lo");
    let default = s
        .berth(&["run", "--rm", "busybox", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(
        default.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "lo"]
    );
    let bridge = s.net.bridge("d");
    let host = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok()
        .to_string();
    assert!(host.split_whitespace().any(|l| l == bridge), "{host}");
    s.berth(&[
        "run",
        "-d",
        "--name",
        "owner",
        "--hostname",
        "ownerhost",
        "--add-host",
        "google.local:127.0.0.1",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    // A container on another's network has its names and hostname, as
    // dockerd gives them (compose builds with `network: container:X`).
    let files = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "busybox",
            "sh",
            "-c",
            "grep google /etc/hosts; hostname",
        ])
        .ok()
        .to_string();
    assert_eq!(files, "127.0.0.1\tgoogle.local\nownerhost", "{files}");
    let owner_ip = s
        .berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "owner"])
        .ok()
        .to_string();
    let joined = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "busybox",
            "sh",
            "-c",
            "ip -4 -o addr show eth0 | awk '{print $4}'",
        ])
        .ok()
        .to_string();
    assert!(
        joined.starts_with(&format!("{owner_ip}/")),
        "{joined} vs {owner_ip}"
    );
    // --add-host, --dns and --hostname land in the container's files.
    let out = s
        .berth(&[
            "run",
            "--rm",
            "--add-host",
            "db.local:10.1.2.3",
            "--add-host",
            "gw.local:host-gateway",
            "--dns",
            "10.9.9.9",
            "--hostname",
            "box1",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hosts /etc/resolv.conf; hostname",
        ])
        .ok()
        .to_string();
    assert!(out.contains("10.1.2.3\tdb.local"), "{out}");
    // host-gateway is the default bridge's gateway, as dockerd gives it.
    let gw = s
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
            "bridge",
        ])
        .ok()
        .to_string();
    assert!(out.contains(&format!("{gw}\tgw.local")), "{gw}: {out}");
    // The same through the docker CLI, as a user types it.
    let line = s
        .docker(&[
            "run",
            "--rm",
            "--add-host",
            "gw.local:host-gateway",
            "busybox",
            "grep",
            "gw.local",
            "/etc/hosts",
        ])
        .ok()
        .to_string();
    assert_eq!(line, format!("{gw}\tgw.local"));
    assert!(out.contains("nameserver 10.9.9.9"), "{out}");
    assert!(out.ends_with("box1"), "{out}");
}

#[test]
fn internal_networks_have_no_way_out() {
    let s = stack();
    network(&s, "closed", 2, &["--internal"]);
    let host_ip = s.net.subnet(0).replace(".0/24", ".1");
    let out = s.berth(&[
        "run",
        "--rm",
        "--network",
        "closed",
        "busybox",
        "sh",
        "-c",
        &format!("ip route; ping -c1 -W2 {host_ip}"),
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("default"), "{out:?}");
    // …but its members still reach each other.
    s.berth(&[
        "run",
        "-d",
        "--name",
        "in1",
        "--network",
        "closed",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    ping_on(&s, "closed", "in1", 3).ok();
    // Nor names from outside, as Docker's resolver forwards none for an
    // internal network: a name the host resolves, a container there does
    // not; one on a network with a way out does.
    let host = sh("busybox nslookup deb.debian.org >/dev/null 2>&1 && echo resolves");
    if host.trim() == "resolves" {
        network(&s, "open", 3, &[]);
        let lookup = |net: &str| {
            s.berth(&[
                "run",
                "--rm",
                "--network",
                net,
                "busybox",
                "nslookup",
                "deb.debian.org",
            ])
        };
        let inside = lookup("closed");
        assert_ne!(inside.code, 0, "{inside:?}");
        let outside = lookup("open");
        assert_eq!(outside.code, 0, "{outside:?}");
    } else {
        eprintln!("the host resolves no outside name: forwarding not checked");
    }
}

/// A one-shot container on `network` pinging `target` (waiting `wait` s).
fn ping_on(s: &Stack, network: &str, target: &str, wait: u8) -> integration_tests::stack::Out {
    let w = format!("-W{wait}");
    s.berth(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "ping",
        "-c1",
        &w,
        target,
    ])
}

/// Firewall rules that name a container (CNI tags its rules with the id).
fn rules_of(id: &str) -> usize {
    sh("iptables-save")
        .lines()
        .filter(|l| l.contains(id))
        .count()
}

/// The container ends plugged into one of the stack's bridges.
fn veths(bridge: &str) -> usize {
    sh(&format!("ip -o link show master {bridge}"))
        .lines()
        .count()
}

#[test]
fn removal_leaves_nothing_behind() {
    let s = stack();
    let net_id = network(&s, "tmpnet", 3, &[]).trim().to_string();
    let p = free_port();
    let id = httpd(
        &s,
        "gone",
        &["--network", "tmpnet", "-p", &format!("{p}:80")],
    );
    assert!(rules_of(&id) > 0, "no firewall rules for a published port");
    let netns = s
        .berth(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "gone"])
        .ok()
        .to_string();
    assert!(std::path::Path::new(&netns).exists());
    let ipam = s.exec_root.join("ipam");
    let leases = || sh(&format!("grep -rl {id} {} 2>/dev/null", ipam.display()));
    assert!(!leases().is_empty(), "no IPAM lease");
    s.berth(&["rm", "-f", "gone"]).ok();
    assert_eq!(rules_of(&id), 0, "{}", sh("iptables-save"));
    assert_eq!(leases(), "");
    assert!(!std::path::Path::new(&netns).exists());
    // Stopping tears down as well; starting again sets up again.
    s.berth(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "tmpnet",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let bridge = s.net.bridge("3");
    assert_eq!(veths(&bridge), 1);
    s.berth(&["stop", "-t", "0", "again"]).ok();
    // The kernel takes the interface down with the namespace.
    assert!(eventually(10, || veths(&bridge) == 0), "the veth stayed");
    s.berth(&["start", "again"]).ok();
    assert_eq!(veths(&bridge), 1);
    s.berth(&["rm", "-f", "again"]).ok();
    assert!(sh("ip -o link").contains(&bridge));
    assert!(ipam.join(&net_id).exists());
    s.berth(&["network", "rm", "tmpnet"]).ok();
    // host-local's directory of the network (its last-used address).
    assert!(!ipam.join(&net_id).exists(), "the IPAM directory stayed");
    // The kernel deletes the bridge after the answer; a create of the
    // same network (bridge name and subnet) answers once it is gone.
    let again = network(&s, "tmpnet", 3, &[]).trim().to_string();
    assert!(!sh("ip -o link").contains(&bridge), "the bridge stayed");
    s.berth(&["network", "rm", &again]).ok();
    assert!(
        eventually(10, || !sh("ip -o link").contains(&bridge)),
        "the bridge stayed"
    );
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    let s = stack();
    network(&s, "n1", 4, &[]);
    let bridge = s.net.bridge("4");
    let subnet = s.net.subnet(4);
    let out = s.berth(&["network", "create", "--subnet", &subnet, "n2"]);
    assert!(
        out.stderr
            .contains("Pool overlaps with other one on this address space"),
        "{out:?}"
    );
    let out = s.berth(&["network", "create", "--subnet", &s.net.subnet(5), "n1"]);
    assert!(
        out.stderr.contains("network with name n1 already exists"),
        "{out:?}"
    );
    let out = s.berth(&["network", "create", "--subnet", "10.0.0.0/33", "n3"]);
    assert!(
        out.stderr
            .contains("Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"),
        "{out:?}"
    );
    let out = s.berth(&["network", "create", "--ipam-driver", "nosuch", "n4"]);
    assert!(
        out.stderr.contains("plugin \"nosuch\" not found"),
        "{out:?}"
    );
    let out = s.berth(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "--ip",
        "192.0.2.77",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "Invalid address 192.0.2.77: It does not belong to any of this network's subnets"
        ),
        "{out:?}"
    );
    // The default bridge gives its own addresses only, as dockerd's (whose
    // create takes the address and whose start refuses it).
    let body = serde_json::json!({
        "Image": "busybox",
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.50"}}}},
    });
    let (code, made) = s.api(
        "POST",
        "/containers/create?name=fixedip",
        Some(&body.to_string()),
    );
    assert_eq!(code, 201, "{made}");
    let (code, said) = s.api("POST", "/containers/fixedip/start", None);
    assert_eq!(code, 400, "{said}");
    assert!(
        said.contains("user specified IP address is supported on user defined networks only"),
        "{said}"
    );
    s.berth(&["rm", "fixedip"]).ok();
    let out = s.berth(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("network nope not found"), "{out:?}");
    assert!(
        s.berth(&["ps", "-aq"]).ok().is_empty(),
        "run --rm left its container"
    );
    // As dockerd: the network is looked up at start, so a container may be
    // made before its network is.
    let id = s
        .berth(&["create", "--network", "later", "busybox", "true"])
        .ok()
        .to_string();
    let out = s.berth(&["start", &id]);
    assert!(out.stderr.contains("network later not found"), "{out:?}");
    network(&s, "later", 5, &[]);
    s.berth(&["start", "-a", &id]).ok();
    s.berth(&["rm", &id]).ok();
    s.berth(&["network", "rm", "later"]).ok();
    // A fixed address inside the subnet is given.
    let fixed = subnet.replace(".0/24", ".77");
    let out = s
        .berth(&[
            "run",
            "--rm",
            "--network",
            "n1",
            "--ip",
            &fixed,
            "busybox",
            "sh",
            "-c",
            "ip -4 -o addr show eth0 | awk '{print $4}'",
        ])
        .ok()
        .to_string();
    assert_eq!(out, format!("{fixed}/24"));
    s.berth(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "n1",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let out = s.berth(&["network", "rm", "n1"]);
    assert!(out.stderr.contains("has active endpoints"), "{out:?}");
    let out = s.berth(&["network", "connect", "n1", "user"]);
    assert!(
        out.stderr.contains("already exists in network n1"),
        "{out:?}"
    );
    // Of all these, only "user" is plugged in.
    assert_eq!(veths(&bridge), 1);
    let out = s.berth(&["network", "rm", "bridge"]);
    assert!(out.stderr.contains("pre-defined network"), "{out:?}");
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let s = stack();
    network(&s, "front", 6, &[]);
    network(&s, "back", 7, &[]);
    s.berth(&[
        "run",
        "-d",
        "--name",
        "multi",
        "--network",
        "front",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&["network", "connect", "--alias", "db", "back", "multi"])
        .ok();
    let links = s
        .berth(&["exec", "multi", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    ping_on(&s, "back", "db", 3).ok();
    s.berth(&["network", "disconnect", "back", "multi"]).ok();
    let links = s
        .berth(&["exec", "multi", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let out = s.berth(&["network", "disconnect", "back", "multi"]);
    assert!(
        out.stderr.contains("is not connected to network back"),
        "{out:?}"
    );
    // Networks do not reach each other.
    s.berth(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "back",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let other_ip = s
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.back.IPAddress}}",
            "other",
        ])
        .ok()
        .to_string();
    let out = s.berth(&["exec", "multi", "ping", "-c1", "-W2", &other_ip]);
    assert_ne!(out.code, 0, "front reached back: {out:?}");
}

#[test]
fn off_its_mode_network_a_container_keeps_its_mode_and_can_rejoin() {
    let s = stack();
    network(&s, "solo", 8, &[]);
    s.berth(&[
        "run",
        "-d",
        "--name",
        "lone",
        "--network",
        "solo",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&["network", "disconnect", "solo", "lone"]).ok();
    let links = s
        .berth(&["exec", "lone", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    // As Docker: the mode stays, the network is no longer joined.
    let mode = s
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}",
            "lone",
        ])
        .ok()
        .to_string();
    assert_eq!(mode.trim(), "solo 0");
    let out = s.berth(&["network", "disconnect", "solo", "lone"]);
    assert!(
        out.stderr.contains("is not connected to network solo"),
        "{out:?}"
    );
    // It stays off across a restart, and rejoins when connected.
    s.berth(&["restart", "-t", "0", "lone"]).ok();
    let links = s
        .berth(&["exec", "lone", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    s.berth(&["network", "connect", "solo", "lone"]).ok();
    let links = s
        .berth(&["exec", "lone", "ls", "/sys/class/net"])
        .ok()
        .to_string();
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let out = s.berth(&["network", "connect", "solo", "lone"]);
    assert!(
        out.stderr.contains("already exists in network solo"),
        "{out:?}"
    );
}

#[test]
fn a_published_port_keeps_answering_through_daemon_kills() {
    let mut s = stack();
    let p = free_port();
    let id = httpd(&s, "steady", &["-p", &format!("{p}:80")]);
    let url = format!("http://127.0.0.1:{p}/hostname");
    assert!(eventually(10, || curl(&url).trim() == &id[..12]));
    let rules_before = rules_of(&id);
    assert!(rules_before > 0, "the published port has no rules");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, url2) = (stop.clone(), url.clone());
    let looper = std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if curl(&url2).trim().is_empty() {
                failed += 1;
            } else {
                ok += 1;
            }
        }
        (ok, failed)
    });
    std::thread::sleep(Duration::from_millis(300));
    s.kill9_berthd();
    std::thread::sleep(Duration::from_millis(300));
    s.spawn_berthd();
    std::thread::sleep(Duration::from_millis(300));
    s.lc_mut().kill9();
    std::thread::sleep(Duration::from_millis(300));
    s.lc_mut().spawn();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = looper.join().expect("curl loop");
    assert!(ok > 0);
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    // Nothing was added twice or flushed on the restart.
    assert_eq!(rules_of(&id), rules_before);
    assert_eq!(curl(&url).trim(), &id[..12]);
    // The IPv6 side is berthd's relay (as docker-proxy is dockerd's): it
    // is back once berthd is.
    if has_ipv6() {
        let url6 = format!("http://[::1]:{p}/hostname");
        assert!(eventually(10, || curl(&url6).trim() == &id[..12]));
    }
}

/// Whether the host has IPv6 loopback (the relays are bound only then).
fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn a_reboot_like_loss_of_run_state_is_rebuilt_on_start() {
    let mut s = stack();
    network(&s, "after", 8, &[]);
    s.berth(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "after",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "after",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&["stop", "-t", "0", "db", "app"]).ok();
    // What a reboot takes: the engine, its run directory, the bridges.
    s.kill9_berthd();
    let name_server = s.exec_root.join("dns/server.pid");
    if let Some(pid) = std::fs::read_to_string(&name_server)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    std::fs::remove_dir_all(&s.exec_root).expect("removing the run directory");
    for br in [s.net.bridge("8"), s.net.bridge("d")] {
        sh(&format!("ip link delete {br} 2>/dev/null"));
    }
    s.spawn_berthd();
    s.berth(&["start", "db", "app"]).ok();
    let out = s
        .berth(&["exec", "app", "ping", "-c1", "-W3", "db"])
        .ok()
        .to_string();
    assert!(out.contains("1 packets received"), "{out}");
}

/// The default bridge's interface and subnet, as the engine shows them.
fn default_bridge(s: &Stack) -> (String, String) {
    let out = s
        .berth(&[
            "network",
            "inspect",
            "-f",
            r#"{{index .Options "com.docker.network.bridge.name"}} {{(index .IPAM.Config 0).Subnet}}"#,
            "bridge",
        ])
        .ok()
        .to_string();
    let (name, subnet) = out.trim().split_once(' ').expect("name and subnet");
    (name.to_string(), subnet.to_string())
}

fn eth0_of_a_run(s: &Stack) -> String {
    s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0",
    ])
    .ok()
    .to_string()
}

#[test]
fn engines_side_by_side_each_own_a_default_bridge_and_adopt_a_left_one() {
    // The engines' own namespace: their bridges keep Docker's default
    // names without touching the host's.
    let ns = integration_tests::NetNs::new();
    let unnamed = serde_json::json!({"bridge": null, "bip": null});
    let a = Stack::start_in(unnamed.clone(), &[], Some(ns.path()));
    // The second engine draws from the same address pools: the first one's
    // bridge, made at its start, keeps it off that subnet.
    let mut same_pools = unnamed.clone();
    same_pools["default-address-pools"] = a.net.default_bridge_json().2;
    let b = Stack::start_in(same_pools, &[], Some(ns.path()));
    a.load_busybox();
    b.load_busybox();
    let (a_bridge, a_subnet) = default_bridge(&a);
    let (b_bridge, b_subnet) = default_bridge(&b);
    assert_eq!(a_bridge, "berth0");
    assert_eq!(b_bridge, "berth1");
    assert_ne!(a_subnet, b_subnet);
    // Both run containers on their default bridge, at the same time.
    assert!(eth0_of_a_run(&a).contains("inet "));
    assert!(eth0_of_a_run(&b).contains("inet "));
    let links = ns.ip(&["-o", "link", "show", "type", "bridge"]);
    assert!(
        links.contains("berth0") && links.contains("berth1"),
        "{links}"
    );

    // Told to use a bridge another running engine holds: refused at start,
    // naming the keys that resolve it.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"bridge": "berth0"}"#).expect("daemon.json");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("--")
        .arg(integration_tests::bin("berthd"))
        .arg("--config-file")
        .arg(&cfg)
        .arg("-H")
        .arg(format!("unix://{}", dir.path().join("s.sock").display()))
        .arg("--data-root")
        .arg(dir.path().join("d"))
        .arg("--exec-root")
        .arg(dir.path().join("e"))
        .arg("--lifecycled")
        .arg(&a.lc().address)
        .output()
        .expect("berthd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("berth0 belongs to another berthd") && err.contains("\"bip\""),
        "{err}"
    );
    // It names the process that holds it.
    assert!(err.contains("berthd (pid "), "{err}");

    // The first engine goes; one with a fresh data root (and other address
    // pools) takes berth0 over with the address it has, as dockerd adopts
    // docker0.
    drop(a);
    let c = Stack::start_in(unnamed, &[], Some(ns.path()));
    c.load_busybox();
    assert_eq!(default_bridge(&c), (a_bridge, a_subnet.clone()));
    let prefix = a_subnet
        .rsplit_once('.')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let eth0 = eth0_of_a_run(&c);
    assert!(
        eth0.contains(&format!("inet {prefix}.")),
        "{eth0} not in {a_subnet}"
    );
    drop(b);
    drop(c);
}

/// A container on two networks is wired to both at once; when one of the
/// two cannot be joined the start fails and neither keeps anything (veth,
/// address lease, namespace); `network rm` takes the bridge's firewall
/// rules in one batch.
#[test]
fn a_start_on_two_networks_joins_both_or_neither() {
    let s = stack();
    network(&s, "left", 9, &[]);
    network(&s, "right", 10, &[]);
    let (left_br, right_br) = (s.net.bridge("9"), s.net.bridge("10"));
    let taken = s.net.subnet(10).replace(".0/24", ".50");
    s.berth(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        "right",
        "--ip",
        &taken,
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ipam = s.exec_root.join("ipam");
    let leases_of = |id: &str| sh(&format!("grep -rl {id} {} 2>/dev/null", ipam.display()));

    // Joined both: eth0 on the first, eth1 on the second.
    s.berth(&[
        "create",
        "--name",
        "both",
        "--network",
        "left",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&["network", "connect", "right", "both"]).ok();
    s.berth(&["start", "both"]).ok();
    let addrs = s
        .berth(&[
            "exec",
            "both",
            "sh",
            "-c",
            "ip -4 -o addr | awk '{print $2, $4}'",
        ])
        .ok()
        .to_string();
    let prefix = |i: u8| s.net.subnet(i).trim_end_matches("0/24").to_string();
    assert!(addrs.contains(&format!("eth0 {}", prefix(9))), "{addrs}");
    assert!(addrs.contains(&format!("eth1 {}", prefix(10))), "{addrs}");
    assert!(addrs.contains("lo 127.0.0.1/8"), "{addrs}");
    assert_eq!((veths(&left_br), veths(&right_br)), (1, 2));
    s.berth(&["rm", "-f", "both"]).ok();
    assert!(eventually(10, || veths(&left_br) == 0 && veths(&right_br) == 1));

    // The second network refuses (its address is taken): neither is kept.
    s.berth(&[
        "create",
        "--name",
        "half",
        "--network",
        "left",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    s.berth(&["network", "connect", "--ip", &taken, "right", "half"])
        .ok();
    let id = s
        .berth(&["inspect", "-f", "{{.Id}}", "half"])
        .ok()
        .to_string();
    let out = s.berth(&["start", "half"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(&taken), "{out:?}");
    assert_eq!(leases_of(&id), "", "a lease stayed");
    assert!(eventually(10, || veths(&left_br) == 0), "a veth stayed");
    assert_eq!(veths(&right_br), 1);
    let state = s
        .berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.NetworkSettings.SandboxKey}}",
            "half",
        ])
        .ok()
        .to_string();
    assert_eq!(state.split_whitespace().next(), Some("created"), "{state}");
    if let Some(netns) = state.split_whitespace().nth(1) {
        assert!(!std::path::Path::new(netns).exists(), "{netns} stayed");
    }
    s.berth(&["rm", "-f", "half", "holder"]).ok();

    // The rules of the bridge go with it, in one iptables-restore.
    assert!(sh("iptables-save").contains(&left_br));
    s.berth(&["network", "rm", "left", "right"]).ok();
    let rules = sh("iptables-save");
    assert!(
        !rules.contains(&left_br) && !rules.contains(&right_br),
        "{rules}"
    );
    assert!(!s.log().contains("refused the deletions"), "{}", s.log());
}

/// A veth pair of the test's own, up, removed when dropped: a host
/// interface for macvlan and ipvlan networks to hang from.
struct HostLink(String);

impl HostLink {
    fn new(name: &str) -> HostLink {
        let peer = format!("{name}p");
        sh(&format!(
            "ip link add {name} type veth peer name {peer} && ip link set {name} up && ip link set {peer} up"
        ));
        assert!(
            std::path::Path::new("/sys/class/net").join(name).exists(),
            "could not make {name}"
        );
        HostLink(name.to_string())
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        sh(&format!("ip link delete {} 2>/dev/null", self.0));
    }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn macvlan_networks_hang_containers_from_a_host_interface() {
    let s = stack();
    let parent = HostLink::new(&s.net.bridge("mv"));
    let subnet = s.net.subnet(5);
    let prefix = subnet.trim_end_matches(".0/24");
    // The docker CLI, as a user types it.
    let opt = format!("parent={}", parent.0);
    let id = s
        .docker(&[
            "network", "create", "-d", "macvlan", "--subnet", &subnet, "-o", &opt, "mv",
        ])
        .ok()
        .to_string();
    let inspect = |f: &str, what: &str| s.docker(&["inspect", "-f", f, what]).ok().to_string();
    assert_eq!(inspect("{{.Driver}} {{.Internal}}", "mv"), "macvlan false");
    assert_eq!(
        inspect("{{json .Options}}", "mv"),
        format!("{{\"parent\":\"{}\"}}", parent.0)
    );
    // Its containers have their own links on the parent: addresses from
    // the subnet's second on, a way out through its first, names.
    // (Both ask for one host port: a macvlan network publishes none.)
    let publish = format!("{}:80", free_port());
    for name in ["m1", "m2"] {
        s.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "mv",
            "-p",
            &publish,
            "busybox",
            "sleep",
            "600",
        ])
        .ok();
    }
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.mv.IPAddress}}", "m1"),
        format!("{prefix}.2")
    );
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.mv.Gateway}}", "m1"),
        format!("{prefix}.1")
    );
    let link = s
        .docker(&["exec", "m1", "cat", "/sys/class/net/eth0/address"])
        .ok()
        .to_string();
    // dockerd's MAC, made of the address, on the link itself.
    let o: Vec<u8> = prefix.split('.').map(|b| b.parse().unwrap()).collect();
    let mac = format!("02:42:{:02x}:{:02x}:{:02x}:02", o[0], o[1], o[2]);
    assert_eq!(link, mac);
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.mv.MacAddress}}", "m1"),
        mac
    );
    let route = s.docker(&["exec", "m1", "ip", "route"]).ok().to_string();
    assert!(
        route.contains(&format!("default via {prefix}.1")),
        "{route}"
    );
    s.docker(&["exec", "m2", "ping", "-c1", "-W3", "m1"]).ok();
    assert_eq!(s.docker(&["port", "m2"]).ok(), "");
    assert_eq!(inspect("{{json .NetworkSettings.Ports}}", "m2"), "{}");
    // One network per parent and driver; modes checked; a parent that is
    // not there.
    let other = s.docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        &s.net.subnet(6),
        "-o",
        &opt,
        "mv2",
    ]);
    assert_eq!(
        other.stderr.trim(),
        format!(
            "Error response from daemon: network dm-{} is already using parent interface {}",
            &id[..12],
            parent.0
        )
    );
    let bad_mode = s.docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=lo",
        "-o",
        "macvlan_mode=weird",
        "mv3",
    ]);
    assert!(
        bad_mode.stderr.contains(
            "requested macvlan mode 'weird' is not valid, 'bridge' mode is the macvlan driver default"
        ),
        "{bad_mode:?}"
    );
    let missing = s.docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=nosuch0",
        "mv4",
    ]);
    assert!(
        missing
            .stderr
            .contains("invalid subinterface vlan name nosuch0, example formatting is eth0.10"),
        "{missing:?}"
    );
    let names = s
        .docker(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .to_string();
    for refused in ["mv2", "mv3", "mv4"] {
        assert!(!names.lines().any(|l| l == refused), "{names}");
    }
    // Without a parent: a dummy link of the network's own, and the
    // network internal, as dockerd; a kernel without dummy links refuses
    // it and nothing is left.
    let alone = s.docker(&["network", "create", "-d", "macvlan", "mv5"]);
    if alone.code == 0 {
        let id5 = alone.stdout.trim().to_string();
        let dummy = format!("dm-{}", &id5[..12]);
        assert!(link_exists(&dummy));
        assert_eq!(inspect("{{.Internal}}", "mv5"), "true");
        s.docker(&["network", "rm", "mv5"]).ok();
        assert!(!link_exists(&dummy), "the dummy link stayed");
    } else {
        assert!(alone.stderr.contains("dummy link"), "{alone:?}");
        let names = s
            .docker(&["network", "ls", "--format", "{{.Name}}"])
            .ok()
            .to_string();
        assert!(!names.lines().any(|l| l == "mv5"), "{names}");
    }
    // Removed with its containers gone; the parent is the host's and stays.
    let busy = s.docker(&["network", "rm", "mv"]);
    assert!(busy.stderr.contains("active endpoints"), "{busy:?}");
    s.docker(&["rm", "-f", "m1", "m2"]).ok();
    s.docker(&["network", "rm", "mv"]).ok();
    assert!(link_exists(&parent.0));
    // ipvlan takes the same parent (another driver) and checks its modes.
    let iv = s.docker(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        &s.net.subnet(7),
        "-o",
        &opt,
        "-o",
        "ipvlan_mode=l3",
        "iv",
    ]);
    assert_eq!(iv.code, 0, "{iv:?}");
    assert_eq!(
        inspect("{{.Driver}} {{index .Options \"ipvlan_mode\"}}", "iv"),
        "ipvlan l3"
    );
    let bad = s.docker(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "-o",
        "ipvlan_mode=l4",
        "iv2",
    ]);
    assert!(
        bad.stderr
            .contains("requested ipvlan mode 'l4' is not valid"),
        "{bad:?}"
    );
    s.docker(&["network", "rm", "iv"]).ok();
}
