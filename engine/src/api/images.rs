//! /images/… and /commit, over lifecycled's Images service.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::json::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};
use tokio_stream::wrappers::ReceiverStream;

use super::State;
use super::query::{self, Params, flag};
use crate::daemon::Daemon;
use crate::daemon::images::{familiar, normalize, repository};
use crate::error::{ApiError, Result};

/// How lifecycled names an image only its digest names (an unnamed import
/// or commit), as Docker's containerd image store does.
const DANGLING: &str = "moby-dangling";

/// `repo` and `tag` query parameters as one reference. The Docker CLI
/// sends `import`'s whole reference as `repo`, with the tag in it.
fn with_tag(repo: &str, tag: &str) -> String {
    let last = repo.rsplit('/').next().unwrap_or(repo);
    if repo.contains('@') || last.contains(':') {
        repo.to_string()
    } else {
        format!("{repo}:{}", if tag.is_empty() { "latest" } else { tag })
    }
}

/// `name` with `tag` in place of any tag or digest it has, as dockerd's tag
/// and push routes apply their `tag` (reference.WithTag of the name): a
/// push of `host/app:latest` with `tag=latest` is `host/app:latest`.
fn retag(name: &str, tag: &str) -> String {
    let base = name.split_once('@').map_or(name, |(b, _)| b);
    let last = base.rfind('/').map_or(0, |i| i + 1);
    let base = base[last..].rfind(':').map_or(base, |i| &base[..last + i]);
    format!("{base}:{tag}")
}

