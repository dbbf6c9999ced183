//! Calls to a plugin over its socket: Docker's plugin protocol, a JSON
//! POST to `/<Interface>.<Method>` answered with JSON whose `Err` is the
//! plugin's error.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

const MIME: &str = "application/vnd.docker.plugins.v1.2+json";

/// How long one call may take; a plugin that hangs fails the request that
/// needed it instead of holding it forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls `method` (e.g. `VolumeDriver.Mount`) with `args`; the answer, or
/// the plugin's `Err`, or why it could not be reached.
pub async fn call(socket: &Path, method: &str, args: &Value) -> Result<Value, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call_once(socket, method, args)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{method}: the plugin did not answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

async fn call_once(socket: &Path, method: &str, args: &Value) -> Result<Value, String> {
    let url = format!("http://plugin/{method}");
    let io = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("Post {url:?}: dial unix {}: {e}", socket.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("plugin connection: {e}");
        }
    });
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
    if let Some(err) = answer["Err"].as_str().filter(|e| !e.is_empty()) {
        return Err(err.to_string());
    }
    if !status.is_success() {
        return Err(format!("{method}: the plugin answered {status}"));
    }
    Ok(answer)
}
