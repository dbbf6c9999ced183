//! The shim process: its SIGCHLD loop, and a gRPC server and attach
//! socket for each task it serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::shim::v1::shim_server::ShimServer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::Options;
use crate::launch::report_ready;
use crate::reaper::Reaper;
use crate::service::Service;
use crate::task::Task;

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// How long a task may wait for its create.
const UNCREATED_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The shim process: what the tasks it serves share. It reaps for all of
/// them (a pod's containers share their sandbox's shim, see `Host`) and
/// exits when the last one has been shut down.
pub struct Host {
    pub reaper: Arc<Reaper>,
    pub debug: bool,
    /// Tasks served; None once the last one ended and the process exits.
    serving: std::sync::Mutex<Option<usize>>,
    idle: Notify,
}

impl Host {
    fn new(debug: bool) -> Host {
        Host {
            reaper: Arc::new(Reaper::default()),
            debug,
            serving: std::sync::Mutex::new(Some(0)),
            idle: Notify::new(),
        }
    }

    fn serving(&self) -> std::sync::MutexGuard<'_, Option<usize>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more task in, unless the process is on its way out.
    fn enter(&self) -> bool {
        match &mut *self.serving() {
            Some(n) => {
                *n += 1;
                true
            }
            None => false,
        }
    }

    fn leave(&self) {
        let mut serving = self.serving();
        if let Some(n) = serving.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *serving = None;
                self.idle.notify_one();
            }
        }
    }

    /// Binds a task's sockets, records its addresses in its state
    /// directory and serves it until its Shutdown. Returns its address.
    pub fn serve_task(self: &Arc<Self>, opts: Options) -> Result<PathBuf> {
        if !self.enter() {
            anyhow::bail!("the shim is exiting");
        }
        let bound = bind(&opts).and_then(|(listener, attach)| {
            let attach = UnixListener::from_std(attach).context("serving the attach socket")?;
            Ok((listener, attach))
        });
        let (listener, attach_listener) = match bound {
            Ok(l) => l,
            Err(e) => {
                self.leave();
                return Err(e);
            }
        };
        let socket_ino = inode(&opts.socket);
        let task = Arc::new(Task::new(&opts, self.clone()));
        // A task whose client gave up on it before its create (a lost Host
        // answer, a socket it could not reach) would keep the process, and
        // the other tasks' shim, alive for good.
        let watched = Arc::downgrade(&task);
        tokio::spawn(async move {
            tokio::time::sleep(UNCREATED_LIMIT).await;
            if let Some(task) = watched.upgrade()
                && task.abandon_if_uncreated()
            {
                tracing::warn!(
                    "task {}: no create within {UNCREATED_LIMIT:?}; ending it",
                    task.id
                );
                task.shutdown.notify_one();
            }
        });
        let attach = tokio::spawn(crate::rawattach::serve(attach_listener, task.clone()));
        let host = self.clone();
        let socket = opts.socket.clone();
        tokio::spawn(async move {
            let shutdown = task.shutdown.clone();
            let service = ShimServer::new(Service(task));
            serve_grpc(listener, service, async move {
                shutdown.notified().await;
                // Clients keep streams (events) open forever; let the last
                // answers (Shutdown's own) go out, then end them all.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            })
            .await;
            attach.abort();
            // The path may already belong to a new shim for a new task of
            // the same id: remove it only while it is still ours.
            let now = inode(&socket);
            if now.is_some() && now == socket_ino {
                let _ = std::fs::remove_file(&socket);
                let _ = std::fs::remove_file(attach_path(&socket));
            }
            host.leave();
        });
        Ok(opts.socket)
    }
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

pub async fn run(opts: Options) -> Result<()> {
    let host = Arc::new(Host::new(opts.debug));
    let mut sigchld = signal(SignalKind::child()).context("watching SIGCHLD")?;
    let reaper = host.reaper.clone();
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            reaper.reap();
        }
    });
    // The shim is not for terminals or sessions to stop: ignore the signals a
    // session leader's death or a stray Ctrl-C would bring.
    for kind in [
        SignalKind::hangup(),
        SignalKind::interrupt(),
        SignalKind::pipe(),
    ] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move { while s.recv().await.is_some() {} });
        }
    }
    match host.serve_task(opts) {
        Ok(address) => report_ready(Ok(&address.to_string_lossy())),
        Err(e) => {
            report_ready(Err(format!("{e:#}")));
            return Err(e);
        }
    }
    host.idle.notified().await;
    Ok(())
}

