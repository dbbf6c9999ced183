//! Exits and restarts. The engine learns of exits from lifecycled's event
//! stream; after its own start (or lifecycled's), it reconciles every record
//! with lifecycled's tasks, so an exit while the engine was down is shown
//! truly and its restart policy applies.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::envelope::Event;
use berth_proto::types::v1 as pb;

use super::container::Status;
use super::{Daemon, Entry};

fn time_of(t: &Option<prost_types::Timestamp>) -> SystemTime {
    match t {
        Some(t) if t.seconds > 0 => {
            SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos.max(0) as u32)
        }
        _ => SystemTime::now(),
    }
}

/// Whether the container's restart policy brings it back after a run that
/// `failed` (a non-zero exit, or a start that did not work); a container
/// a user stopped stays stopped.
fn policy_restarts(c: &super::container::Container, failed: bool) -> bool {
    let policy = &c.host_config.restart_policy;
    !c.state.stopped_by_user
        && match policy.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                failed
                    && (policy.maximum_retry_count == 0
                        || c.restart_count < policy.maximum_retry_count)
            }
            _ => false,
        }
}

impl Daemon {
    /// Follows lifecycled's exits for as long as the engine runs; reconnects
    /// and reconciles whenever the stream breaks.
    pub fn spawn_monitor(self: &Arc<Self>) {
        let d = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut boot = true;
            loop {
                let stream =
                    d.lc.events()
                        .subscribe(d.lc.req(api::SubscribeRequest {
                            filters: vec!["topic==/tasks/exit".into(), "topic==/tasks/oom".into()],
                        }))
                        .await;
                match stream {
                    Ok(s) => {
                        backoff = Duration::from_millis(100);
                        // Exits that happened while we were not listening.
                        d.reconcile(boot).await;
                        if boot {
                            // In a task of its own: removing a running
                            // container waits for its exit, which this
                            // loop is the one to see.
                            let d2 = d.clone();
                            tokio::spawn(async move { d2.recover().await });
                        }
                        boot = false;
                        let mut s = s.into_inner();
                        while let Ok(Some(env)) = s.message().await {
                            if env.namespace != super::lifecycle::NAMESPACE {
                                continue;
                            }
                            match env.event {
                                Some(Event::TaskExit(x)) if x.exec_id.is_empty() => {
                                    // Each exit in a task of its own: a
                                    // teardown (network namespace, CNI DEL,
                                    // task delete) takes tens of ms, and
                                    // `compose down` stopping ten containers
                                    // waited for them one after another. A
                                    // run has one exit, and its handler
                                    // holds the record's lock throughout.
                                    let d = d.clone();
                                    tokio::spawn(async move {
                                        d.handle_exit(
                                            &x.container_id,
                                            x.exit_status as i32,
                                            time_of(&x.exited_at),
                                        )
                                        .await;
                                    });
                                }
                                Some(Event::TaskOom(x)) => {
                                    if let Ok(e) = d.find(&x.container_id) {
                                        let mut c = e.c.lock().await;
                                        c.state.oom_killed = true;
                                        d.container_event(&c, "oom", &[]);
                                        let _ = c.save();
                                    }
                                }
                                _ => {}
                            }
                        }
                        tracing::warn!("lost lifecycled's event stream; reconnecting");
                    }
                    Err(e) => tracing::debug!("lifecycled not reachable yet: {}", e.message()),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// Brings every record in line with lifecycled: running tasks stay
    /// running, tasks that ended are recorded as exited (and restarted by
    /// policy), records whose task is gone are exited. A task that no run
    /// of the record accounts for (a start or an exit cut short by a dying
    /// daemon) is rolled back or adopted, so that what the engine says
    /// always matches the kernel.
    pub async fn reconcile(self: &Arc<Self>, boot: bool) {
        if boot {
            self.reconcile_execs().await;
        }
        for e in self.all() {
            self.reconcile_one(&e, boot).await;
        }
        if !boot {
            // A removal that failed while lifecycled was away (the
            // container is Dead) is finished now it is back; at boot,
            // recover does it.
            for e in self.all() {
                let dead = {
                    let c = e.c.lock().await;
                    (c.state.status == Status::Dead)
                        .then_some(c.state.removing_volumes || c.host_config.auto_remove)
                };
                if let Some(volumes) = dead {
                    self.remove_eventually(e, volumes);
                }
            }
        }
    }

    async fn reconcile_one(self: &Arc<Self>, e: &Arc<Entry>, boot: bool) {
        // Held across the look at the task: a start holds it from its task's
        // create to its record's save, so a `created` task seen here is one
        // no start is still working on.
        let mut c = e.c.lock().await;
        if c.state.status == Status::Restarting {
            if !boot {
                // Its restart policy's loop owns it.
                return;
            }
            // That loop died with the last engine: the policy applies anew.
            c.state.status = Status::Exited;
            let _ = c.save();
        }
        let status = c.state.status;
        if matches!(status, Status::Removing | Status::Dead) {
            // Left to the removal (recover finishes an interrupted one).
            return;
        }
        let running = matches!(
            status,
            Status::Running | Status::Paused | Status::Restarting
        );
        let id = c.id.clone();
        match self.lc.task(&id).await {
            Ok(p) => {
                let task_status = pb::Status::try_from(p.status).unwrap_or(pb::Status::Unknown);
                match task_status {
                    pb::Status::Stopped if running => {
                        drop(c);
                        self.handle_exit(&id, p.exit_status as i32, time_of(&p.exited_at))
                            .await;
                    }
                    pb::Status::Stopped => {
                        // Its exit was handled but the task's delete was lost.
                        self.delete_task(&id).await;
                        self.net_down(&mut c).await;
                        self.release_mounts(&mut c).await;
                        drop(c);
                        if boot && status == Status::Exited {
                            self.apply_restart_policy_on_boot(e).await;
                        }
                    }
                    pb::Status::Created => {
                        // Made by a start that never got to start it.
                        tracing::info!("rolling back the unstarted task of {id}");
                        self.delete_task(&id).await;
                        if running {
                            drop(c);
                            self.handle_exit(&id, 255, SystemTime::now()).await;
                        } else {
                            self.net_down(&mut c).await;
                            self.release_mounts(&mut c).await;
                        }
                    }
                    pb::Status::Running | pb::Status::Paused => {
                        let paused = task_status != pb::Status::Running;
                        if status == Status::Running && paused && !super::freeze::held(&id).await {
                            // Frozen for a file copy or a commit whose thaw
                            // was lost with the engine or lifecycled (see
                            // freeze): the user never paused it.
                            tracing::info!("thawing {id}, left frozen by a file copy");
                            let _ = self
                                .lc
                                .tasks()
                                .resume(self.lc.req(api::ContainerRequest { id: id.clone() }))
                                .await;
                        }
                        if status == Status::Paused && !paused {
                            // Resumed by an unpause whose record was not saved.
                            c.state.status = Status::Running;
                            let _ = c.save();
                        }
                        if !running {
                            // Started by a start whose record was not saved.
                            tracing::info!("adopting the running task of {id}");
                            c.state.status = if paused {
                                Status::Paused
                            } else {
                                Status::Running
                            };
                            c.state.pid = p.pid;
                            c.state.started_at = Some(SystemTime::now());
                            c.state.error.clear();
                            c.state.exit_code = 0;
                            let _ = c.save();
                        }
                        // A `network connect` whose engine died during the
                        // plugins' ADD: its client got an error, so the
                        // attachment written ahead is undone.
                        let pending: Vec<(String, String)> = c
                            .net
                            .iter()
                            .flat_map(|n| &n.attachments)
                            .filter(|a| a.result.is_null())
                            .map(|a| (a.network_id.clone(), a.network_name.clone()))
                            .collect();
                        for (network, name) in pending {
                            tracing::info!("undoing the cut network connect of {id} to {name}");
                            self.net_detach(&mut c, &network).await;
                            c.networking.endpoints_config.remove(&name);
                            let mode = super::netsetup::mode_network(&c.host_config.network_mode);
                            if self.networks.get(mode).is_ok_and(|m| m.id == network) {
                                // It had left its mode's network before.
                                c.mode_detached = true;
                            }
                        }
                        let _ = c.save();
                        self.resume_relays(&c);
                        // Lines sent to a server go on from where they were.
                        if c.logs_to_server() {
                            let opts = super::ops::effective_log_opts(self, &c);
                            match super::logship::Remote::of(&c, &opts) {
                                Some(Ok(t)) => self.send_remote(e, &c, t, None),
                                Some(Err(why)) => tracing::warn!("log driver of {id}: {why}"),
                                None => {}
                            }
                        }
                        drop(c);
                        // Checks go on after an engine restart.
                        self.watch_health(e).await;
                    }
                    // A shim that does not answer: nothing is known yet.
                    _ => {}
                }
            }
            Err(s) if s.code() == tonic::Code::NotFound => {
                if running {
                    drop(c);
                    // The task vanished (its shim died, or a reboot): the
                    // status it ended with is not known.
                    self.handle_exit(&id, 255, SystemTime::now()).await;
                } else {
                    // Ended (or failed to start) before its teardown.
                    self.net_down(&mut c).await;
                    self.release_mounts(&mut c).await;
                    drop(c);
                    if boot && status == Status::Exited {
                        self.apply_restart_policy_on_boot(e).await;
                    }
                }
            }
            Err(_) => {}
        }
    }

    /// Starts a container its restart policy brings back, after `delay`. A
    /// start that fails (lifecycled away, say) is tried again with the same
    /// back-off, as dockerd's restart manager does, for as long as the
    /// policy still applies and no user stopped or removed it meanwhile.
    async fn restart_by_policy(self: Arc<Self>, e: Arc<Entry>, mut delay: Duration) {
        loop {
            tokio::time::sleep(delay).await;
            {
                let mut c = e.c.lock().await;
                if c.state.status != Status::Restarting || c.state.stopped_by_user {
                    return;
                }
                c.state.status = Status::Exited;
            }
            let Err(err) = self.start(&e).await else {
                return;
            };
            tracing::warn!("restarting {}: {}", e.id, err.message);
            let mut c = e.c.lock().await;
            // A start that failed counts as a failure for on-failure.
            let again = c.state.status == Status::Exited
                && !*e.removed.borrow()
                && policy_restarts(&c, true);
            if !again {
                return;
            }
            c.restart_count += 1;
            c.state.status = Status::Restarting;
            let _ = c.save();
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    /// `always` and `unless-stopped` containers come back when the engine
    /// starts, as dockerd brings them back.
    async fn apply_restart_policy_on_boot(self: &Arc<Self>, e: &Arc<Entry>) {
        let restart = {
            let c = e.c.lock().await;
            let p = c.host_config.restart_policy.name.as_str();
            c.state.status == Status::Exited
                && c.state.started_at.is_some()
                && (p == "always" || (p == "unless-stopped" && !c.state.stopped_by_user))
        };
        if restart {
            let _ = self.start(e).await;
        }
    }

    pub async fn handle_exit(self: &Arc<Self>, id: &str, code: i32, at: SystemTime) {
        let Ok(e) = self.find(id) else { return };
        let (restart, delay, auto_remove) = {
            let mut c = e.c.lock().await;
            if !c.is_running() {
                return;
            }
            let ran = c
                .state
                .started_at
                .and_then(|s| at.duration_since(s).ok())
                .unwrap_or_default();
            c.state.status = Status::Exited;
            c.state.exit_code = code;
            c.state.pid = 0;
            c.state.finished_at = Some(at);
            // dockerd marks a checked container unhealthy once its checks
            // stop with it; the next start makes it "starting" again.
            if let Some(h) = c.state.health.as_mut() {
                h.status = "unhealthy".into();
            }
            // The exit is told before the teardown's own events (network
            // disconnects), in dockerd's order; the record stays locked
            // until the teardown is done.
            self.container_event(&c, "die", &[("exitCode", code.to_string())]);
            // Neither needs the other: the network goes while the runtime
            // deletes what is left of the container.
            let id = c.id.clone();
            tokio::join!(self.net_down(&mut c), self.delete_task(&id));
            self.release_mounts(&mut c).await;
            self.execs.end_of_run(&id);
            let restart = policy_restarts(&c, code != 0);
            // Docker's back-off: 100 ms doubling per restart, reset once a
            // run lasted 10 s.
            if ran >= Duration::from_secs(10) {
                c.restart_count = 0;
            }
            let delay =
                Duration::from_millis(100u64.saturating_mul(1 << c.restart_count.clamp(0, 10)));
            if restart {
                c.restart_count += 1;
                c.state.status = Status::Restarting;
            }
            let _ = c.save();
            // Counted while the record is locked: whoever reads the status
            // and the count under the lock sees both or neither.
            e.exits.send_modify(|n| *n += 1);
            (restart, delay, c.host_config.auto_remove)
        };
        if restart {
            let d = self.clone();
            tokio::spawn(async move { d.restart_by_policy(e, delay).await });
        } else if auto_remove {
            self.remove_eventually(e, true);
        }
    }
}
