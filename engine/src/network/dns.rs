//! Names on user-defined networks, served by berth-dns (the `dns/` crate):
//! one process for the engine, one file per network (its format, both
//! sides, is `berth_dns::records`), read again on SIGHUP with the
//! listeners kept.
//! It answers only askers on the same network and forwards the rest to
//! the host's resolvers. It runs on its own, so a berthd restart does not
//! interrupt name resolution.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::NetError;

/// The server's pid file in its directory.
const PID_FILE: &str = "server.pid";
/// Where its warnings go, in its directory.
const LOG_FILE: &str = "server.log";
/// The resolvers containers name themselves, one file each (the server's
/// contract: `berth_dns::serve::UPSTREAMS_DIR`).
const UPSTREAMS_DIR: &str = berth_dns::serve::UPSTREAMS_DIR;
/// The directory and pid file of the aardvark-dns that engines before
/// berth-dns ran: taken over at start.
const AARDVARK_DIR: &str = "aardvark-dns";
const AARDVARK_PID: &str = "aardvark.pid";

pub struct Dns {
    dir: PathBuf,
    /// The containers' network namespaces (one file each, named by the
    /// container's id): the server answers each at 127.0.0.11 in its own.
    netns_dir: PathBuf,
    binary: Option<PathBuf>,
    /// One change at a time: files and the reload signal go together.
    lock: std::sync::Mutex<()>,
    /// Gateways the server did not answer on when a start last waited
    /// (a server that cannot listen there: another on port 53), and
    /// when: starts wait on them briefly for a while.
    unserved: std::sync::Mutex<std::collections::HashMap<Ipv4Addr, Instant>>,
}

/// How long a gateway the server did not answer on is waited on briefly.
const UNSERVED_FOR: Duration = Duration::from_secs(30);

/// A container's names on one network.
pub use berth_dns::records::Entry as Record;
pub use berth_dns::records::is_dns_name;
use berth_dns::records::{self, is_id};

impl Dns {
    pub fn new(dir: &Path, netns_dir: &Path) -> Dns {
        Dns {
            dir: dir.to_path_buf(),
            netns_dir: netns_dir.to_path_buf(),
            binary: server_binary(),
            lock: std::sync::Mutex::new(()),
            unserved: Default::default(),
        }
    }

    pub fn available(&self) -> bool {
        self.binary.is_some()
    }

    /// A network's file is named by its id, never by its name: a name is
    /// the caller's and must not become a path.
    fn file(&self, network_id: &str) -> Result<PathBuf, NetError> {
        if !is_id(network_id) {
            return Err(NetError::Invalid(format!(
                "DNS file for network {network_id:?}: not a network id"
            )));
        }
        Ok(self.dir.join(network_id))
    }

