//! /containers/…

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::json::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;

use super::State;
use super::query::{self, Params, flag, flag_or};
use super::stream::{Copied, STDERR, STDOUT, StdinRules, Streams, frame, hijack};
use crate::daemon::container::{Container, Status};
use crate::daemon::netsetup::Attachment;
use crate::daemon::{Daemon, Entry, journal, logs};
use crate::error::{ApiError, Result};
use crate::types::CreateRequest;
use crate::types::MountPoint;

/// A time as Docker shows it. humantime cannot print years past 9999 (a
/// file's mtime can be anything) and to_string would panic on its error.
fn rfc3339(t: Option<SystemTime>) -> String {
    use std::fmt::Write;
    let Some(t) = t else {
        return "0001-01-01T00:00:00Z".into();
    };
    let mut out = String::new();
    match write!(out, "{}", humantime::format_rfc3339_nanos(t)) {
        Ok(()) => out,
        Err(_) => "9999-12-31T23:59:59.999999999Z".into(),
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn network_mode(c: &Container) -> String {
    match c.host_config.network_mode.as_str() {
        "" | "default" => "bridge".into(),
        m => m.into(),
    }
}

/// The network mode as the client gave it, as dockerd shows it in `ps` and
/// inspect: "default" when none was given (the mode of the default bridge).
fn shown_mode(c: &Container) -> String {
    match c.host_config.network_mode.as_str() {
        "" => "default".into(),
        m => m.into(),
    }
}

/// HostConfig fields dockerd shows with their zero values where berth has
/// nothing to say (limits this kernel or berth does not apply, or unset):
/// clients read them as keys (`HostConfig["PidsLimit"]`), and a missing key
/// is an error to them.
fn fill_host_config_zeros(hc: &mut Value) {
    let Some(o) = hc.as_object_mut() else { return };
    for k in [
        "BlkioDeviceReadBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceWriteIOps",
        "BlkioWeightDevice",
        "DeviceRequests",
        "MemorySwappiness",
        "PidsLimit",
    ] {
        o.entry(k).or_insert(Value::Null);
    }
    for k in [
        "CpuCount",
        "CpuPercent",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "IOMaximumBandwidth",
        "IOMaximumIOps",
        "KernelMemory",
        "KernelMemoryTCP",
    ] {
        o.entry(k).or_insert(json!(0));
    }
    o.entry("OomKillDisable").or_insert(json!(false));
}

/// Published ports as `ps` lists them: bound ones while the container has
/// its network, and exposed ones without a host port.
fn ports(c: &Container) -> Vec<Value> {
    let mut out = Vec::new();
    let split = |p: &str| -> (u16, String) {
        let (n, t) = p.split_once('/').unwrap_or((p, "tcp"));
        (n.parse().unwrap_or(0), t.to_string())
    };
    // dockerd lists the ports its network settings hold, which a container
    // without networking never gets.
    if c.config.network_disabled {
        return out;
    }
    if c.net.is_some() {
        for (p, bs) in &c.published {
            let (private, typ) = split(p);
            for b in bs {
                out.push(json!({"IP": b.host_ip, "PrivatePort": private,
                    "PublicPort": b.host_port.parse::<u16>().unwrap_or(0), "Type": typ}));
            }
        }
    }
    for p in c.config.exposed_ports.keys() {
        if c.net.is_none() || !c.published.contains_key(p) {
            let (private, typ) = split(p);
            out.push(json!({"PrivatePort": private, "Type": typ}));
        }
    }
    out
}

/// inspect's NetworkSettings.Ports: every exposed or published port, with
/// its host bindings while the container has them.
fn port_map(c: &Container) -> Value {
    // Only while it has its network: dockerd shows none before a start
    // and after a stop.
    let mut m = serde_json::Map::new();
    // A container whose first interface is not a bridge's publishes
    // nothing, as dockerd shows it.
    let publishes = c
        .net
        .as_ref()
        .is_some_and(|n| n.attachments.first().is_none_or(|a| a.on_bridge()));
    if publishes {
        for p in c.config.exposed_ports.keys() {
            m.insert(p.clone(), Value::Null);
        }
        for (p, bs) in &c.published {
            m.insert(
                p.clone(),
                bs.iter()
                    .map(|b| json!({"HostIp": b.host_ip, "HostPort": b.host_port}))
                    .collect(),
            );
        }
    }
    Value::Object(m)
}

/// One network of a container as inspect shows it.
fn endpoint_json(c: &Container, network: &str, network_id: &str, a: Option<&Attachment>) -> Value {
    let ep = c.networking.endpoints_config.get(network);
    let mut aliases = ep.map(|e| e.aliases.clone()).unwrap_or_default();
    // dockerd (API < 1.45) adds the short id to the aliases on a network
    // of the user's once the container joined it, and keeps it there.
    let user_defined = !matches!(network, "bridge" | "host" | "none");
    let joined = a.is_some() || c.state.started_at.is_some();
    if user_defined && joined && !aliases.iter().any(|x| x == c.short_id()) {
        aliases.push(c.short_id().to_string());
    }
    // No DNSNames: API 1.44 added them, and berth speaks 1.43.
    json!({
        "IPAMConfig": ep.and_then(|e| e.ipam_config.clone()),
        "Links": match ep.map(|e| &e.links) {
            Some(l) if !l.is_empty() => json!(l),
            _ => Value::Null,
        },
        "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
        // Before the container joins, the address it asked for (dockerd
        // shows the endpoint's config as given).
        "MacAddress": match a {
            Some(a) => a.mac.as_str(),
            None => ep.and_then(crate::daemon::netsetup::endpoint_mac).unwrap_or(""),
        },
        "DriverOpts": ep.and_then(|e| e.other.get("DriverOpts")).cloned().unwrap_or(Value::Null),
        "NetworkID": network_id,
        "EndpointID": a.map(|a| attachment_endpoint(&c.id, a)).unwrap_or_default(),
        "Gateway": a.map(|a| a.gateway.as_str()).unwrap_or(""),
        "IPAddress": a.map(|a| a.ip.as_str()).unwrap_or(""),
        "IPPrefixLen": a.map(|a| a.prefix).unwrap_or(0),
        "IPv6Gateway": a.map(|a| a.gateway6.as_str()).unwrap_or(""),
        "GlobalIPv6Address": a.map(|a| a.ip6.as_str()).unwrap_or(""),
        "GlobalIPv6PrefixLen": a.map(|a| a.prefix6).unwrap_or(0),
    })
}

/// A stable endpoint id: the container and network ids, hashed.
pub(crate) fn endpoint_id(container: &str, network: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{container}/{network}")))
}

/// An attachment's endpoint id: the one a network plugin was told, else
/// one made of the container and network.
pub(crate) fn attachment_endpoint(
    container: &str,
    a: &crate::daemon::netsetup::Attachment,
) -> String {
    match a.runtime_config["endpointID"].as_str() {
        Some(id) => id.to_string(),
        None => endpoint_id(container, &a.network_id),
    }
}

fn network_settings(d: &Daemon, c: &Container) -> Value {
    let attachments = c
        .net
        .as_ref()
        .map(|n| n.attachments.as_slice())
        .unwrap_or(&[]);
    let mut networks = serde_json::Map::new();
    let mode = network_mode(c);
    let configured: Vec<String> = if crate::daemon::netsetup::uses_networks(c) {
        // Disconnected from its mode's network, it shows only the others.
        let mut v = if c.mode_detached {
            Vec::new()
        } else {
            vec![mode.clone()]
        };
        // The mode's network may be named as the mode says it
        // ("default", which the docker CLI sends): it is listed once.
        v.extend(
            c.networking
                .endpoints_config
                .keys()
                .filter(|k| crate::daemon::netsetup::mode_network(k) != mode)
                .cloned(),
        );
        v
    } else if c.config.network_disabled {
        // Networking disabled: no endpoint is ever made, but a connect is
        // recorded (and shown without an address), as dockerd does.
        c.networking.endpoints_config.keys().cloned().collect()
    } else if mode.starts_with("container:") {
        // Another container's network: dockerd lists none of its own.
        Vec::new()
    } else {
        vec![mode.clone()]
    };
    for name in configured {
        let net = d.network_of(c, &name).ok();
        let shown = net.as_ref().map(|n| n.name.clone()).unwrap_or(name.clone());
        let a = net
            .as_ref()
            .and_then(|n| attachments.iter().find(|a| a.network_id == n.id));
        // The network it joined ("" before it first has, as dockerd
        // fills NetworkID when the endpoint is made), kept after a stop.
        let id = a
            .map(|a| a.network_id.clone())
            .or_else(|| c.joined.get(&name).cloned())
            .or_else(|| c.joined.get(&shown).cloned())
            .unwrap_or_default();
        networks.insert(shown.clone(), endpoint_json(c, &shown, &id, a));
    }
    let bridge = attachments.iter().find(|a| a.network_name == "bridge");
    json!({
        "Bridge": "", "SandboxID": c.net.as_ref().map(|_| endpoint_id(&c.id, "sandbox")).unwrap_or_default(),
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": port_map(c),
        "SandboxKey": c.net.as_ref().map(|n| n.netns.display().to_string()).unwrap_or_default(),
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": bridge.map(|a| attachment_endpoint(&c.id, a)).unwrap_or_default(),
        "Gateway": bridge.map(|a| a.gateway.as_str()).unwrap_or(""),
        "GlobalIPv6Address": bridge.map(|a| a.ip6.as_str()).unwrap_or(""),
        "GlobalIPv6PrefixLen": bridge.map(|a| a.prefix6).unwrap_or(0),
        "IPAddress": bridge.map(|a| a.ip.as_str()).unwrap_or(""),
        "IPPrefixLen": bridge.map(|a| a.prefix).unwrap_or(0),
        "IPv6Gateway": bridge.map(|a| a.gateway6.as_str()).unwrap_or(""),
        "MacAddress": bridge.map(|a| a.mac.as_str()).unwrap_or(""),
        "Networks": networks,
    })
}

/// One row of `GET /containers/json`, borrowed from the container and
/// serialized straight to the response: `ps -a` over a thousand containers
/// is dominated by building and dropping JSON trees otherwise.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary<'a> {
    id: &'a str,
    names: Vec<String>,
    image: &'a str,
    #[serde(rename = "ImageID")]
    image_id: &'a str,
    command: String,
    created: i64,
    ports: Vec<Value>,
    labels: &'a crate::types::Map<String>,
    state: &'static str,
    status: String,
    host_config: SummaryHostConfig,
    network_settings: SummaryNetworks,
    mounts: &'a [crate::types::MountPoint],
    // Left out when zero, as Go's omitempty leaves them.
    #[serde(rename = "SizeRw", skip_serializing_if = "none_or_zero")]
    size_rw: Option<i64>,
    #[serde(skip_serializing_if = "none_or_zero")]
    size_root_fs: Option<i64>,
}

fn none_or_zero(n: &Option<i64>) -> bool {
    n.is_none_or(|n| n == 0)
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryHostConfig {
    network_mode: String,
}

/// Each network's endpoint, the whole of it as inspect shows it (dockerd's
/// list and inspect read the same settings).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryNetworks {
    networks: std::collections::BTreeMap<String, Value>,
}

/// Each container's writable layer (bytes) and that plus its image's
/// size, by container id: what `size=1` and prune report.
pub async fn disk_sizes(d: &Daemon) -> std::collections::HashMap<String, (i64, i64)> {
    let rw: std::collections::HashMap<String, i64> = match d
        .lc
        .snapshots()
        .list(d.lc.req(api::ListSnapshotsRequest {}))
        .await
    {
        Ok(r) => r
            .into_inner()
            .snapshots
            .into_iter()
            .filter(|s| s.kind == "active")
            // Docker's SizeRw: what the files hold, not the blocks the
            // directories the runtime's mount points needed take.
            .filter_map(|s| Some((s.key.rsplit('/').next()?.to_string(), s.content_size)))
            .collect(),
        Err(_) => return Default::default(),
    };
    let images = super::images::sizes(d).await;
    let mut out = std::collections::HashMap::new();
    for e in d.all() {
        let c = e.c.seen();
        let own = rw
            .get(&c.id)
            .map(|n| {
                n.saturating_sub(crate::daemon::files::INIT_LAYER_BYTES)
                    .max(0)
            })
            .unwrap_or(0);
        let image = images.get(&c.image_id).copied().unwrap_or(0);
        out.insert(c.id.clone(), (own, own + image));
    }
    out
}

pub fn summary(c: &Container, size: Option<(i64, i64)>) -> Summary<'_> {
    // As Docker writes it: arguments with a space in single quotes.
    let mut command = c.path.clone();
    for a in &c.args {
        command.push(' ');
        if a.contains(' ') {
            command.push('\'');
            command.push_str(a);
            command.push('\'');
        } else {
            command.push_str(a);
        }
    }
    let image = if c.config.image.starts_with("sha256:") {
        &c.image_id
    } else {
        &c.config.image
    };
    let mode = network_mode(c);
    Summary {
        id: &c.id,
        names: vec![format!("/{}", c.name)],
        image,
        image_id: &c.image_id,
        command,
        created: unix(c.created),
        ports: ports(c),
        labels: &c.config.labels,
        state: c.state.status.as_str(),
        status: c.status_text(SystemTime::now()),
        host_config: SummaryHostConfig {
            network_mode: shown_mode(c),
        },
        network_settings: SummaryNetworks {
            networks: match c.net.as_ref().filter(|n| !n.attachments.is_empty()) {
                Some(n) => n
                    .attachments
                    .iter()
                    .map(|a| {
                        let ep = endpoint_json(c, &a.network_name, &a.network_id, Some(a));
                        (a.network_name.clone(), ep)
                    })
                    .collect(),
                None if c.config.network_disabled => c
                    .networking
                    .endpoints_config
                    .keys()
                    .map(|k| (k.clone(), endpoint_json(c, k, "", None)))
                    .collect(),
                None => {
                    let ep = endpoint_json(c, &mode, "", None);
                    [(mode, ep)].into()
                }
            },
        },
        mounts: &c.mounts,
        size_rw: size.map(|s| s.0),
        size_root_fs: size.map(|s| s.1),
    }
}

