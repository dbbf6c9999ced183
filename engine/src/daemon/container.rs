//! A container as the engine records it (Docker's model): its configuration,
//! its state, and where its files are. Saved crash-safe as
//! `<data-root>/containers/<id>/config.v2.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::types::{Config, HostConfig, MountPoint, NetworkingConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Stopped by a user (stop, kill): `unless-stopped` and `always` then do
    /// not restart it when the engine starts.
    pub stopped_by_user: bool,
    pub health: Option<Health>,
    /// A removal under way asked for its anonymous volumes to go too: an
    /// engine that dies mid-removal finishes it with the same choice.
    #[serde(default)]
    pub removing_volumes: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: SystemTime,
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    pub host_config: HostConfig,
    pub networking: NetworkingConfig,
    /// sha256:… of the image config.
    pub image_id: String,
    /// The image as named at create, normalised (docker.io/library/busybox:latest).
    pub image_ref: String,
    pub state: State,
    pub restart_count: i64,
    pub mounts: Vec<MountPoint>,
    pub runtime: String,
    pub dir: PathBuf,
    #[serde(default)]
    pub exec_ids: Vec<String>,
    /// Anonymous volumes made for this container (removed with `rm -v`).
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Its network namespace and attachments while it has them.
    #[serde(default)]
    pub net: Option<super::netsetup::NetState>,
    /// The host ports it was given (-p, -P) on its last start.
    #[serde(default)]
    pub published: crate::types::Map<Vec<crate::types::PortBinding>>,
    /// Who created it (uid:N, cn:NAME): operators act only on their own.
    #[serde(default)]
    pub owner: Option<String>,
    /// It was disconnected from its network mode's network: its mode stays
    /// (as Docker's NetworkMode does) but it does not join that network.
    #[serde(default)]
    pub mode_detached: bool,
    /// The network it joined under each name (name → id). As dockerd's
    /// endpoint keeps its NetworkID: a network removed while the
    /// container was stopped, and made again under the same name, is not
    /// the one it joined, and its next start says so.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub joined: std::collections::BTreeMap<String, String>,
    /// The mounts --volumes-from took from other containers at create
    /// (dockerd copies them then), planned at each start beside its own.
    #[serde(default)]
    pub inherited_mounts: Vec<crate::types::MountPoint>,
    /// Docker's `GraphDriver.Data`, once lifecycled said it: where its
    /// snapshot's files are does not change while it exists.
    #[serde(skip)]
    pub graph_data: Option<serde_json::Value>,
    /// While it runs with a log driver plugin: the FIFO its output goes to
    /// the plugin through (kept, so that a restarted engine stops the
    /// plugin's logging when it exits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_fifo: Option<super::plugins::logging::LogFifo>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// The hostname it was given, else its short id, as Docker's.
    pub fn hostname(&self) -> String {
        if self.config.hostname.is_empty() {
            self.short_id().to_string()
        } else {
            self.config.hostname.clone()
        }
    }

    /// Where its log file is: the local driver's where dockerd keeps it
    /// (never shown: its format is the engine's own).
    pub fn log_path(&self) -> PathBuf {
        if self.log_driver() == "local" {
            self.dir.join("local-logs").join("container.log")
        } else if self.logs_to_server() {
            // The dual-logging cache `logs` reads.
            self.dir.join("container-cached.log")
        } else {
            self.dir.join(format!("{}-json.log", self.id))
        }
    }

    /// The log driver its output goes to (a record from before berth
    /// wrote the default in says "": json-file).
    pub fn log_driver(&self) -> &str {
        match self.host_config.log_config.typ.as_str() {
            "" => "json-file",
            t => t,
        }
    }

    /// Whether its output is kept (the `none` log driver keeps nothing).
    pub fn keeps_logs(&self) -> bool {
        self.log_driver() != "none"
    }

    /// Whether its output is kept in the systemd journal.
    pub fn logs_to_journal(&self) -> bool {
        self.log_driver() == "journald"
    }

    /// Whether its lines are sent to a server (syslog, gelf, fluentd) from
    /// a cache.
    pub fn logs_to_server(&self) -> bool {
        matches!(self.log_driver(), "syslog" | "gelf" | "fluentd")
    }

    /// Whether its output goes to a log driver plugin.
    pub fn logs_to_plugin(&self) -> bool {
        !super::plugins::logging::BUILTIN.contains(&self.log_driver())
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.state.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }

    /// The Status column of `docker ps`.
    pub fn status_text(&self, now: SystemTime) -> String {
        let ago = |t: Option<SystemTime>| {
            human_duration(
                t.and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default(),
            )
        };
        match self.state.status {
            Status::Created => "Created".into(),
            Status::Running => {
                let health = match &self.state.health {
                    Some(h) if h.status == "starting" => " (health: starting)".to_string(),
                    Some(h) if !h.status.is_empty() => format!(" ({})", h.status),
                    _ => String::new(),
                };
                format!("Up {}{health}", ago(self.state.started_at))
            }
            Status::Paused => format!("Up {} (Paused)", ago(self.state.started_at)),
            Status::Restarting => format!(
                "Restarting ({}) {} ago",
                self.state.exit_code,
                ago(self.state.finished_at)
            ),
            Status::Removing => "Removal In Progress".into(),
            Status::Exited => match self.state.finished_at {
                Some(_) => format!(
                    "Exited ({}) {} ago",
                    self.state.exit_code,
                    ago(self.state.finished_at)
                ),
                None => format!("Exited ({})", self.state.exit_code),
            },
            Status::Dead => "Dead".into(),
        }
    }

    pub fn save(&self) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let path = self.dir.join("config.v2.json");
        // A step that changed nothing (most of a start's saves, or a
        // connect that undoes a disconnect) costs a read, not a new file
        // and two fsyncs: what is there was written by write_atomic.
        if std::fs::read(&path).is_ok_and(|old| old == data) {
            return Ok(());
        }
        write_atomic(&path, &data)
    }

    pub fn load(dir: &Path) -> std::io::Result<Container> {
        let data = std::fs::read(dir.join("config.v2.json"))?;
        serde_json::from_slice(&data).map_err(std::io::Error::other)
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Docker's units.HumanDuration: "Less than a second", "3 seconds",
/// "About a minute", "5 minutes", "About an hour", "2 hours", "3 days", …
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    let secs = s as u64;
    if s < 1.0 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if s < 60.0 {
        format!("{secs} seconds")
    } else if (s / 60.0) as u64 == 1 {
        "About a minute".into()
    } else if s < 3600.0 {
        format!("{} minutes", (s / 60.0) as u64)
    } else if (s / 3600.0).round() as u64 == 1 {
        "About an hour".into()
    } else if s < 48.0 * 3600.0 {
        format!("{} hours", (s / 3600.0).round() as u64)
    } else if s < 7.0 * 24.0 * 3600.0 * 2.0 {
        format!("{} days", (s / 86400.0) as u64)
    } else if s < 30.0 * 24.0 * 3600.0 * 3.0 {
        format!("{} weeks", (s / (7.0 * 86400.0)) as u64)
    } else if s < 365.0 * 24.0 * 3600.0 * 2.0 {
        format!("{} months", (s / (30.0 * 86400.0)) as u64)
    } else {
        format!("{} years", (s / (365.0 * 86400.0)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(45)), "45 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3700)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }
}
