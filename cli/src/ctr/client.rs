//! The connection to lifecycled and the namespace every request carries.
//! Errors say which layer failed: reaching lifecycled, or lifecycled itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::{
    containers_client::ContainersClient, events_client::EventsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};

pub struct Ctx {
    pub channel: Channel,
    pub namespace: String,
    pub address: PathBuf,
}

/// lifecycled's own errors, in its words, marked as coming from it.
pub fn daemon(e: Status) -> anyhow::Error {
    anyhow::anyhow!("berth-lifecycled: {}", e.message())
}

impl Ctx {
    pub async fn connect(address: &Path, namespace: &str) -> Result<Ctx> {
        let path = address.to_path_buf();
        let endpoint = Endpoint::try_from("http://[::]:50051")?;
        let channel =
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .with_context(|| {
                    format!(
                        "cannot connect to berth-lifecycled at unix://{}: is it running?",
                        address.display()
                    )
                })?;
        Ok(Ctx {
            channel,
            namespace: namespace.to_string(),
            address: address.to_path_buf(),
        })
    }

    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Ok(v) = MetadataValue::try_from(self.namespace.as_str()) {
            r.metadata_mut().insert(berth_proto::NAMESPACE_HEADER, v);
        }
        r
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }

    pub async fn version(&self) -> Result<api::VersionResponse> {
        Ok(VersionClient::new(self.channel.clone())
            .version(self.req(()))
            .await
            .map_err(daemon)?
            .into_inner())
    }
}

/// Formats a protobuf timestamp as RFC 3339.
pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    match t {
        Some(t) if t.seconds > 0 => {
            let st = std::time::UNIX_EPOCH
                + std::time::Duration::new(t.seconds as u64, t.nanos.max(0) as u32);
            humantime::format_rfc3339_seconds(st).to_string()
        }
        _ => String::new(),
    }
}
