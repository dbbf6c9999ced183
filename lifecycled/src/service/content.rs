use std::io::Read;
use std::pin::Pin;

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::content_server::Content;
use berth_proto::types::v1 as pb;
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::images::{blocking, status};

pub struct Service {
    pub images: imagestore::Store,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn digest(s: &str) -> Result<imagestore::Digest, Status> {
    imagestore::parse_digest(s).map_err(status)
}

fn describe(i: imagestore::ContentInfo) -> pb::Descriptor {
    pb::Descriptor {
        media_type: String::new(),
        digest: i.digest.to_string(),
        size: i.size as i64,
        annotations: i.labels.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl Content for Service {
    type ReadStream = BoxStream<api::Chunk>;

    async fn list(&self, _req: Request<()>) -> Result<Response<api::ListContentResponse>, Status> {
        let store = self.images.clone();
        let blobs = blocking(move || store.list().map_err(status)).await?;
        Ok(Response::new(api::ListContentResponse {
            blobs: blobs.into_iter().map(describe).collect(),
        }))
    }

    async fn info(
        &self,
        req: Request<api::ContentRequest>,
    ) -> Result<Response<pb::Descriptor>, Status> {
        let d = digest(&req.into_inner().digest)?;
        let store = self.images.clone();
        let info = blocking(move || store.info(&d).map_err(status)).await?;
        Ok(Response::new(describe(info)))
    }

    async fn read(
        &self,
        req: Request<api::ContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let d = digest(&req.into_inner().digest)?;
        let store = self.images.clone();
        let mut file = blocking(move || store.open_blob(&d).map_err(status)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                match file.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(api::Chunk { data: buf })).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("reading: {e}"))));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete(&self, req: Request<api::ContentRequest>) -> Result<Response<()>, Status> {
        let d = digest(&req.into_inner().digest)?;
        let store = self.images.clone();
        blocking(move || store.delete(&d).map_err(status)).await?;
        Ok(Response::new(()))
    }

    async fn garbage_collect(
        &self,
        _req: Request<()>,
    ) -> Result<Response<api::GcResponse>, Status> {
        let store = self.images.clone();
        let r = blocking(move || store.gc().map_err(status)).await?;
        Ok(Response::new(api::GcResponse {
            blobs_removed: r.blobs_removed.len() as u32,
            snapshots_removed: r.snapshots_removed.len() as u32,
            bytes_freed: r.bytes_freed as i64,
            removed_layers: r.snapshots_removed.iter().map(|c| c.to_string()).collect(),
        }))
    }
}
