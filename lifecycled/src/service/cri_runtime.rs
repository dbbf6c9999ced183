//! The CRI's `runtime.v1.RuntimeService`: the handlers check the request
//! and call `crate::cri`, which owns pods and their containers.

use std::sync::Arc;

use berth_proto::cri::v1 as cri;
use berth_proto::cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use crate::cri::Cri;

pub struct Service {
    pub cri: Arc<Cri>,
}

/// What berth does not serve yet, said as such (the kubelet falls back
/// where it can, e.g. to its own stats when the runtime has none).
fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by berth-lifecycled yet"))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(
        &self,
        _: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            // The CRI's own kubelet-facing API version.
            version: "0.1.0".into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let id = self.cri.run_sandbox(req.into_inner()).await?;
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        self.cri
            .stop_sandbox(&req.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        self.cri
            .remove_sandbox(&req.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let r = req.into_inner();
        let mut resp = self.cri.sandbox_status(&r.pod_sandbox_id, r.verbose)?;
        // With its containers' statuses and the time they were read, as
        // the kubelet's evented PLEG reads a pod in one call.
        if let Some(id) = resp.status.as_ref().map(|s| s.id.clone()) {
            resp.containers_statuses = self.cri.pod_container_statuses(&id).await;
        }
        resp.timestamp = crate::cri::nanos(std::time::SystemTime::now());
        Ok(Response::new(resp))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        Ok(Response::new(cri::ListPodSandboxResponse {
            items: self.cri.list_sandboxes(req.into_inner().filter),
        }))
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let id = self.cri.create_container(req.into_inner()).await?;
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        self.cri
            .start_container(&req.into_inner().container_id)
            .await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        let r = req.into_inner();
        self.cri.stop_container(&r.container_id, r.timeout).await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        self.cri
            .remove_container(&req.into_inner().container_id)
            .await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        Ok(Response::new(cri::ListContainersResponse {
            containers: self.cri.list_containers(req.into_inner().filter),
        }))
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.cri
                .container_status(&r.container_id, r.verbose)
                .await?,
        ))
    }

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        let r = req.into_inner();
        self.cri.update_resources(&r.container_id, r.linux).await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        self.cri.reopen_log(&req.get_ref().container_id).await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        req: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        Ok(Response::new(self.cri.exec_sync(req.into_inner()).await?))
    }

    async fn exec(
        &self,
        req: Request<cri::ExecRequest>,
    ) -> Result<Response<cri::ExecResponse>, Status> {
        let url = self.cri.exec_url(req.into_inner())?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(
        &self,
        req: Request<cri::AttachRequest>,
    ) -> Result<Response<cri::AttachResponse>, Status> {
        let url = self.cri.attach_url(req.into_inner())?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        req: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        let url = self.cri.port_forward_url(req.into_inner())?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        let stats = self
            .cri
            .container_stats(&req.get_ref().container_id)
            .await?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        let stats = self.cri.list_container_stats(req.into_inner().filter).await;
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        let stats = self
            .cri
            .pod_sandbox_stats(&req.get_ref().pod_sandbox_id)
            .await?;
        Ok(Response::new(cri::PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        let stats = self
            .cri
            .list_pod_sandbox_stats(req.into_inner().filter)
            .await;
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    }

    async fn update_runtime_config(
        &self,
        _: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        // The pod CIDR the kubelet sends is for CNI config templates, which
        // berth does not write: the CNI config in cni_conf_dir is used as is.
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(
        &self,
        req: Request<cri::StatusRequest>,
    ) -> Result<Response<cri::StatusResponse>, Status> {
        let dir = &self.cri.cfg.cni_conf_dir;
        let network = crate::cri::network::load(dir);
        let mut info = std::collections::HashMap::new();
        if req.into_inner().verbose {
            info.insert(
                "cniconfig".to_string(),
                serde_json::json!({
                    "confDir": dir,
                    "binDirs": self.cri.cfg.cni_bin_dirs,
                    "network": network.as_ref().ok(),
                })
                .to_string(),
            );
        }
        let (ready, reason, message) = match &network {
            Ok(_) => (true, String::new(), String::new()),
            Err(e) => (
                false,
                "NetworkPluginNotReady".to_string(),
                format!("Network plugin returns error: cni plugin not initialized: {e}"),
            ),
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![
                    cri::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    cri::RuntimeCondition {
                        r#type: "NetworkReady".into(),
                        status: ready,
                        reason,
                        message,
                    },
                ],
            }),
            info,
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> Result<Response<cri::CheckpointContainerResponse>, Status> {
        Err(not_yet("CheckpointContainer"))
    }

    type GetContainerEventsStream =
        tokio_stream::wrappers::ReceiverStream<Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let mut events = self.cri.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let e = match events.recv().await {
                    Ok(e) => Ok(e),
                    // A subscriber that fell this far behind has lost
                    // events: it must list again, so it is told.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Err(
                        Status::data_loss(format!("{n} container events were missed")),
                    ),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let end = e.is_err();
                if tx.send(e).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Result<Response<cri::ListMetricDescriptorsResponse>, Status> {
        Err(not_yet("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<cri::ListPodSandboxMetricsResponse>, Status> {
        Err(not_yet("ListPodSandboxMetrics"))
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        let driver = if self.cri.tasks.config().systemd_cgroup() {
            cri::CgroupDriver::Systemd
        } else {
            cri::CgroupDriver::Cgroupfs
        };
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        }))
    }
}