    /// Adds (or replaces) a container's record on the network `network_id`,
    /// served on `gateway` (besides 127.0.0.11 in the container; "" for
    /// none: a macvlan or ipvlan gateway is not the host's); on an
    /// `internal` network the server forwards
    /// no names out (a container only there has no way out, DNS included).
    /// Other names the container asks go to `upstreams` (its `--dns`
    /// servers) when it names any, else to the host's resolvers.
    pub fn add(
        &self,
        network_id: &str,
        gateway: &str,
        internal: bool,
        r: &Record,
        upstreams: &[String],
    ) -> Result<(), NetError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = records::line(r).map_err(|e| NetError::Invalid(e.0))?;
        self.write_upstreams(r.container_id, upstreams)?;
        let gateway = match gateway {
            "" => None,
            g => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| NetError::Invalid(format!("DNS gateway {g:?}: not an address")))?,
            ),
        };
        let file = self.file(network_id)?;
        std::fs::create_dir_all(&self.dir)?;
        let (_, mut lines) = self.read(&file);
        lines.retain(|l| records::line_id(l) != Some(r.container_id));
        lines.push(line);
        self.write(&file, &records::header(gateway, internal), &lines)?;
        self.reload()
    }

    /// Drops a container's record; the network's file goes with its last.
    pub fn remove(
        &self,
        network_id: &str,
        gateway: &str,
        container_id: &str,
    ) -> Result<(), NetError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.file(network_id)?;
        if !file.exists() {
            return Ok(());
        }
        let (header, mut lines) = self.read(&file);
        lines.retain(|l| records::line_id(l) != Some(container_id));
        if lines.is_empty() {
            let _ = std::fs::remove_file(&file);
        } else {
            // The header as the last add wrote it (with its flags).
            let header = match header {
                Some(h) => h,
                None => records::header(gateway.parse().ok(), false),
            };
            self.write(&file, &header, &lines)?;
        }
        if !self.recorded(container_id) {
            let _ = std::fs::remove_file(self.dir.join(UPSTREAMS_DIR).join(container_id));
        }
        self.reload()
    }

    /// The container's own resolvers for the server, or none (the host's
    /// are asked). Only addresses go into the file.
    fn write_upstreams(&self, container_id: &str, upstreams: &[String]) -> Result<(), NetError> {
        let dir = self.dir.join(UPSTREAMS_DIR);
        let file = dir.join(container_id);
        let servers: Vec<std::net::IpAddr> =
            upstreams.iter().filter_map(|u| u.parse().ok()).collect();
        if servers.is_empty() {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => return Ok(()),
            }
        }
        let text: String = servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        if std::fs::read_to_string(&file).is_ok_and(|old| old == text) {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{container_id}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)?;
        Ok(())
    }

    /// Whether some network's file still holds the container.
    fn recorded(&self, container_id: &str) -> bool {
        self.network_files().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .any(|l| records::line_id(l) == Some(container_id))
        })
    }

    fn network_files(&self) -> impl Iterator<Item = PathBuf> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| is_id(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
    }

    /// A network's file: its header (None when missing or blank) and its
    /// records' lines.
    fn read(&self, file: &Path) -> (Option<String>, Vec<String>) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut lines = text.lines();
        let header = lines
            .next()
            .filter(|h| !h.trim().is_empty())
            .map(String::from);
        let records = lines
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        (header, records)
    }

    fn write(&self, file: &Path, header: &str, lines: &[String]) -> Result<(), NetError> {
        let mut text = format!("{header}\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, file)?;
        Ok(())
    }

    fn pid(&self) -> Option<Pid> {
        live_pid(&self.dir.join(PID_FILE), "berth-dns")
    }

    /// Has the server read the files again, starting it if it is not
    /// running and there is something to serve. It keeps running when
    /// the last network goes (the next one is served without a start);
    /// berthd ends it when it stops idle.
    fn reload(&self) -> Result<(), NetError> {
        if let Some(pid) = self.pid() {
            kill(pid, Signal::SIGHUP).map_err(std::io::Error::from)?;
            return Ok(());
        }
        if !self.has_networks() {
            return Ok(());
        }
        let Some(bin) = &self.binary else {
            return Ok(());
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        // It detaches and returns once it listens.
        let out = std::process::Command::new(bin)
            .arg("--config")
            .arg(&self.dir)
            .arg("--netns-dir")
            .arg(&self.netns_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .status()?;
        if !out.success() {
            return Err(NetError::Plugin {
                plugin: "berth-dns".into(),
                message: format!(
                    "starting: {out} (see {})",
                    self.dir.join(LOG_FILE).display()
                ),
            });
        }
        Ok(())
    }

    /// Whether the running server answers containers at 127.0.0.11 in
    /// their namespaces: one an older engine started (and a berthd
    /// restart kept) does not, and a start must not wait for it there.
    pub fn serves_inside(&self) -> bool {
        self.pid()
            .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .is_some_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"--netns-dir"))
    }

    fn has_networks(&self) -> bool {
        self.network_files().next().is_some()
    }

    /// At berthd's start: the records an engine that ran aardvark-dns
    /// left are taken over (that server is stopped: it holds the
    /// gateways' port), and the server is started if records are there
    /// and it is not running (it died while berthd was down).
    pub fn resume(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = self.dir.parent().map(|p| p.join(AARDVARK_DIR))
            && old.is_dir()
        {
            if let Some(pid) = live_pid(&old.join(AARDVARK_PID), "aardvark-dns") {
                let _ = kill(pid, Signal::SIGTERM);
                let gone = (0..100).any(|_| {
                    std::thread::sleep(Duration::from_millis(10));
                    kill(pid, None).is_err()
                });
                if !gone {
                    tracing::warn!("aardvark-dns ({pid}) did not stop: it may hold port 53");
                }
            }
            let _ = std::fs::create_dir_all(&self.dir);
            for e in std::fs::read_dir(&old).into_iter().flatten().flatten() {
                let name = e.file_name();
                if is_id(&name.to_string_lossy()) && !self.dir.join(&name).exists() {
                    let _ = std::fs::rename(e.path(), self.dir.join(&name));
                }
            }
            let _ = std::fs::remove_dir_all(&old);
            tracing::info!("names now served by berth-dns (was aardvark-dns)");
        }
        // The own resolvers of containers whose records went while berthd
        // was stopping.
        for e in std::fs::read_dir(self.dir.join(UPSTREAMS_DIR))
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().into_owned();
            if !is_id(&id) || !self.recorded(&id) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if self.pid().is_none()
            && self.has_networks()
            && let Err(e) = self.reload()
        {
            tracing::warn!("starting the name server: {e}");
        }
    }

    /// Ends the server when no network has a record left to serve (a
    /// stopping engine whose containers are gone).
    pub fn stop_if_idle(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.has_networks()
            && let Some(pid) = self.pid()
        {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
}

/// berth-dns beside berthd (an installed or built tree), else on PATH.
fn server_binary() -> Option<PathBuf> {
    const NAME: &str = "berth-dns";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(NAME)))
        .filter(|p| p.exists());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(NAME))
                .find(|p| p.exists())
        })
    })
}

