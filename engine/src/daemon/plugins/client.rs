//! Calls to a plugin over its socket: Docker's plugin protocol, a JSON
//! POST to `/<Interface>.<Method>` answered with JSON whose `Err` is the
//! plugin's error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

const MIME: &str = "application/vnd.docker.plugins.v1.2+json";

/// How long one call may take; a plugin that hangs fails the request that
/// needed it instead of holding it forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a plugin answers: a managed plugin's socket, or what a legacy
/// plugin's socket or spec names (`unix://…`, `tcp://host:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(String),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Calls `method` (e.g. `VolumeDriver.Mount`) with `args`; the answer, or
/// the plugin's `Err`, or why it could not be reached.
pub async fn call(to: &Addr, method: &str, args: &Value) -> Result<Value, String> {
    let (status, answer) = exchange(to, method, args).await?;
    if let Some(err) = answer["Err"].as_str().filter(|e| !e.is_empty()) {
        return Err(err.to_string());
    }
    if !status.is_success() {
        return Err(format!("{method}: the plugin answered {status}"));
    }
    Ok(answer)
}

/// Calls `method` and gives the plugin's answer as it is when it answered
/// 2xx, `Err` included (an authorization plugin's denial may carry one);
/// otherwise the plugin's `Err`, or why it could not be reached.
pub async fn call_answer(to: &Addr, method: &str, args: &Value) -> Result<Value, String> {
    let (status, answer) = exchange(to, method, args).await?;
    if status.is_success() {
        return Ok(answer);
    }
    match answer["Err"].as_str().filter(|e| !e.is_empty()) {
        Some(err) => Err(err.to_string()),
        None => Err(format!("{method}: the plugin answered {status}")),
    }
}

/// One call: the HTTP status and the JSON answered (`{}` for none).
async fn exchange(
    to: &Addr,
    method: &str,
    args: &Value,
) -> Result<(hyper::StatusCode, Value), String> {
    match tokio::time::timeout(CALL_TIMEOUT, exchange_once(to, method, args)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{method}: the plugin did not answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

async fn exchange_once(
    to: &Addr,
    method: &str,
    args: &Value,
) -> Result<(hyper::StatusCode, Value), String> {
    let url = format!("http://plugin/{method}");
    let mut sender = match to {
        Addr::Unix(socket) => {
            let io = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| format!("Post {url:?}: dial unix {}: {e}", socket.display()))?;
            handshake(io, &url).await?
        }
        Addr::Tcp(addr) => {
            let io = tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| format!("Post {url:?}: dial tcp {addr}: {e}"))?;
            handshake(io, &url).await?
        }
    };
    let req = hyper::Request::post(format!("/{method}"))
        .header(hyper::header::HOST, "plugin")
        .header(hyper::header::ACCEPT, MIME)
        .header(hyper::header::CONTENT_TYPE, MIME)
        .body(Full::new(Bytes::from(args.to_string())))
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("Post {url:?}: {e}"))?
        .to_bytes();
    let answer: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            format!(
                "{method}: the plugin answered {status} with {:?}",
                String::from_utf8_lossy(&body)
            )
        })?
    };
    Ok((status, answer))
}

/// An HTTP/1 connection over `io`, driven by a task of its own.
async fn handshake<T>(
    io: T,
    url: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("plugin connection: {e}");
        }
    });
    Ok(sender)
}
