//! /_ping, /version, /info, /events, /system/df.

use std::time::Duration;

use crate::api::json::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use serde_json::{Value, json};

use super::query::{self, Params};
use super::{API_VERSION, MIN_API_VERSION, State};
use crate::daemon::container::Status;
use crate::daemon::images::strip_tag;
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
        "Arch": specgen::seccomp::Target::native_go_arch(), "KernelVersion": kernel(), "GitCommit": "",
        // The fields dockerd's Engine details always carry (no Go here).
        "BuildTime": "", "Experimental": "false", "GoVersion": ""}}),
    ];
    if let Some(v) = &lc {
        components.push(json!({"Name": "berth-lifecycled", "Version": v.version, "Details": {"Runtimes": v.runtimes.join(","), "DefaultRuntime": v.default_runtime}}));
        // Each runtime as Docker lists runc: its version and binary.
        for r in &v.runtime_details {
            let version = r
                .version
                .rsplit(' ')
                .next()
                .filter(|_| r.version.contains("version"))
                .unwrap_or(&r.version);
            components.push(json!({"Name": r.name, "Version": version, "Details": {"Path": r.path, "VersionText": r.version}}));
        }
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
        match e.c.seen().state.status {
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
    let mut runtimes: serde_json::Map<String, Value> = lc
        .as_ref()
        .map(|v| {
            v.runtime_details
                .iter()
                .map(|r| (r.name.clone(), json!({"path": r.path})))
                .collect()
        })
        .unwrap_or_default();
    runc_alias(&mut runtimes, &live.default_runtime);
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let limits = Limits::of_this_host();
    let mut warnings = limits.warnings();
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if !forwarding {
        warnings.push("WARNING: IPv4 forwarding is disabled".to_string());
    }
    let mut bridge_nf = [false; 2];
    for (on, (file, name)) in bridge_nf.iter_mut().zip([
        (
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
            "bridge-nf-call-iptables",
        ),
        (
            "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
            "bridge-nf-call-ip6tables",
        ),
    ]) {
        let value = std::fs::read_to_string(file);
        *on = value.as_ref().is_ok_and(|v| v.trim() == "1");
        if value.is_ok_and(|v| v.trim() == "0") {
            warnings.push(format!("WARNING: {name} is disabled"));
        }
    }
    for h in &d.cfg.hosts {
        if let Ok(crate::hosts::Host::Tcp(addr)) = crate::hosts::parse(h)
            && d.cfg.tls.is_none()
        {
            warnings.push(format!(
                "WARNING: API is accessible on http://{addr} without encryption."
            ));
        }
    }
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
        "DriverStatus": [["Backing Filesystem", backing_filesystem(&d.cfg.data_root)], ["Supports d_type", "true"]],
        "Plugins": {"Volume": volume_drivers(&d), "Network": network_drivers(&d), "Authorization": authorization_plugins(&d), "Log": ["fluentd", "gelf", "journald", "json-file", "local", "syslog"]},
        "Swarm": super::swarm::info(),
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "MemoryLimit": limits.memory,
        "SwapLimit": limits.swap,
        "CpuCfsPeriod": limits.cfs,
        "CpuCfsQuota": limits.cfs,
        "CPUShares": limits.shares,
        "CPUSet": limits.cpuset,
        "PidsLimit": limits.pids,
        "OomKillDisable": limits.oom_kill_disable,
        "KernelMemoryTCP": limits.kernel_memory_tcp,
        "BridgeNfIptables": bridge_nf[0],
        "BridgeNfIp6tables": bridge_nf[1],
        "GenericResources": null,
        "HttpProxy": proxy_env("HTTP_PROXY"),
        "HttpsProxy": proxy_env("HTTPS_PROXY"),
        "NoProxy": proxy_env("NO_PROXY"),
        "IPv4Forwarding": forwarding,
        "Debug": live.debug,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "NGoroutines": 0,
        "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        "LoggingDriver": d.cfg.log_driver,
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
        "Warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
    })))
}

/// The daemon's proxy setting `name` (or its lower-case form) as dockerd
/// shows it: a password in it masked.
fn proxy_env(name: &str) -> String {
    let value = std::env::var(name)
        .or_else(|_| std::env::var(name.to_lowercase()))
        .unwrap_or_default();
    mask_password(&value)
}

/// `scheme://user:secret@host` → `scheme://user:xxxxx@host`; anything else
/// as it is.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:xxxxx@{host}"),
        None => url.to_string(),
    }
}

