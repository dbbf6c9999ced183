//! The CRI's `runtime.v1.ImageService`: images of the `k8s.io` namespace
//! as the kubelet and crictl see them from containerd's CRI plugin. An
//! image is its config digest (the id); the store's records are its names:
//! a pull records the reference, its repo digest and the id, as containerd
//! does, so that any of them finds the image and a removal takes them all.

use std::collections::BTreeMap;

use berth_proto::cri::v1 as cri;
use berth_proto::cri::v1::image_service_server::ImageService;
use imagestore::{ImageRecord, ResolvedImage, Store};
use tonic::{Request, Response, Status};

use crate::images::{self, blocking, status};

/// The lifecycled namespace of everything the CRI makes, as containerd's.
pub const NAMESPACE: &str = "k8s.io";

/// The label containerd's CRI puts on the records it makes.
const MANAGED: (&str, &str) = ("io.cri-containerd.image", "managed");

pub struct Service {
    pub images: Store,
    /// `[cri.registry]`, as read at start.
    pub registry: crate::config::CriRegistry,
}

/// One image: its id and every name a record gives it.
pub(crate) struct Found {
    pub id: String,
    pub resolved: ResolvedImage,
    pub names: Vec<String>,
}

/// The store's records of the namespace grouped by image id; records that
/// do not resolve on this machine (another platform, content half gone)
/// are not images here.
fn all_images(store: &Store) -> Result<Vec<Found>, Status> {
    let mut by_id: BTreeMap<String, Found> = BTreeMap::new();
    for rec in store.list_images(NAMESPACE).map_err(status)? {
        let resolved = match store.resolve(&rec.target) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("image {}: {}", rec.name, e.chain());
                continue;
            }
        };
        let id = resolved.config_digest.to_string();
        by_id
            .entry(id.clone())
            .or_insert_with(|| Found {
                id,
                resolved,
                names: Vec::new(),
            })
            .names
            .push(rec.name);
    }
    Ok(by_id.into_values().collect())
}

/// An id as the CRI writes it (`sha256:<hex>`, or the bare hex).
fn as_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// The image an ImageSpec names: by id, or by a name normalised as
/// Docker's (`busybox` is `docker.io/library/busybox:latest`).
pub(crate) fn find(store: &Store, image: &str) -> Result<Option<Found>, Status> {
    if image.is_empty() {
        return Err(Status::invalid_argument("no image given (ImageSpec.image)"));
    }
    let id = as_id(image);
    let name = images::docker_name(image);
    Ok(all_images(store)?
        .into_iter()
        .find(|f| Some(&f.id) == id.as_ref() || f.names.contains(&name)))
}

/// A record's name without its tag or digest: `docker.io/library/busybox`.
fn repository(name: &str) -> Option<String> {
    imagestore::Reference::parse(name).ok().map(|r| r.name())
}

/// Tags and repo digests, as containerd's CRI derives them: every tagged
/// name also gives `repository@manifest-digest`.
fn tags_and_digests(f: &Found) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for n in &f.names {
        if as_id(n).is_some() {
            continue;
        }
        if n.contains('@') {
            digests.push(n.clone());
        } else if let Some(repo) = repository(n) {
            tags.push(n.clone());
            digests.push(format!("{repo}@{}", f.resolved.target.digest()));
        }
    }
    tags.sort();
    tags.dedup();
    digests.sort();
    digests.dedup();
    (tags, digests)
}

