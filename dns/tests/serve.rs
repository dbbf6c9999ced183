//! The server as berthd runs it, on loopback addresses and a port of its
//! own: records from files, reloads on SIGHUP, answers only to askers it
//! knows, forwarding the rest.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, RCODE, ResourceRecord, TYPE};

const NET_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NET_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// The server, killed by its pid when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn hup(&self) {
        signal(self.0.id(), nix::sys::signal::Signal::SIGHUP);
    }
}

fn signal(pid: u32, s: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, s).expect("signal the server");
}

/// A port free on loopback for both UDP and TCP.
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn server(dir: &Path, port: u16, extra: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_berth-dns"))
        .arg("--config")
        .arg(dir)
        .args(["--port", &port.to_string(), "--foreground"])
        .args(extra)
        .spawn()
        .expect("start berth-dns");
    Running(child)
}

fn query(id: u16, name: &str, t: TYPE) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new(name).unwrap(),
        t.into(),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().unwrap()
}

/// Asks `server` from `from` over UDP: the answer's code and A records,
/// or the error (refused: nothing listens).
fn ask(
    from: Ipv4Addr,
    server: SocketAddr,
    id: u16,
    name: &str,
) -> std::io::Result<(RCODE, Vec<Ipv4Addr>)> {
    let s = UdpSocket::bind((from, 0))?;
    s.connect(server)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.send(&query(id, name, TYPE::A))?;
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf)?;
    let p = Packet::parse(&buf[..n]).map_err(std::io::Error::other)?;
    assert_eq!(p.id(), id);
    let a = p
        .answers
        .iter()
        .filter_map(|r| match &r.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect();
    Ok((p.rcode(), a))
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

const ME: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A config directory serving one network on 127.0.0.1, whose one
/// container (127.0.0.1, the tests themselves) is `web`; and a port.
fn one_network() -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        NET_A,
        &format!("127.0.0.1\n{C1} 127.0.0.1  web\n"),
    );
    (dir, free_port())
}

