//! The shim's gRPC server on its unix socket, and its SIGCHLD loop.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::shim::v1::shim_server::ShimServer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::Options;
use crate::launch::report_ready;
use crate::service::Service;
use crate::task::Task;

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

pub async fn run(opts: Options) -> Result<()> {
    let (listener, attach_listener) = match bind(&opts) {
        Ok(l) => l,
        Err(e) => {
            report_ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let socket_ino = std::fs::metadata(&opts.socket)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let task = Arc::new(Task::new(&opts));

    let mut sigchld = signal(SignalKind::child()).context("watching SIGCHLD")?;
    let reaper = task.reaper.clone();
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

    report_ready(Ok(&opts.socket.to_string_lossy()));
    let shutdown = task.shutdown.clone();
    let attach_listener =
        UnixListener::from_std(attach_listener).context("serving the attach socket")?;
    tokio::spawn(crate::rawattach::serve(attach_listener, task.clone()));
    let service = ShimServer::new(Service(task));
    // One service, served by hyper directly: no router is needed, and the
    // shim stays small.
    let server = async move {
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accepting: {e}");
                    continue;
                }
            };
            let svc = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let r = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(berth_proto::STREAM_WINDOW)
                    .initial_connection_window_size(berth_proto::CONNECTION_WINDOW)
                    .max_frame_size(berth_proto::MAX_FRAME)
                    .serve_connection(TokioIo::new(conn), svc)
                    .await;
                if let Err(e) = r {
                    tracing::debug!("connection: {e}");
                }
            });
        }
    };
    tokio::select! {
        () = server => {}
        // Clients keep streams (events) open forever; let the last answers
        // (Shutdown's own) go out, then leave without waiting for them.
        _ = async {
            shutdown.notified().await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        } => {}
    }

    // The path may already belong to a new shim for a new task of the same
    // id: remove it only while it is still ours.
    let ours = std::fs::metadata(&opts.socket)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    if ours.is_some() && ours == socket_ino {
        let _ = std::fs::remove_file(&opts.socket);
        let _ = std::fs::remove_file(attach_path(&opts.socket));
    }
    Ok(())
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
