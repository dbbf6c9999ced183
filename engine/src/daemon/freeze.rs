//! A running container held still while the engine reads or writes its
//! files (`cp`, `export`): path checks and the opens that follow them are
//! not atomic, and a process of the container swapping a directory for a
//! symlink between the two could send the engine's root to a host file
//! (CVE-2018-15664). dockerd pauses the container for the same reason.
//! The freeze is the engine's own: the container's state and events do
//! not change, and a container the user paused is left paused. Copies that
//! overlap (the docker CLI stats a path, then reads it) share one freeze.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use berth_proto::lifecycle::v1 as api;

use super::container::Status;
use super::{Daemon, Entry};
use crate::error::Result;

/// How many copies hold each container frozen.
static HELD: LazyLock<tokio::sync::Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// Thaws the container when the last copy holding it is dropped (the end
/// of a request, or of the response body that streams its files).
pub struct Freeze {
    held: Option<(Arc<Daemon>, String)>,
}

/// Whether a copy or commit holds the container frozen now (a reconcile
/// must not thaw it under them).
pub async fn held(id: &str) -> bool {
    HELD.lock().await.contains_key(id)
}

impl Daemon {
    /// Freezes the container if it runs; a stopped one has no processes
    /// to race with.
    pub async fn freeze(self: &Arc<Self>, e: &Arc<Entry>) -> Result<Freeze> {
        let mut held = HELD.lock().await;
        if let Some(n) = held.get_mut(&e.id) {
            *n += 1;
            return Ok(Freeze {
                held: Some((self.clone(), e.id.clone())),
            });
        }
        let running = e.c.lock().await.state.status == Status::Running;
        if !running {
            return Ok(Freeze { held: None });
        }
        self.lc
            .tasks()
            .pause(self.lc.req(api::ContainerRequest { id: e.id.clone() }))
            .await?;
        held.insert(e.id.clone(), 1);
        Ok(Freeze {
            held: Some((self.clone(), e.id.clone())),
        })
    }
}

impl Freeze {
    /// Thaws now (if this is the last hold) and returns once it is done.
    pub async fn release(mut self) {
        if let Some((d, id)) = self.held.take() {
            thaw(d, id).await;
        }
    }
}

async fn thaw(d: Arc<Daemon>, id: String) {
    let mut held = HELD.lock().await;
    let last = match held.get_mut(&id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        _ => true,
    };
    if !last {
        return;
    }
    held.remove(&id);
    if let Err(e) =
        d.lc.tasks()
            .resume(d.lc.req(api::ContainerRequest { id: id.clone() }))
            .await
    {
        tracing::error!("thawing {id}: {}", e.message());
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        let Some((d, id)) = self.held.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(thaw(d, id));
            }
            Err(_) => tracing::error!("container left frozen: no runtime to thaw it"),
        }
    }
}
