//! /volumes/…

use std::collections::BTreeMap;

use crate::api::json::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::query::{self, Params, flag};
use crate::daemon::Daemon;
use crate::daemon::volumes::{LOCAL, Volume};
use crate::error::{ApiError, Result};

pub fn to_json(d: &Daemon, v: &Volume) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": d.volumes.path(&v.name),
        "CreatedAt": humantime::format_rfc3339_seconds(v.created).to_string(),
        "Labels": v.shown_labels(),
        "Scope": "local",
        "Options": v.shown_options(),
    })
}

/// A volume as inspect shows it: a plugin's with the mountpoint, status
/// and creation time the plugin tells (`VolumeDriver.Get`), Go's zero time
/// when it tells none, as dockerd shows them.
pub async fn describe(d: &Daemon, v: &Volume) -> Value {
    let mut j = to_json(d, v);
    if v.driver != LOCAL {
        let told = d.plugin_volume_info(v).await.unwrap_or_default();
        j["Scope"] = json!(d.volume_scope(&v.driver).await);
        j["Mountpoint"] = json!(told["Mountpoint"].as_str().unwrap_or_default());
        if !told["Status"].is_null() {
            j["Status"] = told["Status"].clone();
        }
        // A UTC time to the second as dockerd formats it; one with an
        // offset as the plugin wrote it.
        j["CreatedAt"] = json!(match told["CreatedAt"].as_str() {
            Some(t) if !t.is_empty() => humantime::parse_rfc3339_weak(t)
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|_| t.to_string()),
            _ => "0001-01-01T00:00:00Z".to_string(),
        });
    }
    j
}

async fn users(d: &Daemon, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in d.all() {
        let c = e.c.lock().await;
        if c.mounts.iter().any(|m| m.typ == "volume" && m.name == name) {
            out.push(c.id.clone());
        }
    }
    out
}

pub async fn list(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(&f, &["dangling", "driver", "label", "name"])?;
    let dangling = query::dangling(&f, &["true", "1"], &["false", "0"])?;
    d.adopt_plugin_volumes().await;
    let mut out = Vec::new();
    for v in d.volumes.list() {
        if let Some(names) = f.get("name")
            && !names.iter().any(|n| v.name.contains(n.as_str()))
        {
            continue;
        }
        if let Some(dr) = f.get("driver")
            && !dr.contains(&v.driver)
        {
            continue;
        }
        if !query::labels_match(&v.labels, f.get("label")) {
            continue;
        }
        if let Some(want) = dangling
            && users(&d, &v.name).await.is_empty() != want
        {
            continue;
        }
        out.push(describe(&d, &v).await);
    }
    Ok(Json(json!({"Volumes": out, "Warnings": null})))
}

/// POST /volumes/create's body (a cluster volume's spec is not read).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateRequest {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub async fn create(s: State, body: Bytes) -> Result<Response> {
    let d = s.0;
    // A body that is not the request (a wrong type, no body at all) is
    // refused, as dockerd's decoder refuses it, before anything is made.
    let v: CreateRequest = super::body::json(&body, "JSON body")?;
    let name = (!v.name.is_empty()).then_some(v.name.as_str());
    let (vol, created) = d
        .create_volume(name, &v.driver, v.labels, v.driver_opts)
        .await?;
    if created {
        d.events.publish(
            "volume",
            "create",
            &vol.name,
            BTreeMap::from([("driver".to_string(), vol.driver.clone())]),
        );
    }
    Ok((StatusCode::CREATED, Json(describe(&d, &vol).await)).into_response())
}

pub async fn inspect(s: State, Path(name): Path<String>) -> Result<Json<Value>> {
    let d = s.0;
    if d.volumes.get(&name).is_none() {
        d.adopt_plugin_volumes().await;
    }
    let v = d
        .volumes
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("get {name}: no such volume")))?;
    Ok(Json(describe(&d, &v).await))
}

pub async fn remove(
    s: State,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let d = s.0;
    // As dockerd's: force forgives a volume that is not there, never one
    // a container has (its data would go from under it).
    let Some(v) = d.volumes.get(&name) else {
        if flag(&q, "force") {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        return Err(ApiError::not_found(format!("get {name}: no such volume")));
    };
    let users = users(&d, &name).await;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    d.remove_volume(&v, flag(&q, "force")).await?;
    d.events.publish(
        "volume",
        "destroy",
        &name,
        BTreeMap::from([("driver".to_string(), v.driver.clone())]),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(
    s: State,
    Query(q): Query<Params>,
    version: Option<axum::Extension<super::ClientVersion>>,
) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(&f, &["label", "label!", "all"])?;
    // From API 1.42 only anonymous volumes unless all=true; a client of an
    // older API asked for every unused volume, and gets that.
    let old_api = version.is_some_and(|v| v.before((1, 42)));
    let all = old_api
        || f.get("all")
            .and_then(|v| v.first())
            .is_some_and(|v| v == "true" || v == "1");
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for v in d.volumes.list() {
        // The local driver's only, as dockerd's: a plugin's volume may hold
        // what no container here uses.
        if v.driver != crate::daemon::volumes::LOCAL || (!all && !v.anonymous) {
            continue;
        }
        if !query::prune_labels_match(&v.labels, &f) {
            continue;
        }
        if !users(&d, &v.name).await.is_empty() {
            continue;
        }
        reclaimed += d.volumes.size(&v.name);
        if d.remove_volume(&v, false).await.is_ok() {
            let driver = BTreeMap::from([("driver".to_string(), v.driver.clone())]);
            d.events.publish("volume", "destroy", &v.name, driver);
            deleted.push(v.name);
        }
    }
    d.events.pruned("volume", reclaimed);
    Ok(Json(
        // A list even when empty, as dockerd answers (its other prunes say null).
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
