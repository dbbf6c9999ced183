//! The engine's connection to berth-lifecycled: every call in the `berth`
//! namespace. The engine reaches containers, images and snapshots only
//! through this contract; for bulk stdio it may speak to a task's shim on
//! the attach socket lifecycled names (as containerd's clients hand their
//! FIFOs to the shim), and falls back to lifecycled's Attach when there is
//! none.

use std::path::{Path, PathBuf};

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::{
    containers_client::ContainersClient, content_client::ContentClient,
    events_client::EventsClient, images_client::ImagesClient, snapshots_client::SnapshotsClient,
    tasks_client::TasksClient, version_client::VersionClient,
};
use berth_proto::types::v1 as pb;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

pub const NAMESPACE: &str = "berth";

#[derive(Clone)]
pub struct Lifecycle {
    channel: Channel,
    pub address: PathBuf,
}

impl Lifecycle {
    /// A lazy connection: calls fail with Unavailable while lifecycled is
    /// down and succeed again once it is back.
    pub fn new(address: &Path) -> Lifecycle {
        let path = address.to_path_buf();
        let channel =
            Endpoint::from_static("http://[::]:50051")
                .initial_stream_window_size(berth_proto::STREAM_WINDOW)
                .initial_connection_window_size(berth_proto::CONNECTION_WINDOW)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
        Lifecycle {
            channel,
            address: address.to_path_buf(),
        }
    }

    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            berth_proto::NAMESPACE_HEADER,
            MetadataValue::from_static(NAMESPACE),
        );
        r
    }

    /// A request in another namespace of lifecycled (the plugins').
    pub fn req_in<T>(&self, namespace: &'static str, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            berth_proto::NAMESPACE_HEADER,
            MetadataValue::from_static(namespace),
        );
        r
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }
    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }
    /// Frees blobs and snapshots nothing refers to any more; the chain
    /// ids of the layers it removed.
    pub async fn content_gc(&self) -> Result<Vec<String>, tonic::Status> {
        self.content()
            .garbage_collect(self.req(()))
            .await
            .map(|r| r.into_inner().removed_layers)
    }
    pub fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }

    /// Attaches to a process of a task (the container's when `exec_id` is
    /// empty): the open message, then whatever `input` sends (stdin, its
    /// close, resizes). Returns the output stream, subscribed from now on.
    pub async fn attach(
        &self,
        open: api::AttachOpen,
        input: Option<mpsc::Receiver<api::AttachRequest>>,
    ) -> Result<Streaming<pb::Chunk>, tonic::Status> {
        let (tx, rx) = mpsc::channel::<api::AttachRequest>(16);
        let _ = tx
            .send(api::AttachRequest {
                kind: Some(api::attach_request::Kind::Open(open)),
            })
            .await;
        if let Some(mut input) = input {
            tokio::spawn(async move {
                while let Some(m) = input.recv().await {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(self
            .tasks()
            .attach(self.req(ReceiverStream::new(rx)))
            .await?
            .into_inner())
    }

    /// The raw form of `attach` on the task's attach socket: the process's
    /// streams as plain bytes (`multiplexed`: in Docker's frames), with no
    /// hop through lifecycled. None when the task's shim has no attach
    /// socket or it cannot be reached, so the caller uses `attach`; an
    /// error when the shim refuses (no such exec).
    pub async fn attach_raw(
        &self,
        open: api::AttachOpen,
        multiplexed: bool,
        close_stdin_on_eof: bool,
    ) -> Result<Option<UnixStream>, tonic::Status> {
        use berth_proto::shim::v1 as shim;
        let path = match self
            .tasks()
            .attach_socket(self.req(api::ContainerRequest {
                id: open.container_id.clone(),
            }))
            .await
        {
            Ok(r) => r.into_inner().path,
            // An older shim, or an older lifecycled.
            Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::Unimplemented) => {
                tracing::debug!("attach {}: {}", open.container_id, s.message());
                return Ok(None);
            }
            Err(s) => return Err(s),
        };
        let mut conn = match UnixStream::connect(&path).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("attach socket {path}: {e}; attaching through lifecycled");
                return Ok(None);
            }
        };
        let req = shim::RawAttach {
            open: Some(shim::AttachOpen {
                exec_id: open.exec_id,
                stdin: open.stdin,
                stdout: open.stdout,
                stderr: open.stderr,
            }),
            multiplexed,
            close_stdin_on_eof,
        };
        // A socket that fails before the shim answered has subscribed
        // nothing: lifecycled's Attach can still serve the client.
        if let Err(e) = berth_proto::raw::write_message(&mut conn, &req).await {
            tracing::warn!("attach socket {path}: {e}; attaching through lifecycled");
            return Ok(None);
        }
        let reply: shim::RawAttachReply = match berth_proto::raw::read_message(&mut conn).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("attach socket {path}: {e}; attaching through lifecycled");
                return Ok(None);
            }
        };
        if !reply.error.is_empty() {
            return Err(tonic::Status::not_found(reply.error));
        }
        Ok(Some(conn))
    }

    /// The state of a container's task (its init process).
    pub async fn task(&self, id: &str) -> Result<pb::Process, tonic::Status> {
        self.tasks()
            .get(self.req(api::ProcessRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map(|r| r.into_inner())
    }

    /// The container's runtime-spec `process`, the base of its execs.
    pub async fn process_spec(&self, id: &str) -> Result<serde_json::Value, tonic::Status> {
        let c = self
            .containers()
            .get(self.req(api::ContainerRequest { id: id.to_string() }))
            .await?
            .into_inner();
        let full: serde_json::Value = serde_json::from_slice(&c.spec)
            .map_err(|e| tonic::Status::internal(format!("the container's spec: {e}")))?;
        Ok(full["process"].clone())
    }
}
