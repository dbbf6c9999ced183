//! Docker's authorization plugins around every call (see
//! `daemon::plugins::authz`), as dockerd's authorization middleware asks
//! them: `AuthZPlugin.AuthZReq` with the caller (a client certificate's
//! name, `TLS`), the method, the URI as sent, the headers (credentials
//! left out) and a JSON body under 1 MiB (chunked or not) before the
//! handler runs; `AuthZPlugin.AuthZRes` with the status, headers and JSON
//! body of its answer after. Each plugin in turn must allow; the first
//! that does not refuses the call with 403 `authorization denied by plugin
//! NAME: MSG`, and one that cannot be asked refuses it with 500 (never
//! waved through).
//!
//! An answer of known size under 1 MiB is held until the plugins allow it
//! (dockerd holds up to 64 KiB, then streams on); a larger one or a stream
//! (logs, events, a pull's progress) is judged on its status and headers
//! before its first byte, where dockerd, having streamed it, can no longer
//! refuse it.

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::State;
use crate::authz::Identity;
use crate::daemon::Daemon;
use crate::daemon::plugins::client;
use crate::error::ApiError;

/// Bodies this large or larger are not sent to the plugins (dockerd's
/// limit), nor held back for them.
const MAX_BODY: usize = 1 << 20;

pub async fn authorize(
    axum::extract::State(d): State,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let plugins = d.live().authorization_plugins.clone();
    if plugins.is_empty() {
        return next.run(req).await;
    }
    // The URI as the client sent it: its version prefix, which routing
    // took off, put back.
    let sent = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let uri = match req.extensions().get::<super::ClientVersion>() {
        Some(super::ClientVersion(Some((_, v)))) => format!("/v{v}{sent}"),
        _ => sent,
    };
    let mut ask = Map::new();
    if let Some(axum::extract::ConnectInfo(Identity::Cert(cn))) = req.extensions().get() {
        ask.insert("User".into(), json!(cn));
        ask.insert("UserAuthNMethod".into(), json!("TLS"));
    }
    ask.insert("RequestMethod".into(), json!(req.method().as_str()));
    ask.insert("RequestUri".into(), json!(uri));
    ask.insert("RequestHeaders".into(), headers(req.headers()));
    let (parts, body) = req.into_parts();
    let has_body = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || parts
            .headers
            .get(axum::http::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if has_body && sends_body(&uri, &parts.headers) {
        let (seen, body) = match peek(body, MAX_BODY).await {
            Ok(x) => x,
            Err(e) => {
                return ApiError::bad_request(format!("reading the request body: {e}"))
                    .into_response();
            }
        };
        if let Some(b) = seen.filter(|b| !b.is_empty()) {
            ask.insert("RequestBody".into(), json!(base64(&b)));
        }
        body
    } else {
        body
    };
    let mut ask = Value::Object(ask);
    for name in &plugins {
        if let Err(refused) = judge(&d, name, "AuthZPlugin.AuthZReq", &ask).await {
            tracing::warn!("{} {uri}: {}", parts.method, refused.message);
            return refused.into_response();
        }
    }
    let resp = next.run(Request::from_parts(parts, body)).await;

    // A plugin disabled meanwhile has left the chain.
    let plugins = d.live().authorization_plugins.clone();
    if plugins.is_empty() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    ask["ResponseStatusCode"] = json!(parts.status.as_u16());
    ask["ResponseHeaders"] = headers(&parts.headers);
    let held = body
        .size_hint()
        .exact()
        .is_some_and(|n| n < MAX_BODY as u64);
    let body = if held {
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(e) => {
                return ApiError::internal(format!("reading the answer: {e}")).into_response();
            }
        };
        if !bytes.is_empty() && sends_body(&uri, &parts.headers) {
            ask["ResponseBody"] = json!(base64(&bytes));
        }
        Body::from(bytes)
    } else {
        body
    };
    for name in &plugins {
        if let Err(refused) = judge(&d, name, "AuthZPlugin.AuthZRes", &ask).await {
            tracing::warn!("{uri}: the answer: {}", refused.message);
            // The handler's own error stands, as dockerd keeps it.
            if parts.status.is_client_error() || parts.status.is_server_error() {
                break;
            }
            return refused.into_response();
        }
    }
    Response::from_parts(parts, body)
}