#[test]
fn queries_during_reloads_are_all_answered() {
    let (dir, port) = one_network();
    let s = server(dir.path(), port, &[]);
    let at: SocketAddr = (ME, port).into();
    eventually("the server answers", || {
        ask(ME, at, 1, "web").is_ok_and(|(_, a)| a == [ME])
    });
    // Reloads as fast as berthd may send them, while other networks come
    // and go and the record under question changes its other names.
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicU32::new(0));
    let reloads = {
        let (stop, done) = (stop.clone(), done.clone());
        let (dir, pid) = (dir.path().to_path_buf(), s.0.id());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                write(
                    &dir,
                    NET_A,
                    &format!("127.0.0.1\n{C1} 127.0.0.1  web,alias{n}\n"),
                );
                if n.is_multiple_of(2) {
                    write(&dir, NET_B, "127.0.0.5\n");
                } else {
                    let _ = std::fs::remove_file(dir.join(NET_B));
                }
                signal(pid, nix::sys::signal::Signal::SIGHUP);
                done.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
            n
        })
    };
    // At least 2000 questions, and as many more as it takes for 50 reloads
    // to happen among them: how fast the reloads go depends on the load of
    // the machine (file renames and signals), not on the server.
    let mut failures = Vec::new();
    let mut asked = 0u32;
    let end = Instant::now() + Duration::from_secs(60);
    while asked < 2000 || (done.load(Ordering::Relaxed) < 50 && Instant::now() < end) {
        match ask(ME, at, asked as u16, "web") {
            Ok((RCODE::NoError, a)) if a == [ME] => {}
            other => failures.push(format!("{asked}: {other:?}")),
        }
        asked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let n = reloads.join().unwrap();
    assert!(n >= 50, "only {n} reloads happened in 60 s");
    assert!(
        failures.is_empty(),
        "{} of {asked} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn names_are_for_the_networks_askers_and_the_rest_goes_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let up_at = fake_upstream(Ipv4Addr::new(192, 0, 2, 7));
    write(
        dir.path(),
        NET_A,
        &format!(
            "127.0.0.1\n{C1} 127.0.0.1  web,Web.Alias\n{} 127.0.0.9  peer\n",
            "2".repeat(64)
        ),
    );
    let s = server(dir.path(), port, &["--upstream", &up_at.to_string()]);
    let at: SocketAddr = (ME, port).into();
    eventually("the server answers", || ask(ME, at, 1, "web").is_ok());
    assert_eq!(
        ask(ME, at, 2, "PEER").unwrap(),
        (RCODE::NoError, vec![Ipv4Addr::new(127, 0, 0, 9)])
    );
    assert_eq!(ask(ME, at, 3, "web.alias.").unwrap().1, vec![ME]);
    assert_eq!(
        ask(ME, at, 4, "example.org").unwrap(),
        (RCODE::NoError, vec![Ipv4Addr::new(192, 0, 2, 7)])
    );
    // The host (or any address that is no container's) gets nothing.
    assert_eq!(
        ask(Ipv4Addr::new(127, 0, 0, 2), at, 5, "web").unwrap(),
        (RCODE::Refused, vec![])
    );
    assert_eq!(
        ask(Ipv4Addr::new(127, 0, 0, 2), at, 6, "example.org").unwrap(),
        (RCODE::Refused, vec![])
    );
    // Over TCP, the same answer.
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect(at).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for id in [7u16, 8] {
        let q = query(id, "web", TYPE::A);
        let mut msg = (q.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&q);
        t.write_all(&msg).unwrap();
        let mut len = [0u8; 2];
        t.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        t.read_exact(&mut reply).unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!((p.id(), p.answers.len()), (id, 1));
    }
    // A container that names its own resolvers (`--dns`) has its other
    // names asked there; the others still ask the host's.
    // The file says port 53, as resolv.conf does: the test's server is on
    // 53 of a loopback address of its own.
    let own_at: SocketAddr = "127.0.0.77:53".parse().unwrap();
    if UdpSocket::bind(own_at).is_err() {
        eprintln!("skipped the own resolvers' part: {own_at} is taken");
        return;
    }
    fake_upstream_at(own_at, Ipv4Addr::new(192, 0, 2, 8));
    let upstreams = dir.path().join("upstreams");
    std::fs::create_dir(&upstreams).unwrap();
    std::fs::write(
        upstreams.join("2".repeat(64)),
        format!("nameserver {}\n", own_at.ip()),
    )
    .unwrap();
    s.hup();
    let peer = Ipv4Addr::new(127, 0, 0, 9);
    eventually("the container's own resolver asked", || {
        ask(peer, at, 9, "example.org").ok()
            == Some((RCODE::NoError, vec![Ipv4Addr::new(192, 0, 2, 8)]))
    });
    assert_eq!(
        ask(ME, at, 10, "example.org").unwrap().1,
        vec![Ipv4Addr::new(192, 0, 2, 7)],
        "another container asks the host's"
    );
    assert_eq!(ask(peer, at, 11, "web").unwrap().1, vec![ME], "names stay");
}

/// An upstream server on loopback that answers every name with `with`.
fn fake_upstream(with: Ipv4Addr) -> SocketAddr {
    fake_upstream_at("127.0.0.1:0".parse().unwrap(), with)
}

fn fake_upstream_at(at: SocketAddr, with: Ipv4Addr) -> SocketAddr {
    let upstream = UdpSocket::bind(at).unwrap();
    let up_at = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = upstream.recv_from(&mut buf) {
            let Ok(q) = Packet::parse(&buf[..n]) else {
                continue;
            };
            let mut r = Packet::new_reply(q.id());
            r.questions = q.questions.clone();
            r.answers.push(ResourceRecord::new(
                q.questions[0].qname.clone(),
                CLASS::IN,
                5,
                RData::A(with.into()),
            ));
            let _ = upstream.send_to(&r.build_bytes_vec().unwrap(), from);
        }
    });
    up_at
}

#[test]
fn a_new_networks_gateway_is_served_after_the_reload() {
    let (dir, port) = one_network();
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = server(dir.path(), port, &["--upstream", &closed.to_string()]);
    eventually("the server answers", || {
        ask(ME, (ME, port).into(), 1, "web").is_ok()
    });
    let gw: SocketAddr = (Ipv4Addr::new(127, 0, 0, 6), port).into();
    let asker = Ipv4Addr::new(127, 0, 0, 7);
    assert!(
        ask(asker, gw, 1, "db").is_err(),
        "nothing listens there yet"
    );
    write(
        dir.path(),
        NET_B,
        &format!("127.0.0.6\n{} 127.0.0.7  db\n", "3".repeat(64)),
    );
    s.hup();
    eventually("the new gateway answers", || {
        ask(asker, gw, 2, "db").is_ok_and(|(_, a)| a == [asker])
    });
    // Networks do not see each other's names: web is asked upstream,
    // which here is a closed port.
    assert_eq!(
        ask(asker, gw, 3, "web").unwrap(),
        (RCODE::ServerFailure, vec![])
    );
}

