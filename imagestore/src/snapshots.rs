//! Snapshots: unpacked layers and the writable roots of containers.
//!
//! Each layer is unpacked once into `snapshots/<id>/fs`, named by its chain
//! id and shared by every image that has it. An active snapshot (a
//! container's rootfs) is `snapshots/<id>/fs` (upper) and `.../work`, mounted
//! as overlayfs over the layer chain. Directories are numbered, like
//! containerd's, because overlayfs takes all lower dirs in one mount option
//! that must fit in a page.
//!
//! A snapshot directory appears whole: it is built as `<id>.tmp` with its
//! `meta.json`, then renamed. Anything else found at open is a leftover.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::content::BlobWriter;
use crate::digest::HashingWriter;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::images::validate_namespace;
use crate::layer::{self, Compression};
use crate::lease::Lease;
use crate::mount::{self, Mount};

/// The kernel copies mount options into one page.
const MOUNT_OPTIONS_MAX: usize = 4095;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// An unpacked layer, read-only, named by its chain id.
    Committed,
    /// A writable snapshot (a container's rootfs), named by its key.
    Active,
}

/// What [`Store::list_snapshots`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub kind: SnapshotKind,
    /// Active snapshots belong to a namespace; unpacked layers are shared.
    pub namespace: Option<String>,
    /// The chain id (committed) or the caller's key (active).
    pub key: String,
    /// The chain id of the layer under this one.
    pub parent: Option<Digest>,
    /// The number naming the snapshot's directory.
    pub id: u64,
    /// For a committed layer: the digest of its uncompressed tar.
    pub diff_id: Option<Digest>,
    /// For a committed layer: the blob it was unpacked from.
    pub layer: Option<Digest>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: SystemTime,
    /// For a committed layer: the bytes its files hold (see
    /// [`Store::layer_content_size`]); counted at unpack, or on first
    /// request for layers made otherwise or by an older store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_size: Option<u64>,
}

/// Disk use of a snapshot's own directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of allocated blocks (each inode counted once).
    pub size: u64,
    pub inodes: u64,
    /// Bytes the files hold, directories left out (each inode once): what
    /// Docker shows as a container's writable layer size.
    pub content: u64,
}

/// A layer made from an active snapshot's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedLayer {
    /// The compressed layer blob, in the content store.
    pub layer: Descriptor,
    /// The digest of the uncompressed tar, for the image config's diff ids.
    pub diff_id: Digest,
}

#[derive(Default)]
pub(crate) struct SnapState {
    pub(crate) committed: HashMap<Digest, SnapshotInfo>,
    pub(crate) active: HashMap<(String, String), SnapshotInfo>,
    next_id: u64,
    unpacking: HashSet<Digest>,
}

pub(crate) struct Snapshots {
    dir: PathBuf,
    state: Mutex<SnapState>,
    unpacked: Condvar,
}