/// The image's user as the CRI splits it: a numeric uid, or a name.
fn user_of(r: &ResolvedImage) -> (Option<cri::Int64Value>, String) {
    let user = r
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

fn to_cri(f: &Found) -> cri::Image {
    let r = &f.resolved;
    let (repo_tags, repo_digests) = tags_and_digests(f);
    let (uid, username) = user_of(r);
    // What the image holds in the content store: its index (if any),
    // manifest, config and layers.
    let mut size = r.manifest.size() + r.config_descriptor.size();
    if r.target.digest() != r.manifest.digest() {
        size += r.target.size();
    }
    size += r.layers.iter().map(|l| l.size()).sum::<u64>();
    cri::Image {
        id: f.id.clone(),
        repo_tags,
        repo_digests,
        size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: f.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// Credentials of a pull: user and password, `auth` (base64 of
/// `user:password`), or tokens, read as berth's own pulls read them.
fn credentials(a: Option<cri::AuthConfig>) -> Result<Option<imagestore::Credentials>, Status> {
    let Some(a) = a else { return Ok(None) };
    let (username, password) = if a.auth.is_empty() {
        (a.username, a.password)
    } else {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .map_err(|e| Status::invalid_argument(format!("auth is not base64: {e}")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| Status::invalid_argument("auth is not user:password"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| Status::invalid_argument("auth is not user:password"))?;
        (u.to_string(), p.to_string())
    };
    Ok(images::credentials(Some(berth_proto::types::v1::Auth {
        username,
        password,
        identity_token: a.identity_token,
        registry_token: a.registry_token,
    })))
}

/// How a pull reaches its registry: `[cri.registry]`, and plain HTTP for a
/// registry on this machine's loopback, as containerd's resolver does.
fn registry_options(
    cfg: &crate::config::CriRegistry,
    reference: &imagestore::Reference,
) -> imagestore::RegistryOptions {
    cfg.options(reference.registry(), reference.on_loopback())
}

/// A name for the image: `rec` as pulled, with containerd's label.
fn put_name(store: &Store, name: &str, target: &imagestore::Descriptor) -> Result<(), Status> {
    let mut rec = ImageRecord::new(name, target.clone());
    rec.labels.insert(MANAGED.0.into(), MANAGED.1.into());
    store.put_image(NAMESPACE, rec).map_err(status)?;
    Ok(())
}

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(
        &self,
        _req: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        // The filter is not applied, as containerd's CRI does not: the
        // kubelet lists everything, crictl filters on its side.
        let store = self.images.clone();
        let images = blocking(move || Ok(all_images(&store)?.iter().map(to_cri).collect())).await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let r = req.into_inner();
        let image = r.image.map(|s| s.image).unwrap_or_default();
        let store = self.images.clone();
        let out = blocking(move || {
            // An image that is not here is an empty answer, not an error:
            // that is how the kubelet learns it must pull.
            let Some(f) = find(&store, &image)? else {
                return Ok(cri::ImageStatusResponse::default());
            };
            let mut info = std::collections::HashMap::new();
            if r.verbose {
                let config = serde_json::to_value(&f.resolved.config).unwrap_or_default();
                let chain = f
                    .resolved
                    .top_chain_id()
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                info.insert(
                    "info".to_string(),
                    serde_json::json!({"chainID": chain, "imageSpec": config}).to_string(),
                );
            }
            Ok(cri::ImageStatusResponse {
                image: Some(to_cri(&f)),
                info,
            })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn pull_image(
        &self,
        req: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let r = req.into_inner();
        let given = r.image.map(|s| s.image).unwrap_or_default();
        if given.is_empty() {
            return Err(Status::invalid_argument("no image given (ImageSpec.image)"));
        }
        let name = images::docker_name(&given);
        let reference = imagestore::Reference::parse(&name).map_err(|e| {
            Status::invalid_argument(format!("failed to pull image {given:?}: {}", e.chain()))
        })?;
        let auth = credentials(r.auth)?;
        let opts = registry_options(&self.registry, &reference);
        // Progress is for berth's own pulls; the CRI answers at the end.
        let (ptx, mut prx) = tokio::sync::mpsc::channel(64);
        let drain = tokio::spawn(async move { while prx.recv().await.is_some() {} });
        let pulled = self.images.pull(NAMESPACE, &name, auth, &opts, ptx).await;
        let _ = drain.await;
        let rec = pulled.map_err(|e| {
            let s = status(e);
            Status::new(
                s.code(),
                format!("failed to pull image {name:?}: {}", s.message()),
            )
        })?;
        let store = self.images.clone();
        let id = blocking(move || {
            let resolved = store.resolve(&rec.target).map_err(status)?;
            let id = resolved.config_digest.to_string();
            let digest_ref = format!("{}@{}", reference.name(), rec.target.digest());
            for n in [rec.name.as_str(), digest_ref.as_str(), id.as_str()] {
                put_name(&store, n, &rec.target)?;
            }
            Ok(id)
        })
        .await?;
        Ok(Response::new(cri::PullImageResponse { image_ref: id }))
    }

    async fn remove_image(
        &self,
        req: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let image = req.into_inner().image.map(|s| s.image).unwrap_or_default();
        let store = self.images.clone();
        blocking(move || {
            // Gone already: done (the kubelet retries removals).
            let Some(f) = find(&store, &image)? else {
                return Ok(());
            };
            for n in &f.names {
                match store.delete_image(NAMESPACE, n) {
                    Ok(_) | Err(imagestore::Error::ImageNotFound { .. }) => {}
                    Err(e) => return Err(status(e)),
                }
            }
            // Its content and unpacked layers, unless something else
            // holds them (another name, another namespace, a container).
            if let Err(e) = store.gc() {
                tracing::warn!("collecting {}'s content: {}", f.id, e.chain());
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _req: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let store = self.images.clone();
        let usage = blocking(move || {
            let u = store.snapshots_usage().map_err(status)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(cri::FilesystemUsage {
                timestamp: now.as_nanos() as i64,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: store.snapshots_root().display().to_string(),
                }),
                used_bytes: Some(cri::UInt64Value { value: u.size }),
                inodes_used: Some(cri::UInt64Value { value: u.inodes }),
            })
        })
        .await?;
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recognised_with_and_without_their_algorithm() {
        let hex = "a".repeat(64);
        assert_eq!(as_id(&hex), Some(format!("sha256:{hex}")));
        assert_eq!(
            as_id(&format!("sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(as_id("busybox"), None);
        assert_eq!(as_id(&"a".repeat(12)), None);
    }

    #[test]
    fn repositories_lose_tags_and_digests_but_keep_ports() {
        assert_eq!(
            repository("docker.io/library/busybox:latest").as_deref(),
            Some("docker.io/library/busybox")
        );
        assert_eq!(
            repository("127.0.0.1:5000/a/b:1").as_deref(),
            Some("127.0.0.1:5000/a/b")
        );
        assert_eq!(
            repository(&format!("localhost:5000/x@sha256:{}", "0".repeat(64))).as_deref(),
            Some("localhost:5000/x")
        );
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for (r, insecure) in [
            ("127.0.0.1:5000/a/b:1", true),
            ("localhost:5000/a:1", true),
            ("localhost/a:1", true),
            ("[::1]:5000/a:1", true),
            ("docker.io/library/busybox:latest", false),
            ("10.0.0.1:5000/a:1", false),
        ] {
            let reference = imagestore::Reference::parse(r).expect(r);
            assert_eq!(
                !registry_options(&Default::default(), &reference)
                    .insecure
                    .is_empty(),
                insecure,
                "{r}"
            );
        }
    }

    #[test]
    fn auth_is_user_and_password_in_base64() {
        let c = credentials(Some(cri::AuthConfig {
            auth: "dXNlcjpwYXNz".into(), // user:pass
            ..Default::default()
        }))
        .unwrap();
        assert!(
            matches!(c, Some(imagestore::Credentials::Basic { username, password })
            if username == "user" && password == "pass")
        );
        assert!(
            credentials(Some(cri::AuthConfig {
                auth: "not base64!".into(),
                ..Default::default()
            }))
            .is_err()
        );
        assert!(credentials(None).unwrap().is_none());
    }
}