#[test]
fn started_as_berthd_starts_it_it_detaches_and_stops_on_sigterm() {
    let (dir, port) = one_network();
    let st = Command::new(env!("CARGO_BIN_EXE_berth-dns"))
        .arg("--config")
        .arg(dir.path())
        .args(["--port", &port.to_string()])
        .status()
        .unwrap();
    let pid_file = dir.path().join("server.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the pid file, written before the start returns")
        .trim()
        .parse()
        .unwrap();
    // Killed by its pid however the test ends.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _k = Kill(pid);
    assert!(st.success());
    // It listens once the start returned.
    assert_eq!(ask(ME, (ME, port).into(), 1, "web").unwrap().1, vec![ME]);
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    eventually("the pid file goes with the server", || !pid_file.exists());
    // A second start of a config that is no directory says so.
    let out = Command::new(env!("CARGO_BIN_EXE_berth-dns"))
        .args(["--config", "/nonexistent/dns"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

/// Asks `server` over TCP (a length in front of each message).
fn ask_tcp(server: SocketAddr, id: u16, name: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let q = query(id, name, TYPE::A);
    let mut msg = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    s.write_all(&msg)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    let p = Packet::parse(&buf).map_err(std::io::Error::other)?;
    Ok(p.answers
        .iter()
        .filter_map(|r| match &r.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect())
}

/// A network namespace held at a file (with its loopback up), as berthd
/// holds a container's; unmounted however the test ends.
struct Netns(std::path::PathBuf);

impl Netns {
    fn new(path: std::path::PathBuf) -> Netns {
        berth_cni::netns::create_with_loopback(&path).expect("a network namespace");
        Netns(path)
    }

    /// `f` run inside it.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        berth_cni::netns::run_in(&self.0, f).expect("entering the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = berth_cni::netns::remove(&self.0);
    }
}

/// Docker's embedded DNS answers at 127.0.0.11 inside each container's
/// namespace (software is configured with that address). With the
/// namespaces' directory the server does so for every container with a
/// record, as that container (the names of all its networks), over UDP
/// and TCP; a container started again (a new namespace at the same path)
/// is served in the new one; one whose records went is not served.
#[test]
fn each_container_is_answered_at_127_0_0_11_in_its_own_namespace() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: making network namespaces needs root");
        return;
    }
    const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    let dir = tempfile::tempdir().unwrap();
    let nsdir = tempfile::tempdir().unwrap();
    // C1 on both networks, C2 on B only; served on no real gateway.
    write(
        dir.path(),
        NET_A,
        &format!("127.0.0.1\n{C1} 10.9.1.2  web\n"),
    );
    write(
        dir.path(),
        NET_B,
        &format!("127.0.0.1 internal\n{C1} 10.9.2.2  web\n{C2} 10.9.2.3  db\n"),
    );
    let port = free_port();
    let mut ns = Netns::new(nsdir.path().join(C1));
    let nsdir_arg = nsdir.path().display().to_string();
    let s = server(dir.path(), port, &["--netns-dir", &nsdir_arg]);
    let at: SocketAddr = (Ipv4Addr::new(127, 0, 0, 11), port).into();
    let answered =
        |ns: &Netns, name: &'static str| ns.run(move || ask(ME, at, 7, name).ok().map(|(_, a)| a));
    eventually("served at 127.0.0.11 in the namespace", || {
        answered(&ns, "db").is_some()
    });
    assert_eq!(
        answered(&ns, "db"),
        Some(vec![Ipv4Addr::new(10, 9, 2, 3)]),
        "a peer on the other network"
    );
    // Every thread of the server is back in the host's namespace: one
    // left in the container's would keep it alive after the container.
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    for t in std::fs::read_dir(format!("/proc/{}/task", s.0.id())).unwrap() {
        let t = t.unwrap().path();
        assert_eq!(std::fs::read_link(t.join("ns/net")).unwrap(), host, "{t:?}");
    }
    let mut web = answered(&ns, "web").unwrap();
    web.sort();
    assert_eq!(
        web,
        vec![Ipv4Addr::new(10, 9, 1, 2), Ipv4Addr::new(10, 9, 2, 2)]
    );
    assert_eq!(
        ns.run(move || ask_tcp(at, 8, "db").ok()),
        Some(vec![Ipv4Addr::new(10, 9, 2, 3)]),
        "over TCP"
    );
    // Started again: a new namespace at the same path.
    drop(ns);
    ns = Netns::new(nsdir.path().join(C1));
    s.hup();
    eventually("served in the new namespace", || {
        answered(&ns, "db").is_some()
    });
    // Its records gone: nothing listens for it any more.
    write(
        dir.path(),
        NET_B,
        &format!("127.0.0.1 internal\n{C2} 10.9.2.3  db\n"),
    );
    std::fs::remove_file(dir.path().join(NET_A)).unwrap();
    s.hup();
    eventually("let go with its records", || {
        ns.run(move || {
            matches!(ask(ME, at, 9, "db"), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        })
    });
}
