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
    query::only(
        &f,
        &[
            "until",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ],
    )?;
    let until = query::until(&f)?;
    let (deleted, reclaimed) = crate::build::prune(&d, &f, until).await?;
    d.events.pruned("builder", reclaimed);
    Ok(Json(json!({
        "CachesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    })))
}