/// The pid in `file` if that process lives and is `what`: a pid file may
/// outlive its process (a reboot-like cleanup keeps /run but not
/// processes) and the pid be another's by now.
fn live_pid(file: &Path, what: &str) -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(what)
        .then_some(Pid::from_raw(pid))
}

/// One of a container's addresses on a network with names, and where it
/// asks: the network's gateway, when the host has it (a bridge's; not a
/// macvlan network's, whose containers ask at 127.0.0.11 only).
pub struct Asker {
    pub own: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

/// Waits until the server, asked from inside the container's namespace
/// `netns` from each of `askers`' addresses, answers `name` with that
/// address: it has read the container's record; with `inside`, until it
/// answers at 127.0.0.11 there as well (it listens there after the same
/// reload). The server reads a new
/// record on a reload (after the SIGHUP) and until then answers nothing
/// to an asker it does not know, so a process started at once could not
/// resolve its peers (busybox's resolver says "bad address" and gives
/// up); Docker's resolver has a record before the start. Returns the
/// server addresses on which it was not served within `limit`.
pub fn wait_served(
    netns: &Path,
    name: &str,
    askers: &[Asker],
    inside: bool,
    limit: Duration,
) -> Vec<Ipv4Addr> {
    let name = name.to_string();
    // (from, server, the address the answer must hold)
    let mut probes: Vec<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> = askers
        .iter()
        .filter_map(|a| Some((a.own, a.gateway?, a.own)))
        .collect();
    if let (true, Some(a)) = (inside, askers.first()) {
        probes.push((Ipv4Addr::LOCALHOST, RESOLVER, a.own));
    }
    let all: Vec<Ipv4Addr> = probes.iter().map(|&(_, server, _)| server).collect();
    let deadline = Instant::now() + limit;
    berth_cni::netns::run_in(netns, move || {
        probes
            .iter()
            .filter(|&&(from, server, own)| !answered(&name, from, server, own, deadline))
            .map(|&(_, server, _)| server)
            .collect()
    })
    .unwrap_or(all)
}

/// Docker's embedded DNS address, which the server also answers each
/// container at inside its namespace.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

impl Dns {
    /// Whether the server did not answer on one of `askers`' gateways
    /// (or at 127.0.0.11, with `inside`) when a start last waited there,
    /// within the last 30 s.
    pub fn recently_unserved(&self, askers: &[Asker], inside: bool) -> bool {
        let mut unserved = self.unserved.lock().unwrap_or_else(|e| e.into_inner());
        unserved.retain(|_, at| at.elapsed() < UNSERVED_FOR);
        askers
            .iter()
            .filter_map(|a| a.gateway)
            .any(|g| unserved.contains_key(&g))
            || inside && unserved.contains_key(&RESOLVER)
    }

