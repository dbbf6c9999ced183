use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Weak};

use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::snapshots_server::Snapshots;
use futures::Stream;
use imagestore::SnapshotKind;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::images::{blocking, status, unique};
use crate::namespace;
use crate::rootfs::{self, ChunkReader, ChunkWriter, TempRoot};
use crate::store::Store as Containers;
use crate::tasks::Tasks;

pub struct Service {
    pub images: imagestore::Store,
    pub containers: Arc<Containers>,
    pub tasks: Arc<Tasks>,
    /// Where snapshots of containers without a task are mounted for a call.
    pub scratch: PathBuf,
    /// Snapshots mounted for calls, shared by the calls at the same time
    /// (see [`Service::root`]).
    pub mounting: TempRoots,
}

/// A snapshot mounted for calls, shared: two writable overlay mounts of
/// one upper and work dir at once are undefined behaviour in overlayfs
/// (one mount's work dir set-up undoes the other's and a mount fails with
/// ENOENT), which concurrent `docker cp` of a stopped container did. So a
/// call uses the mount another call made, if there is one (as dockerd's
/// graph driver counts the users of a mount), and the last one done
/// unmounts it; mounting and unmounting one snapshot take turns.
#[derive(Default)]
pub struct TempRoots(std::sync::Mutex<HashMap<String, Arc<Slot>>>);

/// One snapshot's place in [`TempRoots`]: the gate its mount and unmount
/// go through, and the mount while a call uses it.
#[derive(Default)]
pub struct Slot(std::sync::Mutex<Weak<Shared>>);

/// A mount in use; unmounted (at the gate) when its last call is done.
pub struct Shared {
    /// None only while it is dropped.
    root: Option<TempRoot>,
    slot: Arc<Slot>,
}

impl Shared {
    fn path(&self) -> &Path {
        // Never reached: a call holds the mount it uses.
        self.root
            .as_ref()
            .map_or(Path::new("/nonexistent"), TempRoot::path)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _gate = self.slot.0.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.root.take());
    }
}

