//! /plugins/…: managed plugins made from a directory (`docker plugin
//! create`), listed, inspected, set, enabled, disabled and removed as
//! dockerd does. Names hold slashes (`vieux/sshfs:latest`), so one route
//! takes `/plugins/{name}/{verb}` apart.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::State;
use super::json::Json;
use super::query::{self, Params, flag};
use crate::daemon::plugins::config::InterfaceType;
use crate::error::{ApiError, Result};

/// GET /plugins: `enabled` and `capability` filters, as dockerd's.
pub async fn list(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let f = query::filters(&q)?;
    for k in f.keys() {
        if k != "enabled" && k != "capability" {
            return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
        }
    }
    let enabled = match f.get("enabled").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([v]) if v == "true" => Some(true),
        Some([v]) if v == "false" => Some(false),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "Invalid filter 'enabled=[{}]'",
                v.join(" ")
            )));
        }
    };
    let mut out = Vec::new();
    for e in s.0.plugins.all() {
        let p = e.get();
        if enabled.is_some_and(|want| want != p.enabled) {
            continue;
        }
        if let Some(caps) = f.get("capability").filter(|c| !c.is_empty()) {
            let has: Vec<InterfaceType> = p.config.types();
            if !caps.iter().any(|c| has.iter().any(|t| &t.capability == c)) {
                continue;
            }
        }
        out.push(serde_json::to_value(&p).unwrap_or(Value::Null));
    }
    Ok(Json(json!(out)))
}

/// POST /plugins/create?name=…: the body is a tar of `config.json` and
/// `rootfs/`, as `docker plugin create` sends a directory.
pub async fn create(s: State, Query(q): Query<Params>, body: Body) -> Result<Response> {
    let d = s.0;
    let name = q.get("name").cloned().unwrap_or_default();
    let mut data = body.into_data_stream();
    // Refused before the upload is read: the small one that `docker plugin
    // create` is still writing is read first, or it sees a broken pipe
    // instead of the answer.
    if let Err(e) = d.plugins.new_name(&name) {
        super::body::drain_unread(&mut data).await;
        return Err(e);
    }
    let stream = data.map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let version = env!("CARGO_PKG_VERSION");
    let d2 = d.clone();
    let made = tokio::task::spawn_blocking(move || d2.plugins.create(&name, reader, version))
        .await
        .map_err(|e| ApiError::internal(format!("creating the plugin: {e}")))?;
    let p = made?;
    d.events.publish(
        "plugin",
        "create",
        &p.id,
        BTreeMap::from([("name".to_string(), p.name.clone())]),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Plugins are made here from a directory; berth does not fetch them from
/// a registry (nor push them to one) yet.
pub async fn registry() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "berth does not pull or push plugins from a registry; make one from a directory with `docker plugin create`",
    )
}

/// /plugins/{name}/json, /enable, /disable, /set, /push, /upgrade and
/// DELETE /plugins/{name}.
pub async fn named(
    s: State,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<Params>,
    body: Bytes,
) -> Result<Response> {
    let d = s.0;
    let verb = |v: &str| rest.strip_suffix(v).map(str::to_string);
    match method {
        Method::GET => {
            let Some(name) = verb("/json") else {
                return Err(not_found_route(&rest));
            };
            let e = d.plugins.find(&name)?;
            Ok(Json(serde_json::to_value(e.get()).unwrap_or(Value::Null)).into_response())
        }
        Method::DELETE => {
            let e = d.plugins.find(&rest)?;
            d.plugin_remove(&e, &rest, flag(&q, "force")).await?;
            Ok(StatusCode::OK.into_response())
        }
        Method::POST => {
            if let Some(name) = verb("/enable") {
                if let Some(t) = q.get("timeout").filter(|t| !t.is_empty())
                    && t.parse::<i64>().is_err()
                {
                    return Err(ApiError::bad_request(format!(
                        "strconv.Atoi: parsing {t:?}: invalid syntax"
                    )));
                }
                let e = d.plugins.find(&name)?;
                d.plugin_enable(&e, &name).await?;
                Ok(StatusCode::OK.into_response())
            } else if let Some(name) = verb("/disable") {
                let e = d.plugins.find(&name)?;
                d.plugin_disable(&e, &name, flag(&q, "force")).await?;
                Ok(StatusCode::OK.into_response())
            } else if let Some(name) = verb("/set") {
                let args: Vec<String> = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("invalid settings: {e}")))?;
                let e = d.plugins.find(&name)?;
                let _op = e.op.lock().await;
                let mut p = e.get();
                p.set(&args).map_err(ApiError::internal)?;
                d.plugins.save(&e, p)?;
                Ok(StatusCode::NO_CONTENT.into_response())
            } else if let Some(name) = verb("/push").or_else(|| verb("/upgrade")) {
                d.plugins.find(&name)?;
                Ok(registry().await.into_response())
            } else {
                Err(not_found_route(&rest))
            }
        }
        _ => Err(not_found_route(&rest)),
    }
}

fn not_found_route(rest: &str) -> ApiError {
    ApiError::not_found(format!("page not found: /plugins/{rest}"))
}
