//! Names on user-defined networks, served by Debian's aardvark-dns (the
//! resolver podman's netavark runs): one process for the engine, one
//! config file per network (first line: the addresses it listens on, the
//! network's gateways; then `id ipv4 ipv6 names` per container), reloaded
//! on SIGHUP. It answers only askers on the same network and forwards the
//! rest to the host's resolvers. It runs on its own, so a berthd restart
//! does not interrupt name resolution.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::NetError;

const BINARIES: &[&str] = &[
    "/usr/lib/podman/aardvark-dns",
    "/usr/libexec/podman/aardvark-dns",
];

pub struct Dns {
    dir: PathBuf,
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
pub struct Record<'a> {
    pub container_id: &'a str,
    pub ipv4: &'a str,
    /// Empty on an IPv4-only network.
    pub ipv6: &'a str,
    pub names: Vec<String>,
}

impl Dns {
    pub fn new(dir: &Path) -> Dns {
        Dns {
            dir: dir.to_path_buf(),
            binary: BINARIES.iter().map(PathBuf::from).find(|p| p.exists()),
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
    /// served on `gateway`.
    pub fn add(&self, network_id: &str, gateway: &str, r: &Record) -> Result<(), NetError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = record_line(r)?;
        gateway
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| NetError::Invalid(format!("DNS gateway {gateway:?}: not an address")))?;
        let file = self.file(network_id)?;
        std::fs::create_dir_all(&self.dir)?;
        let mut lines = self.lines(&file);
        lines.retain(|l| l.split(' ').next() != Some(r.container_id));
        lines.push(line);
        self.write(&file, gateway, &lines)?;
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
        let mut lines = self.lines(&file);
        lines.retain(|l| l.split(' ').next() != Some(container_id));
        if lines.is_empty() {
            let _ = std::fs::remove_file(&file);
        } else {
            self.write(&file, gateway, &lines)?;
        }
        self.reload()
    }

    fn lines(&self, file: &Path) -> Vec<String> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    fn write(&self, file: &Path, gateway: &str, lines: &[String]) -> Result<(), NetError> {
        let mut text = format!("{gateway}\n");
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
        let pid: i32 = std::fs::read_to_string(self.dir.join("aardvark.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let pid = Pid::from_raw(pid);
        // The pid file may outlive its process (a reboot-like cleanup keeps
        // /run but not processes): only a live aardvark counts.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("aardvark-dns")
            .then_some(pid)
    }

    /// Has the server read the files again, starting it if it is not
    /// running (and there is something to serve); it exits by itself when
    /// the last network file is gone.
    fn reload(&self) -> Result<(), NetError> {
        let has_networks = std::fs::read_dir(&self.dir)?.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            !n.starts_with('.') && n != "aardvark.pid"
        });
        if let Some(pid) = self.pid() {
            if has_networks {
                kill(pid, Signal::SIGHUP).map_err(std::io::Error::from)?;
            } else {
                let _ = kill(pid, Signal::SIGTERM);
            }
            return Ok(());
        }
        let (Some(bin), true) = (&self.binary, has_networks) else {
            return Ok(());
        };
        // It forks into the background and returns once it serves.
        let st = std::process::Command::new(bin)
            .arg("--config")
            .arg(&self.dir)
            .args(["-p", "53", "run"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            return Err(NetError::Plugin {
                plugin: "aardvark-dns".into(),
                message: format!("starting: {st}"),
            });
        }
        Ok(())
    }

    /// Ends the server when no network has a record left to serve (a
    /// stopping engine whose containers are gone).
    pub fn stop_if_idle(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let serving = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| is_id(&e.file_name().to_string_lossy()));
        if !serving && let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }

    /// Ends the server (the engine's networks are all gone).
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
}

/// One of a container's addresses on a network with names, and where it
/// asks: the network's gateway.
pub struct Asker {
    pub own: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// Waits until the server, asked from inside the container's namespace
/// `netns` from each of `askers`' addresses, answers `name` with that
/// address: it has read the container's record. The server reads a new
/// record on a reload (after the SIGHUP) and until then answers nothing
/// to an asker it does not know, so a process started at once could not
/// resolve its peers (busybox's resolver says "bad address" and gives
/// up); Docker's resolver has a record before the start. Returns the
/// gateways on which it was not served within `limit`.
pub fn wait_served(netns: &Path, name: &str, askers: &[Asker], limit: Duration) -> Vec<Ipv4Addr> {
    let name = name.to_string();
    let askers: Vec<(Ipv4Addr, Ipv4Addr)> = askers.iter().map(|a| (a.own, a.gateway)).collect();
    let all: Vec<Ipv4Addr> = askers.iter().map(|&(_, g)| g).collect();
    let deadline = Instant::now() + limit;
    berth_cni::netns::run_in(netns, move || {
        askers
            .iter()
            .filter(|&&(own, gateway)| !answered(&name, own, gateway, deadline))
            .map(|&(_, gateway)| gateway)
            .collect()
    })
    .unwrap_or(all)
}

impl Dns {
    /// Whether the server did not answer on one of `askers`' gateways
    /// when a start last waited there, within the last 30 s.
    pub fn recently_unserved(&self, askers: &[Asker]) -> bool {
        let mut unserved = self.unserved.lock().unwrap_or_else(|e| e.into_inner());
        unserved.retain(|_, at| at.elapsed() < UNSERVED_FOR);
        askers.iter().any(|a| unserved.contains_key(&a.gateway))
    }

