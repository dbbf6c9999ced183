//! Images as lifecycled serves them: records of the image store resolved
//! for this machine (config, layers, chain id), Docker's name
//! normalisation for archives, and commit of a container's changes.

use std::time::SystemTime;

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use imagestore::{Compression, Descriptor, ImageRecord, MediaType, Store};
use serde_json::{Value, json};
use tonic::Status;

use crate::store::Record;
use crate::timestamp;

/// The name of an image that only its digest names (a commit without a
/// name), as Docker's containerd image store names such images.
pub const DANGLING: &str = "moby-dangling";

/// How much of a config blob we are willing to read.
const MAX_CONFIG: u64 = 8 << 20;

/// imagestore's errors as gRPC statuses a client can act on.
pub fn status(e: imagestore::Error) -> Status {
    use imagestore::Error as E;
    let msg = e.chain();
    match e {
        E::ImageNotFound { .. }
        | E::BlobNotFound { .. }
        | E::SnapshotNotFound { .. }
        | E::RegistryNotFound { .. }
        | E::NotInRegistry { .. }
        | E::RegistryAnswer { .. } => Status::not_found(msg),
        E::SnapshotExists { .. } => Status::already_exists(msg),
        E::InvalidNamespace { .. }
        | E::InvalidDigest { .. }
        | E::InvalidImageName { .. }
        | E::InvalidReference { .. }
        | E::InvalidSnapshotKey { .. }
        | E::InvalidArchive { .. }
        | E::UnsafeEntry { .. }
        | E::BadLayer { .. }
        | E::InvalidContent { .. }
        | E::UnsupportedMediaType { .. }
        | E::DigestMismatch { .. }
        | E::SizeMismatch { .. } => Status::invalid_argument(msg),
        E::NoMatchingPlatform { .. } | E::BlobInUse { .. } | E::SnapshotInUse { .. } => {
            Status::failed_precondition(msg)
        }
        E::Unauthorized { .. } => Status::unauthenticated(msg),
        E::RegistryUnreachable { .. } | E::Locked { .. } => Status::unavailable(msg),
        _ => Status::internal(msg),
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("a store task failed: {e}")))?
}

/// A pull's or push's credentials: a registry token, an identity token,
/// or a user and password; none when all are empty.
pub fn credentials(a: Option<berth_proto::types::v1::Auth>) -> Option<imagestore::Credentials> {
    let a = a?;
    if !a.registry_token.is_empty() {
        return Some(imagestore::Credentials::Token(a.registry_token));
    }
    if !a.identity_token.is_empty() {
        return Some(imagestore::Credentials::Basic {
            username: if a.username.is_empty() {
                "<token>".into()
            } else {
                a.username
            },
            password: a.identity_token,
        });
    }
    if a.username.is_empty() && a.password.is_empty() {
        return None;
    }
    Some(imagestore::Credentials::Basic {
        username: a.username,
        password: a.password,
    })
}

