//! The CRI's container events (`GetContainerEvents`, the kubelet's evented
//! PLEG): each change of a container or sandbox (created, started,
//! stopped, deleted), with the statuses of its pod as they are right after
//! it, so that the kubelet need not ask again. Every subscriber gets every
//! event (containerd hands each to one of them).

use std::time::SystemTime;

use berth_proto::cri::v1 as cri;
use tokio::sync::broadcast;

use super::{Cri, nanos};

/// Events not yet read by a slow subscriber before it misses some.
pub const BACKLOG: usize = 1000;

pub fn channel() -> broadcast::Sender<cri::ContainerEventResponse> {
    broadcast::channel(BACKLOG).0
}

impl Cri {
    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.events.subscribe()
    }

    /// The statuses of a pod's containers.
    pub async fn pod_container_statuses(&self, sandbox: &str) -> Vec<cri::ContainerStatus> {
        let mut out = Vec::new();
        for c in self.containers_of(sandbox) {
            if let Ok(s) = self.container_status(&c.id, false).await
                && let Some(s) = s.status
            {
                out.push(s);
            }
        }
        out
    }

    /// Sends an event about `id` (a container, or the sandbox itself) of
    /// `sandbox`; nobody listening is fine.
    pub(super) async fn emit(&self, id: &str, sandbox: &str, kind: cri::ContainerEventType) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let pod_sandbox_status = self
            .sandbox_status(sandbox, false)
            .ok()
            .and_then(|s| s.status);
        let containers_statuses = self.pod_container_statuses(sandbox).await;
        let _ = self.events.send(cri::ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: kind as i32,
            created_at: nanos(SystemTime::now()),
            pod_sandbox_status,
            containers_statuses,
        });
    }
}