    /// Gateways a wait gave up on (see [`Dns::recently_unserved`]).
    pub fn note_unserved(&self, gateways: &[Ipv4Addr]) {
        let mut unserved = self.unserved.lock().unwrap_or_else(|e| e.into_inner());
        for g in gateways {
            unserved.insert(*g, Instant::now());
        }
    }
}

/// Asks `gateway` for `name` from `own` until it answers with `own`.
fn answered(name: &str, own: Ipv4Addr, gateway: Ipv4Addr, deadline: Instant) -> bool {
    let Ok(sock) = UdpSocket::bind((own, 0)) else {
        return false;
    };
    if sock.connect((gateway, 53)).is_err() {
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

/// A 64-hex-digit id (networks and containers).
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `id ipv4 ipv6 name,name…` (ipv6 empty on IPv4 networks, two spaces
/// then, as aardvark-dns reads it): every field checked, so that nothing a caller
/// named can add a line or a field to the file.
fn record_line(r: &Record) -> Result<String, NetError> {
    if !is_id(r.container_id) {
        return Err(NetError::Invalid(format!(
            "DNS record for {:?}: not a container id",
            r.container_id
        )));
    }
    r.ipv4
        .parse::<std::net::Ipv4Addr>()
        .map_err(|_| NetError::Invalid(format!("DNS record address {:?}", r.ipv4)))?;
    if !r.ipv6.is_empty() {
        r.ipv6
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| NetError::Invalid(format!("DNS record address {:?}", r.ipv6)))?;
    }
    if let Some(bad) = r.names.iter().find(|n| !is_dns_name(n)) {
        return Err(NetError::Invalid(format!("DNS name {bad:?}")));
    }
    Ok(format!(
        "{} {} {} {}",
        r.container_id,
        r.ipv4,
        r.ipv6,
        r.names.join(",")
    ))
}

/// What aardvark-dns can serve: letters, digits, `-`, `_` and `.`, as
/// container names and aliases are.
pub fn is_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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
        let dns = Dns::new(std::path::Path::new("/nonexistent"));
        let asker = |g: &str| Asker {
            own: "10.1.0.5".parse().unwrap(),
            gateway: g.parse().unwrap(),
        };
        assert!(!dns.recently_unserved(&[asker("10.1.0.1")]));
        dns.note_unserved(&["10.1.0.1".parse().unwrap()]);
        assert!(dns.recently_unserved(&[asker("10.2.0.1"), asker("10.1.0.1")]));
        assert!(!dns.recently_unserved(&[asker("10.2.0.1")]));
        // Forgotten once its time is up.
        if let Some(then) = Instant::now().checked_sub(UNSERVED_FOR) {
            dns.unserved
                .lock()
                .unwrap()
                .insert("10.1.0.1".parse().unwrap(), then);
            assert!(!dns.recently_unserved(&[asker("10.1.0.1")]));
        }
    }

    #[test]
    fn names_and_paths_cannot_escape_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dns = Dns {
            dir: dir.path().join("dns"),
            binary: None,
            lock: std::sync::Mutex::new(()),
            unserved: Default::default(),
        };
        let r = |names: &[&str]| Record {
            container_id: ID,
            ipv4: "10.1.0.2",
            ipv6: "",
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        let traversal = "/../../../../../../etc/cron.d/x";
        assert!(dns.add(traversal, "10.1.0.1", &r(&["a"])).is_err());
        assert!(dns.remove(traversal, "10.1.0.1", ID).is_err());
        assert!(
            dns.add(ID, "10.1.0.1", &r(&["evil\n0000 6.6.6.6  injected"]))
                .is_err()
        );
        assert!(dns.add(ID, "10.1.0.1", &r(&["a,b"])).is_err());
        assert!(dns.add(ID, "10.1.0.1\nx", &r(&["a"])).is_err());
        dns.add(ID, "10.1.0.1", &r(&["web", "web.alias"])).unwrap();
        let text = std::fs::read_to_string(dir.path().join("dns").join(ID)).unwrap();
        assert_eq!(text, format!("10.1.0.1\n{ID} 10.1.0.2  web,web.alias\n"));
    }
}
