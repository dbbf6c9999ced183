//! The API's listeners: unix sockets, mode 0660, group `berth` (or the
//! configured group) when it exists; tcp:// with mutual TLS (or in the
//! clear when the operator said --tls=false).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::Request;
use tokio::net::{TcpListener, UnixListener};
use tower::Layer;

use crate::authz::Identity;
use crate::daemon::Daemon;
use crate::hosts::Host;

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

/// Open connections per caller. Root is never refused and keeps a reserve
/// of file descriptors no one else can take: a user of the socket's group
/// holding thousands of idle connections cannot lock root out.
pub struct Limits {
    per_caller: usize,
    /// What all callers but root may hold together.
    others_max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One admitted connection; its place is given back when it ends.
pub struct Slot {
    limits: Arc<Limits>,
    key: Option<String>,
}

impl Limits {
    pub fn new(per_caller: usize, others_max: usize) -> Arc<Limits> {
        Arc::new(Limits {
            per_caller,
            others_max,
            open: Default::default(),
        })
    }

    /// Admits a connection of `key` (None: root), or says why not.
    pub fn admit(self: &Arc<Self>, key: Option<String>) -> Result<Slot, String> {
        if let Some(k) = &key {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let total: usize = open.values().sum();
            let mine = open.entry(k.clone()).or_insert(0);
            if *mine >= self.per_caller {
                return Err(format!(
                    "too many connections from {k} (at most {})",
                    self.per_caller
                ));
            }
            if total >= self.others_max {
                return Err("too many connections to berthd".into());
            }
            *mine += 1;
        }
        Ok(Slot {
            limits: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(k) = &self.key {
            let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    open.remove(k);
                }
            }
        }
    }
}

/// Raises the soft limit of open files to the hard one (as dockerd does)
/// and returns what callers other than root may hold, a reserve kept.
fn fd_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const RESERVE: u64 = 1024;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let soft = if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    usize::try_from(soft.saturating_sub(RESERVE).max(64)).unwrap_or(usize::MAX)
}

/// Turns a refused connection away with a short answer instead of silence.
fn refuse<I: tokio::io::AsyncWrite + Unpin + Send + 'static>(mut io: I, why: String) {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let body = serde_json::json!({ "message": why }).to_string();
        let resp = format!(
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            io.write_all(resp.as_bytes()),
        )
        .await;
    });
}

