use std::sync::Arc;

use berth_proto::lifecycle::v1::{VersionResponse, version_server::Version};
use tonic::{Request, Response, Status};

use crate::tasks::Tasks;

pub struct Service(pub Arc<Tasks>);

#[tonic::async_trait]
impl Version for Service {
    async fn version(&self, _: Request<()>) -> Result<Response<VersionResponse>, Status> {
        let cfg = self.0.config();
        Ok(Response::new(VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("BERTH_REVISION").unwrap_or("").to_string(),
            runtimes: cfg.runtimes.keys().cloned().collect(),
            default_runtime: cfg.default_runtime.clone(),
        }))
    }
}
