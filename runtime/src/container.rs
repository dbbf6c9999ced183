//! A container's record under `--root`: `<root>/<id>/state.json` (written
//! atomically) and, while it waits for `start`, `<root>/<id>/exec.fifo`. The status
//! is never stored; it is read from the live system each time, so it cannot go
//! stale when a process dies while nobody watches.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups;
use crate::error::{Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// What the runtime keeps for itself, outside `--root` (which holds the
/// containers' state and nothing else, as runc's does): the compiled
/// seccomp filters and the empty directory the binary's overlay seal
/// needs. On a tmpfs, so a reboot clears it; both are best effort.
pub const PRIVATE_DIR: &str = "/run/berth-runtime";

pub fn seccomp_cache_dir() -> PathBuf {
    Path::new(PRIVATE_DIR).join("seccomp")
}

pub fn seal_empty_dir() -> PathBuf {
    Path::new(PRIVATE_DIR).join("empty")
}

/// What older versions kept under `--root`: removed when seen, so that a
/// root is empty once its containers are deleted.
pub fn clear_legacy(root: &Path) {
    let _ = std::fs::remove_dir(root.join(".empty"));
    let _ = std::fs::remove_dir_all(root.join("@seccomp"));
}
/// The runtime-spec version of what we write (state, `spec`): runc's, which
/// every runtime and engine accepts.
pub const OCI_VERSION: &str = "1.0.2-dev";
/// The newest runtime-spec version whose config.json we understand.
pub const OCI_VERSION_MAX: &str = "1.2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot, so a reused pid is not
    /// mistaken for the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub cgroup_path: PathBuf,
    /// Made with --no-pivot: exec must chroot into the init's root.
    #[serde(default)]
    pub no_pivot: bool,
    pub annotations: HashMap<String, String>,
    /// The spec the container was created with; `update` keeps its resources current.
    pub config: Spec,
}

pub struct Container {
    pub dir: PathBuf,
    pub state: State,
}

/// runc's rule for ids: letters, digits and `_+-.`, but never `.` or `..`, so an id
/// can never name a path outside `--root`.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 characters");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return bad("may contain only letters, digits and _+-.");
    }
    Ok(())
}

pub fn state_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Makes `<root>/<id>`; fails with AlreadyExists if another container has it.
pub fn make_state_dir(root: &Path, id: &str) -> Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(|e| Error::io("creating state root", root, e))?;
    let dir = state_dir(root, id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::AlreadyExists(id.to_string()))
        }
        Err(e) => Err(Error::io("creating state directory", dir, e)),
    }
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let dir = state_dir(root, id);
        let path = dir.join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.to_string()));
            }
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let state: State = serde_json::from_slice(&data).map_err(|source| Error::State {
            id: id.to_string(),
            source,
        })?;
        Ok(Container { dir, state })
    }

    /// Writes state.json through a temporary file, fsync and rename, so a reader
    /// (or a crash) never sees half a file.
    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let path = self.dir.join(STATE_FILE);
        let data = serde_json::to_vec(&self.state).map_err(|source| Error::State {
            id: self.state.id.clone(),
            source,
        })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("renaming state to", path, e))
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.state.pid)
    }

    pub fn status(&self) -> Status {
        if self.state.pid <= 0 || !process_alive(self.state.pid, self.state.pid_start) {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if cgroups::is_frozen(&self.state.cgroup_path) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The runtime-spec state object: what `state` prints and hooks get on stdin.
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.state.pid
        };
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.state.id,
            "status": status.as_str(),
            "pid": pid,
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "owner": self.state.owner,
            "annotations": self.state.annotations,
        })
    }
}

/// Start time (field 22 of /proc/<pid>/stat) of a live, non-zombie process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

pub fn process_alive(pid: i32, start: u64) -> bool {
    match process_start_time(pid) {
        Some(t) => start == 0 || t == start,
        None => false,
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_root_are_refused() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "x\0y"] {
            assert!(validate_id(id).is_err(), "{id:?} accepted");
        }
        for id in ["abc", "a.b_c-d+e", "0123456789abcdef"] {
            assert!(validate_id(id).is_ok(), "{id:?} refused");
        }
    }

    #[test]
    fn own_process_is_alive_and_start_time_matters() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).expect("own stat");
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
    }
}