/// A request body that fails when its client sends nothing for `idle`
/// while it is being read (a body shorter than its Content-Length must not
/// hold a handler forever). The clock runs only while the handler waits.
struct IdleBody {
    inner: hyper::body::Incoming,
    idle: std::time::Duration,
    waiting: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for IdleBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.waiting = None;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.waiting = None;
                    return Poll::Ready(Some(Err(format!(
                        "the client sent no request data for {}s",
                        idle.as_secs()
                    )
                    .into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection, `id` being who is on the other end: a
/// client must send a request's headers within `idle` (also between two
/// requests on a kept-alive connection), and a handler that panics
/// answers 500 instead of dropping the connection.
async fn serve_conn<I, S>(
    io: I,
    fd: Option<std::os::fd::RawFd>,
    id: Identity,
    app: S,
    peer: String,
    idle: std::time::Duration,
    _slot: Slot,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ApiService,
{
    use futures::FutureExt;
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(|inner| {
            axum::body::Body::new(IdleBody {
                inner,
                idle,
                waiting: None,
            })
        });
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(id.clone()));
        if let Some(fd) = fd {
            req.extensions_mut().insert(crate::api::stream::ConnFd(fd));
        }
        let what = format!("{} {}", req.method(), req.uri().path());
        let detached = runs_to_completion(req.method(), req.uri().path());
        let handled = std::panic::AssertUnwindSafe(tower::ServiceExt::oneshot(app.clone(), req))
            .catch_unwind();
        async move {
            let outcome = if detached {
                tokio::spawn(handled).await.unwrap_or_else(|e| {
                    Err(Box::new(format!("the handler's task ended: {e}"))
                        as Box<dyn std::any::Any + Send>)
                })
            } else {
                handled.await
            };
            match outcome {
                Ok(r) => r,
                Err(panic) => {
                    let why = panic_message(panic.as_ref());
                    tracing::error!("{what}: the handler failed: {why}");
                    Ok(axum::response::IntoResponse::into_response(
                        crate::error::ApiError::internal(format!(
                            "internal error handling {what}: {why}"
                        )),
                    ))
                }
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection from {peer}: {e}");
    }
}

/// Whether a request changes state and must finish even if its client goes
/// away mid-call: hyper drops a handler whose connection closes, and a
/// create or rm dropped between two steps would leave a container half
/// made. Reads, waits and streams that only serve their client stay
/// cancellable, as do builds, pulls and loads, which Docker also cancels
/// with their client (what they leave is garbage collected).
fn runs_to_completion(method: &hyper::Method, path: &str) -> bool {
    let changes = matches!(
        *method,
        hyper::Method::POST | hyper::Method::PUT | hyper::Method::DELETE
    );
    let path = crate::api::unversioned(path);
    let streams_only = path.ends_with("/wait")
        || path.ends_with("/attach")
        || path == "/build"
        || path == "/images/create"
        || path == "/images/load";
    changes && !streams_only
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// Sleeps after a failed accept (EMFILE and the like) so the loop backs
/// off instead of spinning; says so at most once a second.
async fn accept_failed(e: std::io::Error, last_warned: &mut Option<std::time::Instant>) {
    if last_warned.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(1)) {
        tracing::warn!("accepting a connection: {e}");
        *last_warned = Some(std::time::Instant::now());
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// Accepts on a unix socket: the caller is known by SO_PEERCRED before a
/// byte is read, and refused early when over its limit.
async fn serve_unix<S>(
    l: UnixListener,
    app: S,
    limits: Arc<Limits>,
    idle: std::time::Duration,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) where
    S: ApiService,
{
    let mut warned = None;
    loop {
        let io = tokio::select! {
            r = l.accept() => match r {
                Ok((io, _)) => io,
                Err(e) => {
                    accept_failed(e, &mut warned).await;
                    continue;
                }
            },
            _ = stop.recv() => return,
        };
        let id = match io.peer_cred() {
            Ok(c) => Identity::Unix {
                uid: c.uid(),
                gid: c.gid(),
            },
            Err(_) => Identity::Anonymous,
        };
        let key = match &id {
            Identity::Unix { uid: 0, .. } => None,
            other => Some(other.owner_key()),
        };
        let slot = match limits.admit(key) {
            Ok(s) => s,
            Err(why) => {
                tracing::debug!("{id}: refused: {why}");
                refuse(io, why);
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let peer = id.to_string();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&io);
            serve_conn(io, Some(fd), id, app, peer, idle, slot).await;
        });
    }
}

/// Accepts TCP connections, with TLS when there is an acceptor: each
/// handshake runs in its own task (with a deadline), so a slow or silent
/// client holds up nobody else. Callers are counted by address.
async fn serve_tcp<S>(
    l: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: S,
    limits: Arc<Limits>,
    idle: std::time::Duration,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) where
    S: ApiService,
{
    let mut warned = None;
    loop {
        let (tcp, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(e, &mut warned).await;
                    continue;
                }
            },
            _ = stop.recv() => return,
        };
        let slot = match limits.admit(Some(format!("ip:{}", peer.ip()))) {
            Ok(s) => s,
            Err(why) => {
                refuse(tcp, why);
                continue;
            }
        };
        // A response goes out as several writes (TLS records): with Nagle's
        // algorithm the last waits for the client's delayed ACK, 40 ms a call.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
                let peer = peer.to_string();
                serve_conn(tcp, Some(fd), Identity::Anonymous, app, peer, idle, slot).await;
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
            serve_conn(tls, None, id, app, peer.to_string(), idle, slot).await;
        });
    }
}

/// The unix listeners `-H fd://` (every passed socket) or `fd://N` (that
/// one) asks for, out of the sockets systemd passed. Only unix sockets are
/// served this way: a TCP socket needs the TLS checks of `-H tcp://`.
fn activated_listeners(
    want: Option<i32>,
    passed: &mut Vec<(i32, std::os::fd::OwnedFd)>,
) -> Result<Vec<tokio::net::UnixListener>> {
    let picked: Vec<(i32, std::os::fd::OwnedFd)> = match want {
        None => std::mem::take(passed),
        // `hosts::check_activated` made sure it was passed; an earlier
        // `-H fd://` may have taken it.
        Some(n) => match passed.iter().position(|(fd, _)| *fd == n) {
            Some(i) => vec![passed.remove(i)],
            None => anyhow::bail!("-H fd://{n}: socket {n} is served by an earlier -H fd://"),
        },
    };
    picked
        .into_iter()
        .map(|(n, fd)| {
            let l = std::os::unix::net::UnixListener::from(fd);
            if l.local_addr().is_err() {
                anyhow::bail!("-H fd://: socket {n} is not a unix socket (use -H tcp:// for TCP)");
            }
            l.set_nonblocking(true)?;
            Ok(tokio::net::UnixListener::from_std(l)?)
        })
        .collect()
}

pub async fn serve(
    d: Arc<Daemon>,
    hosts: Vec<Host>,
    mut activated: Vec<(i32, std::os::fd::OwnedFd)>,
    ready: impl FnOnce(),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = crate::api::router(d.clone());
    let app =
        tower::util::MapRequestLayer::new(|r: Request| crate::api::strip_version(r)).layer(app);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    let limits = Limits::new(d.cfg.api_connections_per_caller, fd_budget());
    let idle = d.cfg.api_idle_timeout;
    for h in &hosts {
        match h {
            Host::Unix(p) => {
                let l = bind_unix(p, &d.cfg.group)?;
                tracing::info!("API listening on unix://{}", p.display());
                let svc = app.clone();
                let stop = stop_tx.subscribe();
                let limits = limits.clone();
                tasks.push(tokio::spawn(async move {
                    serve_unix(l, svc, limits, idle, stop).await;
                }));
            }
            Host::Fd(want) => {
                for l in activated_listeners(*want, &mut activated)? {
                    let at = l
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                        .unwrap_or_default();
                    tracing::info!("API listening on unix://{at} (passed by systemd)");
                    let svc = app.clone();
                    let stop = stop_tx.subscribe();
                    let limits = limits.clone();
                    tasks.push(tokio::spawn(async move {
                        serve_unix(l, svc, limits, idle, stop).await;
                    }));
                }
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
                let limits = limits.clone();
                tasks.push(tokio::spawn(async move {
                    serve_tcp(l, acceptor, svc, limits, idle, stop).await;
                }));
            }
        }
    }
    ready();
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

#[cfg(test)]
mod tests {
    #[test]
    fn changes_run_to_completion_streams_and_reads_do_not() {
        use super::runs_to_completion as rtc;
        use hyper::Method;
        assert!(rtc(&Method::POST, "/v1.43/containers/create"));
        assert!(rtc(&Method::POST, "/containers/abc/start"));
        assert!(rtc(&Method::DELETE, "/v1.41/containers/abc"));
        assert!(rtc(&Method::POST, "/volumes/create"));
        assert!(!rtc(&Method::GET, "/containers/json"));
        assert!(!rtc(&Method::POST, "/v1.43/containers/abc/wait"));
        assert!(!rtc(&Method::POST, "/containers/abc/attach"));
        assert!(!rtc(&Method::POST, "/v1.43/build"));
        assert!(!rtc(&Method::POST, "/images/create"));
    }

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(app: axum::Router, request: &str) -> String {
        let (client, server) = tokio::io::duplex(1 << 16);
        let slot = Limits::new(1, 1).admit(None).expect("root is admitted");
        let idle = std::time::Duration::from_secs(5);
        tokio::spawn(serve_conn(
            server,
            None,
            Identity::Anonymous,
            app,
            "test".into(),
            idle,
            slot,
        ));
        let (mut r, mut w) = tokio::io::split(client);
        w.write_all(request.as_bytes()).await.expect("write");
        let mut out = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), r.read(&mut out))
            .await
            .expect("an answer")
            .expect("read");
        String::from_utf8_lossy(&out[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let app = axum::Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                let v: Vec<String> = Vec::new();
                v[v.len() + 1].clone()
            }),
        );
        let resp = exchange(app, "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
        assert!(resp.contains("internal error handling GET /boom"), "{resp}");
    }

    #[test]
    fn callers_are_limited_and_root_is_not() {
        let l = Limits::new(2, 3);
        let a1 = l.admit(Some("uid:1".into())).unwrap();
        let _a2 = l.admit(Some("uid:1".into())).unwrap();
        assert!(l.admit(Some("uid:1".into())).is_err());
        let _b = l.admit(Some("uid:2".into())).unwrap();
        assert!(
            l.admit(Some("uid:3".into()))
                .err()
                .is_some_and(|e| e.contains("berthd"))
        );
        assert!(l.admit(None).is_ok());
        drop(a1);
        assert!(l.admit(Some("uid:1".into())).is_ok());
    }
}
