//! A running container held still while the engine reads or writes its
//! files (`cp`, `export`): path checks and the opens that follow them are
//! not atomic, and a process of the container swapping a directory for a
//! symlink between the two could send the engine's root to a host file
//! (CVE-2018-15664). dockerd pauses the container for the same reason.
//! The freeze is the engine's own: the container's state and events do
//! not change, and a container the user paused is left paused.

use std::sync::Arc;

use berth_proto::lifecycle::v1 as api;

use super::container::Status;
use super::{Daemon, Entry};
use crate::error::Result;

/// Thaws the container when dropped (the end of a request, or of the
/// response body that streams its files).
pub struct Freeze {
    held: Option<(Arc<Daemon>, String)>,
}

impl Daemon {
    /// Freezes the container if it runs; a stopped one has no processes
    /// to race with.
    pub async fn freeze(self: &Arc<Self>, e: &Arc<Entry>) -> Result<Freeze> {
        let c = e.c.lock().await;
        if c.state.status != Status::Running {
            return Ok(Freeze { held: None });
        }
        self.lc
            .tasks()
            .pause(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
            .await?;
        Ok(Freeze {
            held: Some((self.clone(), c.id.clone())),
        })
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        let Some((d, id)) = self.held.take() else {
            return;
        };
        let thaw = async move {
            if let Err(e) =
                d.lc.tasks()
                    .resume(d.lc.req(api::ContainerRequest { id: id.clone() }))
                    .await
            {
                tracing::error!("thawing {id} after a file copy: {}", e.message());
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(thaw);
            }
            Err(_) => tracing::error!("container left frozen: no runtime to thaw it"),
        }
    }
}
