//! /_ping, /version, /info, /events, /system/df.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use serde_json::{Value, json};

use super::query::{self, Params};
use super::{API_VERSION, MIN_API_VERSION, State};
use crate::daemon::container::Status;
use crate::daemon::images::familiar;
use crate::error::{ApiError, Result};

pub async fn ping(method: Method) -> Response {
    let body = if method == Method::HEAD { "" } else { "OK" };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            // The classic builder: clients that could use BuildKit build
            // with POST /build instead.
            (header::HeaderName::from_static("builder-version"), "1"),
        ],
        body,
    )
        .into_response()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub async fn version(s: State) -> Json<Value> {
    let d = s.0;
    let lc =
        d.lc.version()
            .version(d.lc.req(()))
            .await
            .map(|r| r.into_inner())
            .ok();
    let mut components = vec![
        json!({"Name": "Engine", "Version": env!("CARGO_PKG_VERSION"), "Details": {
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
        "Arch": specgen::seccomp::Target::native_go_arch(), "KernelVersion": kernel(), "GitCommit": ""}}),
    ];
    if let Some(v) = &lc {
        components.push(json!({"Name": "berth-lifecycled", "Version": v.version, "Details": {"Runtimes": v.runtimes.join(",")}}));
    }
    Json(json!({
        "Platform": {"Name": "berth"},
        "Components": components,
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": specgen::seccomp::Target::native_go_arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

fn meminfo_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

pub async fn info(s: State) -> Result<Json<Value>> {
    let d = s.0;
    let live = d.live();
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    for e in d.all() {
        match e.c.lock().await.state.status {
            Status::Running | Status::Restarting => running += 1,
            Status::Paused => paused += 1,
            _ => stopped += 1,
        }
    }
    let images =
        d.lc.images()
            .list(d.lc.req(api::ListImagesRequest::default()))
            .await
            .map(|r| {
                let mut ids: Vec<String> = r
                    .into_inner()
                    .images
                    .into_iter()
                    .map(|i| i.config_digest)
                    .collect();
                ids.sort();
                ids.dedup();
                ids.len()
            })
            .unwrap_or(0);
    let lc =
        d.lc.version()
            .version(d.lc.req(()))
            .await
            .map(|r| r.into_inner())
            .ok();
    let runtimes: serde_json::Map<String, Value> = lc
        .as_ref()
        .map(|v| {
            v.runtimes
                .iter()
                .map(|r| (r.clone(), json!({"path": r})))
                .collect()
        })
        .unwrap_or_default();
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let registry = json!({
        "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": ["127.0.0.0/8"],
        "IndexConfigs": live.insecure_registries.iter().map(|r| (r.clone(), json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}))).chain(std::iter::once(("docker.io".to_string(), json!({"Name": "docker.io", "Mirrors": live.registry_mirrors, "Secure": true, "Official": true})))).collect::<serde_json::Map<_, _>>(),
        "Mirrors": live.registry_mirrors,
    });
    Ok(Json(json!({
        "ID": format!("{:x}", fxhash(&hostname)),
        "Containers": running + paused + stopped,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": null, "Log": ["json-file"]},
        "Swarm": super::swarm::info(),
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false),
        "Debug": live.debug,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "NGoroutines": 0,
        "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": meminfo_total(),
        "DockerRootDir": d.cfg.data_root,
        "Name": hostname,
        "Labels": live.labels,
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes,
        "DefaultRuntime": live.default_runtime,
        "LiveRestoreEnabled": d.cfg.live_restore,
        "Isolation": "",
        "InitBinary": "docker-init",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": [],
    })))
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn event_matches(e: &crate::daemon::events::Event, f: &query::Filters) -> bool {
    let any = |k: &str, check: &dyn Fn(&str) -> bool| {
        f.get(k).is_none_or(|vals| vals.iter().any(|v| check(v)))
    };
    any("type", &|v| e.typ == v)
        && any("event", &|v| {
            e.action == v || e.action.split(':').next() == Some(v)
        })
        && any("container", &|v| {
            e.typ == "container"
                && (e.actor.id.starts_with(v)
                    || e.actor.attributes.get("name").is_some_and(|n| n == v))
        })
        && any("image", &|v| {
            e.actor
                .attributes
                .get("image")
                .is_some_and(|i| i == v || familiar(i) == v)
                || (e.typ == "image" && e.actor.id == v)
        })
        && any("volume", &|v| e.typ == "volume" && e.actor.id == v)
        && query::labels_match(&e.actor.attributes, f.get("label"))
}

/// `since`/`until` as event times (i64 nanoseconds, as Docker's).
fn event_time(q: &Params, key: &str) -> Result<Option<i64>> {
    let Some(t) = query::time_param(q, key)? else {
        return Ok(None);
    };
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    i64::try_from(nanos)
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: out of range")))
}

pub async fn events(s: State, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(
        &f,
        &[
            "type",
            "event",
            "container",
            "image",
            "volume",
            "label",
            "network",
            "daemon",
            "scope",
        ],
    )?;
    let since = event_time(&q, "since")?;
    let until = event_time(&q, "until")?;
    let (past, mut rx) = d.events.subscribe(since);
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let send = |e: &crate::daemon::events::Event| {
            let mut line = serde_json::to_vec(e).unwrap_or_default();
            line.push(b'\n');
            bytes::Bytes::from(line)
        };
        for e in past
            .iter()
            .filter(|e| event_matches(e, &f) && until.is_none_or(|u| e.time_nano <= u))
        {
            if tx.send(Ok(send(e))).await.is_err() {
                return;
            }
        }
        loop {
            let deadline = until.map(|u| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as i64;
                Duration::from_nanos((u - now).max(0) as u64)
            });
            let next = async {
                match deadline {
                    Some(dl) => tokio::time::timeout(dl, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                r = next => match r {
                    None => return,
                    Some(Ok(e)) => {
                        if event_matches(&e, &f) && tx.send(Ok(send(&e))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Some(Err(_)) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn df(s: State) -> Result<Json<Value>> {
    let d = s.0;
    let images = super::images::summaries(&d).await?;
    let sizes = super::containers::disk_sizes(&d).await;
    let mut containers = Vec::new();
    for e in d.all() {
        let c = e.c.lock().await;
        let size = sizes.get(&c.id).copied().unwrap_or_default();
        containers.push(
            serde_json::to_value(super::containers::summary(&c, Some(size)))
                .map_err(|e| crate::error::ApiError::internal(e.to_string()))?,
        );
    }
    let volumes: Vec<Value> = d
        .volumes
        .list()
        .into_iter()
        .map(|v| {
            let mut j = super::volumes::to_json(&d, &v);
            j["UsageData"] = json!({"Size": d.volumes.size(&v.name), "RefCount": 0});
            j
        })
        .collect();
    let layers: i64 = images.iter().filter_map(|i| i["Size"].as_i64()).sum();
    Ok(Json(json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": crate::build::usage(&d).await,
    })))
}
