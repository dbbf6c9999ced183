//! The CRI's streaming server: `Exec`, `Attach` and `PortForward` answer
//! with a URL on this server, and the kubelet (or `kubectl exec` through
//! it, or crictl) connects there to stream. As the kubelet's own library
//! does it for containerd: each URL holds a single-use token that expires
//! after a minute; a connection is upgraded to SPDY/3.1 (what the kubelet
//! and kubectl speak) or to a WebSocket (the `channel.k8s.io` protocols),
//! and carries the Kubernetes remote-command or port-forward protocol.

mod portforward;
mod remotecommand;
pub mod spdy;
mod status;
mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::cri::v1 as cri;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tonic::Status;

use super::Cri;

/// How long a URL stays good, as the kubelet's streaming library keeps it.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How long a client may take to open its streams after the upgrade.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Tokens waiting at most; a client asking for more URLs than this in a
/// minute gets an error rather than lifecycled's memory.
const MAX_PENDING: usize = 4096;

/// What a URL was made for.
#[derive(Debug, Clone)]
pub enum Pending {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward(cri::PortForwardRequest),
}

/// The URLs handed out and not yet used.
pub struct Tokens {
    base: Mutex<Option<String>>,
    pending: Mutex<HashMap<String, (Pending, Instant)>>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            base: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl Tokens {
    /// A URL for `what`, good for one connection within a minute.
    pub fn url(&self, what: Pending) -> Result<String, Status> {
        let base = self
            .base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Status::unavailable("the streaming server is not running"))?;
        let route = match what {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        };
        let token = super::new_id()?[..32].to_string();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(Status::resource_exhausted(
                "too many streaming requests waiting for their connection",
            ));
        }
        pending.insert(token.clone(), (what, now));
        Ok(format!("{base}/{route}/{token}"))
    }

    fn take(&self, route: &str, token: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (what, at) = pending.remove(token)?;
        let kind_matches = matches!(
            (route, &what),
            ("exec", Pending::Exec(_))
                | ("attach", Pending::Attach(_))
                | ("portforward", Pending::PortForward(_))
        );
        (kind_matches && at.elapsed() < TOKEN_TTL).then_some(what)
    }
}

/// Binds the server at the configured address and serves it for as long
/// as lifecycled runs.
pub async fn start(cri: Arc<Cri>) -> std::io::Result<SocketAddr> {
    let addr = format!("{}:{}", cri.cfg.stream_address, cri.cfg.stream_port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("streaming server on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let host = match local {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    *cri.streams.base.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(format!("http://{host}:{}", local.port()));
    tokio::spawn(async move {
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("streaming server: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let cri = cri.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let cri = cri.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(cri, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!("streaming connection: {e}");
                }
            });
        }
    });
    Ok(local)
}

pub type Body = Full<Bytes>;

pub fn plain(code: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text.into() + "\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The values a client sent for a header, commas split as HTTP lists are.
pub fn header_list(req: &Request<Incoming>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn route(cri: Arc<Cri>, req: Request<Incoming>) -> Response<Body> {
    if !matches!(*req.method(), hyper::Method::GET | hyper::Method::POST) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (route, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(what) = cri.streams.take(route, token) else {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    };
    match what {
        Pending::Exec(r) => remotecommand::serve(cri, req, remotecommand::Target::Exec(r)),
        Pending::Attach(r) => remotecommand::serve(cri, req, remotecommand::Target::Attach(r)),
        Pending::PortForward(r) => portforward::serve(cri, req, r),
    }
}