/// What this host's cgroups can limit, as Docker's info reports it: the
/// v1 controllers' files, or the controllers cgroup v2 makes available.
struct Limits {
    memory: bool,
    swap: bool,
    cfs: bool,
    shares: bool,
    cpuset: bool,
    pids: bool,
    oom_kill_disable: bool,
    kernel_memory_tcp: bool,
}

impl Limits {
    fn of_this_host() -> Limits {
        let root = std::path::Path::new("/sys/fs/cgroup");
        if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            // Swap accounting shows as memory.swap.max in the cgroups below
            // the root (the root has none); this daemon's own is one.
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("0::").map(String::from))
                })
                .unwrap_or_default();
            let swap = root
                .join(own.trim_start_matches('/'))
                .join("memory.swap.max")
                .exists();
            return Limits {
                memory: has("memory"),
                swap: has("memory") && swap,
                cfs: has("cpu"),
                shares: has("cpu"),
                cpuset: has("cpuset"),
                pids: has("pids"),
                // cgroup v2 has neither, as dockerd reports.
                oom_kill_disable: false,
                kernel_memory_tcp: false,
            };
        }
        let file = |c: &str, f: &str| root.join(c).join(f).exists();
        Limits {
            memory: file("memory", "memory.limit_in_bytes"),
            swap: file("memory", "memory.memsw.limit_in_bytes"),
            cfs: file("cpu", "cpu.cfs_quota_us"),
            shares: file("cpu", "cpu.shares"),
            cpuset: file("cpuset", "cpuset.cpus"),
            pids: file("pids", "pids.max") || root.join("pids").is_dir(),
            oom_kill_disable: file("memory", "memory.oom_control"),
            kernel_memory_tcp: file("memory", "memory.kmem.tcp.limit_in_bytes"),
        }
    }

    /// Docker's warnings for what is missing.
    fn warnings(&self) -> Vec<String> {
        [
            (self.memory, "WARNING: No memory limit support"),
            (self.swap, "WARNING: No swap limit support"),
            (self.cfs, "WARNING: No cpu cfs quota support"),
            (self.cfs, "WARNING: No cpu cfs period support"),
            (self.shares, "WARNING: No cpu shares support"),
            (self.cpuset, "WARNING: No cpuset support"),
        ]
        .into_iter()
        .filter(|(have, _)| !have)
        .map(|(_, w)| w.to_string())
        .collect()
    }
}

/// The file system under the data root by Docker's names for it.
/// The volume drivers `info` names, as dockerd's: the local driver and the
/// legacy plugins used or listed so far (managed plugins are not named).
fn volume_drivers(d: &crate::daemon::Daemon) -> Vec<String> {
    let mut names = d.plugins.legacy.activated("VolumeDriver");
    names.push("local".into());
    names.sort();
    names
}

/// berth's network drivers and, as dockerd lists them, those of the
/// networks that exist (a plugin's).
fn network_drivers(d: &crate::daemon::Daemon) -> Vec<String> {
    let mut names: Vec<String> = ["bridge", "host", "ipvlan", "macvlan", "null"]
        .map(String::from)
        .to_vec();
    for n in d.networks.all() {
        if !names.contains(&n.driver) {
            names.push(n.driver);
        }
    }
    names.sort();
    names
}

/// The authorization plugins asked about every call, null for none.
fn authorization_plugins(d: &crate::daemon::Daemon) -> Value {
    let names = d.live().authorization_plugins.clone();
    if names.is_empty() {
        Value::Null
    } else {
        json!(names)
    }
}

fn backing_filesystem(path: &std::path::Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "<unknown>".into();
    };
    let magic = st.filesystem_type().0 as u64;
    match magic {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        _ => return format!("0x{magic:x}"),
    }
    .into()
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
            // dockerd's: the actor's id or image name (an image event's
            // "name"), each also without its tag.
            let name = e
                .actor
                .attributes
                .get(if e.typ == "image" { "name" } else { "image" });
            let id = e.actor.id.as_str();
            [Some(id), name.map(String::as_str)]
                .into_iter()
                .flatten()
                .any(|x| x == v || strip_tag(x) == v)
        })
        && any("volume", &|v| e.typ == "volume" && e.actor.id == v)
        // An object filter keeps that object's events: by id (or its
        // prefix) or name. The swarm's and the daemon's kinds are dockerd's
        // keys too; berth tells none of their events.
        && ["network", "plugin", "daemon", "node", "service", "secret", "config"]
            .iter()
            .all(|kind| {
                any(kind, &|v| {
                    e.typ == *kind
                        && (e.actor.id.starts_with(v)
                            || e.actor.attributes.get("name").is_some_and(|n| n == v))
                })
            })
        // Every event of an engine that is no swarm node is local.
        && any("scope", &|v| v == "local")
        && query::labels_match(&e.actor.attributes, f.get("label"))
}