    /// Gateways a wait gave up on (see [`Dns::recently_unserved`]).
    pub fn note_unserved(&self, gateways: &[Ipv4Addr]) {
        let mut unserved = self.unserved.lock().unwrap_or_else(|e| e.into_inner());
        for g in gateways {
            unserved.insert(*g, Instant::now());
        }
    }
}

/// Asks `server` for `name` from `from` until it answers with `own`.
fn answered(
    name: &str,
    from: Ipv4Addr,
    server: Ipv4Addr,
    own: Ipv4Addr,
    deadline: Instant,
) -> bool {
    let Ok(sock) = UdpSocket::bind((from, 0)) else {
        return false;
    };
    if sock.connect((server, 53)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    for id in 1u16.. {
        if Instant::now() >= deadline {
            return false;
        }
        let Some(query) = query(id, name) else {
            return false;
        };
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if wait.is_zero() || sock.set_read_timeout(Some(wait)).is_err() {
            return false;
        }
        // Refused (nothing listens yet on a new network's gateway) or no
        // answer: asked again after a moment.
        let got = sock.send(&query).and_then(|_| sock.recv(&mut buf));
        match got {
            Ok(n) if answers_with(&buf[..n], id, own) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => {}
        }
    }
    false
}

/// An A query for `name`, recursion desired.
fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, TYPE};
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new(name).ok()?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().ok()
}

