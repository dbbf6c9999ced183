//! /networks/…: Docker's network API over the engine's CNI networks.

use std::sync::Arc;

use crate::api::json::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::query::{self, Params};
use crate::daemon::netsetup::uses_networks;
use crate::daemon::networks::{ByPlugins, CreateRequest, Network, is_builtin_driver};
use crate::daemon::{Daemon, Entry};
use crate::error::{ApiError, Result};
use crate::types::EndpointSettings;

/// The containers on a network: id → its endpoint there.
async fn members(d: &Daemon, n: &Network) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for e in d.all() {
        let c = e.c.seen();
        let Some(a) = c
            .net
            .as_ref()
            .and_then(|s| s.attachments.iter().find(|a| a.network_id == n.id))
        else {
            continue;
        };
        out.insert(
            c.id.clone(),
            json!({
                "Name": c.name,
                "EndpointID": super::containers::attachment_endpoint(&c.id, a),
                "MacAddress": a.mac,
                "IPv4Address": format!("{}/{}", a.ip, a.prefix),
                "IPv6Address": if a.ip6.is_empty() { String::new() } else { format!("{}/{}", a.ip6, a.prefix6) },
            }),
        );
    }
    out
}

/// The network's active endpoints, as dockerd names them in a refused
/// removal: the containers joined to it now. A stopped or created one
/// configured on it holds nothing (its next start finds the network gone).
async fn active_endpoints(d: &Daemon, n: &Network) -> Vec<String> {
    let mut out: Vec<String> = members(d, n)
        .await
        .values()
        .map(|m| {
            let (name, ep) = (
                m["Name"].as_str().unwrap_or_default(),
                m["EndpointID"].as_str().unwrap_or_default(),
            );
            format!("name:{name:?} id:{:?}", ep.get(..12).unwrap_or(ep))
        })
        .collect();
    out.sort();
    out
}

fn matches(n: &Network, f: &query::Filters) -> bool {
    let any = |k: &str, ok: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|v| v.iter().any(|x| ok(x)));
    any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| n.driver == v)
        && any("scope", &|v| v == "local")
        && any("type", &|v| {
            let builtin = matches!(n.name.as_str(), "bridge" | "host" | "none");
            (v == "builtin" && builtin) || (v == "custom" && !builtin)
        })
        && query::labels_match(&n.labels, f.get("label"))
}

