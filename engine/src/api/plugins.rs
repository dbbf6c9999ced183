//! /plugins/…: managed plugins made from a directory (`docker plugin
//! create`) or installed from a registry (`docker plugin install`), listed,
//! inspected, set, enabled, disabled, pushed, upgraded and removed as
//! dockerd does. Names hold slashes (`vieux/sshfs:latest`), so one route
//! takes `/plugins/{name}/{verb}` apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::State;
use super::images::{
    Lines, StartedPull, json_stream, progress_line, registry_auth, registry_options, relay_push,
    started_pull, tag_of,
};
use super::json::Json;
use super::query::{self, Params, flag};
use crate::daemon::Daemon;
use crate::daemon::images::{familiar, normalize, repository};
use crate::daemon::plugins::Entry;
use crate::daemon::plugins::config::{Config, InterfaceType};
use crate::daemon::plugins::distribution::{self, Privilege};
use crate::daemon::plugins::run::NAMESPACE;
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
    let (staging, p, packed) = made?;
    // Its layer and config go to lifecycled now, as the plugin was made:
    // what a push sends later. (The sweep of records no plugin names waits
    // until this one names a plugin.)
    let _sweep = d.plugins.fetch_lock.lock().await;
    if let Err(e) = d.plugin_store_blobs(&p.id, packed).await {
        d.plugins.discard(&staging);
        d.plugin_forget_blobs(&p.id).await;
        return Err(e);
    }
    let p = match d.plugins.commit(&staging, p.clone()) {
        Ok(p) => p,
        Err(e) => {
            d.plugin_forget_blobs(&p.id).await;
            return Err(e);
        }
    };
    d.events.publish(
        "plugin",
        "create",
        &p.id,
        BTreeMap::from([("name".to_string(), p.name.clone())]),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `remote` of a privileges, pull or upgrade request, in full (the tag
/// `latest` when it names none).
fn remote_of(q: &Params) -> Result<String> {
    let remote = q.get("remote").map(String::as_str).unwrap_or_default();
    normalize(remote)
        .map_err(|e| ApiError::bad_request(format!("invalid reference format {remote:?}: {e}")))
}

/// A pull of `full` as a plugin, into lifecycled's record named `full`.
fn plugin_pull(d: &Daemon, full: &str, auth: Option<pb::Auth>) -> api::PullRequest {
    api::PullRequest {
        reference: full.to_string(),
        auth,
        registry: Some(registry_options(d, full)),
        plugin: true,
    }
}

/// GET /plugins/privileges?remote=…: what the plugin would be granted, from
/// its config alone. As dockerd, a registry that cannot be asked gives no
/// privileges (the install's pull then says why); a reference that is not
/// a plugin is an error.
pub async fn privileges(
    s: State,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let d = s.0;
    let full = remote_of(&q)?;
    let auth = registry_auth(&headers);
    let fetched =
        d.lc.images()
            .fetch_config(d.lc.req_in(NAMESPACE, plugin_pull(&d, &full, auth)))
            .await;
    match fetched {
        Ok(r) => {
            let c = Config::parse(&r.into_inner().data).map_err(|e| {
                ApiError::bad_request(format!(
                    "error unmarshaling plugin config for {}: {e}",
                    familiar(&full)
                ))
            })?;
            Ok(Json(json!(distribution::privileges(&c))))
        }
        Err(st) if st.code() == tonic::Code::InvalidArgument => {
            Err(ApiError::bad_request(format!(
                "did not find plugin config for specified reference {full}: {}",
                st.message()
            )))
        }
        Err(st) => {
            tracing::info!("the privileges of plugin {full}: {}", st.message());
            Ok(Json(json!([])))
        }
    }
}

/// The local name an install gives: `name` (with the remote's tag when it
/// has none), else the remote's name and tag (a digest dropped), as
/// dockerd's.
fn install_name(q: &Params, full: &str) -> Result<String> {
    match q.get("name").filter(|n| !n.is_empty()) {
        Some(n) => {
            let local = normalize(n)
                .map_err(|e| ApiError::bad_request(format!("invalid name {n:?}: {e}")))?;
            if local.contains('@') {
                return Err(ApiError::bad_request("cannot use digest in plugin tag"));
            }
            let last = n.rsplit('/').next().unwrap_or(n);
            if last.contains(':') {
                Ok(familiar(&local))
            } else {
                Ok(format!("{}:{}", familiar(repository(&local)), tag_of(full)))
            }
        }
        None => {
            let untagged = full.split_once('@').map(|(r, _)| r).unwrap_or(full);
            Ok(familiar(untagged))
        }
    }
}

/// Starts a plugin's pull; what fails before it has anything to show (a
/// registry that refuses, a reference it does not have) is the answer's
/// status, as dockerd answers before its stream starts.
async fn start_fetch(d: &Daemon, full: &str, auth: Option<pb::Auth>) -> Result<StartedPull> {
    Ok(started_pull(d, d.lc.req_in(NAMESPACE, plugin_pull(d, full, auth))).await?)
}

/// Relays a plugin's pull to the client, checks the privileges granted
/// against its config, and applies its layers to `rootfs`. Returns its
/// config; lifecycled's record of the pull is named `full`.
async fn fetch(
    d: &Daemon,
    lines: &Lines,
    mut stream: tonic::Streaming<api::PullResponse>,
    mut first: Option<api::PullResponse>,
    full: &str,
    granted: &[Privilege],
    rootfs: &std::path::Path,
) -> std::result::Result<Config, String> {
    // dockerd names a plugin's repository in full here (an image's pull
    // names its path on the registry).
    let pulling = format!("Pulling from {}", familiar(repository(full)));
    lines
        .send(json!({"status": pulling, "id": tag_of(full)}))
        .await;
    let image = loop {
        let next = match first.take() {
            Some(m) => Ok(Some(m)),
            None => stream.message().await,
        };
        match next {
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Progress(p)),
            })) => {
                if let Some(v) = progress_line(&p, true) {
                    lines.send(v).await;
                }
            }
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Image(i)),
            })) => break i,
            Ok(Some(_)) => {}
            Ok(None) => return Err("the pull ended without the plugin".into()),
            Err(e) => return Err(e.message().to_string()),
        }
    };
    let digest = image.target.as_ref().map(|t| t.digest.clone());
    lines
        .send(json!({"status": format!("Digest: {}", digest.unwrap_or_default())}))
        .await;
    let config =
        Config::parse(&image.config).map_err(|e| format!("failed to parse config: {e}"))?;
    if !distribution::granted(&distribution::privileges(&config), granted) {
        return Err("incorrect privileges".into());
    }
    d.plugin_apply_layers(&image, rootfs)
        .await
        .map_err(|e| e.message)?;
    Ok(config)
}

