//! POST /build (the classic builder's contract) and /build/prune.

use crate::api::json::Json;
use axum::body::Body;
use axum::extract::{Query, RawQuery};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::query::{self, Params};
use crate::build::{BuildError, Builder, Options, Progress};
use crate::error::{ApiError, Result};

fn api_error(e: BuildError) -> ApiError {
    match e {
        BuildError::Options(m) | BuildError::Context(m) | BuildError::Parse(m) => {
            ApiError::bad_request(m)
        }
        BuildError::Remote(status, m) => ApiError::new(
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            m,
        ),
        other => ApiError::internal(other.to_string()),
    }
}

pub async fn build(
    s: State,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    owner: Option<axum::Extension<super::Owner>>,
    conn: Option<axum::Extension<super::stream::ConnFd>>,
    body: Body,
) -> Result<Response> {
    let d = s.0;
    let registry_config = headers
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok());
    let opts = match Options::parse(q.as_deref().unwrap_or(""), registry_config) {
        Ok(o) => o,
        Err(e) => {
            super::body::drain_unread(&mut body.into_data_stream()).await;
            return Err(api_error(e));
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let out = Progress::new(tx, opts.quiet);
    let (early_tx, early_rx) = tokio::sync::oneshot::channel::<BuildError>();
    let owner = owner.map(|o| o.0.0);
    tokio::spawn(async move {
        let out2 = out.clone();
        if let Err(e) = Builder::run(d, opts, body, out2, owner).await {
            if out.started() {
                out.error(&e.to_string(), e.code()).await;
            } else if let Err(e) = early_tx.send(e) {
                // The handler is gone too: nobody to tell.
                tracing::debug!("build failed with no client: {e}");
            }
        }
    });
    // A failure before any output is the answer's status, as dockerd's
    // (the client then says "Error response from daemon: …").
    let mut early_rx = early_rx;
    // Before its first word (a remote context is being fetched) a build
    // sees its client leave only here: dropping the receiver stops it.
    let hung_up = async {
        match conn {
            Some(axum::Extension(super::stream::ConnFd(fd))) => {
                super::stream::peer_hung_up(fd).await
            }
            None => std::future::pending().await,
        }
    };
    let first = tokio::select! {
        biased;
        _ = hung_up => return Err(ApiError::internal("the client went away: build cancelled")),
        e = &mut early_rx => match e {
            Ok(e) => return Err(api_error(e)),
            Err(_) => rx.recv().await,
        },
        m = rx.recv() => match m {
            Some(m) => Some(m),
            // The build ended without a word: its failure, if any, is in
            // the early channel.
            None => match early_rx.await {
                Ok(e) => return Err(api_error(e)),
                Err(_) => None,
            },
        },
    };
    let stream =
        futures::stream::iter(first).chain(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

use futures::StreamExt;

/// The build cache's entries and what they hold.
pub async fn prune(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    let until = prune_until(&f)
        .map_err(|e| ApiError::bad_request(format!("failed to prune build cache: {e}")))?;
    let (deleted, reclaimed) = crate::build::prune(&d, &f, until).await?;
    d.events.pruned("builder", reclaimed);
    Ok(Json(json!({
        "CachesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}

/// The filters dockerd's builder prune takes (it accepts `label` and
/// `label!` too; berth's cache entries carry no labels) and its `until`,
/// spelled `unused-for` before: a Go duration, one value, in dockerd's words.
fn prune_until(f: &query::Filters) -> std::result::Result<Option<std::time::SystemTime>, String> {
    const KEYS: &[&str] = &[
        "until",
        "unused-for",
        "label",
        "label!",
        "id",
        "parent",
        "type",
        "description",
        "inuse",
        "shared",
        "private",
    ];
    if let Some(k) = f.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("Invalid filter '{k}'"));
    }
    let until = f.get("until").map_or(&[][..], Vec::as_slice);
    let unused_for = f.get("unused-for").map_or(&[][..], Vec::as_slice);
    if !until.is_empty() && !unused_for.is_empty() {
        return Err(r#"conflicting filters: "until" and "unused-for""#.into());
    }
    let (key, values) = if unused_for.is_empty() {
        ("until", until)
    } else {
        ("unused-for", unused_for)
    };
    match values {
        [] => Ok(None),
        [v] => {
            let ns = dockerfile::parse_go_duration(v)
                .map_err(|e| format!("{key:?} filter expects a duration (e.g., '24h'): {e}"))?;
            let age = std::time::Duration::from_nanos(ns.max(0).unsigned_abs());
            Ok(std::time::SystemTime::now().checked_sub(age))
        }
        _ => Err("filters expect only one value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(pairs: &[(&str, &[&str])]) -> std::result::Result<bool, String> {
        let f = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        prune_until(&f).map(|t| t.is_some())
    }

    #[test]
    fn builder_prune_filters_read_as_dockerds() {
        assert_eq!(until(&[]), Ok(false));
        assert_eq!(until(&[("until", &["24h"])]), Ok(true));
        assert_eq!(until(&[("unused-for", &["1h30m"])]), Ok(true));
        assert_eq!(until(&[("label", &["a=b"]), ("label!", &["c"])]), Ok(false));
        assert_eq!(
            until(&[("until", &["1600000000"])]).unwrap_err(),
            r#""until" filter expects a duration (e.g., '24h'): time: missing unit in duration "1600000000""#
        );
        assert_eq!(
            until(&[("unused-for", &["bogus"])]).unwrap_err(),
            r#""unused-for" filter expects a duration (e.g., '24h'): time: invalid duration "bogus""#
        );
        assert_eq!(
            until(&[("until", &["1h", "2h"])]).unwrap_err(),
            "filters expect only one value"
        );
        assert_eq!(
            until(&[("until", &["1h"]), ("unused-for", &["2h"])]).unwrap_err(),
            r#"conflicting filters: "until" and "unused-for""#
        );
        assert_eq!(
            until(&[("dangling", &["true"])]).unwrap_err(),
            "Invalid filter 'dangling'"
        );
    }
}