impl Snapshots {
    pub(crate) fn open(dir: PathBuf) -> Result<Snapshots> {
        fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        let mut st = SnapState {
            next_id: 1,
            ..Default::default()
        };
        for e in fs::read_dir(&dir).map_err(Error::io("reading directory", &dir))? {
            let e = e.map_err(Error::io("reading directory", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(id) = name.parse::<u64>() else {
                // `<id>.tmp` of an unpack that did not finish, `del-*` of a
                // removal that did not finish.
                fsutil::remove_tree(&e.path())?;
                continue;
            };
            st.next_id = st.next_id.max(id + 1);
            let meta = e.path().join("meta.json");
            let info = fs::read(&meta).map_err(|e| e.to_string()).and_then(|d| {
                serde_json::from_slice::<SnapshotInfo>(&d).map_err(|e| e.to_string())
            });
            match info {
                Ok(info) if info.id == id => match info.kind {
                    SnapshotKind::Committed => {
                        if let Ok(chain) = crate::digest::parse_digest(&info.key) {
                            st.committed.insert(chain, info);
                        }
                    }
                    SnapshotKind::Active => {
                        if let Some(ns) = info.namespace.clone() {
                            st.active.insert((ns, info.key.clone()), info);
                        }
                    }
                },
                // Never written that way by the store (meta.json goes in
                // before the directory gets its name): someone's hand. Left
                // alone rather than deleted with whatever it holds.
                Ok(_) | Err(_) => tracing::error!(
                    "snapshot directory {} has no valid meta.json; ignoring it",
                    e.path().display()
                ),
            }
        }
        Ok(Snapshots {
            dir,
            state: Mutex::new(st),
            unpacked: Condvar::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SnapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string()).join("fs")
    }

    fn work_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string()).join("work")
    }

    fn allocate(&self) -> u64 {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        id
    }

    /// Publishes a snapshot built in `<id>.tmp`: its meta, then one rename.
    fn publish(&self, tmp: &Path, info: &SnapshotInfo) -> Result<()> {
        let data = serde_json::to_vec_pretty(info).map_err(|e| Error::Io {
            op: "encoding",
            path: tmp.join("meta.json"),
            source: std::io::Error::other(e),
        })?;
        fsutil::write_atomic(&tmp.join("meta.json"), &data)?;
        let dest = self.dir.join(info.id.to_string());
        fs::rename(tmp, &dest).map_err(Error::io("publishing", &dest))?;
        fsutil::sync_dir(&self.dir)
    }

    /// The layer directories under (and including) `chain`, top first.
    pub(crate) fn lower_dirs(&self, st: &SnapState, chain: &Digest) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut cur = Some(chain.clone());
        while let Some(c) = cur {
            let info = st
                .committed
                .get(&c)
                .ok_or_else(|| Error::SnapshotNotFound { key: c.to_string() })?;
            out.push(self.fs_dir(info.id));
            cur = info.parent.clone();
            if out.len() > 1000 {
                return Err(Error::SnapshotInUse {
                    key: chain.to_string(),
                    reason: "its parent chain loops".into(),
                });
            }
        }
        Ok(out)
    }

    fn remove_dir(&self, id: u64) -> Result<()> {
        fsutil::remove_tree_atomic(&self.dir.join(id.to_string()), &self.dir)
    }
}

/// Removes an unpacking claim however the unpack ends.
struct Claim<'a> {
    snaps: &'a Snapshots,
    chain: Digest,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.snaps.lock().unpacking.remove(&self.chain);
        self.snaps.unpacked.notify_all();
    }
}

fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > 1024 {
        "it is longer than 1024 bytes"
    } else if key.chars().any(|c| c.is_control()) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSnapshotKey {
        key: key.to_string(),
        reason,
    })
}

