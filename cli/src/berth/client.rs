//! The Docker Engine API client: HTTP/1.1 over the daemon's unix socket (or
//! tcp://, with mutual TLS), API
//! version negotiated with /_ping, Docker's two kinds of failure kept apart
//! ("Cannot connect to the berth daemon …" versus "Error response from
//! daemon: …"), and hijacked connections for attach.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};

pub const MAX_API: &str = "1.43";

#[derive(Debug)]
pub enum Error {
    /// Nothing answers at the host.
    Connect {
        host: String,
        detail: String,
    },
    /// ssh could not reach the daemon (its own message is on stderr).
    Ssh {
        host: String,
        detail: String,
    },
    /// The daemon's end of TLS refused us, or we refused it.
    Tls {
        host: String,
        detail: String,
    },
    /// The daemon answered with an error.
    Daemon {
        status: u16,
        message: String,
    },
    Other(anyhow::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect { host, detail } => {
                if detail.contains("ermission denied") {
                    write!(
                        f,
                        "permission denied while trying to connect to the berth daemon socket at {host}: {detail}"
                    )
                } else {
                    write!(
                        f,
                        "Cannot connect to the berth daemon at {host}. Is the daemon running?"
                    )
                }
            }
            Error::Ssh { host, detail } => {
                write!(f, "error during connect: ssh to {host} failed: {detail}")
            }
            Error::Tls { host, detail } => {
                write!(
                    f,
                    "error during connect: TLS with the berth daemon at {host} failed: {detail}"
                )
            }
            Error::Daemon { message, .. } => write!(f, "Error response from daemon: {message}"),
            Error::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Other(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Client {
    pub host: String,
    target: Target,
    pub debug: bool,
    version: OnceLock<String>,
    /// The last connection, reused by the next request when it is idle: a
    /// command's calls share one TLS handshake or ssh session.
    idle: std::sync::Arc<std::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Body>>>>,
}

#[derive(Clone)]
enum Target {
    /// `ssh://[user@]host[:port]`: each connection is `ssh … berth system
    /// dial-stdio` on the host, as Docker's CLI does with `docker`.
    Ssh {
        destination: String,
        port: Option<String>,
    },
    Unix(PathBuf),
    Tcp {
        addr: String,
        tls: Option<(
            tokio_rustls::TlsConnector,
            rustls_pki_types::ServerName<'static>,
        )>,
    },
}

/// Where the TLS files are and whether to use them (tcp:// only).
pub struct TlsOptions {
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A connection to the daemon, whatever the transport.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
    /// The socket under it, when it is a plain one: bulk input can be
    /// written to it from a thread of its own.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl Io for UnixStream {
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl Io for TcpStream {
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl Io for tokio_rustls::client::TlsStream<TcpStream> {}
impl Io for TokioIo<hyper::upgrade::Upgraded> {}

/// A hijacked connection (attach, exec start): what hyper read past the
/// 101, then the transport itself.
pub struct Hijacked {
    early: bytes::Bytes,
    io: Box<dyn Io>,
}

impl Hijacked {
    fn new(up: hyper::upgrade::Upgraded) -> Hijacked {
        match up.downcast::<TokioIo<Box<dyn Io>>>() {
            Ok(parts) => Hijacked {
                early: parts.read_buf,
                io: parts.io.into_inner(),
            },
            Err(up) => Hijacked {
                early: bytes::Bytes::new(),
                io: Box::new(TokioIo::new(up)),
            },
        }
    }
}

impl Io for Hijacked {
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.io.raw_fd()
    }
}

impl tokio::io::AsyncRead for Hijacked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Hijacked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An ssh process's stdout and stdin as one connection; the process ends
/// with it.
struct SshIo {
    _child: tokio::process::Child,
    out: tokio::process::ChildStdout,
    inp: tokio::process::ChildStdin,
}

impl Io for SshIo {}

impl tokio::io::AsyncRead for SshIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.out).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SshIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inp).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inp).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inp).poll_shutdown(cx)
    }
}

fn tls_connector(o: &TlsOptions) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |p: &PathBuf| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "could not read CA certificate {:?}",
                    p.display().to_string()
                )
            })
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&o.ca)? {
        roots
            .add(c)
            .with_context(|| format!("CA certificate {}", o.ca.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    // A client certificate when there is one: the daemon decides whether
    // it needs it.
    let cfg = if o.cert.exists() && o.key.exists() {
        let key = PrivateKeyDer::from_pem_file(&o.key)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("could not read key {}", o.key.display()))?;
        b.with_client_auth_cert(certs(&o.cert)?, key)
            .with_context(|| format!("client certificate {}", o.cert.display()))?
    } else {
        b.with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)))
}

pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_body(v: &Value) -> Body {
    Full::new(Bytes::from(v.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

impl Client {
    pub fn new(host: &str, debug: bool, tls: Option<&TlsOptions>) -> Result<Client> {
        let target = if let Some(s) = host.strip_prefix("ssh://") {
            let s = s.trim_end_matches('/');
            let (destination, port) = match s.rsplit_once(':') {
                Some((d, p)) if p.parse::<u16>().is_ok() => (d.to_string(), Some(p.to_string())),
                _ => (s.to_string(), None),
            };
            if destination.is_empty() || destination.starts_with('-') {
                return Err(Error::Other(anyhow::anyhow!("invalid ssh host {host:?}")));
            }
            Target::Ssh { destination, port }
        } else if let Some(p) = host.strip_prefix("unix://") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = host.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            let verify = tls.is_some_and(|t| t.verify);
            let addr = if a
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                a.to_string()
            } else {
                format!("{a}:{}", if verify { 2376 } else { 2375 })
            };
            let tls = match tls.filter(|t| t.verify) {
                Some(o) => {
                    let name = addr.rsplit_once(':').map_or(addr.as_str(), |x| x.0);
                    let name = rustls_pki_types::ServerName::try_from(
                        name.trim_matches(['[', ']']).to_string(),
                    )
                    .map_err(|e| Error::Other(anyhow::anyhow!("{name}: {e}")))?;
                    Some((tls_connector(o)?, name))
                }
                None => None,
            };
            Target::Tcp { addr, tls }
        } else {
            return Err(Error::Other(anyhow::anyhow!(
                "unsupported host {host:?}: berth speaks to unix:// and tcp:// hosts"
            )));
        };
        Ok(Client {
            host: host.to_string(),
            target,
            debug,
            version: OnceLock::new(),
            idle: Default::default(),
        })
    }

    /// A connection to the daemon, whatever the transport.
    pub async fn connect(&self) -> Result<Box<dyn Io>> {
        let refused = |e: std::io::Error| Error::Connect {
            host: self.host.clone(),
            detail: e.to_string(),
        };
        Ok(match &self.target {
            Target::Ssh { destination, port } => {
                let mut c = tokio::process::Command::new("ssh");
                if let Some(p) = port {
                    c.args(["-p", p]);
                }
                // ssh's own complaints go to the user's stderr as they are.
                let mut child = c
                    .args(["-o", "ConnectTimeout=30", "-T", "--", destination])
                    .args(["berth", "system", "dial-stdio"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| Error::Ssh {
                        host: self.host.clone(),
                        detail: format!("running ssh: {e}"),
                    })?;
                let (Some(out), Some(inp)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err(Error::Ssh {
                        host: self.host.clone(),
                        detail: "ssh without pipes".into(),
                    });
                };
                Box::new(SshIo {
                    _child: child,
                    out,
                    inp,
                })
            }
            Target::Unix(p) => Box::new(UnixStream::connect(p).await.map_err(refused)?),
            Target::Tcp { addr, tls: None } => {
                let s = TcpStream::connect(addr).await.map_err(refused)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Target::Tcp {
                addr,
                tls: Some((connector, name)),
            } => {
                let s = TcpStream::connect(addr).await.map_err(refused)?;
                let _ = s.set_nodelay(true);
                let tls = connector
                    .connect(name.clone(), s)
                    .await
                    .map_err(|e| Error::Tls {
                        host: self.host.clone(),
                        detail: e.to_string(),
                    })?;
                Box::new(tls)
            }
        })
    }

    async fn connection(&self) -> Result<hyper::client::conn::http1::SendRequest<Body>> {
        let stream = self.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Connect {
                host: self.host.clone(),
                detail: e.to_string(),
            })?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// The API version both sides speak: the daemon's, capped at ours.
    pub async fn version(&self) -> Result<String> {
        if let Some(v) = self.version.get() {
            return Ok(v.clone());
        }
        let resp = self.raw(Method::HEAD, "/_ping", empty(), &[]).await?;
        let server = resp
            .headers()
            .get("API-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(MAX_API)
            .to_string();
        let v = if version_lt(MAX_API, &server) {
            MAX_API.to_string()
        } else {
            server
        };
        let _ = self.version.set(v.clone());
        Ok(v)
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        // A hijacked connection is the caller's for good: never pooled.
        let upgrade = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Upgrade"));
        let pooled = if upgrade {
            None
        } else {
            let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
            // Idle now, or not at all (a streaming response still owns it).
            taken.and_then(|mut s| {
                use futures::FutureExt;
                matches!(s.ready().now_or_never(), Some(Ok(()))).then_some(s)
            })
        };
        let mut sender = match pooled {
            Some(s) => s,
            None => self.connection().await?,
        };
        let mut b = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("Host", "berth")
            .header("User-Agent", concat!("berth/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        let req = b.body(body).map_err(|e| Error::Other(e.into()))?;
        if self.debug {
            eprintln!("> {method} {path} HTTP/1.1");
            for (k, v) in req.headers() {
                eprintln!("> {k}: {}", v.to_str().unwrap_or("?"));
            }
        }
        let resp = sender.send_request(req).await.map_err(|e| {
            // TLS 1.3 servers refuse a client certificate after the
            // handshake: the alert arrives with the first read.
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail = format!("{detail}: {s}");
                src = s.source();
            }
            if matches!(self.target, Target::Ssh { .. }) {
                Error::Ssh {
                    host: self.host.clone(),
                    detail,
                }
            } else if matches!(self.target, Target::Tcp { tls: Some(_), .. }) {
                Error::Tls {
                    host: self.host.clone(),
                    detail,
                }
            } else {
                Error::Connect {
                    host: self.host.clone(),
                    detail,
                }
            }
        })?;
        if !upgrade {
            *self.idle.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        }
        if self.debug {
            eprintln!("< HTTP/1.1 {}", resp.status());
            for (k, v) in resp.headers() {
                eprintln!("< {k}: {}", v.to_str().unwrap_or("?"));
            }
        }
        Ok(resp)
    }

    /// A request to the versioned path; daemon errors become Error::Daemon.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let v = self.version().await?;
        let resp = self
            .raw(method, &format!("/v{v}{path}"), body, headers)
            .await?;
        if resp.status().is_client_error() || resp.status().is_server_error() {
            return Err(daemon_error(resp).await);
        }
        Ok(resp)
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (b, h) = match body {
            Some(v) => (
                json_body(v),
                vec![("Content-Type", "application/json".to_string())],
            ),
            None => (empty(), vec![]),
        };
        let resp = self.request(method, path, b, &h).await?;
        if resp.status() == StatusCode::NO_CONTENT || resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(Value::Null);
        }
        let bytes = read_body(resp).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(anyhow::anyhow!("reading the daemon's answer: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, None).await
    }

    /// GET into a typed answer: for the long lists (`ps -a` over thousands
    /// of containers) where building a JSON tree first costs more than the
    /// request itself.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.request(Method::GET, path, empty(), &[]).await?;
        let bytes = read_body(resp).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(anyhow::anyhow!("reading the daemon's answer: {e}")))
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        self.json(Method::POST, path, body).await
    }

    /// Upgrades the connection (attach, exec start): the raw stream.
    pub async fn hijack(&self, path: &str, body: Option<&Value>) -> Result<Hijacked> {
        let v = self.version().await?;
        let mut h = vec![
            ("Connection", "Upgrade".to_string()),
            ("Upgrade", "tcp".to_string()),
        ];
        let b = match body {
            Some(j) => {
                h.push(("Content-Type", "application/json".to_string()));
                json_body(j)
            }
            None => empty(),
        };
        let resp = self
            .raw(Method::POST, &format!("/v{v}{path}"), b, &h)
            .await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(daemon_error(resp).await);
        }
        let up = hyper::upgrade::on(resp)
            .await
            .map_err(|e| Error::Other(e.into()))?;
        Ok(Hijacked::new(up))
    }
}

fn version_lt(a: &str, b: &str) -> bool {
    let p = |s: &str| -> (u32, u32) {
        let (x, y) = s.split_once('.').unwrap_or((s, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    p(a) < p(b)
}

/// Percent-encodes a query value.
pub fn q(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a stream of newline-separated JSON objects (pull progress, events).
pub struct JsonLines {
    body: Incoming,
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn new(body: Incoming) -> Self {
        JsonLines {
            body,
            buf: Vec::new(),
        }
    }

    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_str(text).map(Some).map_err(|e| {
                    Error::Other(anyhow::anyhow!("reading the daemon's stream: {e}"))
                });
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => return Err(Error::Other(e.into())),
                None => {
                    if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                        return Ok(None);
                    }
                    let text = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    return serde_json::from_str(text.trim())
                        .map(Some)
                        .map_err(|e| Error::Other(e.into()));
                }
            }
        }
    }
}

/// The daemon's refusal: its `{"message": …}`, or the body as text.
async fn daemon_error(resp: Response<Incoming>) -> Error {
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    Error::Daemon { status, message }
}

/// The whole body, into one buffer of the announced size: growing (and,
/// past malloc's mmap threshold, remapping) a half-megabyte list shows in
/// `ps -a`.
async fn read_body(resp: Response<Incoming>) -> Result<Vec<u8>> {
    let size = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 << 20);
    let mut bytes = Vec::with_capacity(size);
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Other(e.into()))?;
        if let Some(d) = frame.data_ref() {
            bytes.extend_from_slice(d);
        }
    }
    Ok(bytes)
}
