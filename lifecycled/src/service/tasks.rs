use std::pin::Pin;
use std::sync::Arc;

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::tasks_server;
use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::namespace;
use crate::tasks::Tasks;

pub struct Service(pub Arc<Tasks>);

/// Runs a step that changes a task in a task of its own: a caller that goes
/// away mid-call (berthd killed, a client's deadline) must not leave a shim
/// spawned and unrecorded, or a task slot `Creating` for ever.
async fn to_completion<T: Send + 'static>(
    step: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(step)
        .await
        .unwrap_or_else(|e| Err(Status::internal(format!("the task step failed: {e}"))))
}

#[tonic::async_trait]
impl tasks_server::Tasks for Service {
    async fn create(
        &self,
        req: Request<api::CreateTaskRequest>,
    ) -> Result<Response<api::CreateTaskResponse>, Status> {
        let ns = namespace::of(&req)?;
        crate::cgroup_warmup::warm_up();
        let r = req.into_inner();
        let tasks = self.0.clone();
        Ok(Response::new(
            to_completion(async move {
                tasks
                    .create(&ns, &r.container_id, r.stdio.unwrap_or_default())
                    .await
            })
            .await?,
        ))
    }

    async fn start(
        &self,
        req: Request<api::ProcessRequest>,
    ) -> Result<Response<api::StartTaskResponse>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let tasks = self.0.clone();
        let pid = to_completion(async move { tasks.start(&ns, &r.container_id, &r.exec_id).await })
            .await?;
        Ok(Response::new(api::StartTaskResponse { pid }))
    }

    async fn kill(&self, req: Request<api::KillRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        self.0.kill(&ns, &req.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn delete(
        &self,
        req: Request<api::ProcessRequest>,
    ) -> Result<Response<api::DeleteTaskResponse>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let tasks = self.0.clone();
        Ok(Response::new(
            to_completion(async move { tasks.delete(&ns, &r.container_id, &r.exec_id).await })
                .await?,
        ))
    }

    async fn wait(&self, req: Request<api::ProcessRequest>) -> Result<Response<pb::Exit>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        Ok(Response::new(
            self.0.wait(&ns, &r.container_id, &r.exec_id).await?,
        ))
    }

    async fn exec(&self, req: Request<api::ExecRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let (tasks, r) = (self.0.clone(), req.into_inner());
        to_completion(async move { tasks.exec(&ns, r).await }).await?;
        Ok(Response::new(()))
    }

    async fn resize_pty(
        &self,
        req: Request<api::ResizePtyRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        self.0.resize(&ns, req.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, req: Request<api::ProcessRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        self.0.close_io(&ns, &r.container_id, &r.exec_id).await?;
        Ok(Response::new(()))
    }

    async fn pids(
        &self,
        req: Request<api::ContainerRequest>,
    ) -> Result<Response<api::PidsResponse>, Status> {
        let ns = namespace::of(&req)?;
        let processes = self.0.pids(&ns, &req.into_inner().id).await?;
        Ok(Response::new(api::PidsResponse { processes }))
    }

    async fn stats(
        &self,
        req: Request<api::ContainerRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        let ns = namespace::of(&req)?;
        Ok(Response::new(
            self.0.stats(&ns, &req.into_inner().id).await?,
        ))
    }

    async fn get(
        &self,
        req: Request<api::ProcessRequest>,
    ) -> Result<Response<pb::Process>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        Ok(Response::new(
            self.0.state(&ns, &r.container_id, &r.exec_id).await?,
        ))
    }

    async fn list(
        &self,
        req: Request<api::ListTasksRequest>,
    ) -> Result<Response<api::ListTasksResponse>, Status> {
        let ns = namespace::of(&req)?;
        let filters = req.into_inner().filters;
        let mut tasks = self.0.list(&ns).await;
        for f in &filters {
            let Some(want) = f.strip_prefix("status==") else {
                return Err(Status::invalid_argument(format!(
                    "filter {f:?}: only status==STATUS is supported"
                )));
            };
            tasks.retain(|t| {
                pb::Status::try_from(t.status)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("STATUS_")
                            .eq_ignore_ascii_case(want)
                    })
                    .unwrap_or(false)
            });
        }
        Ok(Response::new(api::ListTasksResponse { tasks }))
    }

    async fn pause(&self, req: Request<api::ContainerRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        self.0.pause(&ns, &req.into_inner().id, true).await?;
        Ok(Response::new(()))
    }

    async fn resume(&self, req: Request<api::ContainerRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        self.0.pause(&ns, &req.into_inner().id, false).await?;
        Ok(Response::new(()))
    }

    async fn update(&self, req: Request<api::UpdateTaskRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        self.0.update(&ns, &r.container_id, r.resources).await?;
        Ok(Response::new(()))
    }

    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::Chunk, Status>> + Send>>;

    /// Relays between the client and the task's shim.
    async fn attach(
        &self,
        req: Request<Streaming<api::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let ns = namespace::of(&req)?;
        let mut input = req.into_inner();
        let open = match input.message().await? {
            Some(api::AttachRequest {
                kind: Some(api::attach_request::Kind::Open(o)),
            }) => o,
            _ => {
                return Err(Status::invalid_argument(
                    "attach must start with an open message",
                ));
            }
        };
        let task = self.0.get(&ns, &open.container_id)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<shim::AttachRequest>(16);
        let first = shim::AttachRequest {
            kind: Some(shim::attach_request::Kind::Open(shim::AttachOpen {
                exec_id: open.exec_id.clone(),
                stdin: open.stdin,
                stdout: open.stdout,
                stderr: open.stderr,
            })),
        };
        tx.send(first)
            .await
            .map_err(|_| Status::internal("attach relay closed"))?;
        let output = task
            .client
            .clone()
            .attach(ReceiverStream::new(rx))
            .await?
            .into_inner();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                let kind = match msg.kind {
                    Some(api::attach_request::Kind::Stdin(d)) => {
                        shim::attach_request::Kind::Stdin(d)
                    }
                    Some(api::attach_request::Kind::CloseStdin(c)) => {
                        shim::attach_request::Kind::CloseStdin(c)
                    }
                    Some(api::attach_request::Kind::Resize(r)) => {
                        shim::attach_request::Kind::Resize(shim::ResizePtyRequest {
                            exec_id: r.exec_id,
                            width: r.width,
                            height: r.height,
                        })
                    }
                    _ => continue,
                };
                if tx
                    .send(shim::AttachRequest { kind: Some(kind) })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(output)))
    }

    async fn attach_socket(
        &self,
        req: Request<api::ContainerRequest>,
    ) -> Result<Response<api::AttachSocketResponse>, Status> {
        let ns = namespace::of(&req)?;
        let id = req.into_inner().id;
        let task = self.0.get(&ns, &id)?;
        // Written by the shim when it bound the socket; a shim from before
        // the attach socket has none, and its clients use Attach.
        match std::fs::read_to_string(task.dir.join("attach-address")) {
            Ok(path) => Ok(Response::new(api::AttachSocketResponse {
                path: path.trim().to_string(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Status::not_found(format!(
                "the shim of task {id} has no attach socket: use Attach"
            ))),
            Err(e) => Err(Status::internal(format!(
                "reading the attach address of task {id}: {e}"
            ))),
        }
    }
}