impl Store {
    /// Unpacks the layer `layer` (already in the content store) as the
    /// snapshot `chain` on top of `parent`, unless it is there already.
    /// Concurrent calls for one chain id unpack it once; the others wait.
    /// Returns whether this call unpacked it.
    pub(crate) fn ensure_layer(
        &self,
        chain: &Digest,
        parent: Option<&Digest>,
        layer: &Descriptor,
        diff_id: &Digest,
        lease: Option<&Lease>,
    ) -> Result<bool> {
        let snaps = &self.inner.snapshots;
        {
            let mut st = snaps.lock();
            loop {
                if st.committed.contains_key(chain) {
                    if let Some(l) = lease {
                        l.add_snapshot(chain);
                    }
                    return Ok(false);
                }
                if st.unpacking.insert(chain.clone()) {
                    break;
                }
                st = snaps.unpacked.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        let _claim = Claim {
            snaps,
            chain: chain.clone(),
        };
        let id = snaps.allocate();
        let tmp = snaps.dir.join(format!("{id}.tmp"));
        let res = self.unpack_into(&tmp, id, chain, parent, layer, diff_id, lease);
        if res.is_err() {
            let _ = fsutil::remove_tree(&tmp);
        }
        res.map(|()| true)
    }

    #[allow(clippy::too_many_arguments)]
    fn unpack_into(
        &self,
        tmp: &Path,
        id: u64,
        chain: &Digest,
        parent: Option<&Digest>,
        layer: &Descriptor,
        diff_id: &Digest,
        lease: Option<&Lease>,
    ) -> Result<()> {
        let snaps = &self.inner.snapshots;
        let fsdir = tmp.join("fs");
        fs::create_dir_all(&fsdir).map_err(Error::io("creating directory", &fsdir))?;
        let blob = self.inner.content.open_blob(layer.digest())?;
        let applied = layer::apply(
            BufReader::with_capacity(1 << 20, blob),
            &fsdir,
            layer.digest().as_ref(),
        )?;
        if &applied.diff_id != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("layer {} uncompressed (diff id)", layer.digest()),
                expected: diff_id.to_string(),
                actual: applied.diff_id.to_string(),
            });
        }
        // One syncfs for the whole tree instead of an fsync per file: the
        // meta below must not reach the disk before the files do.
        let d = fs::File::open(&fsdir).map_err(Error::io("opening", &fsdir))?;
        nix::unistd::syncfs(d.as_raw_fd()).map_err(|e| Error::io("syncing", &fsdir)(e.into()))?;
        let info = SnapshotInfo {
            kind: SnapshotKind::Committed,
            namespace: None,
            key: chain.to_string(),
            parent: parent.cloned(),
            id,
            diff_id: Some(diff_id.clone()),
            layer: Some(layer.digest().clone()),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            content_size: Some(applied.content_size),
        };
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        snaps.publish(tmp, &info)?;
        snaps.lock().committed.insert(chain.clone(), info);
        if let Some(l) = lease {
            l.record_created_snapshot(chain);
        }
        Ok(())
    }

    /// Unpacks every layer of an image for this machine's platform, each one
    /// once (layers another image already unpacked are reused), and returns
    /// the chain id of the top layer (`None` for an image without layers),
    /// the parent to give [`Store::prepare`].
    ///
    /// Layers unpack in parallel, since each goes into a directory of its
    /// own. Every uncompressed layer is checked against the config's diff
    /// ids. On failure, the layers this call unpacked are removed again.
    pub fn unpack(&self, ns: &str, image_name: &str) -> Result<Option<Digest>> {
        let rec = self.get_image(ns, image_name)?;
        let resolved = self.resolve_named(&rec.target, &crate::PlatformSpec::host(), image_name)?;
        let lease = self.lease();
        let res = self.unpack_resolved(&resolved, Some(&lease));
        if res.is_err() {
            self.rollback(&lease);
        }
        res.map(|()| resolved.top_chain_id().cloned())
    }

    pub(crate) fn unpack_resolved(
        &self,
        r: &crate::ResolvedImage,
        lease: Option<&Lease>,
    ) -> Result<()> {
        let jobs: Vec<usize> = (0..r.layers.len()).collect();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(jobs.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_err: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= jobs.len() || first_err.lock().map(|e| e.is_some()).unwrap_or(true)
                        {
                            return;
                        }
                        let parent = if i == 0 {
                            None
                        } else {
                            Some(&r.chain_ids[i - 1])
                        };
                        if let Err(e) = self.ensure_layer(
                            &r.chain_ids[i],
                            parent,
                            &r.layers[i],
                            &r.diff_ids[i],
                            lease,
                        ) && let Ok(mut slot) = first_err.lock()
                            && slot.is_none()
                        {
                            *slot = Some(e);
                        }
                    }
                });
            }
        });
        match first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates the active snapshot `key` on top of the layer chain `parent`
    /// (from [`Store::unpack`]) and returns how to mount it: overlayfs over
    /// the chain with the snapshot's own upper and work dirs, or a
    /// read-write bind of an empty directory when there is no parent.
    pub fn prepare(&self, ns: &str, key: &str, parent: Option<&Digest>) -> Result<Vec<Mount>> {
        validate_namespace(ns)?;
        validate_key(key)?;
        let snaps = &self.inner.snapshots;
        let id = {
            let st = snaps.lock();
            if st.active.contains_key(&(ns.to_string(), key.to_string())) {
                return Err(Error::SnapshotExists {
                    key: key.to_string(),
                });
            }
            if let Some(p) = parent {
                snaps.lower_dirs(&st, p)?;
            }
            drop(st);
            snaps.allocate()
        };
        let tmp = snaps.dir.join(format!("{id}.tmp"));
        let info = SnapshotInfo {
            kind: SnapshotKind::Active,
            namespace: Some(ns.to_string()),
            key: key.to_string(),
            parent: parent.cloned(),
            id,
            diff_id: None,
            layer: None,
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            content_size: None,
        };
        let res = (|| {
            for d in ["fs", "work"] {
                let p = tmp.join(d);
                fs::create_dir_all(&p).map_err(Error::io("creating directory", &p))?;
            }
            let _gc = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            let mut st = snaps.lock();
            // Checked again under the lock that the insert holds.
            if st.active.contains_key(&(ns.to_string(), key.to_string())) {
                return Err(Error::SnapshotExists {
                    key: key.to_string(),
                });
            }
            if let Some(p) = parent {
                snaps.lower_dirs(&st, p)?;
            }
            snaps.publish(&tmp, &info)?;
            st.active.insert((ns.to_string(), key.to_string()), info);
            Ok(())
        })();
        if let Err(e) = res {
            let _ = fsutil::remove_tree(&tmp);
            return Err(e);
        }
        self.mounts(ns, key)
    }

    /// The mounts of an active snapshot (the same answer as `prepare` gave).
    pub fn mounts(&self, ns: &str, key: &str) -> Result<Vec<Mount>> {
        let snaps = &self.inner.snapshots;
        let st = snaps.lock();
        let info = st
            .active
            .get(&(ns.to_string(), key.to_string()))
            .ok_or_else(|| Error::SnapshotNotFound {
                key: key.to_string(),
            })?;
        let upper = snaps.fs_dir(info.id);
        let lowers = match &info.parent {
            Some(p) => snaps.lower_dirs(&st, p)?,
            None => Vec::new(),
        };
        if lowers.is_empty() {
            return Ok(vec![Mount {
                r#type: "bind".into(),
                source: upper.to_string_lossy().into_owned(),
                target: String::new(),
                options: vec!["rbind".into(), "rw".into()],
            }]);
        }
        let lowerdir = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let options = vec![
            // Without the index a lower dir may sit under several uppers.
            "index=off".to_string(),
            format!("lowerdir={lowerdir}"),
            format!("upperdir={}", upper.display()),
            format!("workdir={}", snaps.work_dir(info.id).display()),
        ];
        let len = options.join(",").len();
        if len > MOUNT_OPTIONS_MAX {
            return Err(Error::MountOptionsTooLong {
                key: key.to_string(),
                len,
                layers: lowers.len(),
                max: MOUNT_OPTIONS_MAX,
            });
        }
        Ok(vec![Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options,
        }])
    }

    /// Removes an active snapshot and its changes. Refused while it is
    /// mounted in this mount namespace.
    pub fn remove(&self, ns: &str, key: &str) -> Result<()> {
        let snaps = &self.inner.snapshots;
        let mut st = snaps.lock();
        let k = (ns.to_string(), key.to_string());
        let info = st.active.get(&k).ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })?;
        let upper = snaps.fs_dir(info.id);
        if let Some(at) = mount::in_use(&upper) {
            return Err(Error::SnapshotInUse {
                key: key.to_string(),
                reason: format!("it is mounted at {at}"),
            });
        }
        let id = info.id;
        snaps.remove_dir(id)?;
        st.active.remove(&k);
        Ok(())
    }

    /// Turns the changes of an active snapshot into a layer blob: a tar of
    /// its upper dir with overlay whiteouts written as OCI whiteouts,
    /// compressed as asked, stored in the content store under `lease`
    /// (take one and keep it until an image references the layer). The
    /// snapshot itself stays as it is.
    pub fn commit(
        &self,
        ns: &str,
        key: &str,
        compression: Compression,
        lease: Option<&Lease>,
    ) -> Result<CommittedLayer> {
        self.commit_excluding(ns, key, compression, lease, &[])
    }

    /// [`Store::commit`] leaving the paths in `exclude` (relative to the
    /// root) out of the layer.
    pub fn commit_excluding(
        &self,
        ns: &str,
        key: &str,
        compression: Compression,
        lease: Option<&Lease>,
        exclude: &[PathBuf],
    ) -> Result<CommittedLayer> {
        let dir = {
            let snaps = &self.inner.snapshots;
            let st = snaps.lock();
            let info = st
                .active
                .get(&(ns.to_string(), key.to_string()))
                .ok_or_else(|| Error::SnapshotNotFound {
                    key: key.to_string(),
                })?;
            snaps.fs_dir(info.id)
        };
        self.diff_dir(&dir, compression, lease, exclude)
    }

    /// The same as [`Store::commit`] for an unpacked layer: its directory
    /// written back as a layer tarball (for export of content whose blob is
    /// gone, and for checks).
    pub fn diff_layer(
        &self,
        chain_id: &Digest,
        compression: Compression,
        lease: Option<&Lease>,
    ) -> Result<CommittedLayer> {
        let dir = {
            let snaps = &self.inner.snapshots;
            let st = snaps.lock();
            let info = st
                .committed
                .get(chain_id)
                .ok_or_else(|| Error::SnapshotNotFound {
                    key: chain_id.to_string(),
                })?;
            snaps.fs_dir(info.id)
        };
        self.diff_dir(&dir, compression, lease, &[])
    }

    fn diff_dir(
        &self,
        dir: &Path,
        compression: Compression,
        lease: Option<&Lease>,
        exclude: &[PathBuf],
    ) -> Result<CommittedLayer> {
        let Some(w) = BlobWriter::open(self, None)? else {
            return Err(Error::TaskFailed {
                what: "opening an ingest".into(),
            });
        };
        let write_err = |source| Error::Write {
            what: "the layer blob".into(),
            source,
        };
        let (w, diff_id) = match compression {
            Compression::None => {
                let mut h = HashingWriter::new(w);
                layer::write_diff(dir, &mut h, exclude)?;
                let (w, d, _) = h.finish();
                (w, d)
            }
            Compression::Gzip => {
                let gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
                let mut h = HashingWriter::new(gz);
                layer::write_diff(dir, &mut h, exclude)?;
                let (gz, d, _) = h.finish();
                (gz.finish().map_err(write_err)?, d)
            }
            Compression::Zstd => {
                let z = zstd::stream::write::Encoder::new(w, 3).map_err(write_err)?;
                let mut h = HashingWriter::new(z);
                layer::write_diff(dir, &mut h, exclude)?;
                let (z, d, _) = h.finish();
                (z.finish().map_err(write_err)?, d)
            }
        };
        let mut layer = w.commit(lease)?;
        layer.set_media_type(compression.oci_media_type().into());
        Ok(CommittedLayer { layer, diff_id })
    }

    /// Every snapshot: unpacked layers and active snapshots of all namespaces.
    pub fn list_snapshots(&self) -> Vec<SnapshotInfo> {
        let st = self.inner.snapshots.lock();
        let mut v: Vec<SnapshotInfo> = st
            .committed
            .values()
            .chain(st.active.values())
            .cloned()
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Disk use of an active snapshot's changes.
    pub fn usage(&self, ns: &str, key: &str) -> Result<Usage> {
        let dir = {
            let snaps = &self.inner.snapshots;
            let st = snaps.lock();
            let info = st
                .active
                .get(&(ns.to_string(), key.to_string()))
                .ok_or_else(|| Error::SnapshotNotFound {
                    key: key.to_string(),
                })?;
            snaps.fs_dir(info.id)
        };
        fsutil::disk_usage(&dir)
    }

    /// The directories of an unpacked layer chain, the top layer first.
    pub fn layer_dirs(&self, chain_id: &Digest) -> Result<Vec<PathBuf>> {
        let snaps = &self.inner.snapshots;
        let st = snaps.lock();
        snaps.lower_dirs(&st, chain_id)
    }

    /// Disk use of one unpacked layer.
    pub fn layer_usage(&self, chain_id: &Digest) -> Result<Usage> {
        let dir = {
            let snaps = &self.inner.snapshots;
            let st = snaps.lock();
            let info = st
                .committed
                .get(chain_id)
                .ok_or_else(|| Error::SnapshotNotFound {
                    key: chain_id.to_string(),
                })?;
            snaps.fs_dir(info.id)
        };
        fsutil::disk_usage(&dir)
    }

    /// The bytes an unpacked layer's files hold, as Docker sizes layers
    /// (directories left out, each inode once); `None` when the layer is
    /// not unpacked here. Counted once per layer and kept in memory for a
    /// layer whose record does not have it.
    pub fn layer_content_size(&self, chain_id: &Digest) -> Option<u64> {
        let snaps = &self.inner.snapshots;
        if let Some(n) = snaps.lock().committed.get(chain_id)?.content_size {
            return Some(n);
        }
        let n = self.layer_usage(chain_id).ok()?.content;
        if let Some(info) = snaps.lock().committed.get_mut(chain_id) {
            info.content_size = Some(n);
        }
        Some(n)
    }

    /// Removes an unpacked layer (the garbage collector decides which).
    pub(crate) fn remove_layer(&self, chain: &Digest) -> Result<()> {
        let snaps = &self.inner.snapshots;
        let mut st = snaps.lock();
        if let Some(info) = st.committed.get(chain) {
            let id = info.id;
            snaps.remove_dir(id)?;
            st.committed.remove(chain);
        }
        Ok(())
    }
}
