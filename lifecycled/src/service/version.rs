use std::sync::Arc;

use berth_proto::lifecycle::v1::{self as api, VersionResponse, version_server::Version};
use tonic::{Request, Response, Status};

use crate::tasks::Tasks;

pub struct Service(pub Arc<Tasks>);

#[tonic::async_trait]
impl Version for Service {
    async fn version(&self, _: Request<()>) -> Result<Response<VersionResponse>, Status> {
        let cfg = self.0.config();
        let mut runtime_details = Vec::new();
        for (name, entry) in &cfg.runtimes {
            let path = crate::config::resolve(&entry.path);
            runtime_details.push(api::RuntimeDetails {
                name: name.clone(),
                version: version_of(&path).await,
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