fn unix_of(created: &str) -> i64 {
    humantime::parse_rfc3339_weak(created)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Grouped {
    id: String,
    /// The image a build step made this one from.
    parent: String,
    names: Vec<String>,
    config: Value,
    size: i64,
    created: String,
    digests: Vec<String>,
    diff_ids: Vec<String>,
    /// Each layer's bytes, as stored.
    layer_sizes: Vec<i64>,
    /// Names only its digest gives it (a commit or import without a name).
    dangling: Vec<String>,
}

/// Each image's parent (the image a build step or commit made it from;
/// empty for none), by id.
pub(crate) async fn parents(d: &Daemon) -> Result<BTreeMap<String, String>> {
    Ok(grouped(d)
        .await?
        .into_iter()
        .map(|g| (g.id, g.parent))
        .collect())
}

async fn grouped(d: &Daemon) -> Result<Vec<Grouped>> {
    grouped_with(d, Vec::new()).await
}

/// The image of one id, from its names only: lifecycled reads no other
/// image (the whole list costs every image's manifest and config). One
/// older than the engine does not know the filter: then from the list.
async fn grouped_one(d: &Daemon, id: &str) -> Result<Option<Grouped>> {
    let groups = match grouped_with(d, vec![format!("config=={id}")]).await {
        Err(e) if e.status == StatusCode::BAD_REQUEST => grouped(d).await?,
        r => r?,
    };
    Ok(groups.into_iter().find(|g| g.id == id))
}

async fn grouped_with(d: &Daemon, filters: Vec<String>) -> Result<Vec<Grouped>> {
    let list =
        d.lc.images()
            .list(d.lc.req(api::ListImagesRequest { filters }))
            .await?
            .into_inner()
            .images;
    let mut by_id: BTreeMap<String, Grouped> = BTreeMap::new();
    for i in list {
        // An id's names share its config: it is read once.
        let g = by_id.entry(i.config_digest.clone()).or_insert_with(|| {
            let config: Value = serde_json::from_slice(&i.config).unwrap_or_default();
            Grouped {
                id: i.config_digest.clone(),
                parent: i
                    .labels
                    .get(crate::build::PARENT_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                names: Vec::new(),
                created: config["created"].as_str().unwrap_or("").to_string(),
                config,
                size: i.size,
                digests: Vec::new(),
                diff_ids: i.diff_ids.clone(),
                // From a lifecycled older than the engine: the blobs'.
                layer_sizes: if i.layer_sizes.len() == i.layers.len() {
                    i.layer_sizes.clone()
                } else {
                    i.layers.iter().map(|l| l.size).collect()
                },
                dangling: Vec::new(),
            }
        });
        if i.name.starts_with(DANGLING) {
            g.dangling.push(i.name.clone());
        }
        if g.parent.is_empty()
            && let Some(p) = i.labels.get(crate::build::PARENT_LABEL)
        {
            g.parent = p.clone();
        }
        if let Some(t) = &i.target
            && !i.name.starts_with(DANGLING)
        {
            let rd = format!("{}@{}", familiar(repository(&i.name)), t.digest);
            if !g.digests.contains(&rd) {
                g.digests.push(rd);
            }
        }
        if !i.name.contains('@') {
            g.names.push(i.name);
        }
    }
    Ok(by_id.into_values().collect())
}

/// An image's config with every key dockerd's inspect shows (clients
/// index `Config["OnBuild"]` and the like without checking).
fn full_config(c: &Value) -> Value {
    let mut out = if c.is_object() { c.clone() } else { json!({}) };
    for (k, v) in [
        ("Hostname", json!("")),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Image", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
        ("OnBuild", Value::Null),
        ("Labels", Value::Null),
    ] {
        if out.get(k).is_none() {
            out[k] = v;
        }
    }
    out
}

/// Each image's size by id (for containers' SizeRootFs).
pub async fn sizes(d: &Daemon) -> BTreeMap<String, i64> {
    grouped(d)
        .await
        .map(|gs| gs.into_iter().map(|g| (g.id, g.size)).collect())
        .unwrap_or_default()
}

fn summary(g: &Grouped) -> Value {
    let tags: Vec<String> = g.names.iter().map(|n| familiar(n)).collect();
    json!({
        "Id": g.id,
        "ParentId": g.parent,
        "RepoTags": tags,
        "RepoDigests": g.digests,
        "Created": unix_of(&g.created),
        "Size": g.size,
        "VirtualSize": g.size,
        "SharedSize": -1,
        "Labels": g.config["config"]["Labels"].clone(),
        "Containers": -1,
    })
}

/// The images as `system df` shows them, and the bytes of all their
/// layers with each layer counted once. Each image says how many
/// containers use it (`users`, by image id) and how many of its bytes are
/// in layers another image has too: a layer is shared when another image
/// has it over the same layers (the same chain), as Docker's layer store
/// shares it.
pub async fn usage(d: &Daemon, users: &BTreeMap<String, i64>) -> Result<(Vec<Value>, i64)> {
    let all = grouped(d).await?;
    // Each image's layers named by their chain: the diff ids up to them.
    let chains: Vec<Vec<(String, i64)>> = all
        .iter()
        .map(|g| {
            let mut chain = String::new();
            g.diff_ids
                .iter()
                .zip(&g.layer_sizes)
                .map(|(id, size)| {
                    chain.push_str(id);
                    chain.push('/');
                    (chain.clone(), *size)
                })
                .collect()
        })
        .collect();
    let mut held: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for (chain, size) in chains.iter().flatten() {
        held.entry(chain).or_insert((0, *size)).0 += 1;
    }
    let layers = held.values().map(|(_, size)| size).sum();
    let images = all
        .iter()
        .zip(&chains)
        .map(|(g, chains)| {
            let shared: i64 = chains
                .iter()
                .filter(|(chain, _)| held.get(chain.as_str()).is_some_and(|(n, _)| *n > 1))
                .map(|(_, size)| size)
                .sum();
            let mut j = summary(g);
            j["Containers"] = json!(users.get(&g.id).copied().unwrap_or(0));
            j["SharedSize"] = json!(shared);
            j
        })
        .collect();
    Ok((images, layers))
}

pub async fn list(
    s: State,
    Query(q): Query<Params>,
    version: Option<axum::Extension<super::ClientVersion>>,
) -> Result<Json<Vec<Value>>> {
    let d = s.0;
    // Before API 1.43 an untagged image listed placeholders, not [].
    let placeholders = version.is_some_and(|v| v.before((1, 43)));
    let f = query::filters(&q)?;
    query::only(
        &f,
        &["dangling", "label", "reference", "before", "since", "until"],
    )?;
    // Image lists take `true` and `false` only (not 1 and 0), as dockerd's.
    let dangling = query::dangling(&f, &["true"], &["false"])?;
    let mut all = grouped(&d).await?;
    // A build's intermediate images (untagged parents of other images)
    // show with `all` only, as Docker's.
    if !flag(&q, "all") {
        let parents: std::collections::BTreeSet<String> =
            all.iter().map(|g| g.parent.clone()).collect();
        all.retain(|g| !(g.names.is_empty() && parents.contains(&g.id)));
    }
    if let Some(want) = dangling {
        all.retain(|g| g.names.is_empty() == want);
    }
    if let Some(refs) = f.get("reference") {
        // As dockerd: an image shows with the names that matched, and not
        // at all without one (its other tags are not listed).
        let matches = |n: &String| {
            let fam = familiar(n);
            refs.iter()
                .any(|r| glob(r, &fam) || glob(r, familiar(repository(n)).as_str()) || glob(r, n))
        };
        for g in &mut all {
            g.names.retain(matches);
            g.digests.retain(matches);
        }
        all.retain(|g| !g.names.is_empty() || !g.digests.is_empty());
    }
    // `until` as newer dockerd lists it: images created before it.
    let until = query::until(&f)?
        .and_then(|u| u.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|u| u.as_secs() as i64);
    all.retain(|g| {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(g.config["config"]["Labels"].clone()).unwrap_or_default();
        query::labels_match(&labels, f.get("label"))
            && until.is_none_or(|u| unix_of(&g.created) < u)
    });
    for (k, after) in [("before", false), ("since", true)] {
        if let Some(r) = f.get(k).and_then(|v| v.first()) {
            let pivot = d.find_image(r).await?;
            let pivot_created = all
                .iter()
                .find(|g| g.id == pivot.id)
                .map(|g| unix_of(&g.created))
                .unwrap_or(0);
            all.retain(|g| {
                if after {
                    unix_of(&g.created) > pivot_created
                } else {
                    unix_of(&g.created) < pivot_created
                }
            });
        }
    }
    let mut out: Vec<(i64, Value)> = all
        .iter()
        .map(|g| {
            let mut v = summary(g);
            if placeholders {
                for (k, none) in [
                    ("RepoTags", "<none>:<none>"),
                    ("RepoDigests", "<none>@<none>"),
                ] {
                    if v[k].as_array().is_none_or(|a| a.is_empty()) {
                        v[k] = json!([none]);
                    }
                }
            }
            (unix_of(&g.created), v)
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(Json(out.into_iter().map(|(_, v)| v).collect()))
}

/// Docker's reference filter: shell-style patterns (`busy*`, `*:latest`).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

/// Docker's `GraphDriver.Data` of an image, as overlay2 shows one: its
/// top layer's directory, and the layers under it.
async fn image_graph(d: &Daemon, config: &Value) -> Value {
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let Some(top) = chain_ids(&diff_ids).pop() else {
        return Value::Null;
    };
    let layers = super::containers::graph_data(
        d,
        api::SnapshotRequest {
            layer: top,
            ..Default::default()
        },
    )
    .await;
    let Some(lower) = layers["LowerDir"].as_str() else {
        return Value::Null;
    };
    let (upper, rest) = lower.split_once(':').unwrap_or((lower, ""));
    let mut graph = json!({"UpperDir": upper});
    if !rest.is_empty() {
        graph["LowerDir"] = json!(rest);
    }
    graph
}

async fn inspect(d: &Daemon, name: &str) -> Result<Value> {
    // The name's lookup, then where its layers are and its other names
    // side by side.
    let found = d.find_image(name).await?;
    let (graph, group) = tokio::join!(image_graph(d, &found.config), grouped_one(d, &found.id));
    let g = group?.ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    let c = &g.config;
    Ok(json!({
        "Id": g.id,
        "RepoTags": g.names.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
        "RepoDigests": g.digests,
        "Parent": g.parent,
        "Comment": c["comment"].as_str().unwrap_or(""),
        "Created": g.created,
        "Container": c["container"].as_str().unwrap_or(""),
        "ContainerConfig": full_config(&c["container_config"]),
        "DockerVersion": "",
        "Author": c["author"].as_str().unwrap_or(""),
        "Config": full_config(&c["config"]),
        "Architecture": c["architecture"],
        "Os": c["os"],
        "Size": g.size,
        "VirtualSize": g.size,
        "GraphDriver": {"Data": graph, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": g.diff_ids},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
}

/// An image's history as dockerd tells it: newest first, each step with
/// its layer's size (0 for a step that made none), and the images it was
/// made from, along its parents, named beside the steps that made them.
async fn history(d: &Daemon, name: &str) -> Result<Value> {
    let found = d.find_image(name).await?;
    let all = grouped(d).await?;
    let by_id: BTreeMap<&str, &Grouped> = all.iter().map(|g| (g.id.as_str(), g)).collect();
    let sizes = by_id
        .get(found.id.as_str())
        .map(|g| g.layer_sizes.clone())
        .unwrap_or_default();
    let mut layers = sizes.into_iter();
    let mut out: Vec<Value> = Vec::new();
    for h in found.config["history"].as_array().into_iter().flatten() {
        let size = if h["empty_layer"].as_bool().unwrap_or(false) {
            0
        } else {
            layers.next().unwrap_or(0)
        };
        out.push(json!({
            "Id": "<missing>",
            "Created": unix_of(h["created"].as_str().unwrap_or("")),
            "CreatedBy": h["created_by"].as_str().unwrap_or(""),
            "Tags": null,
            "Size": size,
            "Comment": h["comment"].as_str().unwrap_or(""),
        }));
    }
    out.reverse();
    let mut id = found.id.clone();
    for row in out.iter_mut() {
        let Some(g) = by_id.get(id.as_str()) else {
            break;
        };
        row["Id"] = json!(g.id);
        let tags: Vec<String> = g.names.iter().map(|n| familiar(n)).collect();
        if !tags.is_empty() {
            row["Tags"] = json!(tags);
        }
        id = g.parent.clone();
    }
    Ok(json!(out))
}

/// GET /images/{name}/json and /images/{name}/history (names contain '/').
pub async fn by_name(s: State, Path(rest): Path<String>) -> Result<Response> {
    let d = s.0;
    if let Some(name) = rest.strip_suffix("/json") {
        return Ok(Json(inspect(&d, name).await?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(history(&d, name).await?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save_images(&d, &[name.to_string()]).await;
    }
    Err(ApiError::not_found(format!(
        "page not found: /images/{rest}"
    )))
}

/// GET /distribution/{name}/json: what the registry holds under a name,
/// asked of the registry without pulling (the manifest or index it points
/// at and the platforms it has), with the caller's X-Registry-Auth.
pub async fn distribution(
    s: State,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let d = s.0;
    let Some(name) = rest.strip_suffix("/json").filter(|n| !n.is_empty()) else {
        return Err(ApiError::not_found(format!(
            "page not found: /distribution/{rest}"
        )));
    };
    let full = normalize(&with_tag(name, "")).map_err(ApiError::bad_request)?;
    let r =
        d.lc.images()
            .distribution(d.lc.req(api::PullRequest {
                reference: full.clone(),
                auth: registry_auth(&headers),
                registry: Some(registry_options(&d, &full)),
                ..Default::default()
            }))
            .await?
            .into_inner();
    let desc = r.descriptor.unwrap_or_default();
    let platforms: Vec<Value> = r
        .platforms
        .iter()
        .map(|p| {
            let mut o = json!({"architecture": p.architecture, "os": p.os});
            if !p.os_version.is_empty() {
                o["os.version"] = json!(p.os_version);
            }
            if !p.os_features.is_empty() {
                o["os.features"] = json!(p.os_features);
            }
            if !p.variant.is_empty() {
                o["variant"] = json!(p.variant);
            }
            o
        })
        .collect();
    Ok(Json(json!({
        "Descriptor": {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size},
        "Platforms": platforms,
    }))
    .into_response())
}

/// POST /images/{name}/tag and /images/{name}/push.
pub async fn by_name_post(
    s: State,
    Path(rest): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Result<Response> {
    let d = s.0;
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| {
            ApiError::bad_request("repository name must have at least one component")
        })?;
        let tag = q
            .get("tag")
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| "latest".into());
        if !is_tag(&tag) {
            return Err(ApiError::bad_request("invalid tag format"));
        }
        let target = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => retag(repo, t),
            None => with_tag(repo, &tag),
        };
        let target = normalize(&target).map_err(ApiError::bad_request)?;
        if familiar(repository(&target)) == "sha256" {
            return Err(ApiError::bad_request(
                "refusing to create an ambiguous tag using digest algorithm as name",
            ));
        }
        let src = d.find_image(name).await?;
        d.lc.images()
            .tag(d.lc.req(api::TagImageRequest {
                source: src.name.clone(),
                target: target.clone(),
            }))
            .await?;
        d.events.publish(
            "image",
            "tag",
            &src.id,
            BTreeMap::from([("name".to_string(), familiar(&target))]),
        );
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = rest.strip_suffix("/push") {
        let tag = q.get("tag").filter(|t| !t.is_empty());
        let full = normalize(&match tag {
            Some(t) => retag(name, t),
            None => name.to_string(),
        })
        .map_err(ApiError::bad_request)?;
        let auth = registry_auth(&headers);
        // What is not here is said in the stream, as dockerd's push says it.
        if let Err(e) = d.find_image(&full).await
            && e.status == StatusCode::NOT_FOUND
        {
            let m = format!(
                "An image does not exist locally with the tag: {}",
                familiar(repository(&full))
            );
            let lines = [
                json!({"status": format!("The push refers to repository [{}]", repository(&full))}),
                json!({"errorDetail": {"message": m}, "error": m}),
            ];
            let body: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
            return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
        }
        let stream =
            d.lc.images()
                .push(d.lc.req(api::PushRequest {
                    name: full.clone(),
                    reference: full.clone(),
                    auth,
                    registry: Some(registry_options(&d, &full)),
                }))
                .await;
        return Ok(push_response(&d, stream, full));
    }
    Err(ApiError::not_found(format!(
        "page not found: /images/{rest}"
    )))
}

/// A pull's `platform`, read as containerd's platforms.Parse reads it (an
/// unknown word is refused in its words); berthd pulls this machine's
/// platform only, so another one is refused rather than answered with an
/// image for this one.
fn pull_platform(p: &str) -> Result<()> {
    if p.is_empty() {
        return Ok(());
    }
    const OSES: &[&str] = &[
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
    ];
    const ARCHES: &[&str] = &[
        "amd64", "x86_64", "x86-64", "arm64", "aarch64", "arm", "armhf", "armel", "386", "i386",
        "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "mipsle", "mips", "loong64",
    ];
    let parts: Vec<&str> = p.split('/').collect();
    for part in &parts {
        if part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::bad_request(format!(
                "{part:?} is an invalid component of {p:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
            )));
        }
    }
    let lower: Vec<String> = parts.iter().map(|s| s.to_ascii_lowercase()).collect();
    let (os, arch) = match lower.as_slice() {
        [one] if OSES.contains(&one.as_str()) => (one.as_str(), ""),
        [one] if ARCHES.contains(&one.as_str()) => ("linux", one.as_str()),
        [os, arch] | [os, arch, _] => (os.as_str(), arch.as_str()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{p:?}: unknown operating system or architecture: invalid argument"
            )));
        }
    };
    let arch = match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let host = crate::daemon::images::host_architecture();
    if os != "linux" || !(arch.is_empty() || arch == host) {
        return Err(ApiError::bad_request(format!(
            "platform {p:?} is not supported: this engine pulls linux/{host} images only"
        )));
    }
    Ok(())
}

/// A tag as the distribution reference grammar has it: `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    chars.next().is_some_and(word)
        && t.len() <= 128
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// X-Registry-Auth: base64url JSON {username, password, identitytoken,
/// registrytoken}. One that does not decode is no credentials, as dockerd
/// takes it "to increase compatibility" (aiodocker sends `placeholder` for
/// an anonymous push): the registry then says what it needs.
pub(crate) fn registry_auth(headers: &HeaderMap) -> Option<pb::Auth> {
    let h = headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())?;
    let v = decode_auth_json(h)?;
    v.is_object().then(|| auth_of(&v))
}

/// A base64 JSON header, or None (and a note in the log) as dockerd's
/// decoders drop what they cannot read.
pub(crate) fn decode_auth_json(h: &str) -> Option<Value> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim()))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h.trim()))
        .ok();
    let v = raw.and_then(|raw| serde_json::from_slice::<Value>(&raw).ok());
    if v.is_none() {
        tracing::debug!("a registry credentials header that is no base64 JSON: taken as none");
    }
    v.filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
}