/// Docker's `GraphDriver.Data` (overlay2's `LowerDir`, `UpperDir`,
/// `WorkDir`, `MergedDir`) from where lifecycled keeps a snapshot's files;
/// null when it cannot say (a container whose rootfs is not a snapshot).
pub async fn graph_data(d: &Daemon, req: api::SnapshotRequest) -> Value {
    let Ok(r) = d.lc.snapshots().mounts(d.lc.req(req)).await else {
        return Value::Null;
    };
    let r = r.into_inner();
    let mut data = serde_json::Map::new();
    for m in &r.mounts {
        match m.r#type.as_str() {
            "overlay" => {
                for o in &m.options {
                    for (opt, key) in [
                        ("lowerdir=", "LowerDir"),
                        ("upperdir=", "UpperDir"),
                        ("workdir=", "WorkDir"),
                    ] {
                        if let Some(v) = o.strip_prefix(opt) {
                            data.insert(key.into(), json!(v));
                        }
                    }
                }
            }
            "bind" => {
                data.insert("UpperDir".into(), json!(m.source));
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return Value::Null;
    }
    if !r.rootfs.is_empty() {
        data.insert("MergedDir".into(), json!(r.rootfs));
    }
    Value::Object(data)
}

pub fn inspect_json(d: &Daemon, c: &Container) -> Value {
    // Without networking, dockerd writes (and shows) only the hostname.
    let net_file = |f: &str| match c.config.network_disabled {
        true => std::path::PathBuf::new(),
        false => c.dir.join(f),
    };
    let s = &c.state;
    let mut state = json!({
        "Status": s.status.as_str(),
        "Running": matches!(s.status, Status::Running | Status::Paused | Status::Restarting),
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": rfc3339(s.started_at),
        "FinishedAt": rfc3339(s.finished_at),
    });
    if let Some(h) = &s.health {
        state["Health"] =
            json!({"Status": h.status, "FailingStreak": h.failing_streak, "Log": h.log});
    }
    let mut hc = serde_json::to_value(&c.host_config).unwrap_or_default();
    hc["NetworkMode"] = json!(shown_mode(c));
    fill_host_config_zeros(&mut hc);
    if hc["LogConfig"]["Type"] == "" {
        hc["LogConfig"]["Type"] = json!("json-file");
    }
    // A Go array of two: zeros when the client gave no size.
    if hc["ConsoleSize"].as_array().is_none_or(|a| a.len() != 2) {
        hc["ConsoleSize"] = json!([0, 0]);
    }
    let links = d.shown_links(c);
    hc["Links"] = if links.is_empty() {
        Value::Null
    } else {
        json!(links)
    };
    let mut config = serde_json::to_value(&c.config).unwrap_or_default();
    if config["Hostname"] == "" {
        config["Hostname"] = json!(c.short_id());
    }
    json!({
        "Id": c.id,
        "Created": rfc3339(Some(c.created)),
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": net_file("resolv.conf"),
        "HostnamePath": c.dir.join("hostname"),
        "HostsPath": net_file("hosts"),
        "LogPath": if c.keeps_logs() && !c.logs_to_journal() && c.log_driver() != "local" && !c.logs_to_server() { c.log_path() } else { std::path::PathBuf::new() },
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if c.exec_ids.is_empty() { Value::Null } else { json!(c.exec_ids) },
        "HostConfig": hc,
        "GraphDriver": {"Data": null, "Name": "overlay2"},
        // dockerd lists --mount tmpfs mounts, not HostConfig.Tmpfs ones.
        "Mounts": c.mounts.iter().filter(|m| !(m.typ == "tmpfs" && c.host_config.tmpfs.contains_key(&m.destination))).collect::<Vec<_>>(),
        "Config": config,
        "NetworkSettings": network_settings(d, c),
    })
}

pub async fn create(
    s: State,
    Query(q): Query<Params>,
    owner: Option<axum::Extension<super::Owner>>,
    version: Option<axum::Extension<super::ClientVersion>>,
    body: Bytes,
) -> Result<Response> {
    let mut req = create_request(&body)?;
    // dockerd's default IPC mode: "private", "shareable" for clients older
    // than API 1.40 (which expect any container's to be joinable).
    if req.host_config.ipc_mode.is_empty() {
        let old = version.as_ref().is_some_and(|v| v.before((1, 40)));
        req.host_config.ipc_mode = if old { "shareable" } else { "private" }.into();
    }
    // Annotations came with API 1.43: an older client's are not read, as
    // dockerd's router drops them.
    if version.as_ref().is_some_and(|v| v.before((1, 43))) {
        req.host_config.annotations.clear();
    }
    // --platform: the local image must be of it, as dockerd's create has
    // it (the CLI pulls on the 404).
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let wanted = crate::daemon::images::parse_platform(p).map_err(ApiError::bad_request)?;
        let image = s.0.find_image(&req.config.image).await?;
        let os = image.config["os"].as_str().unwrap_or("linux");
        let arch = image.config["architecture"].as_str().unwrap_or("");
        let variant = image.config["variant"].as_str().unwrap_or("");
        let differs = os != wanted.os
            || arch != wanted.arch
            || (!wanted.variant.is_empty() && !variant.is_empty() && variant != wanted.variant);
        if differs {
            return Err(ApiError::not_found(format!(
                "image with reference {} was found but does not match the specified platform: wanted {}/{}, actual: {os}/{arch}",
                req.config.image, wanted.os, wanted.arch
            )));
        }
    }
    let owner = owner.map(|o| o.0.0);
    let r = s.0.create(q.get("name").cloned(), req, owner).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// The create body, with an error that names the field at fault. The
/// container config is flattened into the body, which hides paths from
/// serde; its parts are read one by one to find them.
fn create_request(body: &[u8]) -> Result<CreateRequest> {
    fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> std::result::Result<T, ApiError> {
        super::body::typed(v, "JSON body")
    }
    let mut v = super::body::object(body, "JSON body")?;
    super::body::go_nulls(&mut v);
    let mut config_only = v.clone();
    if let Some(o) = config_only.as_object_mut() {
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
    }
    // No container config at all (dockerd's wrapper leaves it nil).
    if config_only.as_object().is_some_and(|o| o.is_empty()) {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    let config: crate::types::Config = typed(&config_only)?;
    let wrap = |k: &str| -> std::result::Result<Value, ApiError> {
        let part = v.get(k).filter(|x| !x.is_null()).cloned();
        Ok(json!({ k: part.unwrap_or_else(|| json!({})) }))
    };

    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Parts {
        host_config: crate::types::HostConfig,
        networking_config: crate::types::NetworkingConfig,
    }
    let mut parts: Parts = typed(&wrap("HostConfig")?)?;
    let n: Parts = typed(&wrap("NetworkingConfig")?)?;
    parts.networking_config = n.networking_config;
    Ok(CreateRequest {
        config,
        host_config: parts.host_config,
        networking_config: parts.networking_config,
        runtime: v["Runtime"].as_str().unwrap_or_default().to_string(),
    })
}

/// dockerd's `name` filter: each value is a regular expression searched in
/// the name with its leading slash ("b1", "^/b1$"); one that does not
/// compile matches only itself. Compiled once per listing.
struct NamePatterns(Vec<(String, Option<regex::Regex>)>);

impl NamePatterns {
    fn new(values: &[String]) -> NamePatterns {
        NamePatterns(
            values
                .iter()
                .map(|v| (v.clone(), regex::Regex::new(v).ok()))
                .collect(),
        )
    }

    fn matches(&self, name: &str) -> bool {
        let shown = format!("/{name}");
        self.0
            .iter()
            .any(|(v, re)| *v == shown || re.as_ref().is_some_and(|re| re.is_match(&shown)))
    }
}

fn matches_filters(
    d: &Daemon,
    c: &Container,
    f: &query::Filters,
    names: Option<&NamePatterns>,
    before: Option<SystemTime>,
    since: Option<SystemTime>,
    ancestors: Option<&std::collections::BTreeSet<String>>,
) -> bool {
    let any = |k: &str, check: &dyn Fn(&str) -> bool| {
        f.get(k).is_none_or(|vals| vals.iter().any(|v| check(v)))
    };
    any("id", &|v| c.id.starts_with(v))
        && names.is_none_or(|n| n.matches(&c.name))
        && any("status", &|v| c.state.status.as_str() == v)
        && any("exited", &|v| {
            c.state.status == Status::Exited && v.parse::<i32>().ok() == Some(c.state.exit_code)
        })
        && ancestors.is_none_or(|a| a.contains(&c.image_id))
        && any("volume", &|v| {
            c.mounts
                .iter()
                .any(|m| m.name == v || m.destination == v || m.source == v)
        })
        && any("network", &|v| {
            container_networks(d, c)
                .iter()
                .any(|(name, id)| name == v || (!id.is_empty() && id.starts_with(v)))
        })
        && any("health", &|v| match &c.state.health {
            Some(h) => h.status == v,
            None => v == "none",
        })
        && any("is-task", &|v| v == "false")
        && query::labels_match(&c.config.labels, f.get("label"))
        && before.is_none_or(|b| c.created < b)
        && since.is_none_or(|s| c.created > s)
        && ports_match(c, f)
}

/// The networks a container is on, by name and id, as the `network`
/// filter reads them (dockerd's NetworkSettings.Networks): those it is
/// attached to, or, while it does not run, those its config names.
fn container_networks(d: &Daemon, c: &Container) -> Vec<(String, String)> {
    if let Some(n) = c.net.as_ref().filter(|n| !n.attachments.is_empty()) {
        return n
            .attachments
            .iter()
            .map(|a| (a.network_name.clone(), a.network_id.clone()))
            .collect();
    }
    let mut names: Vec<String> = c.networking.endpoints_config.keys().cloned().collect();
    let mode = network_mode(c);
    if !names.contains(&mode) {
        names.push(mode);
    }
    names
        .into_iter()
        .map(|n| {
            let id = d.networks.get(&n).map(|x| x.id.clone()).unwrap_or_default();
            (n, id)
        })
        .collect()
}

/// A port filter's value: "80", "80/udp", "8000-8080/tcp".
fn port_range(v: &str) -> Option<(u32, u32, String)> {
    let (range, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && matches!(proto, "tcp" | "udp" | "sctp"))
        .then(|| (a as u32, b as u32, proto.to_string()))
}

/// dockerd's `publish` and `expose` filters ("80", "80/udp",
/// "8000-8080/tcp"): a container whose `ps` ports have one of the host
/// ports asked for, or one of the container ports.
fn ports_match(c: &Container, f: &query::Filters) -> bool {
    if !f.contains_key("publish") && !f.contains_key("expose") {
        return true;
    }
    let wanted = |k: &str| -> Vec<(u32, u32, String)> {
        f.get(k)
            .into_iter()
            .flatten()
            .filter_map(|v| port_range(v))
            .collect()
    };
    let (publish, expose) = (wanted("publish"), wanted("expose"));
    let hit = |set: &[(u32, u32, String)], port: u64, typ: &str| {
        set.iter()
            .any(|(a, b, p)| p == typ && (*a as u64..=*b as u64).contains(&port))
    };
    ports(c).iter().any(|p| {
        let typ = p["Type"].as_str().unwrap_or("tcp");
        hit(&publish, p["PublicPort"].as_u64().unwrap_or(0), typ)
            || hit(&expose, p["PrivatePort"].as_u64().unwrap_or(0), typ)
    })
}

/// The images an `ancestor` filter names, with every image built on them
/// (their children, along the parents builds and commits record), as
/// dockerd resolves it: a name that gives no image adds none.
async fn ancestor_images(
    d: &Daemon,
    names: &[String],
) -> Result<std::collections::BTreeSet<String>> {
    let mut roots = std::collections::BTreeSet::new();
    for n in names {
        if let Ok(i) = d.find_image(n).await {
            roots.insert(i.id);
        }
    }
    if roots.is_empty() {
        return Ok(roots);
    }
    let parents = super::images::parents(d).await?;
    let mut out = roots.clone();
    for id in parents.keys() {
        let mut at = id;
        // Bounded: a parent chain is never longer than the images here.
        for _ in 0..=parents.len() {
            if roots.contains(at) {
                out.insert(id.clone());
                break;
            }
            match parents.get(at) {
                Some(p) if !p.is_empty() => at = p,
                _ => break,
            }
        }
    }
    Ok(out)
}

/// The names legacy links give containers (`/linker/alias`), by the
/// linked container's id: dockerd lists them among the container's names.
fn legacy_link_names(d: &crate::daemon::Daemon) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for e in d.all() {
        let c = e.c.seen();
        for l in &c.host_config.links {
            if let Ok(link) = crate::daemon::links::parse(l)
                && let Ok(target) = d.find(&link.name)
            {
                out.entry(target.id.clone())
                    .or_default()
                    .push(format!("/{}/{}", c.name, link.alias));
            }
        }
    }
    for names in out.values_mut() {
        names.sort();
    }
    out
}

pub async fn list(s: State, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(
        &f,
        &[
            "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume",
            "network", "health", "is-task", "publish", "expose",
        ],
    )?;
    for k in ["publish", "expose"] {
        for v in f.get(k).into_iter().flatten() {
            if port_range(v).is_none() {
                return Err(ApiError::bad_request(format!(
                    "error while looking up for {k} {v}: not a port, a range or either with /tcp, /udp or /sctp"
                )));
            }
        }
    }
    if let Some(st) = f.get("status") {
        for v in st {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&v.as_str())
            {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={v}'"
                )));
            }
        }
    }
    // The values dockerd checks before it lists, in its words.
    for v in f.get("exited").into_iter().flatten() {
        if v.parse::<i64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "strconv.Atoi: parsing {v:?}: invalid syntax"
            )));
        }
    }
    if let Some(v) = f.get("is-task")
        && v.iter().any(|x| x != "true" && x != "false")
    {
        return Err(ApiError::bad_request(format!(
            "Invalid filter 'is-task=[{}]'",
            v.join(" ")
        )));
    }
    for v in f.get("health").into_iter().flatten() {
        if !["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Unrecognised filter value for health: {v}"
            )));
        }
    }
    let mut pivots = [None, None];
    for (i, k) in ["before", "since"].iter().enumerate() {
        if let Some(key) = f.get(*k).and_then(|v| v.first()) {
            let e = d
                .find(key)
                .map_err(|_| ApiError::not_found(format!("no such container {key}")))?;
            pivots[i] = Some(e.c.seen().created);
        }
    }
    let [before, since] = pivots;
    let ancestors = match f.get("ancestor") {
        Some(images) => Some(ancestor_images(&d, images).await?),
        None => None,
    };
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?,
        None => 0,
    };
    let limit = Some(limit).filter(|n| *n > 0);
    // A limit (ps -n, -l) counts stopped containers too, as dockerd's.
    let all =
        flag(&q, "all") || f.contains_key("status") || f.contains_key("exited") || limit.is_some();
    // Listed by the name it was made from while that name still gives its
    // image; by its image's id once it names another or none, as dockerd.
    let mut renamed: std::collections::HashMap<String, bool> = Default::default();
    let sizes = if flag(&q, "size") {
        Some(disk_sizes(&d).await)
    } else {
        None
    };
    let names = f.get("name").map(|v| NamePatterns::new(v));
    let linked = legacy_link_names(&d);
    let mut rows: Vec<(SystemTime, Vec<u8>)> = Vec::new();
    // Read from each record's last change: a start in progress (its CNI
    // plugins, a log server's dial) does not hold up the list.
    for e in d.all() {
        let c = e.c.seen();
        if !all && !c.is_running() {
            continue;
        }
        if !matches_filters(
            &d,
            &c,
            &f,
            names.as_ref(),
            before,
            since,
            ancestors.as_ref(),
        ) {
            continue;
        }
        let size = sizes
            .as_ref()
            .map(|s| s.get(&c.id).copied().unwrap_or_default());
        let mut row = summary(&c, size);
        if let Some(l) = linked.get(&c.id) {
            row.names.extend(l.iter().cloned());
        }
        if row.image != c.image_id {
            let key = format!("{}\0{}", c.config.image, c.image_id);
            let gone = match renamed.get(&key) {
                Some(g) => *g,
                None => {
                    let g = d
                        .find_image(&c.config.image)
                        .await
                        .map_or(true, |i| i.id != c.image_id);
                    renamed.insert(key, g);
                    g
                }
            };
            if gone {
                row.image = &c.image_id;
            }
        }
        let row = serde_json::to_vec(&row)
            .map_err(|e| ApiError::internal(format!("encoding the container list: {e}")))?;
        rows.push((c.created, row));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    if let Some(n) = limit {
        rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.1.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, (_, row)) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.extend_from_slice(b"]\n");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn inspect(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>> {
    let e = s.0.find(&id)?;
    let sizes = if flag(&q, "size") {
        Some(disk_sizes(&s.0).await)
    } else {
        None
    };
    let c = e.c.lock().await;
    let mut v = inspect_json(&s.0, &c);
    let execs = s.0.execs.of_container(&c.id);
    if !execs.is_empty() {
        v["ExecIDs"] = json!(execs);
    }
    let id = c.id.clone();
    match c.graph_data.clone() {
        Some(data) => v["GraphDriver"]["Data"] = data,
        None => {
            drop(c);
            let data = graph_data(
                &s.0,
                api::SnapshotRequest {
                    key: id.clone(),
                    ..Default::default()
                },
            )
            .await;
            if !data.is_null() {
                e.c.lock().await.graph_data = Some(data.clone());
            }
            v["GraphDriver"]["Data"] = data;
        }
    }
    if let Some(sizes) = sizes {
        let (rw, root) = sizes.get(&id).copied().unwrap_or_default();
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(root);
    }
    Ok(Json(v))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub async fn start(s: State, Path(id): Path<String>, body: Bytes) -> Result<Response> {
    let d = s.0;
    // A HostConfig given at start: gone since API 1.24; dockerd refuses any
    // body longer than an empty JSON object could be.
    if body.len() > 7 {
        return Err(ApiError::bad_request(
            "starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24",
        ));
    }
    let e = d.find(&id)?;
    d.start(&e).await?;
    Ok(no_content())
}

fn timeout_param(q: &Params) -> Result<Option<i64>> {
    match q.get("t").or_else(|| q.get("timeout")) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => t.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {t:?}: invalid syntax"))
        }),
    }
}

