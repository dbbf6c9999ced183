//! What happens to a container after create: start, stop, kill, restart,
//! pause, wait, rename, update, remove.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::Value;

use super::container::{Container, Status};
use super::spec::{self, NetNs};
use super::{Daemon, Entry, files, names};
use crate::error::{ApiError, Result};

const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// How long a start waits for the attaches made before it to subscribe
/// (all of them together).
const ATTACH_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// A signal Linux has: [`parse_signal`], and a number above 64 refused
/// as dockerd's daemon refuses it when it would send it (a 500).
pub fn signal_number(s: &str) -> Result<u32> {
    let n = parse_signal(s)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| ApiError::internal(format!("The linux daemon does not support signal {n}")))
}

/// A signal by number or name (`KILL`, `SIGTERM`, `RTMIN+3`), as Docker's
/// ParseSignal takes them where it is asked (a kill's router, a create's
/// StopSignal, a STOPSIGNAL): any number but 0; "" is SIGTERM.
pub fn parse_signal(s: &str) -> Result<u64> {
    const SIGRTMIN: u32 = 34;
    const SIGRTMAX: u32 = 64;
    if s.is_empty() {
        return Ok(15);
    }
    let invalid = || ApiError::bad_request(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<u64>() {
        return match n {
            0 => Err(invalid()),
            n if n <= u64::from(u32::MAX) => Ok(n),
            _ => Err(invalid()),
        };
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = |base: u32, off: &str, up: bool| -> Result<u64> {
        let off: u32 = if off.is_empty() {
            0
        } else {
            off.parse().map_err(|_| invalid())?
        };
        let n = if up {
            base.checked_add(off)
        } else {
            base.checked_sub(off)
        };
        n.filter(|n| (SIGRTMIN..=SIGRTMAX).contains(n))
            .map(u64::from)
            .ok_or_else(invalid)
    };
    if let Some(off) = bare.strip_prefix("RTMIN") {
        return rt(SIGRTMIN, off.trim_start_matches('+'), true);
    }
    if let Some(off) = bare.strip_prefix("RTMAX") {
        return rt(SIGRTMAX, off.trim_start_matches('-'), false);
    }
    <nix::sys::signal::Signal as std::str::FromStr>::from_str(&format!("SIG{bare}"))
        .map(|s| s as u64)
        .map_err(|_| invalid())
}

/// The container's log options, each it does not set taken from
/// daemon.json's `log-opts` when it uses the daemon's driver (so a reload
/// reaches the containers started after it).
pub(crate) fn effective_log_opts(
    d: &Daemon,
    c: &Container,
) -> std::collections::BTreeMap<String, String> {
    with_daemon_log_opts(d, c.log_driver(), &c.host_config.log_config.config)
}

/// `opts` of a container of `driver`, daemon.json's `log-opts` filling
/// what they leave out when it is the daemon's driver.
pub(crate) fn with_daemon_log_opts(
    d: &Daemon,
    driver: &str,
    opts: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut opts = opts.clone();
    if driver == d.cfg.log_driver {
        for (k, v) in &d.live().log_opts {
            opts.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    opts
}

impl Daemon {
    /// The pid whose `kind` namespace a `container:<other>` mode joins. The
    /// caller holds its own container's lock: joining itself (a rename can
    /// make a mode name its own container) is refused, and the other's lock
    /// is only waited for a while, so two containers naming each other can
    /// not deadlock the engine.
    async fn joined_pid(&self, c: &Container, kind: &str, other: &str) -> Result<u32> {
        let pid = self.read_other(c, kind, other, |_, o| o.state.pid).await?;
        if pid == 0 {
            return Err(ApiError::conflict(format!(
                "cannot join {kind} of a non running container: {other}"
            )));
        }
        Ok(pid)
    }

    /// `f` of the container `other` whose `kind` namespace `c` joins.
    async fn read_other<T>(
        &self,
        c: &Container,
        kind: &str,
        other: &str,
        f: impl FnOnce(&Entry, &Container) -> T,
    ) -> Result<T> {
        let e = self.find(other)?;
        if e.id == c.id {
            return Err(ApiError::bad_request(format!(
                "cannot join own {kind} namespace"
            )));
        }
        let o = tokio::time::timeout(Duration::from_secs(5), e.c.lock())
            .await
            .map_err(|_| {
                ApiError::conflict(format!(
                    "cannot join {kind} namespace of {other}: it is busy starting or stopping"
                ))
            })?;
        Ok(f(&e, &o))
    }

    /// The pid whose IPC namespace a `container:<other>` mode joins and the
    /// host directory bound at its /dev/shm. As dockerd: only a running
    /// container made `shareable`, on the host's IPC, or itself joined to
    /// such a one can be joined (a `private` one keeps its memory its own).
    async fn ipc_donor(&self, c: &Container, other: &str) -> Result<(u32, String)> {
        let mut pid = 0;
        let mut next = other.to_string();
        // A chain of joins ends at the shareable one (bounded: records
        // older than modes named by id may name each other).
        for _ in 0..8 {
            let (id, running, own_pid, mode, dir) = self
                .read_other(c, "ipc", &next, |e, o| {
                    let running = o.is_running() && o.state.pid != 0;
                    let mode = o.host_config.ipc_mode.clone();
                    (e.id.clone(), running, o.state.pid, mode, o.dir.clone())
                })
                .await?;
            let cant =
                |why: &str| ApiError::internal(format!("can't join IPC of container {id}: {why}"));
            if !running {
                return Err(cant(&format!("container {id} is not running")));
            }
            if pid == 0 {
                pid = own_pid;
            }
            match mode.as_str() {
                "shareable" => return Ok((pid, super::ipc::shm_path(&dir).display().to_string())),
                "host" => return Ok((pid, "/dev/shm".to_string())),
                m if m.starts_with("container:") => next = m["container:".len()..].to_string(),
                _ => {
                    return Err(cant(
                        "non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
                    ));
                }
            }
        }
        Err(ApiError::internal(format!(
            "can't join IPC of container {other}: its IPC modes join in a loop"
        )))
    }

    /// `--add-host` entries with `host-gateway` given its address: the
    /// daemon's `host-gateway-ip`, else the default bridge's gateway, as
    /// dockerd gives it.
    fn extra_hosts(&self, hosts: &[String]) -> Result<Vec<String>> {
        hosts
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, "host-gateway")) => {
                    let ip = self
                        .cfg
                        .host_gateway_ip
                        .map(|ip| ip.to_string())
                        .or_else(|| self.networks.get("bridge").ok().map(|n| n.gateway))
                        .filter(|ip| !ip.is_empty())
                        .ok_or_else(|| {
                            ApiError::internal("unable to derive the IP value for host-gateway")
                        })?;
                    Ok(format!("{name}:{ip}"))
                }
                _ => Ok(h.clone()),
            })
            .collect()
    }

    /// Writes the container's /etc/hostname, /etc/hosts and
    /// /etc/resolv.conf (again, when its networks change while it runs);
    /// returns their bind mounts.
    pub fn write_etc(
        &self,
        c: &Container,
        host_net: bool,
        link_hosts: &[(String, String)],
    ) -> Result<Vec<Value>> {
        let hc = &c.host_config;
        let hostname = c.hostname();
        let attachments = c
            .net
            .as_ref()
            .map(|n| n.attachments.as_slice())
            .unwrap_or(&[]);
        let own_ip = attachments.first().map(|a| a.ip.as_str());
        // On a user network, names go to Docker's embedded resolver address
        // in the container's namespace, where berth-dns answers and
        // forwards the rest to the container's DNS servers or the host's;
        // a server an older engine started answers on the network's
        // gateway only.
        let served = attachments.iter().any(|a| a.dns);
        let embedded = served && self.dns.serves_inside();
        let network_dns = attachments
            .iter()
            .find(|a| a.dns && !embedded)
            .map(|a| a.gateway.clone());
        let dns: Vec<String> = if let Some(d) = hc.dns.as_ref().filter(|d| !d.is_empty()) {
            d.clone()
        } else if let Some(gw) = network_dns {
            vec![gw]
        } else {
            self.cfg.dns.clone()
        };
        let search: Vec<String> = match hc.dns_search.as_ref().filter(|s| !s.is_empty()) {
            Some(s) => s.clone(),
            None => self.cfg.dns_search.clone(),
        };
        let extra_hosts = self.extra_hosts(&hc.extra_hosts)?;
        files::write_etc(
            &c.dir,
            &files::Etc {
                hostname: &hostname,
                domainname: &c.config.domainname,
                own_ip,
                extra_hosts: &extra_hosts,
                dns: &dns,
                search: &search,
                options: hc.dns_options.as_deref().unwrap_or_default(),
                host_network: host_net,
                embedded,
                links: link_hosts,
            },
        )
        .map_err(|e| ApiError::internal(format!("writing /etc files of {}: {e}", c.id)))
    }

    /// The container's OCI spec for this user (uid, gid, groups) and these
    /// mounts. For its `start` the namespaces its modes name are joined;
    /// the spec a create records leaves them out (the containers it names
    /// need not run before it starts, as with dockerd).
    pub async fn spec_for(
        &self,
        c: &Container,
        (uid, gid, groups): (u32, u32, Vec<u32>),
        mut mounts: Vec<Value>,
        links: &super::links::Resolved,
        start: bool,
    ) -> Result<Value> {
        let hc = &c.host_config;
        let mut ns_paths = Vec::new();
        let netns = match hc.network_mode.as_str() {
            _ if c.config.network_disabled => NetNs::New,
            "host" => NetNs::Host,
            m if m.starts_with("container:") && start => {
                let pid = self
                    .joined_pid(c, "network", &m["container:".len()..])
                    .await?;
                NetNs::Path(format!("/proc/{pid}/ns/net"))
            }
            _ => match &c.net {
                Some(n) => NetNs::Path(n.netns.display().to_string()),
                None => NetNs::New,
            },
        };
        let mut shm = (hc.ipc_mode == "shareable")
            .then(|| super::ipc::shm_path(&c.dir).display().to_string());
        if start {
            super::ipc::check_mode(&hc.ipc_mode)?;
            // No device driver here (dockerd's come as plugins: nvidia's).
            if let Some(r) = hc.device_requests.first() {
                let caps: Vec<String> = r
                    .capabilities
                    .iter()
                    .map(|set| format!("[{}]", set.join(" ")))
                    .collect();
                return Err(ApiError::internal(format!(
                    "could not select device driver {:?} with capabilities: [{}]",
                    r.driver,
                    caps.join(" ")
                )));
            }
            if let Some(other) = hc.ipc_mode.strip_prefix("container:") {
                let (pid, donor_shm) = self.ipc_donor(c, other).await?;
                ns_paths.push(("ipc", format!("/proc/{pid}/ns/ipc")));
                shm = Some(donor_shm);
            }
            if let Some(other) = hc.pid_mode.strip_prefix("container:") {
                let pid = self.joined_pid(c, "pid", other).await?;
                ns_paths.push(("pid", format!("/proc/{pid}/ns/pid")));
            }
        }
        let host_net = matches!(netns, NetNs::Host);
        // On another container's network it has that one's names, resolvers
        // and hostname, as dockerd gives them.
        let (etc, hostname) = match hc.network_mode.strip_prefix("container:") {
            Some(other) => {
                let e = self.find(other)?;
                let o = tokio::time::timeout(Duration::from_secs(5), e.c.lock())
                    .await
                    .map_err(|_| {
                        ApiError::conflict(format!(
                            "cannot join network of {other}: it is busy starting or stopping"
                        ))
                    })?;
                (files::etc_mounts(&o.dir), Some(o.hostname()))
            }
            None => {
                let mut etc = self.write_etc(c, host_net, &links.hosts)?;
                // Without networking it has its hostname and the image's
                // hosts and resolv.conf, as dockerd leaves them.
                if c.config.network_disabled {
                    etc.retain(|m| m["destination"] == "/etc/hostname");
                }
                (etc, None)
            }
        };
        // A user's own bind over one of them wins.
        for m in etc {
            if !mounts.iter().any(|x| x["destination"] == m["destination"]) {
                mounts.push(m);
            }
        }
        let init = if hc.init.unwrap_or(false) {
            Some(init_binary()?)
        } else {
            None
        };
        spec::build(&spec::Input {
            c,
            uid,
            gid,
            groups,
            mounts,
            cgroup_parent: &self.cfg.cgroup_parent,
            netns,
            ns_paths,
            init_binary: init,
            link_env: &links.env,
            hostname,
            shm,
            at_start: start,
        })
    }

    pub async fn start(self: &Arc<Self>, e: &Arc<Entry>) -> Result<()> {
        let result = self.start_unlocking(e).await;
        // The host ports it published are in its record from here (or it
        // has none), and the record is unlocked for other starts to see.
        self.ports_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| *owner != e.id);
        result
    }

    async fn start_unlocking(self: &Arc<Self>, e: &Arc<Entry>) -> Result<()> {
        let mut c = e.c.lock().await;
        match c.state.status {
            Status::Running | Status::Restarting => return Err(ApiError::not_modified()),
            Status::Paused => {
                return Err(ApiError::conflict(
                    "cannot start a paused container, try unpause instead".to_string(),
                ));
            }
            Status::Removing | Status::Dead => {
                return Err(ApiError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    c.id
                )));
            }
            _ => {}
        }
        // A task left from an earlier run (exited while we were away) goes first.
        self.delete_task(&c.id).await;
        // Mounted for this run (a failed start unmounts them again), as
        // dockerd's events tell it.
        self.volume_events(&c, "mount");
        let mut result = self.start_locked(e, &mut c).await;
        if let Err(err) = &mut result {
            self.net_down(&mut c).await;
            self.release_mounts(&mut c).await;
            c.state.error = err.message.clone();
            c.state.exit_code = exit_code_for(&err.message);
            // As dockerd: a command that cannot be run is the caller's
            // error (400), not the engine's.
            let unrunnable = match c.state.exit_code {
                126 => true,
                127 => err.message.contains(&c.path),
                _ => false,
            };
            if unrunnable && err.status == axum::http::StatusCode::INTERNAL_SERVER_ERROR {
                err.status = axum::http::StatusCode::BAD_REQUEST;
            }
            let _ = c.save();
            // As Docker: --rm applies to a container that never ran, too.
            if c.host_config.auto_remove {
                drop(c);
                if let Err(rm) = self.remove(e, true, true).await {
                    tracing::debug!("removing {} after a failed start: {}", e.id, rm.message);
                    self.remove_eventually(e.clone(), true);
                }
            }
        }
        result
    }

    /// After `c` stopped: its log plugin stops logging from it, its
    /// shareable /dev/shm is unmounted, and the mounts its volumes' options
    /// made go once no other running container uses them, as dockerd's
    /// local driver.
    pub(crate) async fn release_mounts(&self, c: &mut Container) {
        if let Some(f) = c.log_fifo.take() {
            self.stop_plugin_logging(&f).await;
        }
        self.volume_events(c, "unmount");
        super::ipc::unmount_shm(&c.dir);
        for m in c.mounts.iter().filter(|m| m.typ == "volume") {
            let last = !self.volume_in_use(&c.id, &m.name);
            // The mount point names its driver (empty in older records).
            let plugin = !m.driver.is_empty() && m.driver != super::volumes::LOCAL;
            if plugin {
                self.unmount_plugin_volume(&m.name, &m.driver, &c.id, last)
                    .await;
            } else if last && let Err(e) = self.volumes.unmount(&m.name) {
                tracing::warn!("volume {}: {}", m.name, e.message);
            }
        }
    }

    /// Whether a running container other than `me` mounts volume `vol`
    /// (or might: one whose record is busy counts as using it).
    fn volume_in_use(&self, me: &str, vol: &str) -> bool {
        self.volume_mounted_by_other(me, vol, true)
    }

    /// Whether a container other than `me` mounts volume `vol` (only a
    /// running one when `running`); a busy record counts as mounting it.
    fn volume_mounted_by_other(&self, me: &str, vol: &str, running: bool) -> bool {
        self.all()
            .iter()
            .filter(|e| e.id != me)
            .any(|e| match e.c.try_lock() {
                Ok(c) => {
                    (!running || c.is_running())
                        && c.mounts.iter().any(|m| m.typ == "volume" && m.name == vol)
                }
                Err(_) => true,
            })
    }

    async fn start_locked(self: &Arc<Self>, e: &Arc<Entry>, c: &mut Container) -> Result<()> {
        // A syslog, gelf or fluentd server first: where none answers the
        // start fails, as dockerd's driver fails it.
        let remote = self.remote_dial(c).await?;
        // The network namespace first, as the task's spec names it; then
        // its plugins run while the task is made (the process waits for
        // its start), each side on its own copy of the record: the
        // network side writes attachments, the task side reads the rest.
        let began = std::time::Instant::now();
        // A network it is on that was removed meanwhile: refused before
        // anything is made ("network … not found"), as dockerd refuses it.
        self.container_networks(c)?;
        self.net_prepare(c).await?;
        let netns_made = began.elapsed();
        let mut task_side = c.clone();
        let (attached, made) = tokio::join!(
            async {
                let r = if c.net.is_some() {
                    self.net_attach_all(c).await
                } else {
                    Ok(())
                };
                (r, began.elapsed())
            },
            async { (self.make_task(&mut task_side).await, began.elapsed()) }
        );
        let ((attached, net_done), (made, task_done)) = (attached, made);
        // A log plugin's FIFO is the container's to release, whatever failed.
        c.log_fifo = task_side.log_fifo.take();
        let links = match (attached, made) {
            (Ok(()), Ok(links)) => links,
            (Err(e), Ok(_)) => {
                self.delete_task(&c.id).await;
                return Err(e);
            }
            (_, Err(e)) => return Err(e),
        };
        c.mounts = task_side.mounts;
        berth_fault::point("berthd:start.after-net-up");
        // The addresses the plugins gave, in its /etc files before it runs
        // (the task's mounts are these files: rewritten in place).
        if c.net.as_ref().is_some_and(|n| !n.attachments.is_empty())
            && let Err(err) = self.write_etc(c, false, &links.hosts)
        {
            self.delete_task(&c.id).await;
            return Err(err);
        }
        berth_fault::point("berthd:start.after-task-create");
        // Clients that attached before the task existed subscribe now, so
        // nothing the process writes is missed.
        let waiters: Vec<_> =
            std::mem::take(&mut *e.attach_waiters.lock().unwrap_or_else(|e| e.into_inner()));
        let mut acks = Vec::new();
        for w in waiters {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if w.send(tx).is_ok() {
                acks.push(rx);
            }
        }
        // Docker's attach is subscribed to the container's streams before
        // its start, however long that takes; here an attach opens the
        // task's streams, so the start waits for it. Generously: on a
        // loaded machine an open can take seconds, and a start that goes
        // ahead loses what the process writes first (a short-lived
        // container: everything). The bound is only for an attach stuck
        // for good.
        let deadline = tokio::time::Instant::now() + ATTACH_ACK_TIMEOUT;
        for a in acks {
            if tokio::time::timeout_at(deadline, a).await.is_err() {
                tracing::warn!(
                    "container {}: an attach was not subscribed within {ATTACH_ACK_TIMEOUT:?}; starting without it",
                    c.id
                );
            }
        }
        let pid = match self
            .lc
            .tasks()
            .start(self.lc.req(api::ProcessRequest {
                container_id: c.id.clone(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => r.into_inner().pid,
            Err(s) => {
                self.delete_task(&c.id).await;
                return Err(ApiError::internal(format!(
                    "failed to start container: {}",
                    s.message()
                )));
            }
        };
        berth_fault::point("berthd:start.after-task-start");
        // Where a start's time goes, for whoever reads the daemon's log.
        tracing::debug!(
            "start {}: namespace {:.1} ms, networks {:.1} ms, task made {:.1} ms, running {:.1} ms",
            c.id,
            netns_made.as_secs_f64() * 1000.0,
            net_done.as_secs_f64() * 1000.0,
            task_done.as_secs_f64() * 1000.0,
            began.elapsed().as_secs_f64() * 1000.0
        );
        c.state.status = Status::Running;
        c.state.pid = pid;
        c.state.started_at = Some(SystemTime::now());
        c.state.error.clear();
        c.state.exit_code = 0;
        c.state.oom_killed = false;
        c.state.stopped_by_user = false;
        // A new run starts its health over.
        c.state.health = super::health::at_start(c);
        c.save().map_err(|e| ApiError::internal(e.to_string()))?;
        self.container_event(c, "start", &[]);
        if let Some((target, conn)) = remote {
            self.send_remote(e, c, target, conn);
        }
        // Once the caller lets go of the container.
        let (d, e) = (self.clone(), e.clone());
        tokio::spawn(async move { d.watch_health(&e).await });
        Ok(())
    }

    /// The target of a container whose lines go to a server (syslog,
    /// gelf, fluentd) and a connection to it, in dockerd's words when
    /// there is none; None for other drivers (nothing read for them).
    async fn remote_dial(
        &self,
        c: &Container,
    ) -> Result<Option<(super::logship::Remote, Option<super::logship::Conn>)>> {
        if !c.logs_to_server() {
            return Ok(None);
        }
        let failed =
            |e: String| ApiError::bad_request(format!("failed to initialize logging driver: {e}"));
        let Some(target) = super::logship::Remote::of(c, &effective_log_opts(self, c)) else {
            return Ok(None);
        };
        let target = target.map_err(failed)?;
        let conn = match target.dial().await {
            Ok(conn) => Some(conn),
            // fluentd-async: the sender connects when it can.
            Err(_) if !target.must_connect() => None,
            Err(e) => return Err(failed(e)),
        };
        Ok(Some((target, conn)))
    }

    /// Sends a container's lines from its log to its server while it runs
    /// (see [`super::logship`]). Called with the container's record held,
    /// so its exit cannot come before the watch for it.
    pub(crate) fn send_remote(
        &self,
        e: &Arc<Entry>,
        c: &Container,
        target: super::logship::Remote,
        conn: Option<super::logship::Conn>,
    ) {
        let running = e.running_watch();
        let (log, mark) = (c.log_path(), super::logship::sent_mark(&c.dir));
        let mut senders = self.log_senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.retain(|_, h| !h.is_finished());
        let before = senders.remove(&c.id);
        let sender = tokio::spawn(async move {
            if let Some(h) = before {
                let _ = h.await;
            }
            super::logship::send_from(log, mark, target, conn, running).await
        });
        senders.insert(c.id.clone(), sender);
    }

    /// The task of a container being started, made from `c`, a copy of
    /// its record: the user resolved, volumes planned (and filled from
    /// the image at first use), the spec, the task created. Returns the
    /// links (their /etc/hosts lines are written again once the
    /// container's own addresses are known).
    async fn make_task(self: &Arc<Self>, c: &mut Container) -> Result<super::links::Resolved> {
        let (uid, gid, groups) =
            files::resolve_user(&self.lc, &c.id, &c.config.user, &c.host_config.group_add).await?;
        let image_volumes: Vec<String> = c.config.volumes.keys().cloned().collect();
        // Named ones only: its anonymous volumes were made at create.
        self.create_plugin_volumes(&c.host_config, &[], &[], false)
            .await?;
        let plan = super::volumes::plan(
            &self.volumes,
            &c.host_config.binds,
            &c.host_config.mounts,
            &c.host_config.tmpfs,
            &image_volumes,
            &c.inherited_mounts,
            &c.mounts,
        )?;
        let root_propagation = super::volumes::check_propagation(&plan.oci)?;
        // What volumes' options mount (a host directory, a tmpfs) is there
        // before anything is copied in or the container sees it.
        for name in &plan.to_mount {
            self.mount_volume(name, &c.id).await?;
        }
        for (vol, dest) in &plan.copy_up {
            // Only an empty volume is filled: what its options mounted (a
            // host directory) may hold files of its own, as dockerd checks.
            if !self.volumes.is_empty(vol) {
                continue;
            }
            // Filled only while no container can reach the volume: a process
            // of one that has it mounted could plant symlinks for the copy
            // (made as root on the host) to follow. Said only when the image
            // had something to fill it with.
            if self.volume_in_use(&c.id, vol) {
                if files::has_image_content(&self.lc, &c.id, dest).await {
                    tracing::warn!(
                        "not filling volume {vol} from the image of {}: another running container uses it",
                        c.id
                    );
                }
                continue;
            }
            if let Some(content) = files::image_content(&self.lc, &c.id, dest).await? {
                files::copy_up(content, &self.volumes.path(vol)).await?;
            }
        }
        c.mounts = plan.points.clone();
        let links = self.resolve_links(c).await?;
        if c.host_config.ipc_mode == "shareable" {
            super::ipc::mount_shm(&c.dir, c.host_config.shm_size)?;
        }
        let mut spec = self
            .spec_for(c, (uid, gid, groups), plan.oci, &links, true)
            .await?;
        if let Some(p) = root_propagation {
            spec["linux"]["rootfsPropagation"] = serde_json::json!(p);
        }
        self.lc
            .containers()
            .update(self.lc.req(api::UpdateContainerRequest {
                id: c.id.clone(),
                spec: spec.to_string().into_bytes(),
                ..Default::default()
            }))
            .await?;
        let opts = effective_log_opts(self, c);
        let mut rotation = super::logopts::rotation(c.log_driver(), &opts);
        let remote = c.logs_to_server();
        if remote {
            // The file the engine sends the lines from, and `logs` reads
            // unless the cache is disabled (the file is kept then too, the
            // defaults' size: it carries the lines).
            rotation = super::logship::cache(&opts)
                .map_err(ApiError::bad_request)?
                .unwrap_or_else(super::logship::default_cache);
        }
        // What each entry carries: the journal's fields, or the json-file's
        // attrs.
        let logger =
            |made: std::result::Result<std::collections::BTreeMap<String, String>, String>| {
                made.map(|m| m.into_iter().collect())
                    .map_err(|e| ApiError::bad_request(format!("failed to create logger: {e}")))
            };
        let (journal_fields, log_attrs) = if c.logs_to_journal() {
            (
                logger(super::journal::fields(c, &opts))?,
                Default::default(),
            )
        } else if c.keeps_logs() && !remote {
            (
                Default::default(),
                logger(super::journal::json_file_attrs(c, &opts))?,
            )
        } else {
            Default::default()
        };
        // A plugin's FIFO, released with the mounts whatever fails after.
        let log_plugin = if c.logs_to_plugin() {
            let p = self.log_plugin(c.log_driver()).map_err(|why| {
                ApiError::bad_request(format!(
                    "failed to initialize logging driver: error looking up logging plugin {}: {why}",
                    c.log_driver()
                ))
            })?;
            let (fifo, path) = self.make_log_fifo(&p)?;
            c.log_fifo = Some(fifo.clone());
            Some((p, fifo, path))
        } else {
            None
        };
        let console = &c.host_config.console_size;
        let stdio = pb::Stdio {
            stdin: c.config.open_stdin,
            terminal: c.config.tty,
            log_path: if c.keeps_logs() && !c.logs_to_journal() {
                c.log_path().to_string_lossy().into_owned()
            } else {
                String::new()
            },
            log_max_size: rotation.max_size,
            log_max_files: rotation.max_files,
            log_compress: rotation.compress,
            console_height: console.first().copied().unwrap_or(0),
            console_width: console.get(1).copied().unwrap_or(0),
            stdin_once: c.config.stdin_once,
            journald: c.logs_to_journal(),
            journal_fields,
            log_format: String::new(),
            log_attrs,
            log_fifo: log_plugin
                .as_ref()
                .map(|(_, _, path)| path.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let created = self
            .lc
            .tasks()
            .create(self.lc.req(api::CreateTaskRequest {
                container_id: c.id.clone(),
                stdio: Some(stdio),
            }))
            .await;
        if let Err(s) = created {
            // Its create may have gone through before the answer was lost.
            self.delete_task(&c.id).await;
            return Err(ApiError::internal(format!(
                "failed to create task for container: {}",
                s.message()
            )));
        }
        if let Some((p, fifo, _)) = &log_plugin
            && let Err(e) = self.start_plugin_logging(c, p, fifo, &opts).await
        {
            self.delete_task(&c.id).await;
            return Err(e);
        }
        Ok(links)
    }

    /// SIGKILLs every process of the container's task, if it has one that
    /// runs, and waits (bounded) until lifecycled reports it stopped.
    async fn kill_task_and_wait(&self, id: &str) {
        let live = |p: &pb::Process| {
            p.status == pb::Status::Running as i32 || p.status == pb::Status::Paused as i32
        };
        match self.lc.task(id).await {
            Ok(p) if live(&p) => {}
            _ => return,
        }
        let _ = self
            .lc
            .tasks()
            .resume(self.lc.req(api::ContainerRequest { id: id.to_string() }))
            .await;
        let _ = self
            .lc
            .tasks()
            .kill(self.lc.req(api::KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal: 9,
                all: true,
            }))
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match self.lc.task(id).await {
                Ok(p) if live(&p) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return,
            }
        }
    }

    /// Deletes the container's task, whatever state it is in (a created
    /// one's waiting process is killed); gone already is fine.
    pub async fn delete_task(&self, id: &str) {
        let r = self
            .lc
            .tasks()
            .delete(self.lc.req(api::ProcessRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await;
        if let Err(s) = r
            && s.code() != tonic::Code::NotFound
        {
            tracing::debug!("deleting the task of {id}: {}", s.message());
        }
    }

    /// Sends `signal` to the container's process (all of them when killing).
    async fn signal(&self, c: &Container, signal: u32) -> Result<()> {
        self.lc
            .tasks()
            .kill(self.lc.req(api::KillRequest {
                container_id: c.id.clone(),
                exec_id: String::new(),
                signal,
                all: signal == 9,
            }))
            .await
            .map(|_| ())
            .or_else(|s| {
                if s.code() == tonic::Code::NotFound {
                    Ok(())
                } else {
                    Err(s.into())
                }
            })
    }

    pub async fn kill(&self, e: &Arc<Entry>, signal: &str) -> Result<()> {
        let sig = signal_number(if signal.is_empty() { "KILL" } else { signal })?;
        let mut c = e.c.lock().await;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let restarting = c.state.status == Status::Restarting;
        // As dockerd's kill: the restart policy is off for the next exit
        // unless the container has a stop signal of its own and this is
        // neither it nor SIGKILL (a signal it handles, say).
        let own_stop_signal = Some(c.config.stop_signal.as_str())
            .filter(|s| !s.is_empty())
            .and_then(|s| signal_number(s).ok());
        let ends_policy = match own_stop_signal {
            Some(stop) if sig != 9 => sig == stop,
            _ => true,
        };
        if ends_policy {
            c.state.stopped_by_user = true;
            // Between two runs of its restart policy: the pending restart
            // is called off, as the next run's exit would end it in dockerd.
            if restarting {
                c.state.status = Status::Exited;
            }
            let _ = c.save();
        }
        if restarting {
            // No process to signal.
            self.container_event(&c, "kill", &[("signal", sig.to_string())]);
            return Ok(());
        }
        if c.state.status == Status::Paused && sig == 9 {
            let _ = self
                .lc
                .tasks()
                .resume(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
                .await;
        }
        let seen = *e.exits.borrow();
        self.signal(&c, sig).await?;
        self.container_event(&c, "kill", &[("signal", sig.to_string())]);
        drop(c);
        if sig == 9 {
            // As dockerd's: a SIGKILL answers once the container is down,
            // so that a client's next look sees it exited.
            Self::wait_exit(e, seen, Some(Duration::from_secs(10))).await;
            // The exit is counted before its handler lets the record go:
            // once it has, the listings' copy shows the container exited.
            drop(e.c.lock().await);
        }
        Ok(())
    }

    /// Waits until the exit counter moves past `seen`, or the deadline.
    async fn wait_exit(e: &Entry, seen: u64, timeout: Option<Duration>) -> bool {
        let mut rx = e.exits.subscribe();
        let fut = async {
            loop {
                if *rx.borrow_and_update() > seen {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                fut.await;
                true
            }
        }
    }

    pub async fn stop(
        &self,
        e: &Arc<Entry>,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let (seen, t) = {
            let mut c = e.c.lock().await;
            if !c.is_running() {
                return Err(ApiError::not_modified());
            }
            c.state.stopped_by_user = true;
            // Between two runs of its restart policy: there is no process
            // to signal, and the pending restart is called off.
            if c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
                let _ = c.save();
                self.container_event(&c, "stop", &[]);
                return Ok(());
            }
            let _ = c.save();
            let t = timeout
                .or(c.config.stop_timeout)
                .unwrap_or(DEFAULT_STOP_TIMEOUT);
            // A stop signal Linux does not have (dockerd takes any number
            // at create) is not sent: as dockerd, the container gets two
            // seconds, whatever the timeout, then SIGKILL.
            let (sig, t) = match signal_number(signal.as_deref().unwrap_or(&c.config.stop_signal)) {
                Ok(sig) => (Some(sig), t),
                Err(e) => {
                    tracing::warn!("stopping {}: {}", c.id, e.message);
                    (None, 2)
                }
            };
            if c.state.status == Status::Paused {
                let _ = self
                    .lc
                    .tasks()
                    .resume(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
                    .await;
            }
            let seen = *e.exits.borrow();
            // The stop signal goes first whatever the timeout (a timeout of
            // 0 too: then SIGKILL follows at once), as dockerd sends it.
            if let Some(sig) = sig {
                self.signal(&c, sig).await?;
                // Each signal a stop sends is a kill event, as dockerd's.
                self.container_event(&c, "kill", &[("signal", sig.to_string())]);
                berth_fault::point("berthd:stop.after-signal");
            }
            (seen, t)
        };
        let graceful = t < 0 || Self::wait_exit(e, seen, Some(Duration::from_secs(t as u64))).await;
        if !graceful {
            let c = e.c.lock().await;
            if c.is_running() {
                self.signal(&c, 9).await?;
                self.container_event(&c, "kill", &[("signal", "9".into())]);
            }
        }
        if !Self::wait_exit(e, seen, Some(Duration::from_secs(30))).await {
            let c = e.c.lock().await;
            if c.is_running() {
                return Err(ApiError::internal(format!(
                    "container {} did not stop",
                    c.id
                )));
            }
        }
        let c = e.c.lock().await;
        self.container_event(&c, "stop", &[]);
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, e: &Arc<Entry>, timeout: Option<i64>) -> Result<()> {
        match self.stop(e, timeout, None).await {
            Ok(()) => {}
            Err(err) if err.status == axum::http::StatusCode::NOT_MODIFIED => {}
            Err(err) => return Err(err),
        }
        self.start(e).await?;
        let c = e.c.lock().await;
        self.container_event(&c, "restart", &[]);
        Ok(())
    }

    pub async fn pause(&self, e: &Arc<Entry>, pause: bool) -> Result<()> {
        let mut c = e.c.lock().await;
        match (pause, c.state.status) {
            (true, Status::Running) | (false, Status::Paused) => {}
            (true, Status::Paused) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )));
            }
            (false, _) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not paused",
                    c.id
                )));
            }
            (true, _) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )));
            }
        }
        let req = self.lc.req(api::ContainerRequest { id: c.id.clone() });
        let done = if pause {
            self.lc.tasks().pause(req).await
        } else {
            self.lc.tasks().resume(req).await
        };
        if let Err(err) = done {
            // A pause or unpause whose answer a dying daemon lost, seen
            // before a reconcile could: the task is already as asked, and
            // the record only has to say so.
            let want = if pause {
                pb::Status::Paused
            } else {
                pb::Status::Running
            };
            let now = self.lc.task(&c.id).await.ok().map(|p| p.status);
            if now != Some(want as i32) {
                return Err(err.into());
            }
            tracing::info!("{}: its task is already {want:?}", c.id);
        }
        if pause {
            berth_fault::point("berthd:pause.after-task-pause");
            c.state.status = Status::Paused;
        } else {
            c.state.status = Status::Running;
        }
        let _ = c.save();
        self.container_event(&c, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// `condition`: not-running (default), next-exit, removed.
    pub async fn wait(&self, e: &Arc<Entry>, condition: &str) -> Result<(i32, String)> {
        let mut removed = e.removed.subscribe();
        let seen = *e.exits.borrow();
        let running = e.c.lock().await.is_running();
        match condition {
            "" | "not-running" => {
                if running {
                    Self::wait_exit(e, seen, None).await;
                }
            }
            "next-exit" => {
                Self::wait_exit(e, seen, None).await;
            }
            "removed" => {
                while !*removed.borrow_and_update() {
                    if removed.changed().await.is_err() {
                        break;
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid condition: \"{other}\""
                )));
            }
        }
        let c = e.c.lock().await;
        Ok((c.state.exit_code, c.state.error.clone()))
    }

    pub async fn rename(&self, e: &Arc<Entry>, new: &str) -> Result<()> {
        let mut c = e.c.lock().await;
        let new = new.strip_prefix('/').unwrap_or(new);
        if c.name == new {
            return Err(ApiError::bad_request(
                "Renaming a container with the same name as its current name",
            ));
        }
        // dockerd checks the name as "/name" while it allocates it.
        let new = names::validate(&format!("/{new}"))
            .map_err(|m| ApiError::bad_request(format!("Error when allocating new name: {m}")))?;
        self.reserve_name(&new, &c.id).map_err(|mut e| {
            // As dockerd words a rename's conflict.
            e.message = format!("Error when allocating new name: {}", e.message);
            e
        })?;
        let old = std::mem::replace(&mut c.name, new.clone());
        if let Err(err) = c.save() {
            c.name = old;
            self.release_name(&new);
            return Err(ApiError::internal(err.to_string()));
        }
        self.release_name(&old);
        self.net_renamed(&c);
        self.container_event(&c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `docker update`: resources and restart policy.
    pub async fn update(
        &self,
        e: &Arc<Entry>,
        req: &super::resources::UpdateRequest,
    ) -> Result<Vec<String>> {
        let mut c = e.c.lock().await;
        let mut hc = req.apply(&c.host_config).map_err(|mut e| {
            if e.status == axum::http::StatusCode::CONFLICT {
                e.message = format!("Cannot update container {}: {}", c.id, e.message);
            }
            e
        })?;
        let mut warnings = Vec::new();
        super::resources::discard_unsupported(&mut hc, &mut warnings);
        if req.kernel_memory.is_some_and(|k| k != 0) {
            warnings.push(super::create::KERNEL_MEMORY_DEPRECATED.into());
        }
        let resources = super::resources::oci_update(&hc)?;
        if c.is_running() && resources.as_object().is_some_and(|o| !o.is_empty()) {
            self.lc
                .tasks()
                .update(self.lc.req(api::UpdateTaskRequest {
                    container_id: c.id.clone(),
                    resources: resources.to_string().into_bytes(),
                }))
                .await
                .map_err(|s| {
                    ApiError::internal(format!("Cannot update container {}: {}", c.id, s.message()))
                })?;
        }
        c.host_config = hc;
        c.save().map_err(|e| ApiError::internal(e.to_string()))?;
        self.container_event(&c, "update", &[]);
        Ok(warnings)
    }

    pub async fn remove(&self, e: &Arc<Entry>, force: bool, volumes: bool) -> Result<()> {
        {
            let c = e.c.lock().await;
            if c.state.status == Status::Removing {
                return Err(ApiError::conflict(format!(
                    "removal of container {} is already in progress",
                    c.id
                )));
            }
            if c.is_running() && !force {
                let what = if c.state.status == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ApiError::conflict(format!(
                    "You cannot remove a {what} container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
        }
        // Whether it runs and how many exits it has seen, read together: an
        // exit between the two would otherwise be waited for again.
        let seen = {
            let mut c = e.c.lock().await;
            if c.is_running() {
                let seen = *e.exits.borrow();
                c.state.stopped_by_user = true;
                if c.state.status == Status::Paused {
                    let _ = self
                        .lc
                        .tasks()
                        .resume(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
                        .await;
                }
                let signalled = self.signal(&c, 9).await;
                if signalled.is_ok() {
                    self.container_event(&c, "kill", &[("signal", "9".into())]);
                }
                Some((seen, signalled))
            } else {
                None
            }
        };
        if let Some((seen, signalled)) = seen {
            // A refused signal is fine when the process was dying anyway:
            // its exit is on the way.
            let limit = if signalled.is_ok() { 30 } else { 5 };
            let exited = Self::wait_exit(e, seen, Some(Duration::from_secs(limit))).await;
            if let Err(err) = signalled
                && !exited
            {
                return Err(err);
            }
        }
        let mut c = e.c.lock().await;
        if force && !c.is_running() {
            // The record may not know of a task a dying daemon left (a
            // start cut short, a failed removal): it goes too.
            self.kill_task_and_wait(&c.id).await;
        }
        c.state.status = Status::Removing;
        c.state.removing_volumes = volumes;
        // Recorded before anything is undone: an engine that dies from here
        // on finishes the removal when it starts again.
        c.save()
            .map_err(|err| ApiError::internal(format!("saving container {}: {err}", c.id)))?;
        self.net_down(&mut c).await;
        let req = api::ProcessRequest {
            container_id: c.id.clone(),
            exec_id: String::new(),
        };
        match self.lc.tasks().delete(self.lc.req(req)).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                c.state.status = Status::Dead;
                return Err(ApiError::internal(format!(
                    "cannot remove container {}: {}",
                    c.id,
                    s.message()
                )));
            }
        }
        berth_fault::point("berthd:rm.after-task-delete");
        match self
            .lc
            .containers()
            .delete(self.lc.req(api::ContainerRequest { id: c.id.clone() }))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                c.state.status = Status::Dead;
                let _ = c.save();
                return Err(ApiError::internal(format!(
                    "cannot remove container {}: {}",
                    c.id,
                    s.message()
                )));
            }
        }
        berth_fault::point("berthd:rm.after-container-delete");
        if volumes {
            // Its anonymous volumes, its own or another's it took with
            // --volumes-from, go with the last container that has them,
            // as dockerd's reference counting has it.
            let mut names: Vec<&str> = c.anonymous_volumes.iter().map(String::as_str).collect();
            names.extend(
                c.mounts
                    .iter()
                    .filter(|m| m.typ == "volume")
                    .map(|m| m.name.as_str()),
            );
            names.sort_unstable();
            names.dedup();
            for v in names {
                let Some(vol) = self.volumes.get(v).filter(|v| v.anonymous) else {
                    continue;
                };
                // A plugin's is removed by its plugin (which may refuse).
                if !self.volume_mounted_by_other(&c.id, v, false)
                    && self.remove_volume(&vol, false).await.is_ok()
                {
                    self.events.publish(
                        "volume",
                        "destroy",
                        v,
                        [("driver".to_string(), vol.driver.clone())].into(),
                    );
                }
            }
        }
        // Last: until the record is gone, a restarted engine knows there is
        // a removal to finish.
        super::ipc::unmount_shm(&c.dir);
        let _ = std::fs::remove_dir_all(&c.dir);
        self.forget(&c.id, &c.name);
        self.container_event(&c, "destroy", &[]);
        e.removed.send_replace(true);
        Ok(())
    }
}

/// Docker's status for a start that failed: 127 when the program is missing,
/// 126 when it cannot be run.
pub fn exit_code_for(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// tini, run as PID 1 for `--init`.
fn init_binary() -> Result<std::path::PathBuf> {
    for p in [
        "/usr/bin/tini-static",
        "/usr/bin/docker-init",
        "/usr/libexec/docker/docker-init",
    ] {
        if std::path::Path::new(p).exists() {
            return Ok(p.into());
        }
    }
    Err(ApiError::bad_request(
        "--init needs a static init binary: install Debian's tini (tini-static)",
    ))
}