/// One service, served by hyper directly (no router is needed, and the shim
/// stays small) until `stop`; its connections end with it.
async fn serve_grpc(
    listener: UnixListener,
    service: ShimServer<Service>,
    stop: impl std::future::Future<Output = ()>,
) {
    let ended = Arc::new(Notify::new());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let conn = match accepted {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        tracing::warn!("accepting: {e}");
                        continue;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(service.clone());
                // Subscribed here, before the connection's task first runs:
                // an end that comes first still ends it.
                let end = ended.clone().notified_owned();
                tokio::spawn(async move {
                    let serve = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .initial_stream_window_size(berth_proto::STREAM_WINDOW)
                        .initial_connection_window_size(berth_proto::CONNECTION_WINDOW)
                        .max_frame_size(berth_proto::MAX_FRAME)
                        .serve_connection(TokioIo::new(conn), svc);
                    tokio::select! {
                        r = serve => if let Err(e) = r {
                            tracing::debug!("connection: {e}");
                        },
                        () = end => {}
                    }
                });
            }
            () = &mut stop => {
                ended.notify_waiters();
                return;
            }
        }
    }
}

/// The attach socket sits beside the gRPC one (both short paths).
fn attach_path(socket: &Path) -> std::path::PathBuf {
    socket.with_extension("io")
}

fn bind(opts: &Options) -> Result<(UnixListener, std::os::unix::net::UnixListener)> {
    if let Some(dir) = opts.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&opts.socket);
    let listener = UnixListener::bind(&opts.socket)
        .with_context(|| format!("binding {}", opts.socket.display()))?;
    let attach = attach_path(&opts.socket);
    let attach_listener = crate::rawattach::bind(&attach)?;
    write_atomic(
        &opts.state_dir.join("attach-address"),
        attach.to_string_lossy().as_bytes(),
    )
    .context("writing the attach address file")?;
    write_atomic(
        &opts.state_dir.join("address"),
        opts.socket.to_string_lossy().as_bytes(),
    )
    .context("writing the address file")?;
    write_atomic(
        &opts.state_dir.join("shim.pid"),
        std::process::id().to_string().as_bytes(),
    )
    .context("writing shim.pid")?;
    Ok((listener, attach_listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_closes_with_its_last_task_and_takes_no_more() {
        let host = Host::new(false);
        assert!(host.enter());
        assert!(host.enter());
        host.leave();
        assert!(host.enter(), "one task is still served");
        host.leave();
        host.leave();
        assert!(!host.enter(), "the last task ended: the process is exiting");
        // A stray leave after the close changes nothing.
        host.leave();
        assert!(!host.enter());
    }

    #[tokio::test]
    async fn a_task_never_created_is_abandoned_once_and_refuses_a_late_create() {
        let dir = std::env::temp_dir();
        let opts = Options {
            id: "t".into(),
            namespace: "ns".into(),
            state_dir: dir.clone(),
            socket: dir.join("t.sock"),
            debug: false,
        };
        let task = Task::new(&opts, Arc::new(Host::new(false)));
        assert!(task.abandon_if_uncreated());
        assert!(!task.abandon_if_uncreated(), "already gone");
        let late = task
            .create(berth_proto::shim::v1::CreateRequest::default())
            .await
            .expect_err("a create after the end");
        assert_eq!(late.code(), tonic::Code::FailedPrecondition, "{late}");
    }
}