/// Names the record of a finished pull by the plugin's id (replacing what
/// it held before, on an upgrade).
async fn keep_blobs(d: &Daemon, full: &str, id: &str) -> std::result::Result<(), String> {
    d.lc.images()
        .tag(d.lc.req_in(
            NAMESPACE,
            api::TagImageRequest {
                source: full.to_string(),
                target: id.to_string(),
            },
        ))
        .await
        .map_err(|s| s.message().to_string())?;
    d.plugin_forget_blobs(full).await;
    Ok(())
}

fn with_name(mut r: Response, name: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(name) {
        r.headers_mut().insert("Docker-Plugin-Name", v);
    }
    r
}

/// POST /plugins/pull?remote=…&name=…: installs a plugin from a registry,
/// disabled (the docker CLI enables it next). The body is the privileges
/// the client grants, which must be the ones the plugin asks.
pub async fn pull(
    s: State,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = s.0;
    let granted = distribution::parse_privileges(&body)?;
    let full = remote_of(&q)?;
    let name = d.plugins.new_name(&install_name(&q, &full)?)?;
    let auth = registry_auth(&headers);
    let fetching = d.plugins.fetch_lock.clone().lock_owned().await;
    let (stream, first) = start_fetch(&d, &full, auth).await?;
    let (id, staging) = d.plugins.stage()?;
    let plugin_name = name.clone();
    let r = json_stream(|lines| async move {
        let _fetching = fetching;
        let made = async {
            let config = fetch(
                &d,
                &lines,
                stream,
                first,
                &full,
                &granted,
                &staging.join("rootfs"),
            )
            .await?;
            let p = crate::daemon::plugins::Plugin {
                settings: crate::daemon::plugins::Plugin::initial_settings(&config),
                config,
                enabled: false,
                id: id.clone(),
                name: name.clone(),
                reference: full.clone(),
            };
            keep_blobs(&d, &full, &id).await?;
            d.plugins.commit(&staging, p).map_err(|e| e.message)
        }
        .await;
        match made {
            Ok(_) => {
                d.events.publish(
                    "plugin",
                    "pull",
                    &familiar(&full),
                    BTreeMap::from([("name".to_string(), name.clone())]),
                );
            }
            Err(m) => {
                d.plugins.discard(&staging);
                d.plugin_forget_blobs(&full).await;
                d.plugin_forget_blobs(&id).await;
                lines.error(m).await;
            }
        }
    });
    Ok(with_name(r, &plugin_name))
}

