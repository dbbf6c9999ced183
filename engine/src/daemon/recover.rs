//! What an engine that died mid-operation left half-done, finished or undone
//! when it starts again: removals under way are completed, `--rm` containers
//! that are not running go (as dockerd's restore removes them), and what no
//! record owns any more (lifecycled containers and their snapshots, network
//! namespaces, address leases) is freed. Runs once per engine start, after
//! the records were reconciled with lifecycled's tasks.

use std::sync::Arc;
use std::time::SystemTime;

use berth_proto::lifecycle::v1 as api;

use super::Daemon;
use super::container::Status;

/// The lifecycled label that names the engine start which made a
/// container (see [`Daemon::start_mark`]).
pub const MADE_BY: &str = "berth.engine-start";

impl Daemon {
    /// This engine start's mark: the time it started, in nanoseconds.
    pub fn start_mark(&self) -> String {
        self.started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_string()
    }
}

impl Daemon {
    /// Removes a container (a `--rm` one that ended, or one a failed
    /// removal left Dead) in the background, trying again while lifecycled
    /// is away: nobody else would finish it.
    pub fn remove_eventually(self: &Arc<Self>, e: Arc<super::Entry>, volumes: bool) {
        let d = self.clone();
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(200);
            for _ in 0..40 {
                if *e.removed.borrow() {
                    return;
                }
                match d.remove(&e, true, volumes).await {
                    Ok(()) => return,
                    Err(err) => tracing::debug!("removing {}: {}", e.id, err.message),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            tracing::warn!("gave up removing {}: it stays Dead", e.id);
        });
    }

    pub async fn recover(self: &Arc<Self>) {
        self.finish_removals().await;
        crate::build::remove_orphans(self).await;
        self.remove_unowned_lifecycled_containers().await;
        // A create the last engine sent just before it died may reach
        // lifecycled only now (a busy lifecycled takes its time): looked
        // for once more when it must have.
        let d = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            d.remove_unowned_lifecycled_containers().await;
        });
        self.remove_unowned_netns().await;
        self.remove_unowned_leases();
    }

    async fn finish_removals(self: &Arc<Self>) {
        for e in self.all() {
            let (finish, volumes) = {
                let mut c = e.c.lock().await;
                let interrupted = matches!(c.state.status, Status::Removing | Status::Dead);
                // As dockerd: a --rm container that is not running when the
                // engine starts is removed (its client is long gone).
                let auto = c.host_config.auto_remove
                    && matches!(c.state.status, Status::Created | Status::Exited);
                if interrupted {
                    // So that remove takes it up again.
                    c.state.status = Status::Dead;
                }
                (interrupted || auto, c.state.removing_volumes || auto)
            };
            if finish {
                tracing::info!("finishing the removal of {}", e.id);
                if let Err(err) = self.remove(&e, true, volumes).await {
                    tracing::debug!("removing {}: {}", e.id, err.message);
                    self.remove_eventually(e, volumes);
                }
            }
        }
    }

    /// Containers lifecycled holds for us that no record names: made by a
    /// create whose engine died before it saved the record. Only those
    /// older than this engine or marked by an earlier one ([`MADE_BY`]): a
    /// create under way now has no record yet.
    async fn remove_unowned_lifecycled_containers(&self) {
        // lifecycled may be restarting (killed with berthd, say): asked
        // again until it answers, or a container a killed create left
        // there would stay for good. This runs beside serving.
        let mut delay = std::time::Duration::from_millis(100);
        let mut waited = std::time::Duration::ZERO;
        let list = loop {
            match self
                .lc
                .containers()
                .list(self.lc.req(api::ListContainersRequest::default()))
                .await
            {
                Ok(list) => break list,
                Err(s) if waited < std::time::Duration::from_secs(60) => {
                    tracing::debug!("listing lifecycled's containers: {}", s.message());
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
                Err(s) => {
                    tracing::warn!(
                        "not checking lifecycled's containers for ones no record owns: {}",
                        s.message()
                    );
                    return;
                }
            }
        };
        let started = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mine = self.start_mark();
        for c in list.into_inner().containers {
            let older = c.created_at.as_ref().is_some_and(|t| {
                std::time::Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32) < started
            });
            let earlier = c.labels.get(MADE_BY).is_some_and(|m| *m != mine);
            if !(older || earlier) || self.find(&c.id).is_ok_and(|e| e.id == c.id) {
                continue;
            }
            tracing::info!(
                "removing lifecycled container {}, which no record owns",
                c.id
            );
            self.delete_task(&c.id).await;
            if let Err(s) = self
                .lc
                .containers()
                .delete(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
                .await
            {
                tracing::warn!("removing lifecycled container {}: {}", c.id, s.message());
            }
            let _ = std::fs::remove_dir_all(self.containers_dir().join(&c.id));
        }
    }

    /// Network namespaces whose container has none on record.
    async fn remove_unowned_netns(&self) {
        let dir = self.cfg.exec_root.join("netns");
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let id = f.file_name().to_string_lossy().into_owned();
            let owned = match self.find(&id) {
                Ok(e) if e.id == id => match e.c.try_lock() {
                    Ok(c) => c.net.is_some(),
                    // Busy: a start or a stop is working on it.
                    Err(_) => true,
                },
                _ => false,
            };
            if !owned {
                tracing::info!("removing the network namespace of {id}, which no record owns");
                let path = f.path();
                let _ =
                    tokio::task::spawn_blocking(move || crate::network::netns::remove(&path)).await;
            }
        }
    }

    /// host-local's leases (a file per address naming its container) for
    /// containers that no longer exist, and its directories (named by
    /// network id) of networks that no longer exist (engines before 12-04
    /// left one per removed network).
    fn remove_unowned_leases(&self) {
        let ipam = self.cfg.exec_root.join("ipam");
        for net in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            let id = net.file_name().to_string_lossy().into_owned();
            if !self.networks.get(&id).is_ok_and(|n| n.id == id) {
                tracing::info!("removing host-local's directory of network {id}, which is gone");
                let _ = std::fs::remove_dir_all(net.path());
                continue;
            }
            for f in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.parse::<std::net::IpAddr>().is_err() {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(f.path()) else {
                    continue;
                };
                let owner = text.lines().next().unwrap_or("").trim();
                if !owner.is_empty() && !self.find(owner).is_ok_and(|e| e.id == owner) {
                    tracing::info!("releasing address {name}, leased to missing container {owner}");
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}