/// Docker's AuthConfig JSON (X-Registry-Auth, X-Registry-Config entries).
pub(crate) fn auth_of(v: &Value) -> pb::Auth {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    pb::Auth {
        username: s("username"),
        password: s("password"),
        identity_token: s("identitytoken"),
        registry_token: s("registrytoken"),
    }
}

/// POST /auth: checks credentials against a registry, as `docker login`
/// does before it stores them.
pub async fn auth(s: State, body: Bytes) -> Result<Response> {
    let d = s.0;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let server = text("serveraddress");
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    // Docker Hub's several names all mean its registry host.
    let host = match host.as_str() {
        "" | "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
        h => h.to_string(),
    };
    let options = registry_options(&d, &format!("{host}/x"));
    let r =
        d.lc.images()
            .login(d.lc.req(api::LoginRequest {
                registry: host,
                auth: Some(pb::Auth {
                    username: text("username"),
                    password: text("password"),
                    identity_token: text("identitytoken"),
                    registry_token: String::new(),
                }),
                options: Some(options),
            }))
            .await;
    match r {
        Ok(r) => {
            Ok(Json(json!({"Status": r.into_inner().status, "IdentityToken": ""})).into_response())
        }
        Err(st) if st.code() == tonic::Code::Unauthenticated => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            st.message().to_string(),
        )),
        Err(st) => Err(st.into()),
    }
}

/// GET /images/search: `docker search`, asked of the index the term names
/// (Docker Hub's unless its first part is a host, as dockerd splits it),
/// with dockerd's limit and filters.
pub async fn search(s: State, Query(q): Query<Params>, headers: HeaderMap) -> Result<Response> {
    let d = s.0;
    let term = q.get("term").cloned().unwrap_or_default();
    if term.is_empty() {
        return Err(ApiError::bad_request("term is required"));
    }
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?,
        None => 25,
    };
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "Limit {limit} is outside the range of [1, 100]"
        )));
    }
    let f = query::filters(&q)?;
    query::only(&f, &["stars", "is-automated", "is-official"])?;
    let bad = |k: &str, v: &str| ApiError::bad_request(format!("Invalid filter '{k}={v}'"));
    let mut stars = 0i64;
    for v in f.get("stars").into_iter().flatten() {
        stars = stars.max(v.parse().map_err(|_| bad("stars", v))?);
    }
    let flag = |k: &str| -> Result<Option<bool>> {
        match f.get(k).and_then(|v| v.first()) {
            Some(v) => match v.as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(bad(k, v)),
            },
            None => Ok(None),
        }
    };
    let (official, automated) = (flag("is-official")?, flag("is-automated")?);
    let (index, remote) = match term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ => (
            "index.docker.io".to_string(),
            term.strip_prefix("library/").unwrap_or(&term).to_string(),
        ),
    };
    let auth = registry_auth(&headers);
    let found =
        d.lc.images()
            .search(d.lc.req(api::SearchRequest {
                index: index.clone(),
                term: remote,
                limit: limit as u32,
                auth,
                options: Some(registry_options(&d, &format!("{index}/x"))),
            }))
            .await?
            .into_inner()
            .results;
    let out: Vec<Value> = found
        .into_iter()
        .filter(|r| {
            r.star_count >= stars
                && official.is_none_or(|o| o == r.is_official)
                && automated.is_none_or(|a| a == r.is_automated)
        })
        .map(|r| {
            json!({"star_count": r.star_count, "is_official": r.is_official, "name": r.name,
                   "is_automated": r.is_automated, "description": r.description})
        })
        .collect();
    Ok(Json(out).into_response())
}