/// Whether `reply` answers query `id` with the address `own`.
fn answers_with(reply: &[u8], id: u16, own: Ipv4Addr) -> bool {
    use simple_dns::{Packet, PacketFlag, rdata::RData};
    let Ok(p) = Packet::parse(reply) else {
        return false;
    };
    p.id() == id
        && p.has_flags(PacketFlag::RESPONSE)
        && p.answers
            .iter()
            .any(|r| matches!(&r.rdata, RData::A(a) if Ipv4Addr::from(a.address) == own))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_an_answer_to_the_query_with_the_own_address_counts() {
        use simple_dns::{CLASS, Name, Packet, ResourceRecord, rdata};
        let own: Ipv4Addr = "10.1.0.5".parse().unwrap();
        let q = Packet::parse(&query(7, "0123456789ab").unwrap())
            .unwrap()
            .questions[0]
            .qname
            .to_string();
        assert_eq!(q, "0123456789ab");
        let reply = |id: u16, addr: Ipv4Addr| {
            let mut p = Packet::new_reply(id);
            p.answers.push(ResourceRecord::new(
                Name::new_unchecked("0123456789ab"),
                CLASS::IN,
                60,
                rdata::RData::A(rdata::A::from(addr)),
            ));
            p.build_bytes_vec().unwrap()
        };
        assert!(answers_with(&reply(7, own), 7, own));
        // Another query's answer, another address, no answer, garbage.
        assert!(!answers_with(&reply(6, own), 7, own));
        assert!(!answers_with(
            &reply(7, "10.1.0.6".parse().unwrap()),
            7,
            own
        ));
        assert!(!answers_with(
            &Packet::new_reply(7).build_bytes_vec().unwrap(),
            7,
            own
        ));
        assert!(!answers_with(b"\x00\x07", 7, own));
        // A query is not an answer.
        assert!(!answers_with(&query(7, "0123456789ab").unwrap(), 7, own));
    }

    #[test]
    fn a_gateway_left_unanswered_is_remembered_for_a_while() {
        let dns = Dns::new(
            std::path::Path::new("/nonexistent"),
            std::path::Path::new("/nonexistent/netns"),
        );
        let asker = |g: &str| Asker {
            own: "10.1.0.5".parse().unwrap(),
            gateway: Some(g.parse().unwrap()),
        };
        assert!(!dns.recently_unserved(&[asker("10.1.0.1")], true));
        dns.note_unserved(&["10.1.0.1".parse().unwrap()]);
        assert!(dns.recently_unserved(&[asker("10.2.0.1"), asker("10.1.0.1")], false));
        assert!(!dns.recently_unserved(&[asker("10.2.0.1")], true));
        // Unanswered at 127.0.0.11: every start that waits there is brief.
        dns.note_unserved(&[RESOLVER]);
        assert!(dns.recently_unserved(&[asker("10.2.0.1")], true));
        assert!(!dns.recently_unserved(&[asker("10.2.0.1")], false));
        // Forgotten once its time is up.
        if let Some(then) = Instant::now().checked_sub(UNSERVED_FOR) {
            dns.unserved
                .lock()
                .unwrap()
                .insert("10.1.0.1".parse().unwrap(), then);
            assert!(!dns.recently_unserved(&[asker("10.1.0.1")], false));
        }
    }

    /// A Dns with its files under `dir` and no server to signal.
    fn in_dir(dir: &std::path::Path) -> Dns {
        Dns {
            dir: dir.join("dns"),
            netns_dir: dir.join("netns"),
            binary: None,
            lock: std::sync::Mutex::new(()),
            unserved: Default::default(),
        }
    }

    #[test]
    fn names_and_paths_cannot_escape_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dns = in_dir(dir.path());
        let r = |names: &[&str]| Record {
            container_id: ID,
            ipv4: "10.1.0.2",
            ipv6: "",
            names: names.iter().map(|s| s.to_string()).collect(),
            linked_as: Vec::new(),
        };
        let traversal = "/../../../../../../etc/cron.d/x";
        assert!(
            dns.add(traversal, "10.1.0.1", false, &r(&["a"]), &[])
                .is_err()
        );
        assert!(dns.remove(traversal, "10.1.0.1", ID).is_err());
        assert!(
            dns.add(
                ID,
                "10.1.0.1",
                false,
                &r(&["evil\n0000 6.6.6.6  injected"]),
                &[]
            )
            .is_err()
        );
        assert!(dns.add(ID, "10.1.0.1", false, &r(&["a,b"]), &[]).is_err());
        assert!(dns.add(ID, "10.1.0.1\nx", false, &r(&["a"]), &[]).is_err());
        // A link alias, and the id of the container it is answered to.
        let linked = |alias: &str, asker: &str| Record {
            linked_as: vec![(alias.to_string(), asker.to_string())],
            ..r(&["web"])
        };
        assert!(
            dns.add(ID, "10.1.0.1", false, &linked("x@y", ID), &[])
                .is_err()
        );
        assert!(
            dns.add(
                ID,
                "10.1.0.1",
                false,
                &linked("db", "x 10.6.6.6  evil"),
                &[]
            )
            .is_err()
        );
        dns.add(ID, "10.1.0.1", false, &r(&["web", "web.alias"]), &[])
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("dns").join(ID)).unwrap();
        assert_eq!(text, format!("10.1.0.1\n{ID} 10.1.0.2  web,web.alias\n"));
        dns.add(ID, "10.1.0.1", false, &linked("db", ID), &[])
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("dns").join(ID)).unwrap();
        assert_eq!(text, format!("10.1.0.1\n{ID} 10.1.0.2  web db@{ID}\n"));
        // An internal network's header says so, and a remove keeps it.
        let other = "f".repeat(64);
        let second = Record {
            container_id: &other,
            ..r(&["x"])
        };
        dns.add(ID, "10.1.0.1", true, &second, &[]).unwrap();
        dns.remove(ID, "10.1.0.1", &other).unwrap();
        let text = std::fs::read_to_string(dir.path().join("dns").join(ID)).unwrap();
        assert_eq!(
            text,
            format!("10.1.0.1 internal\n{ID} 10.1.0.2  web db@{ID}\n")
        );
    }

    /// A container's own resolvers (`--dns`) are written for the server
    /// as addresses only, and go with its last record.
    #[test]
    fn own_resolvers_are_kept_while_the_container_has_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let dns = in_dir(dir.path());
        let r = Record {
            container_id: ID,
            ipv4: "10.1.0.2",
            ipv6: "",
            names: vec!["web".into()],
            linked_as: Vec::new(),
        };
        let (net_a, net_b) = ("a".repeat(64), "b".repeat(64));
        let own = vec!["10.99.0.1".to_string(), "x\nnameserver 6.6.6.6".into()];
        dns.add(&net_a, "10.1.0.1", false, &r, &own).unwrap();
        dns.add(&net_b, "10.2.0.1", false, &r, &own).unwrap();
        let file = dir.path().join("dns/upstreams").join(ID);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "nameserver 10.99.0.1\n"
        );
        dns.remove(&net_a, "10.1.0.1", ID).unwrap();
        assert!(file.exists(), "still on the other network");
        dns.remove(&net_b, "10.2.0.1", ID).unwrap();
        assert!(!file.exists());
        // None named: the host's are asked, and no file is left.
        dns.add(&net_a, "10.1.0.1", false, &r, &own).unwrap();
        dns.add(&net_a, "10.1.0.1", false, &r, &[]).unwrap();
        assert!(!file.exists());
    }
}
