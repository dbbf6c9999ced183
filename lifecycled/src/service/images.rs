use std::pin::Pin;
use std::sync::Arc;

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::images_server::Images;
use futures::Stream;
use imagestore::{ArchiveFormat, ImportOptions, MediaType, RootfsOptions};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::images::{self, blocking, credentials, status};
use crate::namespace;
use crate::rootfs::{ChunkReader, ChunkWriter};
use crate::store::Store as Containers;

pub struct Service {
    pub images: imagestore::Store,
    pub containers: Arc<Containers>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// `name==REF`, `labels.KEY==VALUE` and `config==DIGEST` (the images of
/// one id, as Docker names an image by its config) filters; the last is
/// checked on the image, the others on the record before it is read.
fn matches(
    rec: &imagestore::ImageRecord,
    image: Option<&api::Image>,
    filters: &[String],
) -> Result<bool, Status> {
    for f in filters {
        let (k, v) = f.split_once("==").ok_or_else(|| {
            Status::invalid_argument(format!("filter {f:?}: expected KEY==VALUE"))
        })?;
        let ok = match k {
            "name" => rec.name == v,
            "config" => image.is_none_or(|i| i.config_digest == v),
            _ => match k.strip_prefix("labels.") {
                Some(l) => rec.labels.get(l).is_some_and(|x| x == v),
                None => {
                    return Err(Status::invalid_argument(format!(
                        "filter {f:?}: filter on name, labels.KEY or config"
                    )));
                }
            },
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn registry_options(o: Option<api::RegistryOptions>) -> imagestore::RegistryOptions {
    let o = o.unwrap_or_default();
    imagestore::RegistryOptions {
        insecure: o.insecure,
        mirrors: o
            .mirrors
            .into_iter()
            .map(|m| (m.registry, m.mirror))
            .collect(),
        ..Default::default()
    }
}

/// A pull or push as a stream: its progress as it happens, then the image
/// (or the error) as the last message.
fn with_progress<F, Fut>(work: F) -> BoxStream<api::PullResponse>
where
    F: FnOnce(tokio::sync::mpsc::Sender<imagestore::Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<api::Image, Status>> + Send + 'static,
{
    let (out, rx) = tokio::sync::mpsc::channel(64);
    let (ptx, mut prx) = tokio::sync::mpsc::channel(64);
    let fut = work(ptx);
    tokio::spawn(async move {
        let forward = {
            let out = out.clone();
            tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    if out.send(Ok(progress(p))).await.is_err() {
                        break;
                    }
                }
            })
        };
        let res = fut.await;
        let _ = forward.await;
        let msg = res.map(|i| api::PullResponse {
            kind: Some(api::pull_response::Kind::Image(i)),
        });
        let _ = out.send(msg).await;
    });
    Box::pin(ReceiverStream::new(rx))
}

fn progress(p: imagestore::Progress) -> api::PullResponse {
    use imagestore::ProgressAction as A;
    let action = match p.action {
        A::Resolving => "resolving",
        A::Waiting => "waiting",
        A::Downloading => "downloading",
        A::Verifying => "verifying",
        A::Downloaded => "downloaded",
        A::Extracting => "extracting",
        A::Complete => "complete",
        A::Exists => "exists",
        A::Pushing => "pushing",
        A::Pushed => "pushed",
        A::Mounted => "mounted",
    };
    api::PullResponse {
        kind: Some(api::pull_response::Kind::Progress(api::Progress {
            id: p.id,
            action: action.into(),
            current: p.current as i64,
            total: p.total as i64,
        })),
    }
}

#[tonic::async_trait]
impl Images for Service {
    type PullStream = BoxStream<api::PullResponse>;
    type PushStream = BoxStream<api::PullResponse>;
    type ExportStream = BoxStream<api::Chunk>;

    async fn list(
        &self,
        req: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        let ns = namespace::of(&req)?;
        let filters = req.into_inner().filters;
        let store = self.images.clone();
        let images = blocking(move || {
            let mut out = Vec::new();
            for rec in store.list_images(&ns).map_err(status)? {
                if !matches(&rec, None, &filters)? {
                    continue;
                }
                match images::to_api(&store, &rec) {
                    Ok(i) if matches(&rec, Some(&i), &filters)? => out.push(i),
                    Ok(_) => {}
                    // An image of another platform only, or half-deleted
                    // content: not runnable here, so not listed.
                    Err(e) => tracing::debug!("image {}: {}", rec.name, e.chain()),
                }
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(api::ListImagesResponse { images }))
    }

    async fn get(&self, req: Request<api::ImageRequest>) -> Result<Response<api::Image>, Status> {
        let ns = namespace::of(&req)?;
        let name = req.into_inner().name;
        let store = self.images.clone();
        let image = blocking(move || {
            let rec = store.get_image(&ns, &name).map_err(status)?;
            images::to_api(&store, &rec).map_err(status)
        })
        .await?;
        Ok(Response::new(image))
    }

    async fn delete(&self, req: Request<api::ImageRequest>) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let name = req.into_inner().name;
        let store = self.images.clone();
        blocking(move || store.delete_image(&ns, &name).map_err(status)).await?;
        Ok(Response::new(()))
    }

    async fn tag(
        &self,
        req: Request<api::TagImageRequest>,
    ) -> Result<Response<api::Image>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let store = self.images.clone();
        let image = blocking(move || {
            let rec = store.tag(&ns, &r.source, &r.target).map_err(status)?;
            images::to_api(&store, &rec).map_err(status)
        })
        .await?;
        Ok(Response::new(image))
    }

    async fn pull(
        &self,
        req: Request<api::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let store = self.images.clone();
        Ok(Response::new(with_progress(move |ptx| async move {
            let mut opts = registry_options(r.registry);
            opts.plugin = r.plugin;
            let rec = store
                .pull(&ns, &r.reference, credentials(r.auth), &opts, ptx)
                .await
                .map_err(status)?;
            blocking(move || images::unpacked_api(&store, &ns, &rec).map_err(status)).await
        })))
    }

    async fn push(
        &self,
        req: Request<api::PushRequest>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let store = self.images.clone();
        Ok(Response::new(with_progress(move |ptx| async move {
            let remote = if r.reference.is_empty() {
                r.name.clone()
            } else {
                r.reference.clone()
            };
            let opts = registry_options(r.registry);
            let pushed = store
                .push(&ns, &r.name, &remote, credentials(r.auth), &opts, ptx)
                .await
                .map_err(status)?;
            blocking(move || {
                let rec = store.get_image(&ns, &r.name).map_err(status)?;
                let mut i = images::to_api(&store, &rec).map_err(status)?;
                // What the registry now holds under the reference.
                i.name = remote;
                i.target = Some(images::descriptor(&pushed));
                Ok(i)
            })
            .await
        })))
    }

    async fn import(
        &self,
        req: Request<Streaming<api::ImportRequest>>,
    ) -> Result<Response<api::ImportResponse>, Status> {
        let ns = namespace::of(&req)?;
        let mut input = req.into_inner();
        let options = match input.message().await? {
            Some(api::ImportRequest {
                kind: Some(api::import_request::Kind::Options(o)),
            }) => o,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an import must be its options",
                ));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let store = self.images.clone();
        let import_ns = ns.clone();
        let work = tokio::task::spawn_blocking(move || {
            let ns = import_ns;
            let reader = ChunkReader::new(rx);
            if options.plugin {
                // Named as the engine names them (a plugin's id), as they are.
                let opts = ImportOptions {
                    plugin: true,
                    ..Default::default()
                };
                store.import(&ns, reader, &opts).map_err(status)
            } else if options.rootfs_name.is_empty() {
                let opts = ImportOptions {
                    rename: Some(Arc::new(|n: &str| images::docker_name(n))),
                    ..Default::default()
                };
                store.import(&ns, reader, &opts).map_err(status)
            } else {
                let opts = rootfs_options(&options.rootfs_config)?;
                if options.rootfs_name != images::DANGLING {
                    return store
                        .import_rootfs(&ns, reader, &options.rootfs_name, &opts)
                        .map(|r| vec![r])
                        .map_err(status);
                }
                // Named by its digest, which is known only once imported.
                let pending = format!("{}@pending-{}", images::DANGLING, images::unique());

                let rec = store
                    .import_rootfs(&ns, reader, &pending, &opts)
                    .map_err(status)?;
                let name = format!("{}@{}", images::DANGLING, rec.target.digest());
                let res = store.tag(&ns, &pending, &name).map_err(status);
                let _ = store.delete_image(&ns, &pending);
                res.map(|r| vec![r])
            }
        });
        let feed = async {
            while let Some(m) = input.message().await? {
                if let Some(api::import_request::Kind::Chunk(c)) = m.kind
                    && tx.send(c).await.is_err()
                {
                    break;
                }
            }
            Ok::<(), Status>(())
        };
        let fed = feed.await;
        drop(tx);
        let records = work
            .await
            .map_err(|e| Status::internal(format!("the import failed: {e}")))??;
        fed?;
        let store = self.images.clone();
        let images = blocking(move || {
            records
                .iter()
                .map(|r| images::unpacked_api(&store, &ns, r).map_err(status))
                .collect()
        })
        .await?;
        Ok(Response::new(api::ImportResponse { images }))
    }

    async fn export(
        &self,
        req: Request<api::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let format = match r.format.as_str() {
            "" | "docker" => ArchiveFormat::Docker,
            "oci" => ArchiveFormat::Oci,
            f => {
                return Err(Status::invalid_argument(format!(
                    "format {f:?}: use \"docker\" or \"oci\""
                )));
            }
        };
        // Check the names now, so that a missing image is an error status
        // rather than a broken stream.
        for n in &r.names {
            self.images.get_image(&ns, n).map_err(status)?;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let store = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx.clone());
            if let Err(e) = store.export(&ns, &r.names, &mut w, format) {
                drop(w);
                let _ = tx.blocking_send(Err(status(e)));
            }
        });
        let s = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |r| {
            r.map(|data| api::Chunk { data })
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn login(
        &self,
        req: Request<api::LoginRequest>,
    ) -> Result<Response<api::LoginResponse>, Status> {
        let r = req.into_inner();
        if r.registry.is_empty() {
            return Err(Status::invalid_argument("name the registry to log in to"));
        }
        let a = r.auth.unwrap_or_default();
        let password = if a.password.is_empty() {
            a.identity_token
        } else {
            a.password
        };
        let opts = registry_options(r.options);
        imagestore::check_login(&r.registry, &a.username, &password, &opts)
            .await
            .map_err(status)?;
        Ok(Response::new(api::LoginResponse {
            status: "Login Succeeded".into(),
        }))
    }

    async fn distribution(
        &self,
        req: Request<api::PullRequest>,
    ) -> Result<Response<api::DistributionResponse>, Status> {
        let r = req.into_inner();
        let opts = registry_options(r.registry);
        let d = self
            .images
            .distribution(&r.reference, credentials(r.auth), &opts)
            .await
            .map_err(status)?;
        Ok(Response::new(api::DistributionResponse {
            descriptor: Some(images::descriptor(&d.descriptor)),
            platforms: d
                .platforms
                .iter()
                .map(|p| api::Platform {
                    os: p.os().to_string(),
                    architecture: p.architecture().to_string(),
                    variant: p.variant().clone().unwrap_or_default(),
                    os_version: p.os_version().clone().unwrap_or_default(),
                    os_features: p.os_features().clone().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn fetch_config(
        &self,
        req: Request<api::PullRequest>,
    ) -> Result<Response<api::FetchConfigResponse>, Status> {
        let r = req.into_inner();
        let mut opts = registry_options(r.registry);
        opts.plugin = r.plugin;
        let f = self
            .images
            .fetch_config(&r.reference, credentials(r.auth), &opts)
            .await
            .map_err(status)?;
        Ok(Response::new(api::FetchConfigResponse {
            manifest: Some(images::descriptor(&f.manifest)),
            config: Some(images::descriptor(&f.config)),
            data: f.data,
        }))
    }

    async fn tags(
        &self,
        req: Request<api::PullRequest>,
    ) -> Result<Response<api::TagsResponse>, Status> {
        let r = req.into_inner();
        let opts = registry_options(r.registry);
        let tags = self
            .images
            .tags(&r.reference, credentials(r.auth), &opts)
            .await
            .map_err(status)?;
        Ok(Response::new(api::TagsResponse { tags }))
    }

    async fn search(
        &self,
        req: Request<api::SearchRequest>,
    ) -> Result<Response<api::SearchResponse>, Status> {
        let r = req.into_inner();
        if r.index.is_empty() {
            return Err(Status::invalid_argument("name the index to search"));
        }
        let a = r.auth.unwrap_or_default();
        let opts = registry_options(r.options);
        let found = imagestore::search(&r.index, &r.term, r.limit, &a.username, &a.password, &opts)
            .await
            .map_err(status)?;
        Ok(Response::new(api::SearchResponse {
            results: found
                .into_iter()
                .map(|f| api::SearchResult {
                    name: f.name,
                    description: f.description,
                    star_count: f.star_count,
                    is_official: f.is_official,
                    is_automated: f.is_automated,
                })
                .collect(),
        }))
    }

    async fn commit_layer(
        &self,
        req: Request<Streaming<api::CommitLayerRequest>>,
    ) -> Result<Response<api::Image>, Status> {
        let ns = namespace::of(&req)?;
        let mut input = req.into_inner();
        let header = match input.message().await? {
            Some(api::CommitLayerRequest {
                kind: Some(api::commit_layer_request::Kind::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be the commit's header",
                ));
            }
        };
        let store = self.images.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let work = tokio::task::spawn_blocking(move || {
            let lease = store.lease();
            let mut blob = store
                .write_blob(None, ChunkReader::new(rx), Some(&lease))
                .map_err(status)?;
            blob.set_media_type(MediaType::ImageLayer);
            let rec =
                images::commit_with(&store, &ns, None, Some(images::SentLayer { blob }), &header)?;
            drop(lease);
            images::unpacked_api(&store, &ns, &rec).map_err(status)
        });
        let fed = async {
            while let Some(m) = input.message().await? {
                if let Some(api::commit_layer_request::Kind::Chunk(c)) = m.kind
                    && tx.send(c).await.is_err()
                {
                    break;
                }
            }
            Ok::<(), Status>(())
        }
        .await;
        drop(tx);
        let image = work
            .await
            .map_err(|e| Status::internal(format!("committing the layer failed: {e}")))??;
        fed?;
        Ok(Response::new(image))
    }

    async fn commit(
        &self,
        req: Request<api::CommitRequest>,
    ) -> Result<Response<api::Image>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let container = if r.container_id.is_empty() {
            None
        } else {
            Some(
                self.containers
                    .get(&ns, &r.container_id)
                    .map_err(|e| Status::not_found(e.to_string()))?,
            )
        };
        let store = self.images.clone();
        let image = blocking(move || {
            let rec = images::commit(&store, &ns, container.as_ref(), &r)?;
            images::unpacked_api(&store, &ns, &rec).map_err(status)
        })
        .await?;
        Ok(Response::new(image))
    }
}

/// The image config `docker import --change` builds, from the engine's JSON
/// (Docker's container config: Cmd, Entrypoint, Env, …).
fn rootfs_options(config: &[u8]) -> Result<RootfsOptions, Status> {
    if config.is_empty() {
        return Ok(RootfsOptions::default());
    }
    let whole: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| Status::invalid_argument(format!("rootfs_config is not valid JSON: {e}")))?;
    // Either the container config itself or {"config": …, "comment": …}.
    let v = if whole["config"].is_object() {
        &whole["config"]
    } else {
        &whole
    };
    let comment = whole["comment"]
        .as_str()
        .or(v["Comment"].as_str())
        .filter(|s| !s.is_empty())
        .map(String::from);
    let strings = |k: &str| -> Option<Vec<String>> {
        v[k].as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
    };
    let keys = |k: &str| -> Vec<String> {
        v[k].as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let text = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(String::from);
    Ok(RootfsOptions {
        cmd: strings("Cmd"),
        entrypoint: strings("Entrypoint"),
        env: strings("Env").unwrap_or_default(),
        working_dir: text("WorkingDir"),
        user: text("User"),
        exposed_ports: keys("ExposedPorts"),
        volumes: keys("Volumes"),
        config_labels: v["Labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        comment,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_filter_is_checked_on_the_image_the_others_on_the_record() {
        let digest = imagestore::parse_digest(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let target = imagestore::Descriptor::new(MediaType::ImageManifest, 1, digest);
        let mut rec = imagestore::ImageRecord::new("docker.io/library/a:1", target);
        rec.labels.insert("app".into(), "web".into());
        let image = api::Image {
            config_digest: "sha256:c1".into(),
            ..Default::default()
        };
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = f(&["config==sha256:c1", "labels.app==web"]);
        // Before the record is read, the config filter lets it through.
        assert!(matches(&rec, None, &one).unwrap());
        assert!(matches(&rec, Some(&image), &one).unwrap());
        assert!(!matches(&rec, Some(&image), &f(&["config==sha256:c2"])).unwrap());
        assert!(!matches(&rec, None, &f(&["config==sha256:c1", "name==b"])).unwrap());
        assert!(matches(&rec, None, &f(&["id==x"])).is_err());
    }
}