/// The host[:port] of a full reference.
pub(crate) fn registry_host(full: &str) -> &str {
    full.split('/').next().unwrap_or(full)
}

/// Whether a registry is reached over plain HTTP: listed by name in
/// insecure-registries, inside one of its CIDRs, or on loopback (127.0.0.0/8
/// and ::1 are insecure by default in Docker too).
fn insecure(host: &str, configured: &[String]) -> bool {
    if configured.iter().any(|c| c == host) {
        return true;
    }
    let bare = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    if bare == "localhost" {
        return true;
    }
    let Ok(ip) = bare.parse::<std::net::IpAddr>() else {
        return false;
    };
    if ip.is_loopback() {
        return true;
    }
    configured.iter().any(|c| {
        let Some((net, bits)) = c.split_once('/') else {
            return false;
        };
        match (net.parse::<std::net::IpAddr>(), bits.parse::<u32>(), ip) {
            (Ok(std::net::IpAddr::V4(n)), Ok(b), std::net::IpAddr::V4(a)) if b <= 32 => {
                let mask = if b == 0 { 0 } else { u32::MAX << (32 - b) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (Ok(std::net::IpAddr::V6(n)), Ok(b), std::net::IpAddr::V6(a)) if b <= 128 => {
                let mask = if b == 0 { 0 } else { u128::MAX << (128 - b) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    })
}

pub(crate) fn registry_options(d: &Daemon, full: &str) -> api::RegistryOptions {
    let host = registry_host(full);
    let live = d.live();
    let mut hosts: Vec<String> = live
        .insecure_registries
        .iter()
        .filter(|r| !r.contains('/'))
        .cloned()
        .collect();
    if insecure(host, &live.insecure_registries) && !hosts.iter().any(|h| h == host) {
        hosts.push(host.to_string());
    }
    // Docker's registry-mirrors mirror Docker Hub; an http:// mirror (or a
    // loopback one, or one listed as insecure) is spoken to over plain HTTP.
    let mut mirrors = Vec::new();
    for m in &live.registry_mirrors {
        let plain = m.starts_with("http://");
        let mirror = m
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        if (plain || insecure(&mirror, &live.insecure_registries)) && !hosts.contains(&mirror) {
            hosts.push(mirror.clone());
        }
        mirrors.push(api::RegistryMirror {
            registry: "docker.io".into(),
            mirror,
        });
    }
    api::RegistryOptions {
        insecure: hosts,
        mirrors,
    }
}

pub(crate) fn progress_bar(current: i64, total: i64) -> String {
    fn size(n: i64) -> String {
        let n = n as f64;
        if n >= 1e9 {
            format!("{:.2}GB", n / 1e9)
        } else if n >= 1e6 {
            format!("{:.2}MB", n / 1e6)
        } else if n >= 1e3 {
            format!("{:.2}kB", n / 1e3)
        } else {
            format!("{n}B")
        }
    }
    if total <= 0 {
        return size(current);
    }
    let width = 50;
    let filled = ((current as f64 / total as f64) * width as f64).clamp(0.0, width as f64) as usize;
    let arrow = if filled < width { ">" } else { "" };
    format!(
        "[{}{}{}] {}/{}",
        "=".repeat(filled.saturating_sub(arrow.len())),
        arrow,
        " ".repeat(width - filled),
        size(current),
        size(total)
    )
}

/// The lines of a Docker JSON progress stream, as the client reads them.
#[derive(Clone)]
pub(crate) struct Lines(tokio::sync::mpsc::Sender<std::result::Result<Bytes, std::io::Error>>);

impl Lines {
    /// False once the client is gone.
    pub(crate) async fn send(&self, v: Value) -> bool {
        self.0
            .send(Ok(Bytes::from(v.to_string() + "\r\n")))
            .await
            .is_ok()
    }

    pub(crate) async fn error(&self, m: String) {
        self.send(json!({"errorDetail": {"message": m}, "error": m}))
            .await;
    }
}

/// Where a pull's lines go: an answer's stream, or a build's output
/// (dockerd's builder shows the pull of a FROM image as `docker pull`
/// shows it, lines a client such as docker-compose reads).
pub(crate) trait PullOutput {
    /// False once the client is gone.
    async fn line(&self, v: Value) -> bool;
}

impl PullOutput for Lines {
    async fn line(&self, v: Value) -> bool {
        self.send(v).await
    }
}

/// A stream of lines written by `write`, as the answer.
pub(crate) fn json_stream<F, Fut>(write: F) -> Response
where
    F: FnOnce(Lines) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(64);
    tokio::spawn(write(Lines(tx)));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// One progress message of a pull or push as Docker's line; None for what
/// Docker does not show.
pub(crate) fn progress_line(p: &api::Progress, pull: bool) -> Option<Value> {
    let status = match (pull, p.action.as_str()) {
        (_, "resolving") => return None,
        (true, "waiting") => "Pulling fs layer",
        (true, "downloading") => "Downloading",
        (true, "verifying") => "Verifying Checksum",
        (true, "extracting") => "Extracting",
        (true, "downloaded") => "Download complete",
        (true, "complete") => "Pull complete",
        (true, "exists") => "Already exists",
        (false, "waiting") => "Waiting",
        (false, "pushing") => "Pushing",
        (false, "pushed") => "Pushed",
        (false, "exists") => "Layer already exists",
        (false, "mounted") => "Mounted from another repository",
        (_, other) => other,
    };
    let mut v = json!({"status": status, "id": p.id});
    if matches!(p.action.as_str(), "downloading" | "extracting" | "pushing") {
        v["progressDetail"] = json!({"current": p.current, "total": p.total});
        v["progress"] = json!(progress_bar(p.current, p.total));
    } else {
        v["progressDetail"] = json!({});
    }
    Some(v)
}

/// The repository's path on its registry, as dockerd names it when it
/// pulls ("library/busybox", "team/app" of host:5000/team/app).
pub(crate) fn registry_path(full: &str) -> String {
    repository(full)
        .split_once('/')
        .map(|(_, path)| path.to_string())
        .unwrap_or_default()
}

/// A name's tag ("latest" when it has none).
pub(crate) fn tag_of(full: &str) -> String {
    full.rsplit_once(':')
        .map(|(_, t)| t.to_string())
        .filter(|t| !t.contains('/'))
        .unwrap_or_else(|| "latest".into())
}

/// One pull relayed as dockerd shows it: "Pulling from", the layers, the
/// digest. Whether the name gives another image than `before` now; None
/// when the client left.
async fn relay_pull(
    d: &Daemon,
    out: &impl PullOutput,
    mut s: tonic::Streaming<api::PullResponse>,
    mut first: Option<api::PullResponse>,
    full: &str,
    before: Option<&str>,
) -> std::result::Result<Option<bool>, tonic::Status> {
    let pulling = format!("Pulling from {}", registry_path(full));
    // dockerd names the line by the tag asked, or by the whole reference
    // when a digest was asked.
    let asked = if full.contains('@') {
        full.to_string()
    } else {
        tag_of(full)
    };
    if !out.line(json!({"status": pulling, "id": asked})).await {
        return Ok(None);
    }
    let mut updated = None;
    loop {
        let next = match first.take() {
            Some(m) => Ok(Some(m)),
            None => s.message().await,
        };
        match next {
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Progress(p)),
            })) => {
                if let Some(v) = progress_line(&p, true)
                    && !out.line(v).await
                {
                    return Ok(None);
                }
            }
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Image(i)),
            })) => {
                let digest = i.target.map(|t| t.digest).unwrap_or_default();
                out.line(json!({"status": format!("Digest: {digest}")}))
                    .await;
                let fam = familiar(full);
                d.events.publish(
                    "image",
                    "pull",
                    &fam,
                    BTreeMap::from([("name".to_string(), fam.clone())]),
                );
                updated = Some(before != Some(i.config_digest.as_str()));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(updated),
            Err(e) => return Err(e),
        }
    }
}

