//! The API's listeners: unix sockets, mode 0660, group `berth` (or the
//! configured group) when it exists; tcp:// with mutual TLS (or in the
//! clear when the operator said --tls=false).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::ServiceExt;
use axum::extract::Request;
use tokio::net::{TcpListener, UnixListener};
use tower::Layer;

use crate::authz::Identity;
use crate::daemon::Daemon;
use crate::hosts::Host;

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, UnixListener>>
    for Identity
{
    fn connect_info(s: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        match s.io().peer_cred() {
            Ok(c) => Identity::Unix {
                uid: c.uid(),
                gid: c.gid(),
            },
            Err(_) => Identity::Anonymous,
        }
    }
}

fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
}

fn bind_unix(path: &Path, group: &str) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("{} is in use: is another berthd running?", path.display());
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group_id(group) {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("chgrp {group} {}", path.display()))?;
    }
    Ok(l)
}

/// The API as hyper connections serve it.
trait ApiService:
    tower::Service<
        Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S> ApiService for S where
    S: tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// Serves one accepted connection, `id` being who is on the other end.
async fn serve_conn<I, S>(io: I, id: Identity, app: S, peer: std::net::SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ApiService,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(id.clone()));
        tower::ServiceExt::oneshot(app.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection from {peer}: {e}");
    }
}

/// Accepts TCP connections, with TLS when there is an acceptor: each
/// handshake runs in its own task (with a deadline), so a slow or silent
/// client holds up nobody else.
async fn serve_tcp<S>(
    l: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: S,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) where
    S: ApiService,
{
    loop {
        let (tcp, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accepting: {e}");
                    continue;
                }
            },
            _ = stop.recv() => return,
        };
        // A response goes out as several writes (TLS records): with Nagle's
        // algorithm the last waits for the client's delayed ACK, 40 ms a call.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                serve_conn(tcp, Identity::Anonymous, app, peer).await;
                return;
            };
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!("TLS handshake with {peer} refused: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            // Verified by the handshake: its subject is who is calling.
            let id = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::authz::cert_common_name(c))
                .map_or(Identity::Anonymous, Identity::Cert);
            serve_conn(tls, id, app, peer).await;
        });
    }
}

pub async fn serve(
    d: Arc<Daemon>,
    hosts: Vec<Host>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = crate::api::router(d.clone());
    let app =
        tower::util::MapRequestLayer::new(|r: Request| crate::api::strip_version(r)).layer(app);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for h in &hosts {
        match h {
            Host::Unix(p) => {
                let l = bind_unix(p, &d.cfg.group)?;
                tracing::info!("API listening on unix://{}", p.display());
                let svc = app.clone();
                let mut stop = stop_tx.subscribe();
                tasks.push(tokio::spawn(async move {
                    axum::serve(l, svc.into_make_service_with_connect_info::<Identity>())
                        .with_graceful_shutdown(async move {
                            let _ = stop.recv().await;
                        })
                        .await
                }));
            }
            Host::Tcp(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding tcp://{addr}"))?;
                let svc = app.clone();
                let stop = stop_tx.subscribe();
                let acceptor = match &d.cfg.tls {
                    Some((files, verify)) => {
                        let cfg = crate::tls::server_config(files, *verify)?;
                        tracing::info!(
                            "API listening on tcp://{addr} (TLS{})",
                            if *verify {
                                ", client certificates required"
                            } else {
                                ""
                            }
                        );
                        Some(tokio_rustls::TlsAcceptor::from(cfg))
                    }
                    None => {
                        tracing::warn!(
                            "API listening on tcp://{addr} WITHOUT TLS (--tls=false): anyone who can reach this port is root on this machine"
                        );
                        None
                    }
                };
                tasks.push(tokio::spawn(async move {
                    serve_tcp(l, acceptor, svc, stop).await;
                    Ok(())
                }));
            }
        }
    }
    shutdown.await;
    let _ = stop_tx.send(());
    for h in &hosts {
        if let Host::Unix(p) = h {
            let _ = std::fs::remove_file(p);
        }
    }
    for t in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    Ok(())
}