/// `since`/`until` as event times (i64 nanoseconds, as Docker's).
fn event_time(q: &Params, key: &str) -> Result<Option<i64>> {
    // Unix time 0 is a time like any other here (`docker events --since
    // 0` is every event kept); for logs it means no bound.
    if q.get(key).is_some_and(|v| v.trim() == "0") {
        return Ok(Some(0));
    }
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
    // The times are checked first, as dockerd checks them.
    let since = event_time(&q, "since")?;
    let until = event_time(&q, "until")?;
    if let (Some(a), Some(b)) = (since, until)
        && a > b
    {
        let raw = |k: &str| q.get(k).cloned().unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "`since` time ({}) cannot be after `until` time ({})",
            raw("since"),
            raw("until")
        )));
    }
    // Keys it does not know filter nothing: dockerd's events check none
    // (its lists do), so a client's newer key is not a 400.
    let f = query::filters(&q)?;
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
    let sizes = super::containers::disk_sizes(&d).await;
    let mut containers = Vec::new();
    let mut image_users = std::collections::BTreeMap::<String, i64>::new();
    let mut volume_users = std::collections::BTreeMap::<String, i64>::new();
    for e in d.all() {
        let c = e.c.seen();
        *image_users.entry(c.image_id.clone()).or_default() += 1;
        for m in c.mounts.iter().filter(|m| m.typ == "volume") {
            *volume_users.entry(m.name.clone()).or_default() += 1;
        }
        let size = sizes.get(&c.id).copied().unwrap_or_default();
        containers.push(
            serde_json::to_value(super::containers::summary(&c, Some(size)))
                .map_err(|e| crate::error::ApiError::internal(e.to_string()))?,
        );
    }
    // The local driver's volumes, as dockerd counts them.
    let volumes: Vec<Value> = d
        .volumes
        .list()
        .into_iter()
        .filter(|v| v.driver == crate::daemon::volumes::LOCAL)
        .map(|v| {
            let mut j = super::volumes::to_json(&d, &v);
            let users = volume_users.get(&v.name).copied().unwrap_or(0);
            j["UsageData"] = json!({"Size": d.volumes.size(&v.name), "RefCount": users});
            j
        })
        .collect();
    let (images, layers) = super::images::usage(&d, &image_users).await?;
    let cache = crate::build::usage(&d).await;
    let builder: i64 = cache.iter().filter_map(|c| c["Size"].as_i64()).sum();
    Ok(Json(json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": if cache.is_empty() { Value::Null } else { json!(cache) },
        "BuilderSize": builder,
    })))
}

/// Clients written for Docker name its default `runc` (compose checks
/// Runtimes for it); without a runtime of that name it is the default one
/// (`Daemon::lifecycled_runtime`), listed as such.
fn runc_alias(runtimes: &mut serde_json::Map<String, Value>, default: &str) {
    if !runtimes.contains_key("runc")
        && let Some(d) = runtimes.get(default).cloned()
    {
        runtimes.insert("runc".into(), d);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runc_names_the_default_runtime_unless_there_is_one() {
        use serde_json::json;
        let mut r = json!({"berth-runtime": {"path": "/b"}})
            .as_object()
            .cloned()
            .unwrap();
        super::runc_alias(&mut r, "berth-runtime");
        assert_eq!(r["runc"], json!({"path": "/b"}));
        let mut r = json!({"berth-runtime": {"path": "/b"}, "runc": {"path": "/r"}})
            .as_object()
            .cloned()
            .unwrap();
        super::runc_alias(&mut r, "berth-runtime");
        assert_eq!(r["runc"], json!({"path": "/r"}));
    }

    use super::mask_password;

    #[test]
    fn a_proxy_password_is_masked_and_nothing_else_changes() {
        assert_eq!(
            mask_password("http://joe:s3cret@proxy.example:3128"),
            "http://joe:xxxxx@proxy.example:3128"
        );
        assert_eq!(
            mask_password("http://joe@proxy:3128"),
            "http://joe@proxy:3128"
        );
        assert_eq!(mask_password("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(mask_password("proxy:3128"), "proxy:3128");
        assert_eq!(mask_password(""), "");
    }
}