/// A pull shown in `out` from its first line to its last ("Status: …"),
/// as a build shows the pull of its FROM image; what fails is the
/// caller's to tell.
pub(crate) async fn pull_shown(
    d: &Daemon,
    out: &impl PullOutput,
    full: &str,
    auth: Option<pb::Auth>,
) -> std::result::Result<(), tonic::Status> {
    let before = image_of(d, full).await;
    let (stream, first) = started_pull(d, pull_request(d, full, auth)).await?;
    if let Some(updated) = relay_pull(d, out, stream, first, full, before.as_deref()).await? {
        out.line(pull_status(updated, &familiar(full))).await;
    }
    Ok(())
}

/// The last line of a pull: whether it brought anything new for `name`.
fn pull_status(updated: bool, name: &str) -> Value {
    let news = if updated {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    };
    json!({"status": format!("Status: {news} {name}")})
}

/// Docker's push JSON stream from lifecycled's progress.
fn push_response(
    d: &Arc<Daemon>,
    stream: std::result::Result<
        tonic::Response<tonic::Streaming<api::PullResponse>>,
        tonic::Status,
    >,
    full: String,
) -> Response {
    let d = d.clone();
    json_stream(|lines| async move {
        let s = match stream {
            Ok(s) => s.into_inner(),
            Err(e) => return lines.error(e.message().to_string()).await,
        };
        if relay_push(&lines, s, &full, repository(&full))
            .await
            .is_some()
        {
            let fam = familiar(&full);
            d.events.publish(
                "image",
                "push",
                &fam,
                BTreeMap::from([("name".to_string(), fam.clone())]),
            );
        }
    })
}

/// A push relayed as dockerd shows it: the repository (as `shown`), the
/// blobs' progress, then the tag's digest and size, and the result the
/// docker CLI reads (`aux`). What was pushed; None when the push failed
/// (its error line is sent) or the client left.
pub(crate) async fn relay_push(
    lines: &Lines,
    mut s: tonic::Streaming<api::PullResponse>,
    full: &str,
    shown: &str,
) -> Option<pb::Descriptor> {
    let refers = format!("The push refers to repository [{shown}]");
    lines.send(json!({"status": refers})).await;
    let mut pushed = None;
    loop {
        match s.message().await {
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Progress(p)),
            })) => {
                if let Some(v) = progress_line(&p, false)
                    && !lines.send(v).await
                {
                    return None;
                }
            }
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Image(i)),
            })) => {
                let t = i.target.unwrap_or_default();
                let tag = tag_of(full);
                let line = format!("{tag}: digest: {} size: {}", t.digest, t.size);
                lines.send(json!({"status": line})).await;
                lines
                    .send(json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": t.digest, "Size": t.size}}))
                    .await;
                pushed = Some(t);
            }
            Ok(Some(_)) => {}
            Ok(None) => return pushed,
            Err(e) => {
                lines.error(e.message().to_string()).await;
                return None;
            }
        }
    }
}

/// A pull's stream, and its first message that is not the name's
/// resolution.
pub(crate) type StartedPull = (
    tonic::Streaming<api::PullResponse>,
    Option<api::PullResponse>,
);

/// A pull started on lifecycled: its stream, and its first message that
/// is not the name's resolution. As dockerd: what fails before the pull
/// has anything to show (a registry that cannot be reached, an image it
/// does not have, a login it refuses) is the answer's status, not an error
/// line in a 200 stream; docker-py's pull() and `images.pull` only see
/// the former.
async fn start_pull(d: &Daemon, full: &str, auth: Option<pb::Auth>) -> Result<StartedPull> {
    Ok(started_pull(d, pull_request(d, full, auth)).await?)
}

fn pull_request(
    d: &Daemon,
    full: &str,
    auth: Option<pb::Auth>,
) -> tonic::Request<api::PullRequest> {
    d.lc.req(api::PullRequest {
        reference: full.to_string(),
        auth,
        registry: Some(registry_options(d, full)),
        ..Default::default()
    })
}

/// A pull (an image's or a plugin's) sent to lifecycled, up to its first
/// message that is not the name's resolution (see [`start_pull`]).
pub(crate) async fn started_pull(
    d: &Daemon,
    req: tonic::Request<api::PullRequest>,
) -> std::result::Result<StartedPull, tonic::Status> {
    let mut stream = d.lc.images().pull(req).await?.into_inner();
    let first = loop {
        match stream.message().await {
            Ok(Some(api::PullResponse {
                kind: Some(api::pull_response::Kind::Progress(p)),
            })) if p.action == "resolving" => continue,
            Ok(m) => break m,
            Err(e) => return Err(e),
        }
    };
    Ok((stream, first))
}

/// The image a name gives here now (its id), if any.
async fn image_of(d: &Daemon, full: &str) -> Option<String> {
    d.lc.images()
        .get(d.lc.req(api::ImageRequest {
            name: full.to_string(),
        }))
        .await
        .ok()
        .map(|r| r.into_inner().config_digest)
}

/// `docker pull NAME:TAG` (or `@DIGEST`).
async fn pull_one(d: &Arc<Daemon>, full: String, auth: Option<pb::Auth>) -> Result<Response> {
    let before = image_of(d, &full).await;
    let (stream, first) = start_pull(d, &full, auth).await?;
    let d = d.clone();
    Ok(json_stream(|lines| async move {
        match relay_pull(&d, &lines, stream, first, &full, before.as_deref()).await {
            Ok(Some(updated)) => {
                lines.send(pull_status(updated, &familiar(&full))).await;
            }
            Ok(None) => {}
            Err(e) => lines.error(e.message().to_string()).await,
        }
    }))
}

/// `docker pull --all-tags NAME` (fromImage without a tag): every tag the
/// registry lists, one after the other in its order, as dockerd pulls
/// them; the last line says whether any brought something new.
async fn pull_all_tags(d: &Arc<Daemon>, repo: String, auth: Option<pb::Auth>) -> Result<Response> {
    let tags =
        d.lc.images()
            .tags(d.lc.req(api::PullRequest {
                reference: repo.clone(),
                auth: auth.clone(),
                registry: Some(registry_options(d, &repo)),
                ..Default::default()
            }))
            .await?
            .into_inner()
            .tags;
    let d = d.clone();
    Ok(json_stream(|lines| async move {
        let mut updated = false;
        for tag in tags {
            let full = format!("{repo}:{tag}");
            let before = image_of(&d, &full).await;
            let (stream, first) = match start_pull(&d, &full, auth.clone()).await {
                Ok(started) => started,
                Err(e) => return lines.error(e.message).await,
            };
            match relay_pull(&d, &lines, stream, first, &full, before.as_deref()).await {
                Ok(Some(u)) => updated |= u,
                Ok(None) => return,
                Err(e) => return lines.error(e.message().to_string()).await,
            }
        }
        lines.send(pull_status(updated, &familiar(&repo))).await;
    }))
}