/// One plugin's verdict: Ok when it allows; its denial (403) or why it
/// could not be asked (500).
async fn judge(d: &Daemon, name: &str, method: &str, ask: &Value) -> Result<(), ApiError> {
    let failed =
        |why: String| ApiError::internal(format!("plugin {name} failed with error: {why}"));
    let addr = d.authz_plugin(name).await.map_err(failed)?;
    let answer = client::call_answer(&addr, method, ask)
        .await
        .map_err(failed)?;
    if answer["Allow"].as_bool() == Some(true) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "authorization denied by plugin {name}: {}",
        answer["Msg"].as_str().unwrap_or_default()
    )))
}

/// Whether a body goes to the plugins: JSON, never a login's (`/auth`,
/// with or without a version, as dockerd tells it).
fn sends_body(uri: &str, headers: &axum::http::HeaderMap) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    if super::unversioned(path).starts_with("/auth") {
        return false;
    }
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Headers as Go's flattened `http.Header` (canonical names, the last
/// value of each), without credentials or the host.
fn headers(h: &axum::http::HeaderMap) -> Value {
    let mut out = Map::new();
    for (k, v) in h {
        let k = k.as_str();
        if [
            "authorization",
            "x-registry-config",
            "x-registry-auth",
            "host",
        ]
        .contains(&k)
        {
            continue;
        }
        out.insert(canonical(k), json!(String::from_utf8_lossy(v.as_bytes())));
    }
    Value::Object(out)
}

/// `content-type` → `Content-Type`, as Go spells a header's name.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Go's encoding of a `[]byte` in JSON.
fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The body's bytes when it is shorter than `limit` (and the body to hand
/// on, the same bytes); a longer one is handed on whole, unseen.
async fn peek(body: Body, limit: usize) -> Result<(Option<Bytes>, Body), axum::Error> {
    let mut stream = body.into_data_stream();
    let mut seen = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        seen.extend_from_slice(&chunk?);
        if seen.len() >= limit {
            let head = seen.freeze();
            let whole =
                futures::stream::once(async move { Ok::<_, axum::Error>(head) }).chain(stream);
            return Ok((None, Body::from_stream(whole)));
        }
    }
    let seen = seen.freeze();
    Ok((Some(seen.clone()), Body::from(seen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_as_go_flattens_them_without_credentials() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h.insert("x-registry-auth", "secret".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("host", "docker".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "b".parse().unwrap());
        h.insert(
            "user-agent",
            "Docker-Client/28.2.2 (linux)".parse().unwrap(),
        );
        assert_eq!(
            headers(&h),
            json!({"Content-Type": "application/json; charset=utf-8", "X-Multi": "b",
                   "User-Agent": "Docker-Client/28.2.2 (linux)"})
        );
        assert!(sends_body("/v1.43/containers/create?name=x", &h));
        assert!(!sends_body("/v1.43/auth", &h));
        assert!(!sends_body("/auth", &h));
        assert!(sends_body("/containers/auth/update", &h));
        h.insert("content-type", "application/x-tar".parse().unwrap());
        assert!(!sends_body("/v1.43/build", &h));
        assert_eq!(
            canonical("x-docker-expose-session-uuid"),
            "X-Docker-Expose-Session-Uuid"
        );
    }

    #[tokio::test]
    async fn a_body_is_seen_below_the_limit_and_handed_on_whole_either_way() {
        let (seen, body) = peek(Body::from("{\"a\":1}"), 16).await.unwrap();
        assert_eq!(seen.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(
            &axum::body::to_bytes(body, 100).await.unwrap()[..],
            b"{\"a\":1}"
        );
        let chunks = futures::stream::iter(
            ["0123456789", "0123456789", "tail"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
        );
        let (seen, body) = peek(Body::from_stream(chunks), 16).await.unwrap();
        assert_eq!(seen, None);
        assert_eq!(
            &axum::body::to_bytes(body, 100).await.unwrap()[..],
            b"01234567890123456789tail"
        );
    }
}
