//! Log driver plugins (`docker.logdriver/1.0`: `--log-driver PLUGIN`,
//! daemon.json's `log-driver`), as dockerd drives them: at a start the
//! engine makes a FIFO in the plugin's `/run/docker/logging/`, the shim
//! writes the container's output into it (see the shim's `pluginlog`), and
//! `LogDriver.StartLogging` has the plugin read it, told who the container
//! is (`Info`: id, name, image, labels, env, the log options); after the
//! container stopped, `LogDriver.StopLogging`. The json-file is kept beside
//! it (Docker's dual logging), so `docker logs` works with any plugin.
//!
//! The shim, not the engine, holds the FIFO: a container's output reaches
//! the plugin while berthd is stopped or restarting.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Plugin;
use super::client::{self, Addr};
use crate::daemon::Daemon;
use crate::daemon::container::Container;
use crate::error::{ApiError, Result};

/// The drivers the engine writes itself; any other name is a plugin's.
pub const BUILTIN: [&str; 7] = [
    "json-file",
    "local",
    "journald",
    "syslog",
    "gelf",
    "fluentd",
    "none",
];

/// dockerd's own drivers that berth does not have: never a plugin's name.
pub const DOCKER_ONLY: [&str; 5] = ["awslogs", "splunk", "etwlogs", "gcplogs", "logentries"];

/// Where a plugin finds the FIFOs it is told of.
const LOGGING: &str = "/run/docker/logging";

/// The FIFO a running container's output goes to a plugin through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFifo {
    /// The plugin's id.
    pub plugin: String,
    /// The FIFO's name in the plugin's `/run/docker/logging/`.
    pub id: String,
}

impl Daemon {
    /// The enabled plugin that is log driver `name`, or dockerd's reason why
    /// there is none (the caller says which lookup failed).
    pub fn log_plugin(&self, name: &str) -> std::result::Result<Plugin, String> {
        let p = self
            .plugins
            .find(name)
            .map_err(|_| format!("plugin {name:?} not found"))?
            .get();
        if !p.config.types().iter().any(|t| t.capability == "logdriver") {
            return Err(format!(
                "plugin {:?} found, but not implementing \"LogDriver\"",
                p.name
            ));
        }
        if !p.enabled {
            return Err(format!("plugin {name} found but disabled"));
        }
        Ok(p)
    }

    /// Where a FIFO of plugin `plugin` is on the host.
    fn log_fifo_path(&self, f: &LogFifo) -> PathBuf {
        self.plugins
            .rootfs(&f.plugin)
            .join(LOGGING.trim_start_matches('/'))
            .join(&f.id)
    }

    /// A new FIFO for a container's output in the plugin's rootfs; its
    /// path on the host is what the shim opens.
    pub fn make_log_fifo(&self, p: &Plugin) -> Result<(LogFifo, PathBuf)> {
        use std::os::unix::fs::DirBuilderExt;
        let f = LogFifo {
            plugin: p.id.clone(),
            id: hex::encode(rand::random::<[u8; 32]>()),
        };
        let path = self.log_fifo_path(&f);
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ApiError::internal(format!(
                "failed to initialize logging driver: {what} {}: {e}",
                path.display()
            ))
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| failed("making the directory of", &e))?;
        }
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| failed("making", &e))?;
        Ok((f, path))
    }

    /// `LogDriver.StartLogging`: the plugin reads the container's FIFO.
    pub async fn start_plugin_logging(
        &self,
        c: &Container,
        p: &Plugin,
        f: &LogFifo,
        opts: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let info = json!({
            "Config": opts,
            "ContainerID": c.id,
            "ContainerName": format!("/{}", c.name),
            "ContainerEntrypoint": c.path,
            "ContainerArgs": c.args,
            "ContainerImageID": c.image_id,
            "ContainerImageName": c.config.image,
            "ContainerCreated": humantime::format_rfc3339_nanos(c.created).to_string(),
            "ContainerEnv": c.config.env,
            "ContainerLabels": c.config.labels,
            // dockerd's: a plugin's container has no log file of its own
            // (the local copy is the engine's).
            "LogPath": "",
            "DaemonName": "docker",
        });
        let file = format!("{LOGGING}/{}", f.id);
        client::call(
            &Addr::Unix(self.plugins.socket(p)),
            "LogDriver.StartLogging",
            &json!({"File": file, "Info": info}),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            ApiError::internal(format!(
                "failed to initialize logging driver: error creating logger: {e}"
            ))
        })
    }

    /// `LogDriver.StopLogging` once the container stopped, and its FIFO
    /// removed (the plugin has read what the shim wrote by then, or reads
    /// it from the descriptor it holds).
    pub async fn stop_plugin_logging(&self, f: &LogFifo) {
        if let Some(e) = self.plugins.find_id(&f.plugin) {
            let p = e.get();
            if p.enabled {
                let file: Value = json!(format!("{LOGGING}/{}", f.id));
                if let Err(err) = client::call(
                    &Addr::Unix(self.plugins.socket(&p)),
                    "LogDriver.StopLogging",
                    &json!({ "File": file }),
                )
                .await
                {
                    tracing::warn!("plugin {}: LogDriver.StopLogging: {err}", p.name);
                }
            }
        }
        let path = self.log_fifo_path(f);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }

    /// After plugin `p` started again (it ended, or the engine found it
    /// ended): the running containers that log through it are handed back
    /// to it, their FIFOs holding what they wrote meanwhile.
    pub async fn resume_plugin_logging(&self, p: &Plugin) {
        for e in self.all() {
            let c = e.c.lock().await;
            let Some(f) = c.log_fifo.clone().filter(|f| f.plugin == p.id) else {
                continue;
            };
            if !c.is_running() {
                continue;
            }
            let opts = crate::daemon::ops::effective_log_opts(self, &c);
            match self.start_plugin_logging(&c, p, &f, &opts).await {
                Ok(()) => tracing::info!("{}: logging through plugin {} again", c.id, p.name),
                Err(err) => tracing::warn!("{}: {}", c.id, err.message),
            }
        }
    }

    /// Removes the FIFOs in plugin `p`'s `/run/docker/logging/` that no
    /// container's record names (a start the engine died in, after making
    /// one and before writing the record). Only those made before this
    /// engine started: a start running now may not have recorded its own.
    pub async fn sweep_log_fifos(&self, p: &Plugin) {
        let dir = self
            .plugins
            .rootfs(&p.id)
            .join(LOGGING.trim_start_matches('/'));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut named = std::collections::HashSet::new();
        for e in self.all() {
            if let Some(f) = &e.c.lock().await.log_fifo {
                named.insert(f.id.clone());
            }
        }
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = e.metadata().is_ok_and(|m| {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                let since_epoch =
                    std::time::Duration::new(m.ctime().max(0) as u64, m.ctime_nsec() as u32);
                let made = std::time::UNIX_EPOCH + since_epoch;
                m.file_type().is_fifo() && made < self.started
            });
            if stale && !named.contains(&name) {
                tracing::info!(
                    "removing {name}, a log FIFO of plugin {} no container uses",
                    p.name
                );
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!("removing {}: {err}", e.path().display());
                }
            }
        }
    }

    /// Whether a running container logs through plugin `p` (it may not be
    /// disabled then, as dockerd counts it in use).
    pub async fn plugin_logs_in_use(&self, p: &Plugin) -> bool {
        for e in self.all() {
            let c = e.c.lock().await;
            if c.is_running() && c.log_fifo.as_ref().is_some_and(|f| f.plugin == p.id) {
                return true;
            }
        }
        false
    }
}
