use std::sync::Arc;

use berth_proto::lifecycle::v1::{self as api, VersionResponse, version_server::Version};
use tonic::{Request, Response, Status};

use crate::tasks::Tasks;

/// A runtime binary as it is on disk: its version is asked again only
/// when the file changes (an upgrade in place).
type Binary = (std::path::PathBuf, Option<std::time::SystemTime>);

pub struct Service {
    tasks: Arc<Tasks>,
    /// `--version` of each runtime binary, asked once: berthd calls Version
    /// on container creates that name `runc`, which must not start every
    /// runtime each time.
    versions: std::sync::Mutex<std::collections::HashMap<Binary, String>>,
}

impl Service {
    pub fn new(tasks: Arc<Tasks>) -> Service {
        Service {
            tasks,
            versions: Default::default(),
        }
    }

    async fn version_of(&self, path: &std::path::Path) -> String {
        let key = (
            path.to_path_buf(),
            std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        );
        let known = self
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(v) = known {
            return v;
        }
        let v = version_of(path).await;
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        v
    }
}

#[tonic::async_trait]
impl Version for Service {
    async fn version(&self, _: Request<()>) -> Result<Response<VersionResponse>, Status> {
        let cfg = self.tasks.config();
        let mut runtime_details = Vec::new();
        for (name, entry) in &cfg.runtimes {
            let path = crate::config::resolve(&entry.path);
            runtime_details.push(api::RuntimeDetails {
                name: name.clone(),
                version: self.version_of(&path).await,
                path: path.display().to_string(),
            });
        }
        Ok(Response::new(VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("BERTH_REVISION").unwrap_or("").to_string(),
            runtimes: cfg.runtimes.keys().cloned().collect(),
            default_runtime: cfg.default_runtime.clone(),
            runtime_details,
        }))
    }
}

/// The first line of `path --version`, as runc, crun and berth-runtime
/// print it; empty if it does not answer within two seconds.
async fn version_of(path: &std::path::Path) -> String {
    let run = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(2), run).await {
        Ok(Ok(o)) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        _ => String::new(),
    }
}
