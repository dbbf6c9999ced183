//! berth.shim.v1 over the task: thin handlers.

use std::pin::Pin;
use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use berth_proto::shim::v1::shim_server::Shim;
use berth_proto::types::v1 as pb;
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::task::Task;

pub struct Service(pub Arc<Task>);

/// Runs a step that changes the task in a task of its own, so that it
/// finishes even when the caller goes away mid-call (lifecycled killed, a
/// connection reset): a create dropped between the runtime's create and the
/// shim's bookkeeping would leave a container no one can delete.
async fn to_completion<T: Send + 'static>(
    step: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(step)
        .await
        .unwrap_or_else(|e| Err(Status::internal(format!("the shim's step failed: {e}"))))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Shim for Service {
    async fn info(&self, _: Request<()>) -> Result<Response<shim::InfoResponse>, Status> {
        Ok(Response::new(self.0.info()))
    }

    async fn create(
        &self,
        req: Request<shim::CreateRequest>,
    ) -> Result<Response<shim::CreateResponse>, Status> {
        let task = self.0.clone();
        let req = req.into_inner();
        let pid = to_completion(async move { task.create(req).await }).await?;
        Ok(Response::new(shim::CreateResponse { pid }))
    }

    async fn start(
        &self,
        req: Request<shim::ProcessRequest>,
    ) -> Result<Response<shim::StartResponse>, Status> {
        let task = self.0.clone();
        let exec_id = req.into_inner().exec_id;
        let pid = to_completion(async move { task.start(&exec_id).await }).await?;
        Ok(Response::new(shim::StartResponse { pid }))
    }

    async fn exec(&self, req: Request<shim::ExecRequest>) -> Result<Response<()>, Status> {
        self.0.exec(req.into_inner())?;
        Ok(Response::new(()))
    }

    async fn kill(&self, req: Request<shim::KillRequest>) -> Result<Response<()>, Status> {
        self.0.kill(&req.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn delete(
        &self,
        req: Request<shim::ProcessRequest>,
    ) -> Result<Response<shim::DeleteResponse>, Status> {
        let task = self.0.clone();
        let exec_id = req.into_inner().exec_id;
        Ok(Response::new(
            to_completion(async move { task.delete(&exec_id).await }).await?,
        ))
    }

    async fn wait(&self, req: Request<shim::ProcessRequest>) -> Result<Response<pb::Exit>, Status> {
        let proc = self.0.process(&req.into_inner().exec_id)?;
        Ok(Response::new(proc.wait().await.to_pb()))
    }

    async fn state(
        &self,
        req: Request<shim::ProcessRequest>,
    ) -> Result<Response<pb::Process>, Status> {
        Ok(Response::new(self.0.state(&req.into_inner().exec_id)?))
    }

    async fn resize_pty(
        &self,
        req: Request<shim::ResizePtyRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.0.resize(&r.exec_id, r.width, r.height)?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, req: Request<shim::ProcessRequest>) -> Result<Response<()>, Status> {
        let proc = self.0.process(&req.into_inner().exec_id)?;
        proc.io.close_stdin().await;
        Ok(Response::new(()))
    }

    async fn reopen_log(&self, req: Request<shim::ProcessRequest>) -> Result<Response<()>, Status> {
        let proc = self.0.process(&req.into_inner().exec_id)?;
        proc.io
            .reopen_log()
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        Ok(Response::new(()))
    }

    async fn pids(&self, _: Request<()>) -> Result<Response<shim::PidsResponse>, Status> {
        Ok(Response::new(shim::PidsResponse {
            processes: self.0.pids().await?,
        }))
    }

    async fn stats(&self, _: Request<()>) -> Result<Response<pb::Stats>, Status> {
        Ok(Response::new(self.0.stats()?))
    }

    async fn pause(&self, _: Request<()>) -> Result<Response<()>, Status> {
        let task = self.0.clone();
        to_completion(async move { task.pause(true).await }).await?;
        Ok(Response::new(()))
    }

    async fn resume(&self, _: Request<()>) -> Result<Response<()>, Status> {
        let task = self.0.clone();
        to_completion(async move { task.pause(false).await }).await?;
        Ok(Response::new(()))
    }

    async fn update(&self, req: Request<shim::UpdateRequest>) -> Result<Response<()>, Status> {
        let task = self.0.clone();
        let resources = req.into_inner().resources;
        to_completion(async move { task.update(&resources).await }).await?;
        Ok(Response::new(()))
    }

    type AttachStream = BoxStream<pb::Chunk>;

    async fn attach(
        &self,
        req: Request<Streaming<shim::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut input = req.into_inner();
        let open = match input.message().await? {
            Some(shim::AttachRequest {
                kind: Some(shim::attach_request::Kind::Open(o)),
            }) => o,
            _ => {
                return Err(Status::invalid_argument(
                    "attach must start with an open message",
                ));
            }
        };
        let proc = self.0.process(&open.exec_id)?;
        let io = proc.io.clone();
        // Attached before anything else, so no output is missed from here on.
        let output = io.attach(open.stdout, open.stderr);
        let rx = ReceiverStream::new(output).map(Ok);
        // Input is read even without stdin: a terminal's size changes come
        // this way too, before and after the end of stdin.
        let task = self.0.clone();
        let exec_id = open.exec_id.clone();
        tokio::spawn(async move {
            let mut stdin_open = open.stdin;
            while let Ok(Some(msg)) = input.message().await {
                match msg.kind {
                    Some(shim::attach_request::Kind::Stdin(data)) if stdin_open => {
                        if let Err(e) = io.write_stdin(&data).await {
                            tracing::debug!("attach stdin: {e:#}");
                            stdin_open = false;
                        }
                    }
                    Some(shim::attach_request::Kind::CloseStdin(true)) if stdin_open => {
                        io.close_stdin().await;
                        stdin_open = false;
                    }
                    Some(shim::attach_request::Kind::Resize(r)) => {
                        let _ = task.resize(&exec_id, r.width, r.height);
                    }
                    _ => {}
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    type EventsStream = BoxStream<shim::Event>;

    async fn events(&self, _: Request<()>) -> Result<Response<Self::EventsStream>, Status> {
        let rx = self.0.events.subscribe();
        let stream =
            tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn shutdown(&self, _: Request<()>) -> Result<Response<()>, Status> {
        if !self.0.may_shut_down() {
            return Err(Status::failed_precondition(
                "the task still exists: delete it before shutting the shim down",
            ));
        }
        self.0.shutdown.notify_one();
        Ok(Response::new(()))
    }

    async fn host(
        &self,
        req: Request<shim::HostRequest>,
    ) -> Result<Response<shim::HostResponse>, Status> {
        let r = req.into_inner();
        // The id becomes the runtime's argument, the paths the task's files.
        berth_proto::names::validate_id("task", &r.id)?;
        berth_proto::names::validate(&r.namespace)?;
        let state_dir = std::path::PathBuf::from(&r.state_dir);
        let socket = std::path::PathBuf::from(&r.socket);
        if !state_dir.is_absolute() || !state_dir.is_dir() {
            return Err(Status::invalid_argument(format!(
                "state_dir {:?} is not an existing absolute directory",
                r.state_dir
            )));
        }
        if !socket.is_absolute() {
            return Err(Status::invalid_argument(format!(
                "socket {:?} is not an absolute path",
                r.socket
            )));
        }
        let opts = crate::Options {
            id: r.id,
            namespace: r.namespace,
            state_dir,
            socket,
            debug: self.0.host.debug,
        };
        let address = self
            .0
            .host
            .serve_task(opts)
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        Ok(Response::new(shim::HostResponse {
            address: address.to_string_lossy().into_owned(),
        }))
    }
}