pub fn descriptor(d: &Descriptor) -> pb::Descriptor {
    pb::Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size() as i64,
        annotations: d
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// A record with what it is on this machine: config, layers, size. A
/// managed plugin's (the engine keeps them in their own namespace) is given
/// with its config and layers as they are: it has no platform nor diff ids.
pub fn to_api(store: &Store, rec: &ImageRecord) -> Result<api::Image, imagestore::Error> {
    let resolved = match store.resolve_with_config(&rec.target) {
        Ok(r) => r,
        Err(e) => return plugin_api(store, rec).ok_or(e),
    };
    let (r, config) = (&resolved.image, resolved.config_bytes.clone());
    let layer_sizes: Vec<i64> = r
        .layers
        .iter()
        .zip(&r.chain_ids)
        .map(|(l, chain)| store.layer_content_size(chain).unwrap_or(l.size()) as i64)
        .collect();
    Ok(api::Image {
        name: rec.name.clone(),
        target: Some(descriptor(&rec.target)),
        labels: rec.labels.clone().into_iter().collect(),
        created_at: Some(timestamp(rec.created_at)),
        updated_at: Some(timestamp(rec.updated_at)),
        config_digest: r.config_digest.to_string(),
        config,
        diff_ids: r.diff_ids.iter().map(|d| d.to_string()).collect(),
        layers: r.layers.iter().map(descriptor).collect(),
        size: layer_sizes.iter().sum(),
        chain_id: r.top_chain_id().map(|c| c.to_string()).unwrap_or_default(),
        layer_sizes,
    })
}

/// A plugin's record as [`to_api`] gives it, or `None` when the record is
/// not one (its manifest is missing, or its config is not a plugin's).
fn plugin_api(store: &Store, rec: &ImageRecord) -> Option<api::Image> {
    let raw = store.read_blob(rec.target.digest(), MAX_CONFIG).ok()?;
    let m: Value = serde_json::from_slice(&raw).ok()?;
    let config = &m["config"];
    if config["mediaType"] != imagestore::media_types::PLUGIN_CONFIG {
        return None;
    }
    let desc = |v: &Value| pb::Descriptor {
        media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: v["digest"].as_str().unwrap_or_default().to_string(),
        size: v["size"].as_i64().unwrap_or_default(),
        annotations: Default::default(),
    };
    let config_digest = config["digest"].as_str()?.to_string();
    let data = store
        .read_blob(&imagestore::parse_digest(&config_digest).ok()?, MAX_CONFIG)
        .ok()?;
    let layers: Vec<pb::Descriptor> = m["layers"]
        .as_array()
        .map(|ls| ls.iter().map(desc).collect())
        .unwrap_or_default();
    let layer_sizes: Vec<i64> = layers.iter().map(|l| l.size).collect();
    Some(api::Image {
        name: rec.name.clone(),
        target: Some(descriptor(&rec.target)),
        labels: rec.labels.clone().into_iter().collect(),
        created_at: Some(timestamp(rec.created_at)),
        updated_at: Some(timestamp(rec.updated_at)),
        config_digest,
        config: data,
        diff_ids: Vec::new(),
        layers,
        size: layer_sizes.iter().sum(),
        chain_id: String::new(),
        layer_sizes,
    })
}

/// [`to_api`] with the image's layers unpacked first: an image is ready to
/// run once it is pulled, loaded, imported or committed, as Docker's and
/// containerd's pulls leave it, and its size is then what its files hold.
/// One that cannot be unpacked here (another platform's, say) is given as
/// it is: a container's create unpacks it, or says why it cannot.
pub fn unpacked_api(
    store: &Store,
    ns: &str,
    rec: &ImageRecord,
) -> Result<api::Image, imagestore::Error> {
    if let Err(e) = store.unpack(ns, &rec.name) {
        tracing::debug!("leaving {} packed: {e}", rec.name);
    }
    to_api(store, rec)
}

/// Docker's normalisation of the names archives carry: `busybox` →
/// `docker.io/library/busybox:latest`, `me/app:1` → `docker.io/me/app:1`;
/// names with a registry host keep it.
pub fn docker_name(name: &str) -> String {
    let (repo, suffix) = match name.split_once('@') {
        Some((r, d)) => (r.to_string(), format!("@{d}")),
        None => {
            let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
            match name[slash..].rfind(':') {
                Some(i) => (
                    name[..slash + i].to_string(),
                    format!(":{}", &name[slash + i + 1..]),
                ),
                None => (name.to_string(), ":latest".to_string()),
            }
        }
    };
    let full = match repo.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            repo
        }
        Some(_) => format!("docker.io/{repo}"),
        None => format!("docker.io/library/{repo}"),
    };
    format!("{full}{suffix}")
}

/// A new image from a container's changes: its image's layers plus one
/// made from its snapshot, with `config` (Docker's container config under
/// "config") laid over the image's own config.
pub fn commit(
    store: &Store,
    ns: &str,
    container: Option<&Record>,
    req: &api::CommitRequest,
) -> Result<ImageRecord, Status> {
    commit_with(store, ns, container, None, req)
}