/// POST /plugins/{name}/push: the plugin's manifest, config and layer, as
/// installed or created, to the registry its name names.
async fn push(d: Arc<Daemon>, e: Arc<Entry>, auth: Option<pb::Auth>) -> Result<Response> {
    let p = e.get();
    let full = normalize(&p.name).map_err(|err| {
        ApiError::bad_request(format!(
            "plugin has invalid name {} for push: {err}",
            p.name
        ))
    })?;
    if !d.plugin_has_blobs(&p.id).await? {
        // Made before berth kept a plugin's blobs: packed from its rootfs now.
        let dir = d.plugins.dir(&p.id);
        let mut config = p.config.clone();
        let packed = tokio::task::spawn_blocking(move || distribution::pack(&dir, &mut config))
            .await
            .map_err(|err| ApiError::internal(format!("packing the plugin: {err}")))??;
        d.plugin_store_blobs(&p.id, packed).await?;
    }
    let stream =
        d.lc.images()
            .push(d.lc.req_in(
                NAMESPACE,
                api::PushRequest {
                    name: p.id.clone(),
                    reference: full.clone(),
                    auth,
                    registry: Some(registry_options(&d, &full)),
                },
            ))
            .await?
            .into_inner();
    Ok(json_stream(|lines| async move {
        relay_push(&lines, stream, &full, &familiar(repository(&full))).await;
    }))
}

/// POST /plugins/{name}/upgrade?remote=…: a disabled plugin's rootfs and
/// config from another reference; its id, name and settings stay.
async fn upgrade(
    d: Arc<Daemon>,
    e: Arc<Entry>,
    q: &Params,
    auth: Option<pb::Auth>,
    body: &[u8],
) -> Result<Response> {
    let granted = distribution::parse_privileges(body)?;
    let full = remote_of(q)?;
    let disabled_first = |name: &str| {
        ApiError::conflict(format!(
            "plugin must be disabled before upgrading: plugin {name} is enabled"
        ))
    };
    let name = e.name();
    if e.get().enabled {
        return Err(disabled_first(&name));
    }
    let op = Arc::new(e.clone());
    let fetching = d.plugins.fetch_lock.clone().lock_owned().await;
    let (stream, first) = start_fetch(&d, &full, auth).await?;
    let r = json_stream(|lines| async move {
        let _fetching = fetching;
        let e = op;
        let _op = e.op.lock().await;
        let done = async {
            if e.get().enabled {
                return Err(disabled_first(&e.name()).message);
            }
            let rootfs = d.plugins.upgrade_rootfs(&e.id).map_err(|e| e.message)?;
            let config = fetch(&d, &lines, stream, first, &full, &granted, &rootfs).await?;
            let mut p = e.get();
            p.config = config;
            p.reference = full.clone();
            d.plugins.upgrade(&e, p).map_err(|e| e.message)?;
            keep_blobs(&d, &full, &e.id).await
        }
        .await;
        match done {
            Ok(()) => d.events.publish(
                "plugin",
                "pull",
                &familiar(&full),
                BTreeMap::from([("name".to_string(), e.name())]),
            ),
            Err(m) => {
                let _ = std::fs::remove_dir_all(d.plugins.dir(&e.id).join("rootfs.upgrade"));
                d.plugin_forget_blobs(&full).await;
                lines.error(m).await;
            }
        }
    });
    Ok(with_name(r, &name))
}

/// /plugins/{name}/json, /enable, /disable, /set, /push, /upgrade and
/// DELETE /plugins/{name}.
pub async fn named(
    s: State,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
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
            } else if let Some(name) = verb("/push") {
                let e = d.plugins.find(&name)?;
                push(d, e, registry_auth(&headers)).await
            } else if let Some(name) = verb("/upgrade") {
                let e = d.plugins.find(&name)?;
                upgrade(d, e, &q, registry_auth(&headers), &body).await
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