pub async fn stop(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    d.stop(&e, timeout_param(&q)?, q.get("signal").cloned())
        .await?;
    Ok(no_content())
}

pub async fn restart(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    d.restart(&e, timeout_param(&q)?).await?;
    Ok(no_content())
}

pub async fn kill(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    // dockerd's router refuses what is no signal before it looks for the
    // container; it names the container in every failure after that (a
    // number Linux has no signal for among them).
    let signal = q.get("signal").map(String::as_str).unwrap_or("");
    crate::daemon::ops::parse_signal(signal)?;
    let named = |mut e: ApiError| {
        e.message = format!("Cannot kill container: {id}: {}", e.message);
        e
    };
    let e = d.find(&id).map_err(named)?;
    d.kill(&e, signal).await.map_err(named)?;
    Ok(no_content())
}

pub async fn pause(s: State, Path(id): Path<String>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    d.pause(&e, true).await?;
    Ok(no_content())
}

pub async fn unpause(s: State, Path(id): Path<String>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    d.pause(&e, false).await?;
    Ok(no_content())
}

/// Answers at once (so the client knows the wait is in place before it
/// starts the container) and writes the status when the condition is met.
pub async fn wait(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    // A condition dockerd does not know is its default, not-running.
    let condition = q
        .get("condition")
        .filter(|c| ["next-exit", "removed"].contains(&c.as_str()))
        .cloned()
        .unwrap_or_default();
    let mut exits = e.exits.subscribe();
    let seen = *exits.borrow_and_update();
    let mut removed = e.removed.subscribe();
    let running = e.c.lock().await.is_running();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        match condition.as_str() {
            "removed" => {
                while !*removed.borrow_and_update() {
                    if removed.changed().await.is_err() {
                        break;
                    }
                }
            }
            "next-exit" => {
                while *exits.borrow_and_update() == seen {
                    if exits.changed().await.is_err() {
                        break;
                    }
                }
            }
            _ => {
                if running {
                    while *exits.borrow_and_update() == seen {
                        if exits.changed().await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let c = e.c.lock().await;
        // A wait for the removal reads no error, as dockerd's: `run --rm`
        // of a container whose start failed says why once, not twice.
        let err = if c.state.error.is_empty() || condition == "removed" {
            Value::Null
        } else {
            json!({"Message": c.state.error})
        };
        let body = json!({"StatusCode": c.state.exit_code, "Error": err}).to_string() + "\n";
        let _ = tx.send(Ok(Bytes::from(body))).await;
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

pub async fn rename(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    // Parameters are checked before the container is looked for, as
    // dockerd's router checks them.
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Neither old nor new names may be empty"))?;
    let e = d.find(&id)?;
    d.rename(&e, name).await?;
    Ok(no_content())
}

pub async fn update(
    s: State,
    Path(id): Path<String>,
    version: Option<axum::Extension<super::ClientVersion>>,
    body: Bytes,
) -> Result<Json<Value>> {
    let d = s.0;
    let mut req = crate::daemon::resources::UpdateRequest::parse(&body)?;
    // PidsLimit came to update with API 1.40: an older client's is not
    // read, as dockerd's router drops it.
    if version.as_ref().is_some_and(|v| v.before((1, 40))) {
        req.pids_limit = None;
    }
    let e = d.find(&id)?;
    let warnings = d.update(&e, &req).await?;
    // dockerd answers null, not [], when it has nothing to warn about.
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        json!(warnings)
    };
    Ok(Json(json!({"Warnings": warnings})))
}

pub async fn remove(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    if flag(&q, "link") {
        d.remove_link(&id).await?;
        return Ok(no_content());
    }
    let e = d.find(&id)?;
    d.remove(&e, flag(&q, "force"), flag(&q, "v")).await?;
    Ok(no_content())
}

pub async fn prune(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(&f, &["label", "label!", "until"])?;
    let until = query::until(&f)?;
    let mut deleted = Vec::new();
    let sizes = disk_sizes(&d).await;
    let mut reclaimed = 0;
    for e in d.all() {
        let (ok, id) = {
            let c = e.c.lock().await;
            (
                !c.is_running()
                    && query::prune_labels_match(&c.config.labels, &f)
                    && until.is_none_or(|u| c.created < u),
                c.id.clone(),
            )
        };
        if ok && d.remove(&e, false, false).await.is_ok() {
            reclaimed += sizes.get(&id).map(|s| s.0).unwrap_or(0);
            deleted.push(id);
        }
    }
    d.events.pruned("container", reclaimed);
    Ok(Json(
        json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
    ))
}

fn log_options(q: &Params) -> Result<logs::Options> {
    // As dockerd reads it: a number of lines; anything else, or a
    // negative number, is every line.
    let tail = q
        .get("tail")
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok());
    Ok(logs::Options {
        stdout: flag(q, "stdout"),
        stderr: flag(q, "stderr"),
        since: query::time_param(q, "since")?,
        until: query::time_param(q, "until")?,
        tail,
        follow: flag(q, "follow"),
    })
}

/// What `logs` shows of each line besides the line.
#[derive(Clone, Copy, Default)]
struct Shown {
    timestamps: bool,
    /// The entry's attributes before the line (`--details`).
    details: bool,
}

/// An entry's attributes as dockerd prints them for `--details`: `k=v`
/// sorted by name, comma-separated, each part query-escaped, then a space
/// (alone when there are none).
fn details_prefix(attrs: &[(String, String)]) -> String {
    let escape = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    let mut pairs: Vec<&(String, String)> = attrs.iter().collect();
    pairs.sort();
    let mut out = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    out.push(' ');
    out
}

fn encode_line(l: &logs::Line, tty: bool, shown: Shown) -> Vec<u8> {
    let mut data = Vec::new();
    if shown.timestamps {
        data.extend_from_slice(l.time.as_bytes());
        data.push(b' ');
    }
    if shown.details {
        data.extend_from_slice(details_prefix(&l.attrs).as_bytes());
    }
    data.extend_from_slice(&l.data);
    if tty {
        data
    } else {
        frame(if l.stderr { STDERR } else { STDOUT }, &data)
    }
}

pub async fn logs(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let o = log_options(&q)?;
    if !o.stdout && !o.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let e = d.find(&id)?;
    let shown = Shown {
        timestamps: flag(&q, "timestamps"),
        details: flag(&q, "details"),
    };
    let (path, tty, running, journal) = {
        let c = e.c.lock().await;
        // Syslog's, gelf's and fluentd's lines are read from the cache kept beside,
        // unless the options turn it off (dockerd's dual logging).
        let uncached = c.logs_to_server()
            && !matches!(
                crate::daemon::logship::cache(&crate::daemon::ops::effective_log_opts(&d, &c)),
                Ok(Some(_))
            );
        if !c.keeps_logs() || uncached {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "configured logging driver does not support reading",
            ));
        }
        (
            c.log_path(),
            c.config.tty,
            c.is_running(),
            c.logs_to_journal(),
        )
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(64);
    if journal {
        let mut lines = if o.follow && running {
            journal::follow(e.id.clone(), o, e.running_watch()).map_err(ApiError::internal)?
        } else {
            let (ltx, lrx) = tokio::sync::mpsc::channel(64);
            let all = journal::read(&e.id, &o, None)
                .await
                .map_err(ApiError::internal)?;
            tokio::spawn(async move {
                for (l, _) in all {
                    if ltx.send(l).await.is_err() {
                        return;
                    }
                }
            });
            lrx
        };
        tokio::spawn(async move {
            while let Some(l) = lines.recv().await {
                if tx
                    .send(Ok(Bytes::from(encode_line(&l, tty, shown))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    } else if o.follow && running {
        let mut lines = logs::follow(path, o, e.running_watch());
        tokio::spawn(async move {
            while let Some(l) = lines.recv().await {
                if tx
                    .send(Ok(Bytes::from(encode_line(&l, tty, shown))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    } else {
        let lines = tokio::task::spawn_blocking(move || logs::read_all(&path, &o))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        tokio::spawn(async move {
            for l in lines {
                if tx
                    .send(Ok(Bytes::from(encode_line(&l, tty, shown))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    Ok((
        [(header::CONTENT_TYPE, super::stream::content_type(tty))],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// What an attach to a container that is not running yet waits for: the
/// start, which hands over a sender to acknowledge the subscription with.
type StartWaiter = tokio::sync::oneshot::Receiver<tokio::sync::oneshot::Sender<()>>;

/// Registers an attach with a container that has not started, so that its
/// start waits until the attach is subscribed to the output. It must happen
/// before the client gets its `101`: clients call start right after that.
async fn wait_for_start(e: &Arc<Entry>) -> Option<StartWaiter> {
    let c = e.c.lock().await;
    if c.is_running() {
        return None;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    e.attach_waiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(tx);
    Some(rx)
}

/// What an attach asked for (hijacked or WebSocket), checked before the
/// upgrade; the process's streams are opened once the client is there.
pub(super) struct AttachPlan {
    d: Arc<Daemon>,
    e: Arc<Entry>,
    pub tty: bool,
    pub stdin: bool,
    stdout: bool,
    stderr: bool,
    logs: bool,
    pub stream: bool,
    pub rules: StdinRules,
    log_path: std::path::PathBuf,
    journal: bool,
    waiter: Option<StartWaiter>,
    /// The attach event's attributes, taken with the record: the event
    /// goes out while a start may hold it (waiting for this attach).
    event_attrs: std::collections::BTreeMap<String, String>,
}

impl AttachPlan {
    /// `stream` defaults differ: on for POST attach, off for attach/ws.
    pub(super) async fn new(
        d: Arc<Daemon>,
        id: &str,
        q: &Params,
        stream_default: bool,
    ) -> Result<AttachPlan> {
        let e = d.find(id)?;
        let (tty, open_stdin, stdin_once, log_path, journal, event_attrs) = {
            let c = e.c.lock().await;
            if matches!(c.state.status, Status::Removing | Status::Dead) {
                return Err(ApiError::conflict(
                    "You cannot attach to a stopped container, start it first".to_string(),
                ));
            }
            (
                c.config.tty,
                c.config.open_stdin,
                c.config.stdin_once,
                c.log_path(),
                c.logs_to_journal(),
                Daemon::event_attrs(&c),
            )
        };
        let rules = StdinRules::new(tty, stdin_once, q.get("detachKeys").map(String::as_str))
            .map_err(ApiError::bad_request)?;
        let stream = flag_or(q, "stream", stream_default);
        let waiter = if stream {
            wait_for_start(&e).await
        } else {
            None
        };
        Ok(AttachPlan {
            tty,
            stdin: flag(q, "stdin") && open_stdin,
            stdout: flag(q, "stdout"),
            stderr: flag(q, "stderr"),
            logs: flag(q, "logs"),
            stream,
            rules,
            log_path,
            journal,
            waiter,
            event_attrs,
            d,
            e,
        })
    }

    pub(super) fn e_id(&self) -> String {
        self.e.id.clone()
    }

    /// The attach event: dockerd tells it once the replay is sent,
    /// whether the attach goes on streaming or not.
    pub(super) fn announce(&self) {
        self.d
            .events
            .publish("container", "attach", &self.e.id, self.event_attrs.clone());
    }

    /// The logged output asked for with `logs=1`, a piece per line as the
    /// client gets it (`raw`: no multiplexing frames).
    pub(super) async fn replay(&self, raw: bool) -> Vec<Vec<u8>> {
        if !self.logs {
            return Vec::new();
        }
        let o = logs::Options {
            stdout: self.stdout,
            stderr: self.stderr,
            ..Default::default()
        };
        let lines = if self.journal {
            match journal::read(&self.e.id, &o, None).await {
                Ok(l) => l.into_iter().map(|(l, _)| l).collect(),
                Err(e) => {
                    tracing::warn!("attach {}: {e}", self.e.id);
                    Vec::new()
                }
            }
        } else {
            logs::read_all(&self.log_path, &o)
        };
        lines
            .iter()
            .map(|l| encode_line(l, raw, Shown::default()))
            .collect()
    }

    /// The process's streams for a hijacked connection (the shim's attach
    /// socket when it has one); after the start when the container has not
    /// started yet.
    pub(super) async fn open_relay(mut self) -> Result<Streams> {
        let ack = self.wait_started().await?;
        let open = self.attach_open();
        let out = Streams::open(&self.d.lc, open, self.tty, &self.rules).await;
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        Ok(out?)
    }

    fn attach_open(&self) -> api::AttachOpen {
        api::AttachOpen {
            container_id: self.e.id.clone(),
            exec_id: String::new(),
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }

    /// Until the container's start, when it has not started yet; the start
    /// waits in turn until the returned sender is used (or dropped).
    async fn wait_started(&mut self) -> Result<Option<tokio::sync::oneshot::Sender<()>>> {
        match self.waiter.take() {
            None => Ok(None),
            Some(rx) => {
                Ok(Some(rx.await.map_err(|_| {
                    ApiError::conflict("container did not start")
                })?))
            }
        }
    }

    /// The process's output as lifecycled's messages, `input` feeding its
    /// stdin; after the start when the container has not started yet.
    pub(super) async fn open(
        mut self,
        input: tokio::sync::mpsc::Receiver<api::AttachRequest>,
    ) -> Result<tonic::Streaming<pb::Chunk>> {
        let ack = self.wait_started().await?;
        let out = self.d.lc.attach(self.attach_open(), Some(input)).await;
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        Ok(out?)
    }
}

pub async fn attach(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
    req: Request,
) -> Result<Response> {
    let plan = AttachPlan::new(s.0, &id, &q, true).await?;
    let tty = plan.tty;
    Ok(hijack(req, tty, move |io| async move {
        let (rd, mut wr) = tokio::io::split(io);
        for line in plan.replay(tty).await {
            if wr.write_all(&line).await.is_err() {
                return;
            }
        }
        plan.announce();
        if !plan.stream {
            let _ = wr.shutdown().await;
            return;
        }
        let (stdin, rules, id) = (plan.stdin, plan.rules.clone(), plan.e_id());
        let attachment = match plan.open_relay().await {
            Ok(a) => a,
            Err(err) => {
                tracing::warn!("attach {id}: {}", err.message);
                let _ = wr.shutdown().await;
                return;
            }
        };
        if attachment
            .relay(stdin.then_some(rd), &mut wr, tty, rules)
            .await
            == Copied::Gone
        {
            return;
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    }))
}

pub async fn resize(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let (h, w) = terminal_size(&q)?;
    let e = d.find(&id)?;
    let tty = {
        let c = e.c.lock().await;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                e.id
            )));
        }
        c.config.tty
    };
    // Without a terminal there is nothing to resize: dockerd (containerd's
    // shim) answers OK, and clients resize whatever they attach to.
    if !tty {
        return Ok(StatusCode::OK.into_response());
    }
    d.lc.tasks()
        .resize_pty(d.lc.req(api::ResizePtyRequest {
            container_id: e.id.clone(),
            exec_id: String::new(),
            width: w,
            height: h,
        }))
        .await?;
    let c = e.c.lock().await;
    d.container_event(
        &c,
        "resize",
        &[("height", h.to_string()), ("width", w.to_string())],
    );
    Ok(StatusCode::OK.into_response())
}

pub async fn top(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let e = d.find(&id)?;
    if !e.c.lock().await.is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            e.id
        )));
    }
    let pids: Vec<u32> =
        d.lc.tasks()
            .pids(d.lc.req(api::ContainerRequest { id: e.id.clone() }))
            .await?
            .into_inner()
            .processes
            .into_iter()
            .map(|p| p.pid)
            .collect();
    let args = q
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| "-ef".into());
    let out = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        // The first line says why, as dockerd reports it (the rest is ps's
        // usage).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(ApiError::internal(format!("ps: {}", why.trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields
            .get(pid_col)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            // The last column (the command) may contain spaces.
            let mut row: Vec<String> = fields
                .iter()
                .take(titles.len() - 1)
                .map(|s| s.to_string())
                .collect();
            row.push(
                fields
                    .iter()
                    .skip(titles.len() - 1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            procs.push(row);
        }
    }
    d.container_event(&*e.c.lock().await, "top", &[]);
    Ok(Json(json!({"Titles": titles, "Processes": procs})))
}

pub async fn changes(s: State, Path(id): Path<String>) -> Result<Json<Value>> {
    let d = s.0;
    let e = d.find(&id)?;
    let list =
        d.lc.snapshots()
            .changes(d.lc.req(api::SnapshotRequest {
                key: e.id.clone(),
                ..Default::default()
            }))
            .await?
            .into_inner()
            .changes;
    let list =
        crate::daemon::files::visible_changes(list.into_iter().map(|c| (c.path, c.kind)).collect());
    let v: Vec<Value> = list
        .into_iter()
        .map(|(path, kind)| json!({"Path": path, "Kind": kind}))
        .collect();
    Ok(Json(if v.is_empty() { Value::Null } else { json!(v) }))
}

pub async fn export(s: State, Path(id): Path<String>) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    let frozen = d.freeze(&e).await?;
    let stream =
        d.lc.snapshots()
            .export(d.lc.req(api::SnapshotRequest {
                key: e.id.clone(),
                ..Default::default()
            }))
            .await?
            .into_inner();
    d.container_event(&*e.c.lock().await, "export", &[]);
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        super::stream::chunk_body_holding(stream, frozen),
    )
        .into_response())
}

/// A unix st_mode as Go's os.FileMode, which Docker's stat header carries.
fn go_file_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    m |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// A resize's `h` and `w`, refused in Go's words as dockerd's router
/// parses them.
pub(super) fn terminal_size(q: &Params) -> Result<(u32, u32)> {
    let num = |k: &str| {
        let v = q.get(k).map(String::as_str).unwrap_or("");
        match v.parse::<i64>() {
            Ok(n) => u32::try_from(n).map_err(|_| ApiError::bad_request(format!("invalid {k}"))),
            Err(e) => {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                Err(ApiError::bad_request(format!(
                    "strconv.Atoi: parsing {v:?}: {why}"
                )))
            }
        }
    };
    Ok((num("h")?, num("w")?))
}

fn path_param(q: &Params) -> Result<String> {
    let p = q
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Bad parameter: 'path' cannot be empty"))?;
    if p.contains('\0') {
        return Err(ApiError::bad_request(
            "Bad parameter: 'path' contains a NUL byte",
        ));
    }
    Ok(p)
}

/// `path` as lifecycled is to reach it: in the volume or bind mounted at
/// the deepest mount point holding it (Docker copies into the volume, not
/// into the root filesystem under it), else in the root filesystem; with
/// the mount, if any, for its read-only flag.
fn archive_request(
    d: &Daemon,
    c: &Container,
    path: &str,
) -> (api::ArchiveRequest, Option<MountPoint>) {
    let lexical = crate::daemon::volumes::clean(path);
    // The engine's /etc files of a container that has them (it has
    // started), its own or those of the container whose network it
    // shares, as dockerd mounts them for a copy; a user's bind over one of
    // them (after them here) wins.
    let etc_dir = match c.host_config.network_mode.strip_prefix("container:") {
        Some(other) => d.find(other).ok().map(|o| d.containers_dir().join(&o.id)),
        None => Some(c.dir.clone()),
    };
    let etc: Vec<MountPoint> = etc_dir
        .map(|dir| crate::daemon::files::etc_mounts(&dir))
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let (source, destination) = (m["source"].as_str()?, m["destination"].as_str()?);
            std::path::Path::new(source).is_file().then(|| MountPoint {
                typ: "bind".into(),
                destination: destination.to_string(),
                source: source.to_string(),
                rw: true,
                ..Default::default()
            })
        })
        .collect();
    let reachable = || {
        etc.iter()
            .chain(c.mounts.iter())
            .filter(|m| !m.source.is_empty() && m.typ != "tmpfs")
    };
    let mount = reachable()
        .filter(|m| {
            let point = m.destination.trim_end_matches('/');
            lexical == point || lexical.starts_with(&format!("{point}/"))
        })
        .max_by_key(|m| m.destination.trim_end_matches('/').len());
    let mut r = api::ArchiveRequest {
        key: c.id.clone(),
        path: path.to_string(),
        mounts: reachable()
            .map(|m| api::ArchiveMount {
                point: m.destination.trim_end_matches('/').to_string(),
                source: m.source.clone(),
                read_only: !m.rw,
            })
            .collect(),
        ..Default::default()
    };
    if let Some(m) = mount {
        // The cleaned path, keeping what its end means to cp ("/." is a
        // directory's contents).
        r.path = if path.ends_with("/.") && lexical != "/" {
            format!("{lexical}/.")
        } else {
            lexical
        };
        r.mount_source = m.source.clone();
        r.mount_point = m.destination.trim_end_matches('/').to_string();
    }
    (r, mount.cloned())
}

/// The archive header of `path` in the container the caller named `id`
/// (the name it is told by when the path is not there, as dockerd's).
async fn stat_header(d: &Daemon, e: &Entry, id: &str, path: &str) -> Result<String> {
    let req = archive_request(d, &*e.c.lock().await, path).0;
    let st =
        d.lc.snapshots()
            .stat(d.lc.req(req))
            .await
            .map_err(|s| {
                if s.code() == tonic::Code::NotFound {
                    ApiError::not_found(format!("Could not find the file {path} in container {id}"))
                } else {
                    s.into()
                }
            })?
            .into_inner();
    // Files from tarballs may carry any mtime, before the epoch too.
    let mtime = st.mtime.map(|t| {
        let nanos = u32::try_from(t.nanos).unwrap_or(0);
        u64::try_from(t.seconds)
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(std::time::Duration::new(s, nanos)))
            .unwrap_or(UNIX_EPOCH)
    });
    let v = json!({"name": st.name, "size": st.size, "mode": go_file_mode(st.mode), "mtime": rfc3339(mtime), "linkTarget": st.link_target});
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(v.to_string()))
}

pub async fn archive_head(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let d = s.0;
    let path = path_param(&q)?;
    let e = d.find(&id)?;
    let _frozen = d.freeze(&e).await?;
    let h = stat_header(&d, &e, &id, &path).await?;
    Ok(([("X-Docker-Container-Path-Stat", h)], ()).into_response())
}

pub async fn archive_get(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response> {
    let d = s.0;
    let path = path_param(&q)?;
    let e = d.find(&id)?;
    let frozen = d.freeze(&e).await?;
    let h = stat_header(&d, &e, &id, &path).await?;
    let req = archive_request(&d, &*e.c.lock().await, &path).0;
    let stream =
        d.lc.snapshots()
            .read_archive(d.lc.req(req))
            .await?
            .into_inner();
    d.container_event(&*e.c.lock().await, "archive-path", &[]);
    Ok((
        [
            ("X-Docker-Container-Path-Stat", h),
            ("Content-Type", "application/x-tar".to_string()),
        ],
        super::stream::chunk_body_holding(stream, frozen),
    )
        .into_response())
}

pub async fn archive_put(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
    body: Body,
) -> Result<Response> {
    let mut body = body.into_data_stream();
    let result = put_archive(&s.0, &id, &q, &mut body).await;
    if result.is_err() {
        // The client may still be sending: what a small copy sends is read
        // first, as dockerd's server reads it, so that the client reads the
        // answer (a closed connection left the docker CLI with a broken
        // pipe instead of "No such container").
        super::body::drain_unread(&mut body).await;
    }
    result
}

async fn put_archive(
    d: &Arc<Daemon>,
    id: &str,
    q: &Params,
    body: &mut axum::body::BodyDataStream,
) -> Result<Response> {
    use futures::StreamExt;
    let path = path_param(q)?;
    let e = d.find(id)?;
    let target = {
        let c = e.c.lock().await;
        let (target, mount) = archive_request(d, &c, &path);
        match mount {
            // A 500 with dockerd's words, as it answers.
            Some(m) if !m.rw => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "mounted volume is marked read-only",
                ));
            }
            None if c.host_config.readonly_rootfs => {
                return Err(ApiError::forbidden("container rootfs is marked read-only"));
            }
            _ => target,
        }
    };
    let _frozen = d.freeze(&e).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<api::WriteArchiveRequest>(8);
    tx.send(api::WriteArchiveRequest {
        kind: Some(api::write_archive_request::Kind::Target(target)),
        no_overwrite_dir_non_dir: flag(q, "noOverwriteDirNonDir"),
        create_path: false,
    })
    .await
    .map_err(|_| ApiError::internal("archive relay closed"))?;
    // The body is relayed as it comes; lifecycled's answer ends the relay
    // early when it refuses the copy (the rest is then read by the caller).
    let relay = async move {
        while let Some(Ok(chunk)) = body.next().await {
            let m = api::WriteArchiveRequest {
                kind: Some(api::write_archive_request::Kind::Chunk(chunk.to_vec())),
                no_overwrite_dir_non_dir: false,
                create_path: false,
            };
            if tx.send(m).await.is_err() {
                break;
            }
        }
    };
    let mut snapshots = d.lc.snapshots();
    let write = snapshots.write_archive(d.lc.req(ReceiverStream::new(rx)));
    let (_, written) = tokio::join!(relay, write);
    written?;
    d.container_event(&*e.c.lock().await, "extract-to-dir", &[]);
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::NamePatterns;

    #[test]
    fn details_are_the_attrs_query_escaped_then_a_space() {
        let attrs = vec![
            ("tag".to_string(), "web 1".to_string()),
            ("app".to_string(), "a&b/c~".to_string()),
        ];
        assert_eq!(super::details_prefix(&attrs), "app=a%26b%2Fc~,tag=web+1 ");
        assert_eq!(super::details_prefix(&[]), " ");
    }

    fn name_matches(filter: &str, name: &str) -> bool {
        NamePatterns::new(&[filter.to_string()]).matches(name)
    }

    #[test]
    fn the_name_filter_is_a_regex_on_the_slashed_name() {
        assert!(name_matches("b1", "b1"));
        assert!(name_matches("b1", "xb12"));
        assert!(name_matches("/b1", "b1"));
        assert!(name_matches("^/b1$", "b1"));
        assert!(!name_matches("^/b1$", "b12"));
        assert!(!name_matches("^b1", "b1"));
        assert!(name_matches("web.*_1", "bench_web3_1"));
        // Not a regular expression: only the name itself.
        assert!(!name_matches("b1(", "b1("));
        assert!(name_matches("/b1(", "b1("));
        // Any of several values.
        let both = NamePatterns::new(&["^/a$".to_string(), "b".to_string()]);
        assert!(both.matches("a") && both.matches("xbx") && !both.matches("ax"));
    }
}