/// A layer the caller sent, stored as a blob: the new image's top.
pub struct SentLayer {
    pub blob: Descriptor,
}

/// `commit`, the new layer being a container's changes, a layer the
/// caller sent, another image's layer (`req.layer_image`), or none.
pub fn commit_with(
    store: &Store,
    ns: &str,
    container: Option<&Record>,
    sent: Option<SentLayer>,
    req: &api::CommitRequest,
) -> Result<ImageRecord, Status> {
    let base_name = match container {
        Some(c) if c.snapshot_key.is_empty() => {
            return Err(Status::failed_precondition(format!(
                "container {} has no snapshot to commit (its rootfs was given as mounts)",
                c.id
            )));
        }
        // The image it runs, by the name the caller gives (the one it was
        // created from may be gone).
        Some(_) if !req.parent.is_empty() => req.parent.clone(),
        Some(c) => c.image.clone(),
        // No container and no parent: an image of no layers (a build's
        // FROM scratch with only config steps).
        None => req.parent.clone(),
    };
    let base = if base_name.is_empty() {
        None
    } else {
        Some(store.resolve_image(ns, &base_name).map_err(|e| {
            Status::failed_precondition(format!("the image {base_name} is gone: {}", e.chain()))
        })?)
    };
    let overlay: Value = if req.config.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.config)
            .map_err(|e| Status::invalid_argument(format!("config is not valid JSON: {e}")))?
    };
    let lease = store.lease();
    let compression = if req.uncompressed {
        Compression::None
    } else {
        Compression::Gzip
    };
    // The new layer: a container's changes, another image's layer, or none.
    let layer: Option<(Descriptor, String)> = match container {
        None if sent.is_some() => sent.map(|s| {
            // An uncompressed tar: its digest is its diff id.
            let diff_id = s.blob.digest().to_string();
            (s.blob, diff_id)
        }),
        Some(c) => {
            let exclude: Vec<std::path::PathBuf> = req
                .exclude
                .iter()
                .map(|p| std::path::PathBuf::from(p.trim_start_matches('/')))
                .collect();
            let l = store
                .commit_excluding(ns, &c.snapshot_key, compression, Some(&lease), &exclude)
                .map_err(status)?;
            berth_fault::point("lifecycled:commit.after-layer");
            Some((l.layer, l.diff_id.to_string()))
        }
        None if !req.layer_image.is_empty() => {
            let from = store.resolve_image(ns, &req.layer_image).map_err(|e| {
                Status::failed_precondition(format!(
                    "the image {} is gone: {}",
                    req.layer_image,
                    e.chain()
                ))
            })?;
            let i = req.layer_index as usize;
            match (from.layers.get(i), from.diff_ids.get(i)) {
                (Some(l), Some(d)) => Some((l.clone(), d.to_string())),
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "{} has no layer {i}",
                        req.layer_image
                    )));
                }
            }
        }
        None => None,
    };

    let mut config: Value = match &base {
        Some(b) => {
            let raw = store
                .read_blob(&b.config_digest, MAX_CONFIG)
                .map_err(status)?;
            serde_json::from_slice(&raw)
                .map_err(|e| Status::internal(format!("the config of {base_name}: {e}")))?
        }
        None => json!({
            "architecture": imagestore::PlatformSpec::host().architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }),
    };
    if let Some(o) = overlay["config"].as_object() {
        config["config"] = Value::Object(o.clone());
    }
    // Docker's image config names the container it was committed from and
    // keeps that container's config; the base image's are not carried over.
    if let Some(o) = config.as_object_mut() {
        for key in ["container", "container_config"] {
            match overlay.get(key) {
                Some(v) if !v.is_null() => o.insert(key.into(), v.clone()),
                _ => o.remove(key),
            };
        }
    }
    let now = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    config["created"] = json!(now);
    if !req.author.is_empty() {
        config["author"] = json!(req.author);
    }
    // The commit's message is the image's, as in Docker's image config; the
    // base image's own is not carried over.
    match config.as_object_mut() {
        Some(o) if req.comment.is_empty() => {
            o.remove("comment");
        }
        Some(o) => {
            o.insert("comment".into(), json!(req.comment));
        }
        None => {}
    }
    let mut diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some((_, diff_id)) = &layer {
        diff_ids.push(json!(diff_id));
    }
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut entry = json!({"created": now});
    if !req.created_by.is_empty() {
        entry["created_by"] = json!(req.created_by);
    }
    if !req.author.is_empty() {
        entry["author"] = json!(req.author);
    }
    if !req.comment.is_empty() {
        entry["comment"] = json!(req.comment);
    }
    if layer.is_none() {
        entry["empty_layer"] = json!(true);
    }
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history.push(entry);
    config["history"] = Value::Array(history);

    let config_bytes = serde_json::to_vec(&config)
        .map_err(|e| Status::internal(format!("encoding the config: {e}")))?;
    // Read back as every reader of the image will read it: a config the
    // caller broke (a field of the wrong type) makes no image at all.
    imagestore::check_config(&config_bytes)
        .map_err(|e| Status::invalid_argument(format!("the image config is not valid: {e}")))?;
    let mut config_desc = store
        .write_blob(None, &config_bytes[..], Some(&lease))
        .map_err(status)?;
    config_desc.set_media_type(MediaType::ImageConfig);
    let mut layers: Vec<Value> = base
        .as_ref()
        .map(|b| b.layers.iter().map(desc_json).collect())
        .unwrap_or_default();
    if let Some((desc, _)) = &layer {
        layers.push(desc_json(desc));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc_json(&config_desc),
        "layers": layers,
    });
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Status::internal(format!("encoding the manifest: {e}")))?;
    let mut target = store
        .write_blob(None, &manifest_bytes[..], Some(&lease))
        .map_err(status)?;
    target.set_media_type(MediaType::ImageManifest);
    let name = if req.name.is_empty() {
        format!("{DANGLING}@{}", target.digest())
    } else {
        req.name.clone()
    };
    let mut rec = ImageRecord::new(name, target);
    rec.labels = req
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(c) = container {
        rec.labels
            .insert("berth.commit.container".to_string(), c.id.clone());
    }
    store.put_image(ns, rec).map_err(status)
}