pub async fn list(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(
        &f,
        &["dangling", "driver", "id", "label", "name", "scope", "type"],
    )?;
    for t in f.get("type").into_iter().flatten() {
        if !matches!(t.as_str(), "builtin" | "custom") {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = match f.get("dangling").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([v]) if v == "true" || v == "1" => Some(true),
        Some([v]) if v == "false" || v == "0" => Some(false),
        Some([_]) => {
            return Err(ApiError::bad_request(
                r#"invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")"#,
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                r#"got more than one value for filter key "dangling""#,
            ));
        }
    };
    let mut out = Vec::new();
    for n in d.networks.all() {
        if !matches(&n, &f) {
            continue;
        }
        if let Some(want) = dangling {
            let builtin = matches!(n.name.as_str(), "bridge" | "host" | "none");
            let unused = !builtin && members(&d, &n).await.is_empty();
            if unused != want {
                continue;
            }
        }
        let mut v = n.to_api();
        v["Containers"] = json!(members(&d, &n).await);
        out.push(v);
    }
    out.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    Ok(Json(Value::Array(out)))
}

pub async fn inspect(s: State, Path(id): Path<String>) -> Result<Json<Value>> {
    let d = s.0;
    let n = d.networks.get(&id)?;
    let mut v = n.to_api();
    v["Containers"] = json!(members(&d, &n).await);
    Ok(Json(v))
}

pub async fn create(s: State, body: Bytes) -> Result<Response> {
    let d = s.0;
    let req: CreateRequest = super::body::json(&body, "JSON body")?;
    // A subnet given back by a removal is free once its bridge is gone.
    d.bridge_deletions.settle().await;
    if matches!(req.name.as_str(), "bridge" | "host" | "none" | "default") {
        // dockerd's words, their trailing space included.
        return Err(ApiError::forbidden(format!(
            "operation is not permitted on predefined {} network ",
            req.name
        )));
    }
    // A driver berth does not implement is a network plugin's: found (and
    // asked its scope) before anything is recorded.
    let plugin = match req.driver.as_str() {
        "" | "overlay" => None,
        driver if is_builtin_driver(driver) => None,
        driver => {
            let addr = d.network_driver(driver).await?;
            let scope = d.network_plugin_scope(&addr).await?;
            Some((addr, scope))
        }
    };
    let mut req = req;
    let pools = d.ipam_request_pools(&mut req).await?;
    let by = ByPlugins {
        network_scope: plugin.as_ref().map(|(_, scope)| scope.as_str()),
        ipam: pools.as_ref(),
    };
    let n = match d.networks.create(req, by) {
        Ok(n) => n,
        Err(e) => {
            if let Some(p) = &pools {
                d.ipam_undo_pools(p).await;
            }
            return Err(e);
        }
    };
    if let Some((addr, _)) = &plugin
        && let Err(e) = d.remote_create_network(addr, &n).await
    {
        let _ = d.networks.remove(&n.id);
        d.ipam_release_pools(&n).await;
        return Err(e);
    }
    // Its rules as dockerd makes them at create, but not waited for: the
    // first start on it waits for them instead (compose creates its
    // networks one after the other before it starts anything).
    if n.driver == "bridge" && !n.bridge.is_empty() {
        let (d, n) = (d.clone(), n.clone());
        tokio::spawn(async move {
            d.firewall
                .ensure_network(&n.bridge, &n.subnet, n.internal)
                .await;
        });
    }
    d.network_event(&n, "create", "");
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

async fn remove_network(d: &Arc<Daemon>, n: &Network) -> Result<()> {
    if matches!(n.name.as_str(), "bridge" | "host" | "none") {
        return Err(ApiError::forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    let _leaving = d.networks.leaving(&n.id);
    let users = active_endpoints(d, n).await;
    if !users.is_empty() {
        return Err(ApiError::forbidden(format!(
            "error while removing network: network {} has active endpoints ({})",
            n.name,
            users.join(", ")
        )));
    }
    if n.is_remote() {
        d.remote_delete_network(n).await?;
    }
    delete_bridge(d, &n.bridge).await;
    if n.made_parent {
        let link = n.parent.clone();
        let _ = tokio::task::spawn_blocking(move || crate::network::parent::remove(&link)).await;
    }
    d.networks
        .remove(&n.id)
        .map_err(|e| ApiError::internal(format!("removing network {}: {e}", n.name)))?;
    // host-local keeps a directory per network (named by its id, the
    // conflist's name): its leases are gone with the containers, its
    // last-used address would stay for good.
    let _ = std::fs::remove_dir_all(d.cfg.exec_root.join("ipam").join(&n.id));
    d.ipam_release_pools(n).await;
    d.network_event(n, "destroy", "");
    Ok(())
}

/// The bridge plugin makes bridges and never removes them; the network's
/// rules are the network's: its owner removes both. The rules name the
/// bridge, they do not hang on it: the bridge's deletion is begun first
/// and ends on its own (network::bridges).
async fn delete_bridge(d: &Daemon, name: &str) {
    if name.is_empty() {
        return;
    }
    d.bridge_deletions.delete(name).await;
    d.firewall.forget_bridge(name).await;
}

pub async fn remove(s: State, Path(id): Path<String>) -> Result<Response> {
    let d = s.0;
    let n = d.networks.get(&id)?;
    remove_network(&d, &n).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(&f, &["label", "label!", "until"])?;
    let until = query::until(&f)?;
    let mut deleted = Vec::new();
    for n in d.networks.all() {
        if matches!(n.name.as_str(), "bridge" | "host" | "none")
            || !query::prune_labels_match(&n.labels, &f)
            || until.is_some_and(|u| n.created >= u)
        {
            continue;
        }
        if remove_network(&d, &n).await.is_ok() {
            deleted.push(n.name.clone());
        }
    }
    d.events.pruned("network", 0);
    Ok(Json(
        json!({"NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }}),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointSettings>,
    /// disconnect only: off a network that is gone, even while running.
    force: bool,
}

/// A disconnect from a network that no longer exists (removed while the
/// container was stopped): its endpoint under that name is forgotten, as
/// dockerd forgets it; a running container only with `force`.
async fn disconnect_gone(e: &Entry, name: &str, force: bool, gone: ApiError) -> Result<Response> {
    let mut c = e.c.lock().await;
    if c.is_running() && !force {
        return Err(gone);
    }
    let configured = c.networking.endpoints_config.remove(name).is_some();
    let joined = c.joined.remove(name).is_some();
    let mode = crate::daemon::netsetup::mode_network(&c.host_config.network_mode) == name
        && !c.mode_detached;
    if !configured && !joined && !mode {
        return Err(ApiError::internal(format!(
            "container {} is not connected to the network {name}",
            c.id
        )));
    }
    if mode {
        c.mode_detached = true;
    }
    c.save()
        .map_err(|e| ApiError::internal(format!("saving container: {e}")))?;
    Ok(StatusCode::OK.into_response())
}

/// The network and container a connect or disconnect names.
fn parties(d: &Daemon, id: &str, body: &[u8]) -> Result<(ConnectBody, Network, Arc<Entry>)> {
    let b: ConnectBody = super::body::json(body, "JSON body")?;
    // The container first, as dockerd looks them up.
    let e = d.find(&b.container)?;
    let n = d.networks.get(id)?;
    Ok((b, n, e))
}

pub async fn connect(s: State, Path(id): Path<String>, body: Bytes) -> Result<Response> {
    let d = s.0;
    let (b, n, e) = parties(&d, &id, &body)?;
    let mut c = e.c.lock().await;
    // Networking disabled: dockerd records the endpoint's settings and
    // makes nothing in the container; so does berth.
    if c.config.network_disabled && !c.host_config.network_mode.starts_with("container:") {
        let ep = b.endpoint_config.unwrap_or_default();
        crate::daemon::netsetup::validate_endpoint(&n.name, &ep)?;
        c.networking.endpoints_config.insert(n.name.clone(), ep);
        c.save()
            .map_err(|e| ApiError::internal(format!("saving container: {e}")))?;
        return Ok(StatusCode::OK.into_response());
    }
    if !uses_networks(&c) {
        return Err(ApiError::forbidden(
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ));
    }
    let mode = crate::daemon::netsetup::mode_network(&c.host_config.network_mode).to_string();
    let to_mode = d.networks.get(&mode).is_ok_and(|m| m.id == n.id);
    if n.driver == "null" {
        return Err(ApiError::bad_request(
            "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        ));
    }
    if n.driver != "bridge" && !n.is_parented() && !n.is_remote() {
        return Err(ApiError::forbidden(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    // The endpoint's own settings first, in dockerd's order.
    let ep = b.endpoint_config.unwrap_or_default();
    crate::daemon::netsetup::validate_endpoint(&n.name, &ep)?;
    crate::daemon::netsetup::check_asked_address(&n, &ep)?;
    let on = d
        .container_networks(&c)
        .map(|v| v.iter().any(|(x, _)| x.id == n.id))
        .unwrap_or(false);
    if on && !c.is_running() {
        // dockerd keeps a stopped container's settings for a network it
        // is configured on already ("avoid duplicate config") and answers
        // 200: a client connecting it twice changes nothing.
        return Ok(StatusCode::OK.into_response());
    }
    if on {
        return Err(ApiError::forbidden(format!(
            "endpoint with name {} already exists in network {}",
            c.name, n.name
        )));
    }
    // Back on the mode's network after a disconnect: joined again.
    let detached = c.mode_detached;
    if to_mode {
        c.mode_detached = false;
    }
    if c.is_running() {
        let ports = serde_json::json!([]);
        c.networking
            .endpoints_config
            .insert(n.name.clone(), ep.clone());
        d.note_links(&c);
        if let Err(err) = d.net_attach(&mut c, &n, &ep, &ports).await {
            c.networking.endpoints_config.remove(&n.name);
            c.mode_detached = detached;
            return Err(err);
        }
        d.refresh_etc(&c).await;
    } else {
        // Configured anew: the network of that name it joins next.
        c.joined.remove(&n.name);
        let mut ep = ep;
        // dockerd adds the short id to the aliases on a network of the
        // user's when it connects a stopped container, as a start adds
        // it (inspect shows it before the start).
        let user_defined = !matches!(n.name.as_str(), "bridge" | "host" | "none");
        if user_defined && !ep.aliases.iter().any(|a| a == c.short_id()) {
            ep.aliases.push(c.short_id().to_string());
        }
        c.networking.endpoints_config.insert(n.name.clone(), ep);
        d.note_links(&c);
        if c.net.is_none() {
            d.network_event(&n, "connect", &c.id);
        }
    }
    c.save()
        .map_err(|e| ApiError::internal(format!("saving container: {e}")))?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(s: State, Path(id): Path<String>, body: Bytes) -> Result<Response> {
    let d = s.0;
    let b: ConnectBody = super::body::json(&body, "JSON body")?;
    let e = d.find(&b.container)?;
    let n = match d.networks.get(&id) {
        Ok(n) => n,
        Err(gone) => return disconnect_gone(&e, &id, b.force, gone).await,
    };
    let mut c = e.c.lock().await;
    let mode = crate::daemon::netsetup::mode_network(&c.host_config.network_mode).to_string();
    // Its endpoint on `n`: named after it (as dockerd finds a stopped
    // container's, even when the network it joined under that name was
    // removed and made again), or configured by id and joined to it.
    let on_n = |c: &crate::daemon::container::Container, k: &str| {
        k == n.name || d.network_of(c, k).is_ok_and(|m| m.id == n.id)
    };
    let by_mode = !c.mode_detached && on_n(&c, &mode);
    let by_endpoint = c.networking.endpoints_config.keys().any(|k| on_n(&c, k));
    if !by_mode && !by_endpoint {
        // dockerd's words (and its 500) for each: a stopped container's
        // configured networks, a running one's joined ones.
        let the = if c.is_running() { "" } else { "the " };
        return Err(ApiError::internal(format!(
            "container {} is not connected to {the}network {}",
            c.id, n.name
        )));
    }
    d.net_detach(&mut c, &n.id).await;
    let gone: Vec<String> = c
        .networking
        .endpoints_config
        .keys()
        .filter(|k| on_n(&c, k))
        .cloned()
        .collect();
    for k in &gone {
        c.networking.endpoints_config.remove(k);
        c.joined.remove(k);
    }
    c.joined.remove(&n.name);
    if c.is_running() {
        d.refresh_etc(&c).await;
    }
    if by_mode {
        // Off its mode's network: the mode stays (as Docker's NetworkMode),
        // the network is no longer joined.
        c.mode_detached = true;
    }
    c.save()
        .map_err(|e| ApiError::internal(format!("saving container: {e}")))?;
    Ok(StatusCode::OK.into_response())
}
