//! Names on user-defined networks, served by Debian's aardvark-dns (the
//! resolver podman's netavark runs): one process for the engine, one
//! config file per network (first line: the addresses it listens on, the
//! network's gateways; then `id ipv4 ipv6 names` per container), reloaded
//! on SIGHUP. It answers only askers on the same network and forwards the
//! rest to the host's resolvers. It runs on its own, so a berthd restart
//! does not interrupt name resolution.

use std::path::{Path, PathBuf};

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
}

/// A container's names on one network.
pub struct Record<'a> {
    pub container_id: &'a str,
    pub ipv4: &'a str,
    pub names: Vec<String>,
}

impl Dns {
    pub fn new(dir: &Path) -> Dns {
        Dns {
            dir: dir.to_path_buf(),
            binary: BINARIES.iter().map(PathBuf::from).find(|p| p.exists()),
            lock: std::sync::Mutex::new(()),
        }
    }

    pub fn available(&self) -> bool {
        self.binary.is_some()
    }

    fn file(&self, network: &str) -> PathBuf {
        self.dir.join(network)
    }

    /// Adds (or replaces) a container's record on `network`, served on
    /// `gateway`.
    pub fn add(&self, network: &str, gateway: &str, r: &Record) -> Result<(), NetError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.dir)?;
        let mut lines = self.lines(network);
        lines.retain(|l| l.split(' ').next() != Some(r.container_id));
        lines.push(format!(
            "{} {}  {}",
            r.container_id,
            r.ipv4,
            r.names.join(",")
        ));
        self.write(network, gateway, &lines)?;
        self.reload()
    }

    /// Drops a container's record; the network's file goes with its last.
    pub fn remove(&self, network: &str, gateway: &str, container_id: &str) -> Result<(), NetError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.file(network).exists() {
            return Ok(());
        }
        let mut lines = self.lines(network);
        lines.retain(|l| l.split(' ').next() != Some(container_id));
        if lines.is_empty() {
            let _ = std::fs::remove_file(self.file(network));
        } else {
            self.write(network, gateway, &lines)?;
        }
        self.reload()
    }

    fn lines(&self, network: &str) -> Vec<String> {
        std::fs::read_to_string(self.file(network))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    fn write(&self, network: &str, gateway: &str, lines: &[String]) -> Result<(), NetError> {
        let mut text = format!("{gateway}\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let tmp = self.dir.join(format!(".{network}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.file(network))?;
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

    /// Ends the server (the engine's networks are all gone).
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
}