/// A name no other call of this process uses, for temporary records.
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn desc_json(d: &Descriptor) -> Value {
    json!({
        "mediaType": d.media_type().to_string(),
        "digest": d.digest().to_string(),
        "size": d.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_normalised_like_dockers() {
        assert_eq!(docker_name("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            docker_name("busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(docker_name("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(docker_name("127.0.0.1:5000/x/y:z"), "127.0.0.1:5000/x/y:z");
        assert_eq!(docker_name("localhost/app"), "localhost/app:latest");
        assert_eq!(
            docker_name("busybox@sha256:abcd"),
            "docker.io/library/busybox@sha256:abcd"
        );
        assert_eq!(
            docker_name("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn a_commit_whose_config_no_reader_can_read_makes_no_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let req = |config: Value| api::CommitRequest {
            name: "docker.io/library/made:latest".into(),
            config: config.to_string().into_bytes(),
            ..Default::default()
        };
        let e = commit_with(
            &store,
            "default",
            None,
            None,
            &req(json!({"config": {"Cmd": 5}})),
        )
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains("the image config is not valid"), "{e}");
        assert!(store.list_images("default").unwrap().is_empty());
        // The same with a good config is an image.
        commit_with(
            &store,
            "default",
            None,
            None,
            &req(json!({"config": {"Cmd": ["sh"]}})),
        )
        .unwrap();
        assert_eq!(store.list_images("default").unwrap().len(), 1);
    }
}