/// POST /images/create: pull (fromImage) or import (fromSrc).
pub async fn create(
    s: State,
    Query(q): Query<Params>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let d = s.0;
    if let Some(src) = q.get("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(ApiError::bad_request(
                "importing from a URL is not supported: send the tarball in the request body (fromSrc=-)",
            ));
        }
        let repo = q.get("repo").cloned().unwrap_or_default();
        let tag = q
            .get("tag")
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| "latest".into());
        let name = if repo.is_empty() {
            String::new()
        } else {
            normalize(&with_tag(&repo, &tag)).map_err(ApiError::bad_request)?
        };
        let changes = super::changes::from_query(uri.query());
        let config = import_config(&changes, q.get("message").map(String::as_str).unwrap_or(""))?;
        let images = import(
            &d,
            body,
            api::ImportOptions {
                rootfs_name: if name.is_empty() {
                    DANGLING.into()
                } else {
                    name
                },
                rootfs_config: config.to_string().into_bytes(),
                plugin: false,
            },
        )
        .await?;
        let id = images
            .first()
            .map(|i| i.config_digest.clone())
            .unwrap_or_default();
        d.events.publish("image", "import", &id, BTreeMap::new());
        return Ok((
            [(header::CONTENT_TYPE, "application/json")],
            json!({"status": id}).to_string() + "\r\n",
        )
            .into_response());
    }
    let image = q
        .get("fromImage")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("fromImage or fromSrc is required"))?;
    let tag = q.get("tag").filter(|t| !t.is_empty());
    if tag.is_some_and(|t| !t.starts_with("sha256:") && !is_tag(t)) {
        return Err(ApiError::bad_request("invalid tag format"));
    }
    pull_platform(q.get("platform").map(String::as_str).unwrap_or(""))?;
    let reference = match tag {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    let full = normalize(&reference).map_err(ApiError::bad_request)?;
    let auth = registry_auth(&headers);
    // A name without tag or digest, and none given: every tag, as dockerd
    // pulls it (`docker pull --all-tags`; the CLI sends "latest" itself).
    let untagged = tag.is_none()
        && !reference.contains('@')
        && !reference.rsplit('/').next().unwrap_or("").contains(':');
    if untagged {
        return pull_all_tags(&d, repository(&full).to_string(), auth).await;
    }
    pull_one(&d, full, auth).await
}

/// `docker import --change 'CMD …'`: the Dockerfile instructions import
/// allows; its history says where it came from unless a message does.
fn import_config(changes: &[String], message: &str) -> Result<Value> {
    // No Env of its own, as dockerd imports (the runtime spec gives a
    // process without PATH the default one).
    let mut cfg = json!({});
    super::changes::apply(&mut cfg, changes)?;
    let comment = if message.is_empty() {
        "Imported from -"
    } else {
        message
    };
    Ok(json!({"config": cfg, "comment": comment}))
}

async fn import(d: &Daemon, body: Body, options: api::ImportOptions) -> Result<Vec<api::Image>> {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<api::ImportRequest>(8);
    tx.send(api::ImportRequest {
        kind: Some(api::import_request::Kind::Options(options)),
    })
    .await
    .map_err(|_| ApiError::internal("import relay closed"))?;
    tokio::spawn(async move {
        let mut body = body.into_data_stream();
        while let Some(Ok(chunk)) = body.next().await {
            if tx
                .send(api::ImportRequest {
                    kind: Some(api::import_request::Kind::Chunk(chunk.to_vec())),
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(d.lc
        .images()
        .import(d.lc.req(ReceiverStream::new(rx)))
        .await?
        .into_inner()
        .images)
}

pub async fn load(s: State, Query(q): Query<Params>, body: Body) -> Result<Response> {
    let d = s.0;
    let images = match import(&d, body, api::ImportOptions::default()).await {
        Ok(i) => i,
        // dockerd has begun its answer when the archive turns out bad: the
        // error comes in the stream (docker-py raises ImageLoadError on it).
        Err(e) => {
            let m = load_error(&e.message);
            let line = json!({"errorDetail": {"message": m}, "error": m});
            return Ok((
                [(header::CONTENT_TYPE, "application/json")],
                format!("{line}\r\n"),
            )
                .into_response());
        }
    };
    let mut out = String::new();
    for i in &images {
        let line = if i.name.contains('@') || i.name.is_empty() {
            format!("Loaded image ID: {}\n", i.config_digest)
        } else {
            format!("Loaded image: {}\n", familiar(&i.name))
        };
        d.events.publish(
            "image",
            "load",
            &i.config_digest,
            BTreeMap::from([("name".to_string(), familiar(&i.name))]),
        );
        let _ = flag(&q, "quiet");
        out.push_str(&json!({"stream": line}).to_string());
        out.push_str("\r\n");
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// A load failure as a person can read it: the tar reader quotes the
/// bytes it could not parse, which in a broken archive are binary.
fn load_error(m: &str) -> String {
    let junk = m
        .chars()
        .any(|c| c == char::REPLACEMENT_CHARACTER || (c.is_control() && c != '\n'));
    match m.strip_prefix("reading the archive: ") {
        _ if junk => "Error processing tar file: invalid tar header".to_string(),
        Some(why) => format!("Error processing tar file: {why}"),
        None => m.to_string(),
    }
}

/// GET /images/get?names=…: a docker-save archive.
pub async fn save(s: State, uri: axum::http::Uri) -> Result<Response> {
    let asked: Vec<String> = url_pairs(uri.query().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    save_images(&s.0, &asked).await
}

/// A docker-save archive of the images named (GET /images/get and
/// GET /images/{name}/get).
async fn save_images(d: &Daemon, asked: &[String]) -> Result<Response> {
    let mut names = Vec::new();
    // The images saved, by id: one "save" event each, as dockerd tells it.
    let mut saved = std::collections::BTreeSet::new();
    for v in asked {
        let v = v.as_str();
        // A repository without a tag saves every tag it has, as dockerd.
        if let Some(all) = repository_tags(d, v).await? {
            for (name, id) in all {
                names.push(name);
                saved.insert(id);
            }
            continue;
        }
        let found = d.find_image(v).await?;
        saved.insert(found.id);
        // A tag given by name is saved under that name; an id saves the image's names.
        let by_id = v.starts_with("sha256:") || v.chars().all(|c| c.is_ascii_hexdigit());
        names.push(if !by_id {
            normalize(v).unwrap_or(found.name)
        } else {
            found.name
        });
    }
    if names.is_empty() {
        return Err(ApiError::bad_request("names is required"));
    }
    let stream =
        d.lc.images()
            .export(d.lc.req(api::ExportRequest {
                names,
                format: "docker".into(),
            }))
            .await?
            .into_inner();
    for id in saved {
        let a = BTreeMap::from([("name".to_string(), id.clone())]);
        d.events.publish("image", "save", &id, a);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        super::stream::chunk_body(stream),
    )
        .into_response())
}

/// The tagged names of the repository `v` names when it names one without
/// a tag or digest (`busybox`, not `busybox:1`), each with its image's id;
/// `None` otherwise, or when it has no tags (then it may be an image id).
async fn repository_tags(d: &Daemon, v: &str) -> Result<Option<Vec<(String, String)>>> {
    let last = v.rsplit('/').next().unwrap_or(v);
    if last.contains(':') || v.contains('@') {
        return Ok(None);
    }
    let Ok(full) = normalize(v) else {
        return Ok(None);
    };
    let repo = repository(&full);
    let mut tags: Vec<(String, String)> = grouped(d)
        .await?
        .into_iter()
        .flat_map(|g| g.names.into_iter().map(move |n| (n, g.id.clone())))
        .filter(|(n, _)| repository(n) == repo)
        .collect();
    tags.sort();
    Ok((!tags.is_empty()).then_some(tags))
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub async fn remove(
    s: State,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>> {
    let _ = method;
    let d = s.0;
    let name = rest.as_str();
    let force = flag(&q, "force");
    let noprune = flag(&q, "noprune");
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("image name cannot be blank"));
    }
    let found = d.find_image(name).await?;
    let g = grouped_one(&d, &found.id).await?;
    let tags = g.as_ref().map(|g| g.names.clone()).unwrap_or_default();
    let by_id = found
        .id
        .trim_start_matches("sha256:")
        .starts_with(name.trim_start_matches("sha256:"));
    // Which containers use it.
    let mut users = Vec::new();
    for e in d.all() {
        let c = e.c.lock().await;
        if c.image_id == found.id {
            users.push((c.id.clone(), c.is_running()));
        }
    }
    // Images made from this one (a build's or a commit's parent): it
    // stays while they do, as dockerd keeps a parent.
    let has_children = grouped(&d)
        .await
        .map(|all| all.iter().any(|g| g.parent == found.id))
        .unwrap_or(false);
    let mut out = Vec::new();
    let untag = |n: &String| {
        let mut c = d.lc.images();
        let req = d.lc.req(api::ImageRequest { name: n.clone() });
        async move { c.delete(req).await }
    };
    if !by_id {
        let full = normalize(name).map_err(ApiError::bad_request)?;
        let last_name = tags.len() <= 1;
        if last_name
            && !force
            && let Some((cid, _)) = users.first()
        {
            return Err(ApiError::conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                short(cid),
                short(&found.id)
            )));
        }
        let in_use = users.iter().any(|(_, running)| *running);
        let kept = in_use || has_children;
        if last_name && kept {
            // Forced off an image a running container uses, or the last
            // name of a parent: the image stays, untagged (`<none>`), as
            // dockerd keeps it; one that only stopped containers use goes.
            d.lc.images()
                .tag(d.lc.req(api::TagImageRequest {
                    source: full.clone(),
                    target: format!("{DANGLING}@{}", found.id),
                }))
                .await?;
        }
        untag(&full).await?;
        out.push(json!({"Untagged": familiar(&full)}));
        // dockerd names the image by its id in an untag event, not by
        // the name that went.
        d.events.publish(
            "image",
            "untag",
            &found.id,
            BTreeMap::from([("name".to_string(), found.id.clone())]),
        );
        if last_name && !kept {
            if let Some(g) = &g {
                delete_records(&d, g).await?;
            }
            deleted(&d, &found.id, &mut out);
            if let Some(g) = g.as_ref().filter(|_| !noprune) {
                prune_parents(&d, g, &mut out).await;
            }
            free_layers(&d, g.as_ref(), &mut out).await;
        }
        return Ok(Json(json!(out)));
    }
    // dockerd's conflicts in its order: the hard ones (no force removes
    // them), then the soft ones.
    let conflict = |how: &str, why: String| {
        Err(ApiError::conflict(format!(
            "conflict: unable to delete {} ({how}) - {why}",
            short(&found.id)
        )))
    };
    if has_children {
        return conflict(
            "cannot be forced",
            "image has dependent child images".into(),
        );
    }
    if let Some((cid, _)) = users.iter().find(|(_, running)| *running) {
        return conflict(
            "cannot be forced",
            format!("image is being used by running container {}", short(cid)),
        );
    }
    if !force && tags.len() > 1 {
        return conflict(
            "must be forced",
            "image is referenced in multiple repositories".into(),
        );
    }
    if let Some((cid, _)) = users.first().filter(|_| !force) {
        return conflict(
            "must be forced",
            format!("image is being used by stopped container {}", short(cid)),
        );
    }
    for n in &tags {
        untag(n).await?;
        out.push(json!({"Untagged": familiar(n)}));
    }
    if let Some(g) = &g {
        delete_records(&d, g).await?;
    }
    deleted(&d, &found.id, &mut out);
    if let Some(g) = g.as_ref().filter(|_| !noprune) {
        prune_parents(&d, g, &mut out).await;
    }
    free_layers(&d, g.as_ref(), &mut out).await;
    Ok(Json(json!(out)))
}

/// Once an image is gone, its layers that nothing else uses go too (the
/// space is freed now, as dockerd frees it, not at the next prune), each
/// a "Deleted" line as dockerd lists them: the image's top layer first.
/// A failed collection leaves them for the next one and fails nothing.
async fn free_layers(d: &Daemon, g: Option<&Grouped>, out: &mut Vec<Value>) {
    let mut removed = match d.lc.content_gc().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("freeing the layers of a removed image: {}", e.message());
            return;
        }
    };
    let order = g.map(|g| chain_ids(&g.diff_ids)).unwrap_or_default();
    removed.sort_by_key(|c| std::cmp::Reverse(order.iter().position(|o| o == c)));
    for c in removed {
        out.push(json!({ "Deleted": c }));
    }
}

/// The chain ids of a stack of layers (their diff ids, bottom first), as
/// the OCI image spec defines them.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    use sha2::Digest;
    let mut out: Vec<String> = Vec::new();
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(format!("{prev} {diff}")))
            ),
        };
        out.push(next);
    }
    out
}