impl TempRoots {
    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Slots no mount and no caller holds go.
        slots.retain(|_, s| Arc::strong_count(s) > 1);
        slots.entry(key.to_string()).or_default().clone()
    }

    /// The snapshot's mount for a call: the one in use, or `mount()`'s.
    /// Blocking.
    fn get(
        slot: Arc<Slot>,
        mount: impl FnOnce() -> Result<TempRoot, Status>,
    ) -> Result<Arc<Shared>, Status> {
        let mut gate = slot.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = gate.upgrade() {
            return Ok(shared);
        }
        let shared = Arc::new(Shared {
            root: Some(mount()?),
            slot: slot.clone(),
        });
        *gate = Arc::downgrade(&shared);
        Ok(shared)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A container's whole filesystem for the time of one call.
enum Root {
    /// Mounted by the container's shim.
    Task(PathBuf),
    /// Mounted here for this call and any at the same time; unmounted
    /// when the last is done.
    Temp(Arc<Shared>),
    /// A volume's or bind's source on the host.
    Mount(PathBuf),
}

impl Root {
    fn path(&self) -> &std::path::Path {
        match self {
            Root::Task(p) | Root::Mount(p) => p,
            Root::Temp(shared) => shared.path(),
        }
    }
}

/// Where a request's path is reached: in the mount it names (the path made
/// relative to the mount point), or in the container's root filesystem.
/// A file bound into the container (a bind of one file, the engine's
/// /etc/hosts) is reached by its name in its directory, as the mount
/// reached it (symlinks to it followed).
fn in_mount(r: &api::ArchiveRequest) -> Result<Option<(PathBuf, String)>, Status> {
    let Some((source, rel)) = mount_relative(r)? else {
        return Ok(None);
    };
    if std::fs::metadata(&source).is_ok_and(|m| m.is_dir()) {
        return Ok(Some((source, rel)));
    }
    let file = std::fs::canonicalize(&source)
        .map_err(|e| Status::not_found(format!("{}: {e}", r.path)))?;
    if rel != "/" {
        // As under a file of the root filesystem (dockerd: a 500 too).
        let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(Status::internal(format!("{}: {e}", r.path)));
    }
    match (file.parent(), file.file_name()) {
        (Some(dir), Some(name)) => Ok(Some((
            dir.to_path_buf(),
            format!("/{}", name.to_string_lossy()),
        ))),
        _ => Err(Status::invalid_argument(
            "a mount source must be a file's path",
        )),
    }
}

/// The mount's source and the request's path relative to its point.
fn mount_relative(r: &api::ArchiveRequest) -> Result<Option<(PathBuf, String)>, Status> {
    if r.mount_source.is_empty() {
        return Ok(None);
    }
    let point = r.mount_point.trim_end_matches('/');
    let rest = r
        .path
        .strip_prefix(point)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or_else(|| {
            Status::invalid_argument(format!("{} is not under {}", r.path, r.mount_point))
        })?;
    let source = PathBuf::from(&r.mount_source);
    if !source.is_absolute() {
        return Err(Status::invalid_argument("a mount source must be absolute"));
    }
    let rel = if rest.is_empty() { "/" } else { rest };
    Ok(Some((source, rel.to_string())))
}

/// Whether `p` is mounted over (its device differs from its parent's).
fn is_mount_point(p: &std::path::Path) -> bool {
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

impl Service {
    /// The snapshot key of a container (its id names it), or the key itself.
    fn key(&self, ns: &str, id: &str) -> String {
        match self.containers.get(ns, id) {
            Ok(r) if !r.snapshot_key.is_empty() => r.snapshot_key,
            _ => id.to_string(),
        }
    }

    /// The root a request's path is resolved in, and the path in it.
    async fn root_for(&self, ns: &str, r: &api::ArchiveRequest) -> Result<(Root, String), Status> {
        match in_mount(r)? {
            Some((source, rel)) => Ok((Root::Mount(source), rel)),
            None => Ok((self.root(ns, &r.key).await?, r.path.clone())),
        }
    }

    async fn root(&self, ns: &str, id: &str) -> Result<Root, Status> {
        if let Some(p) = self.tasks.rootfs_path(ns, id)
            && is_mount_point(&p)
        {
            return Ok(Root::Task(p));
        }
        let key = self.key(ns, id);
        let slot = self.mounting.slot(&format!("{ns}/{key}"));
        let store = self.images.clone();
        let ns2 = ns.to_string();
        let dir = self.scratch.join(format!("{ns}-{id}-{}", unique()));
        blocking(move || {
            TempRoots::get(slot, || {
                let mounts = store.mounts(&ns2, &key).map_err(status)?;
                TempRoot::mount(&dir, &mounts)
            })
            .map(Root::Temp)
        })
        .await
    }
}

#[tonic::async_trait]
impl Snapshots for Service {
    type ExportStream = BoxStream<api::Chunk>;
    type ReadArchiveStream = BoxStream<api::Chunk>;

    async fn list(
        &self,
        _req: Request<api::ListSnapshotsRequest>,
    ) -> Result<Response<api::ListSnapshotsResponse>, Status> {
        let store = self.images.clone();
        let snapshots = blocking(move || {
            let mut out = Vec::new();
            for s in store.list_snapshots() {
                let usage = match (&s.kind, &s.namespace) {
                    (SnapshotKind::Active, Some(ns)) => store.usage(ns, &s.key),
                    _ => imagestore::parse_digest(&s.key).and_then(|d| store.layer_usage(&d)),
                };
                let u = usage.unwrap_or_default();
                out.push(api::Snapshot {
                    key: match &s.namespace {
                        Some(ns) => format!("{ns}/{}", s.key),
                        None => s.key.clone(),
                    },
                    parent: s.parent.map(|p| p.to_string()).unwrap_or_default(),
                    kind: match s.kind {
                        SnapshotKind::Committed => "committed".into(),
                        SnapshotKind::Active => "active".into(),
                    },
                    size: u.size as i64,
                    inodes: u.inodes as i64,
                    content_size: u.content as i64,
                });
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(api::ListSnapshotsResponse { snapshots }))
    }

    async fn changes(
        &self,
        req: Request<api::SnapshotRequest>,
    ) -> Result<Response<api::ChangesResponse>, Status> {
        let ns = namespace::of(&req)?;
        let key = self.key(&ns, &req.into_inner().key);
        let store = self.images.clone();
        let changes = blocking(move || {
            let mounts = store.mounts(&ns, &key).map_err(status)?;
            rootfs::changes(&mounts)
        })
        .await?;
        Ok(Response::new(api::ChangesResponse {
            changes: changes
                .into_iter()
                .map(|(path, kind)| api::Change { path, kind })
                .collect(),
        }))
    }

    async fn export(
        &self,
        req: Request<api::SnapshotRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let ns = namespace::of(&req)?;
        let root = self.root(&ns, &req.into_inner().key).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx.clone());
            let res = rootfs::export(root.path(), &mut w);
            drop(w);
            drop(root);
            if let Err(e) = res {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Response::new(chunks(rx)))
    }

    async fn read_archive(
        &self,
        req: Request<api::ArchiveRequest>,
    ) -> Result<Response<Self::ReadArchiveStream>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let (root, path) = self.root_for(&ns, &r).await?;
        // A missing path is a status, not a broken stream.
        let p2 = path.clone();
        let root = blocking(move || {
            rootfs::stat(root.path(), &p2)?;
            Ok(root)
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx.clone());
            let res = rootfs::read_archive_as(root.path(), &path, &r.path, &mut w);
            drop(w);
            drop(root);
            if let Err(e) = res {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Response::new(chunks(rx)))
    }

    async fn mounts(
        &self,
        req: Request<api::SnapshotRequest>,
    ) -> Result<Response<api::MountsResponse>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let store = self.images.clone();
        let to_pb = |m: imagestore::Mount| berth_proto::types::v1::Mount {
            r#type: m.r#type,
            source: m.source,
            target: m.target,
            options: m.options,
        };
        if !r.layer.is_empty() {
            let chain = imagestore::parse_digest(&r.layer)
                .map_err(|e| Status::invalid_argument(format!("layer {:?}: {e}", r.layer)))?;
            let dirs = blocking(move || store.layer_dirs(&chain).map_err(status)).await?;
            let lowerdir = dirs
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":");
            return Ok(Response::new(api::MountsResponse {
                mounts: vec![berth_proto::types::v1::Mount {
                    r#type: "overlay".into(),
                    source: "overlay".into(),
                    target: String::new(),
                    options: vec!["ro".into(), format!("lowerdir={lowerdir}")],
                }],
                rootfs: String::new(),
            }));
        }
        let key = self.key(&ns, &r.key);
        let rootfs = self.tasks.rootfs_dir(&ns, &r.key);
        let ns2 = ns.clone();
        let mounts = blocking(move || store.mounts(&ns2, &key).map_err(status)).await?;
        Ok(Response::new(api::MountsResponse {
            mounts: mounts.into_iter().map(to_pb).collect(),
            rootfs: rootfs.to_string_lossy().into_owned(),
        }))
    }

    async fn stat(
        &self,
        req: Request<api::ArchiveRequest>,
    ) -> Result<Response<api::PathStat>, Status> {
        let ns = namespace::of(&req)?;
        let r = req.into_inner();
        let (root, path) = self.root_for(&ns, &r).await?;
        let point =
            (!r.mount_source.is_empty()).then(|| r.mount_point.trim_end_matches('/').to_string());
        // A file's mount resolves to its point (the file's own name on the
        // host is not the container's).
        let file_mount = point.is_some() && !std::path::Path::new(&r.mount_source).is_dir();
        let shown = r.path.clone();
        let mut st = blocking(move || {
            let st = rootfs::stat(root.path(), &path);
            drop(root);
            st
        })
        .await?;
        if let Some(point) = point {
            // Named and resolved as the container sees the path.
            st.name = std::path::Path::new(shown.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into());
            st.resolved = if file_mount {
                point
            } else {
                format!("{point}{}", st.resolved.trim_end_matches('/'))
            };
        }
        Ok(Response::new(api::PathStat {
            name: st.name,
            size: st.size,
            mode: st.mode,
            mtime: Some(crate::timestamp(st.mtime)),
            link_target: st.link_target,
            uid: st.uid,
            gid: st.gid,
            resolved: st.resolved,
        }))
    }

    async fn write_archive(
        &self,
        req: Request<Streaming<api::WriteArchiveRequest>>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace::of(&req)?;
        let mut input = req.into_inner();
        let (target, no_overwrite, create_path) = match input.message().await? {
            Some(api::WriteArchiveRequest {
                kind: Some(api::write_archive_request::Kind::Target(t)),
                no_overwrite_dir_non_dir,
                create_path,
            }) => (t, no_overwrite_dir_non_dir, create_path),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must name the container and path",
                ));
            }
        };
        let (root, path) = self.root_for(&ns, &target).await?;
        let routes = rootfs::Routes {
            base: target.path.clone(),
            own: target.mount_point.clone(),
            mounts: target
                .mounts
                .iter()
                .filter(|m| !m.point.is_empty() && m.source.starts_with('/'))
                .map(|m| rootfs::Route {
                    point: m.point.clone(),
                    source: PathBuf::from(&m.source),
                    read_only: m.read_only,
                })
                .collect(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let work = tokio::task::spawn_blocking(move || {
            let made = if create_path {
                rootfs::create_dir(root.path(), &path)
            } else {
                Ok(())
            };
            let res = made.and_then(|()| {
                rootfs::write_archive(
                    root.path(),
                    &path,
                    ChunkReader::new(rx),
                    no_overwrite,
                    &routes,
                )
            });
            drop(root);
            res
        });
        let fed = async {
            while let Some(m) = input.message().await? {
                if let Some(api::write_archive_request::Kind::Chunk(c)) = m.kind
                    && tx.send(c).await.is_err()
                {
                    break;
                }
            }
            Ok::<(), Status>(())
        }
        .await;
        drop(tx);
        work.await
            .map_err(|e| Status::internal(format!("extracting failed: {e}")))??;
        fed?;
        Ok(Response::new(()))
    }
}

fn chunks(rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Status>>) -> BoxStream<api::Chunk> {
    Box::pin(tokio_stream::StreamExt::map(ReceiverStream::new(rx), |r| {
        r.map(|data| api::Chunk { data })
    }))
}