/// An image gone: a line of the answer and dockerd's event.
fn deleted(d: &Daemon, id: &str, out: &mut Vec<Value>) {
    out.push(json!({"Deleted": id}));
    d.events.publish(
        "image",
        "delete",
        id,
        BTreeMap::from([("name".to_string(), id.to_string())]),
    );
}

/// Every record of an image: its names, the untagged ones and those of
/// its digests.
async fn delete_records(d: &Daemon, g: &Grouped) -> Result<()> {
    for n in g.names.iter().chain(&g.dangling) {
        match d
            .lc
            .images()
            .delete(d.lc.req(api::ImageRequest { name: n.clone() }))
            .await
        {
            Err(e) if e.code() != tonic::Code::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    for dgst in &g.digests {
        let _ =
            d.lc.images()
                .delete(d.lc.req(api::ImageRequest {
                    name: normalize(dgst).unwrap_or_default(),
                }))
                .await;
    }
    Ok(())
}

/// As dockerd deletes an image: its untagged parents (a build's steps) go
/// with it, up to the first that has a name, another child or a container.
async fn prune_parents(d: &Daemon, removed: &Grouped, out: &mut Vec<Value>) {
    let Ok(all) = grouped(d).await else { return };
    let mut parent = Some(removed.parent.clone());
    let mut gone = vec![removed.id.clone()];
    while let Some(pid) = parent.take().filter(|p| !p.is_empty()) {
        let Some(p) = all.iter().find(|g| g.id == pid) else {
            break;
        };
        let children = all
            .iter()
            .any(|g| g.parent == p.id && !gone.contains(&g.id));
        let mut used = false;
        for e in d.all() {
            if e.c.lock().await.image_id == p.id {
                used = true;
                break;
            }
        }
        if !p.names.is_empty() || children || used || delete_records(d, p).await.is_err() {
            break;
        }
        deleted(d, &p.id, out);
        gone.push(p.id.clone());
        parent = Some(p.parent.clone());
    }
}

pub async fn prune(s: State, Query(q): Query<Params>) -> Result<Json<Value>> {
    let d = s.0;
    let f = query::filters(&q)?;
    query::only(&f, &["dangling", "label", "label!", "until"])?;
    let until = query::until(&f)?
        .and_then(|u| u.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|u| u.as_secs() as i64);
    // A value it cannot read is refused, never taken for `false` (which
    // removes every unused image).
    let only_dangling = query::bool_or(&f, "dangling", true)?;
    let mut used = std::collections::BTreeSet::new();
    for e in d.all() {
        used.insert(e.c.lock().await.image_id.clone());
    }
    let mut deleted = Vec::new();
    let images = grouped(&d).await?;
    // What each layer holds, by chain id: the space reclaimed is that of
    // the layers that went (a base layer another image keeps is not
    // freed, nor counted twice for two images on it), as dockerd sums
    // the removed layers' sizes.
    let layer_sizes: BTreeMap<String, i64> = images
        .iter()
        .flat_map(|g| {
            chain_ids(&g.diff_ids)
                .into_iter()
                .zip(g.layer_sizes.iter().copied())
        })
        .collect();
    for g in images {
        if used.contains(&g.id) || (only_dangling && !g.names.is_empty()) {
            continue;
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_value(g.config["config"]["Labels"].clone()).unwrap_or_default();
        if !query::prune_labels_match(&labels, &f)
            || until.is_some_and(|u| unix_of(&g.created) >= u)
        {
            continue;
        }
        for n in &g.names {
            if d.lc
                .images()
                .delete(d.lc.req(api::ImageRequest { name: n.clone() }))
                .await
                .is_ok()
            {
                deleted.push(json!({"Untagged": familiar(n)}));
            }
        }
        // The records only a digest names go too, or the image stays.
        let by_digest = g.digests.iter().filter_map(|x| normalize(x).ok());
        for n in g.dangling.iter().cloned().chain(by_digest) {
            let _ =
                d.lc.images()
                    .delete(d.lc.req(api::ImageRequest { name: n }))
                    .await;
        }
        deleted.push(json!({"Deleted": g.id}));
    }
    // The layers that went with them, as dockerd lists them.
    let mut reclaimed = 0;
    if let Ok(layers) = d.lc.content_gc().await
        && !deleted.is_empty()
    {
        reclaimed = layers.iter().filter_map(|c| layer_sizes.get(c)).sum();
        deleted.extend(layers.into_iter().map(|c| json!({ "Deleted": c })));
    }
    d.events.pruned("image", reclaimed);
    Ok(Json(
        json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
    ))
}

/// The 12-digit form of an id (sha256: dropped), whatever its length.
fn short(id: &str) -> &str {
    let id = id.trim_start_matches("sha256:");
    id.get(..12).unwrap_or(id)
}

pub async fn commit(
    s: State,
    Query(q): Query<Params>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response> {
    let d = s.0;
    let cid = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    let e = d.find(cid)?;
    let (id, running, config, parent, hostname) = {
        let c = e.c.lock().await;
        (
            c.id.clone(),
            c.state.status == crate::daemon::container::Status::Running,
            c.config.clone(),
            c.image_id.clone(),
            c.hostname(),
        )
    };
    let mut cfg = serde_json::to_value(&config).unwrap_or_default();
    // As dockerd's image holds the container's config: its hostname, and
    // null for what it does not have.
    if cfg["Hostname"].as_str().is_some_and(str::is_empty) {
        cfg["Hostname"] = json!(hostname);
    }
    for k in ["Env", "OnBuild", "Volumes"] {
        let empty = match &cfg[k] {
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            cfg[k] = Value::Null;
        }
    }
    // Docker's image keeps the container's own config beside the image's
    // (inspect's ContainerConfig: the image name it ran, its command).
    let container_config = cfg.clone();
    let given: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?
    };
    match given {
        Value::Null => {}
        Value::Object(o) => {
            // Typed as a container's config first: a field of the wrong
            // type must not reach the image (it made one nothing could read).
            super::body::json::<crate::types::Config>(&body, "container config")?;
            for (k, v) in o {
                if !v.is_null() {
                    cfg[k] = v;
                }
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid container config: expected a JSON object",
            ));
        }
    }
    super::changes::apply(&mut cfg, &super::changes::from_query(uri.query()))?;
    // Everything the caller sent is checked before the container is
    // touched: a bad name must not leave it paused.
    let repo = q.get("repo").cloned().unwrap_or_default();
    let tag = q
        .get("tag")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| "latest".into());
    let name = if repo.is_empty() {
        String::new()
    } else {
        normalize(&with_tag(&repo, &tag)).map_err(ApiError::bad_request)?
    };
    // Held still only if it was running: one the user paused stays paused.
    // The freeze is the engine's own, not a user's pause: if lifecycled
    // dies before the thaw, the next reconcile thaws it (a paused record
    // would keep it frozen for good). Events show it as dockerd's pause.
    let pause = running
        && q.get("pause")
            .is_none_or(|p| p.is_empty() || super::query::go_bool(p));
    // A container that stopped meanwhile cannot be frozen, and needs not be.
    let frozen = if pause { d.freeze(&e).await.ok() } else { None };
    if frozen.is_some() {
        let c = e.c.lock().await;
        d.container_event(&c, "pause", &[]);
    }
    let base = d
        .find_image(&parent)
        .await
        .map(|i| i.name)
        .unwrap_or_default();
    let image_ref = (!name.is_empty()).then(|| familiar(&name));
    let r = d
        .lc
        .images()
        .commit(
            d.lc.req(api::CommitRequest {
                container_id: id.clone(),
                // Recorded by its digest first, named after: the image keeps
                // that record when its name moves to another (a commit with
                // the same name, a build), and stays, untagged, as
                // dockerd's do.
                name: String::new(),
                // The image names the container it came from, as dockerd's.
                config:
                    json!({"config": cfg, "container": id, "container_config": container_config})
                        .to_string()
                        .into_bytes(),
                comment: q.get("comment").cloned().unwrap_or_default(),
                author: q.get("author").cloned().unwrap_or_default(),
                // History's "created by": the container's command, as dockerd's.
                created_by: config.cmd.0.join(" "),
                exclude: crate::daemon::files::MOUNT_POINTS
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
                // The image it ran, by a name it has now: the one it was
                // created from may have been removed since.
                parent: base,
                // Inspect's Parent: the image the container ran.
                labels: [(crate::build::PARENT_LABEL.to_string(), parent)].into(),
                ..Default::default()
            }),
        )
        .await
        .map(|r| r.into_inner());
    let r = match (r, &name) {
        (Ok(image), name) if !name.is_empty() => {
            d.lc.images()
                .tag(d.lc.req(api::TagImageRequest {
                    source: image.name.clone(),
                    target: name.clone(),
                }))
                .await
                .map(|_| image)
        }
        (r, _) => r,
    };
    // dockerd's order: the new name's tag, the commit, then the thaw.
    if let Ok(image) = &r {
        if let Some(name) = &image_ref {
            d.events.publish(
                "image",
                "tag",
                &image.config_digest,
                BTreeMap::from([("name".to_string(), name.clone())]),
            );
        }
        let mut attrs = vec![
            ("comment", q.get("comment").cloned().unwrap_or_default()),
            ("imageID", image.config_digest.clone()),
        ];
        if let Some(name) = &image_ref {
            attrs.push(("imageRef", name.clone()));
        }
        d.container_event(&*e.c.lock().await, "commit", &attrs);
    }
    if let Some(f) = frozen {
        f.release().await;
        let c = e.c.lock().await;
        d.container_event(&c, "unpause", &[]);
    }
    let image = r?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": image.config_digest})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_parameter_replaces_the_names_tag() {
        assert_eq!(
            retag("10.0.0.1:5000/image:latest", "latest"),
            "10.0.0.1:5000/image:latest"
        );
        assert_eq!(retag("10.0.0.1:5000/image", "v1"), "10.0.0.1:5000/image:v1");
        assert_eq!(retag("app:1", "2"), "app:2");
        assert_eq!(retag("app@sha256:abc", "2"), "app:2");
    }

    #[test]
    fn a_pulls_platform_is_read_as_containerd_reads_it() {
        let host = crate::daemon::images::host_architecture();
        for ok in [
            "",
            "linux",
            host,
            &format!("linux/{host}"),
            &format!("LINUX/{host}"),
        ] {
            assert!(pull_platform(ok).is_ok(), "{ok}");
        }
        let msg = |p: &str| pull_platform(p).unwrap_err().message;
        assert_eq!(
            msg("bogus"),
            r#""bogus": unknown operating system or architecture: invalid argument"#
        );
        assert!(
            msg("linux/a b").contains("is an invalid component"),
            "{}",
            msg("linux/a b")
        );
        assert!(msg("windows/amd64").contains("is not supported"));
        assert!(msg("linux/s390x").contains("is not supported"));
        assert!(is_tag("v1.2_x-y") && !is_tag("BAD:x") && !is_tag(".x") && !is_tag(""));
    }

    #[test]
    fn chain_ids_are_the_oci_specs() {
        // chain(L1) = diff(L1); chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let got = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(got[0], a);
        use sha2::Digest;
        let want = hex::encode(sha2::Sha256::digest(format!("{a} {b}")));
        assert_eq!(got[1], format!("sha256:{want}"));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        assert!(insecure("127.0.0.1:5000", &[]));
        assert!(insecure("localhost:5000", &[]));
        assert!(insecure("[::1]:5000", &[]));
        assert!(!insecure("registry.example.com", &[]));
        assert!(insecure(
            "registry.example.com",
            &["registry.example.com".into()]
        ));
        assert!(insecure("10.1.2.3:5000", &["10.0.0.0/8".into()]));
        assert!(!insecure("11.1.2.3:5000", &["10.0.0.0/8".into()]));
        assert_eq!(with_tag("busybox", ""), "busybox:latest");
        assert_eq!(with_tag("busybox:1", "latest"), "busybox:1");
        assert_eq!(with_tag("host:5000/bb", "v2"), "host:5000/bb:v2");
    }
}
