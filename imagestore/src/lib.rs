//! berth's image store: the image half of berth-lifecycled.
//!
//! One [`Store`] owns a directory (lifecycled's `--root`) and everything an
//! image is made of:
//!
//! | path under the root | what |
//! |---|---|
//! | `lock` | an exclusive `flock`: one process per store |
//! | `content/blobs/<alg>/<hex>` | blobs by digest (sha256, sha512), read-only, complete and verified |
//! | `content/ingest/<key>/` | blobs being written; keyed by the expected digest they resume |
//! | `content/labels/<alg>-<hex>.json` | labels of a blob (where it came from, for cross-repository mounts) |
//! | `images/<ns>/<sha256 of name>.json` | image records: name → manifest descriptor, labels |
//! | `snapshots/<id>/fs` | an unpacked layer (by chain id) or an active snapshot's upper dir |
//! | `snapshots/<id>/work`, `meta.json` | overlay work dir (active only); what the snapshot is |
//!
//! Every change is crash-safe: files are written to a temporary name,
//! fsynced and renamed (then the directory fsynced); snapshot directories are
//! built under `<id>.tmp` and renamed whole. A SIGKILL at any moment leaves
//! either the old state or the new one, plus leftovers that [`Store::open`]
//! removes.
//!
//! # Content
//! [`Store::write_blob`] / [`Store::writer`] verify digest and size while
//! bytes stream in. [`Store::info`], [`Store::list`], [`Store::open_blob`],
//! [`Store::delete`] (refused while an image or lease needs the blob).
//! [`Store::lease`] returns a [`Lease`] that protects blobs and unpacked
//! layers from [`Store::gc`], which removes what no image, active snapshot
//! or lease needs.
//!
//! # Images
//! Records are namespaced: [`Store::list_images`], [`Store::get_image`],
//! [`Store::put_image`], [`Store::delete_image`], [`Store::tag`]. Names are
//! full references and are stored as given; [`Reference::parse`] is the
//! strict parser for what goes to a registry. [`Store::resolve`] turns a
//! record's target into a [`ResolvedImage`] for this machine's platform.
//!
//! # Snapshots
//! [`Store::unpack`] unpacks an image's layers (once each, shared between
//! images) and returns the chain id to give [`Store::prepare`], which
//! creates a container's writable rootfs and returns its [`Mount`]s.
//! [`Store::commit`] turns a snapshot's changes into a layer blob.
//!
//! # Archives
//! [`Store::import`] reads Docker `save` archives and OCI image layouts (tar,
//! optionally gzip or zstd compressed); [`Store::import_rootfs`] makes a
//! one-layer image from a root filesystem tarball; [`Store::export`] writes
//! either format.
//!
//! # Registries
//! [`Store::pull`] and [`Store::push`] speak the OCI distribution API through
//! `oci-client`, with progress on a channel as [`Progress`] values.
//!
//! # Concurrency
//! `Store` is `Clone + Send + Sync` (an `Arc` inside). Its methods do
//! blocking filesystem work; from async code call them through
//! `tokio::task::spawn_blocking` when they may take long (unpack, import,
//! export, commit, gc). `pull` and `push` are async and do their disk work on
//! blocking threads themselves.
//!
//! Everything here needs root: layers hold files of any owner, whiteouts
//! are device nodes and opaque directories carry `trusted.*` attributes.

mod archive;
mod content;
mod digest;
mod error;
mod fsutil;
mod gc;
mod images;
mod layer;
mod lease;
mod login;
mod mount;
mod reference;
mod registry;
mod resolve;
mod search;
mod snapshots;
mod transport;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use nix::fcntl::{Flock, FlockArg};

pub use archive::{ArchiveFormat, ImportOptions, Rename, RootfsOptions};
pub use content::{BlobWriter, ContentInfo, IngestInfo};
pub use digest::{chain_ids, parse_digest, short as short_digest};
pub use error::{Error, Missing, Result};
pub use gc::GcReport;
pub use images::ImageRecord;
pub use layer::Compression;
pub use lease::Lease;
pub use login::check_login;
pub use mount::{Mount, mount_all, unmount};
pub use reference::{Reference, is_loopback_host};
pub use registry::{
    Credentials, Distribution, FetchedConfig, Progress, ProgressAction, RegistryOptions,
};
pub use resolve::check_config;
pub use resolve::{PlatformSpec, Resolved, ResolvedImage, media_types};
pub use search::{SearchResult, search};
pub use snapshots::{CommittedLayer, SnapshotInfo, SnapshotKind, Usage};

/// The OCI types the API speaks in.
pub use oci_spec::image::{Descriptor, Digest, ImageConfiguration, MediaType, Platform};

/// The image store. See the crate documentation for its layout and rules.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    root: PathBuf,
    _lock: Flock<File>,
    pub(crate) content: content::Content,
    pub(crate) images: images::Images,
    pub(crate) snapshots: snapshots::Snapshots,
    pub(crate) leases: Arc<lease::Leases>,
    /// Held for writing by the garbage collector while it marks and sweeps,
    /// for reading by whatever publishes new content or snapshots together
    /// with the lease that protects them.
    pub(crate) gc_lock: RwLock<()>,
    resolutions: resolve::Resolutions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`, takes its lock, and
    /// clears leftovers of interrupted work (temporary files, half-built
    /// snapshot directories, ingests that cannot be resumed).
    pub fn open(root: &Path) -> Result<Store> {
        fs::create_dir_all(root).map_err(Error::io("creating directory", root))?;
        let lock_path = root.join("lock");
        let f = File::create(&lock_path).map_err(Error::io("opening", &lock_path))?;
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|_| Error::Locked {
            root: root.to_path_buf(),
        })?;
        let content = content::Content::open(root.join("content"))?;
        let images = images::Images::open(root.join("images"))?;
        let snapshots = snapshots::Snapshots::open(root.join("snapshots"))?;
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                _lock: lock,
                content,
                images,
                snapshots,
                leases: Arc::new(lease::Leases::default()),
                gc_lock: RwLock::new(()),
                resolutions: resolve::Resolutions::default(),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where unpacked layers and containers' writable layers live.
    pub fn snapshots_root(&self) -> PathBuf {
        self.inner.root.join("snapshots")
    }

    /// Disk use of every snapshot, unpacked layers and containers'
    /// changes alike (what a snapshotter's usage reports).
    pub fn snapshots_usage(&self) -> Result<Usage> {
        fsutil::disk_usage(&self.snapshots_root())
    }

    /// A new lease; see [`Lease`].
    pub fn lease(&self) -> Lease {
        self.inner.leases.create()
    }

    // ---- content ----

    /// Size, creation time and labels of a blob.
    pub fn info(&self, digest: &Digest) -> Result<ContentInfo> {
        self.inner.content.info(digest)
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<ContentInfo>> {
        self.inner.content.list()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        self.inner.content.open_blob(digest)
    }

    /// Reads a blob whole, refusing one larger than `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        self.inner.content.read_blob(digest, limit)
    }

    /// Opens a writer for a blob; `None` when the expected blob is already
    /// stored. With an expected descriptor the ingest is resumable: the
    /// writer starts at [`BlobWriter::offset`], where an interrupted one
    /// stopped. Blocks while another writer of this process writes the same
    /// digest.
    pub fn writer(&self, expected: Option<&Descriptor>) -> Result<Option<BlobWriter>> {
        BlobWriter::open(self, expected)
    }

    /// Streams `reader` into the store, verifying digest and size against
    /// `expected` as the bytes arrive (without one, the digest is computed
    /// as sha256). If the expected blob is already stored, `reader` is not
    /// read. A resumable ingest of the same digest is continued: the bytes
    /// it holds are skipped in `reader`. The blob goes under `lease` if given.
    pub fn write_blob(
        &self,
        expected: Option<&Descriptor>,
        mut reader: impl Read,
        lease: Option<&Lease>,
    ) -> Result<Descriptor> {
        let what = || match expected {
            Some(e) => format!("the data of blob {}", e.digest()),
            None => "the data of a new blob".to_string(),
        };
        let Some(mut w) = self.writer(expected)? else {
            let e = expected.cloned().ok_or_else(|| Error::TaskFailed {
                what: "opening an ingest".into(),
            })?;
            if let Some(l) = lease {
                l.add_blob(e.digest());
            }
            return Ok(e);
        };
        if w.offset() > 0 {
            let skip = w.offset();
            let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
                .map_err(|source| Error::Read {
                    what: what(),
                    source,
                })?;
            if skipped < skip {
                // The input is shorter than what the ingest holds: it is not
                // the same content; start over with what we have.
                w.reset()?;
                return Err(Error::SizeMismatch {
                    what: what(),
                    expected: expected.map(|e| e.size()).unwrap_or(0),
                    actual: skipped,
                });
            }
        }
        content::copy_into(&mut reader, &mut w, &what)?;
        w.commit(lease)
    }

    /// Removes a blob. Refused while an image or a lease needs it; to free
    /// space, delete images and run [`Store::gc`].
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let _w = self
            .inner
            .gc_lock
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !self.inner.content.exists(digest) {
            return Err(Error::BlobNotFound {
                digest: digest.to_string(),
            });
        }
        let marks = self.mark_images();
        if let Some(user) = marks.users.get(digest) {
            return Err(Error::BlobInUse {
                digest: digest.to_string(),
                user: format!("image {user}"),
            });
        }
        if self.inner.leases.holds_blob(digest, None) {
            return Err(Error::BlobInUse {
                digest: digest.to_string(),
                user: "a lease (an operation in progress)".into(),
            });
        }
        self.inner.content.remove_blob(digest).map(|_| ())
    }

    /// Partial writes waiting to be resumed.
    pub fn ingests(&self) -> Result<Vec<IngestInfo>> {
        self.inner.content.ingests()
    }

    /// Changes the labels of a blob; `f` gets the current set to edit.
    pub fn update_blob_labels(
        &self,
        digest: &Digest,
        f: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> Result<std::collections::BTreeMap<String, String>> {
        self.inner.content.update_labels(digest, f)
    }

    // ---- images ----

    /// The images of a namespace, by name.
    pub fn list_images(&self, ns: &str) -> Result<Vec<ImageRecord>> {
        images::validate_namespace(ns)?;
        Ok(self.inner.images.list(ns))
    }

    pub fn get_image(&self, ns: &str, name: &str) -> Result<ImageRecord> {
        images::validate_namespace(ns)?;
        self.inner.images.get(ns, name)
    }

    /// Creates or replaces a record (a replaced one keeps its `created_at`;
    /// `updated_at` becomes now). The target's content need not be present.
    pub fn put_image(&self, ns: &str, record: ImageRecord) -> Result<ImageRecord> {
        self.inner.images.put(ns, record)
    }

    /// Removes a record. Its content stays until [`Store::gc`].
    pub fn delete_image(&self, ns: &str, name: &str) -> Result<ImageRecord> {
        images::validate_namespace(ns)?;
        self.inner.images.delete(ns, name)
    }

    /// Gives the image `src` a second name `dst` (replacing what `dst` was).
    pub fn tag(&self, ns: &str, src: &str, dst: &str) -> Result<ImageRecord> {
        let s = self.get_image(ns, src)?;
        let mut r = ImageRecord::new(dst, s.target);
        r.labels = s.labels;
        self.put_image(ns, r)
    }

    // ---- resolution ----

    /// Resolves a manifest or index for this machine's platform.
    pub fn resolve(&self, target: &Descriptor) -> Result<ResolvedImage> {
        self.resolve_named(target, &PlatformSpec::host(), target.digest().as_ref())
    }

    /// Resolves a manifest or index for `platform`.
    pub fn resolve_for(
        &self,
        target: &Descriptor,
        platform: &PlatformSpec,
    ) -> Result<ResolvedImage> {
        self.resolve_named(target, platform, target.digest().as_ref())
    }

    /// Resolves a named image for this machine's platform.
    pub fn resolve_image(&self, ns: &str, name: &str) -> Result<ResolvedImage> {
        let rec = self.get_image(ns, name)?;
        self.resolve_named(&rec.target, &PlatformSpec::host(), name)
    }

    /// [`Store::resolve`] with the config's bytes, from the resolutions
    /// made before while every blob they read is still stored (checked
    /// again only after this process removed blobs).
    pub fn resolve_with_config(&self, target: &Descriptor) -> Result<Arc<Resolved>> {
        let key = (target.digest().clone(), target.media_type().to_string());
        let removals = self.inner.content.removals();
        if let Some((seen, r)) = self.inner.resolutions.get(&key) {
            if seen == removals {
                return Ok(r);
            }
            let i = &r.image;
            if [target.digest(), &i.manifest_digest, &i.config_digest]
                .into_iter()
                .all(|d| self.inner.content.exists(d))
            {
                self.inner.resolutions.put(key, removals, r.clone());
                return Ok(r);
            }
        }
        let (image, config_bytes) =
            self.resolve_raw(target, &PlatformSpec::host(), target.digest().as_ref())?;
        let r = Arc::new(Resolved {
            image,
            config_bytes,
        });
        self.inner.resolutions.put(key, removals, r.clone());
        Ok(r)
    }

    pub(crate) fn resolve_named(
        &self,
        target: &Descriptor,
        platform: &PlatformSpec,
        name: &str,
    ) -> Result<ResolvedImage> {
        self.resolve_raw(target, platform, name).map(|(r, _)| r)
    }

    /// A resolution and the config's bytes it parsed.
    fn resolve_raw(
        &self,
        target: &Descriptor,
        platform: &PlatformSpec,
        name: &str,
    ) -> Result<(ResolvedImage, Vec<u8>)> {
        use resolve::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Parsed};
        let data = self.read_blob(target.digest(), MAX_MANIFEST_SIZE)?;
        let mut manifest_desc = target.clone();
        let manifest = match resolve::parse_manifest(
            &data,
            target.media_type().as_ref(),
            target.digest().as_ref(),
        )? {
            Parsed::Manifest(m) => m,
            Parsed::Index(idx) => {
                let d = resolve::select_platform(&idx, platform, name)?;
                let data = self.read_blob(d.digest(), MAX_MANIFEST_SIZE)?;
                manifest_desc = d.clone();
                match resolve::parse_manifest(&data, d.media_type().as_ref(), d.digest().as_ref())?
                {
                    Parsed::Manifest(m) => m,
                    Parsed::Index(_) => {
                        return Err(Error::InvalidContent {
                            what: "index",
                            digest: target.digest().to_string(),
                            reason: format!("its entry for {platform} is another index"),
                        });
                    }
                }
            }
        };
        resolve::check_manifest(&manifest, manifest_desc.digest().as_ref())?;
        let cdesc = manifest.config().clone();
        let cdata = self.read_blob(cdesc.digest(), MAX_CONFIG_SIZE)?;
        let (config, diff_ids) =
            resolve::parse_config(&cdata, cdesc.digest().as_ref(), manifest.layers().len())?;
        let platform = resolve::config_platform(&config);
        let image = ResolvedImage {
            target: target.clone(),
            manifest_digest: manifest_desc.digest().clone(),
            manifest: manifest_desc,
            config_digest: cdesc.digest().clone(),
            config_descriptor: cdesc,
            config,
            layers: manifest.layers().clone(),
            chain_ids: chain_ids(&diff_ids),
            diff_ids,
            platform,
        };
        Ok((image, cdata))
    }

    /// Undoes what failed work under `lease` created: its new blobs that no
    /// image and no other lease needs, its new unpacked layers that no
    /// active snapshot and no other lease needs.
    pub(crate) fn rollback(&self, lease: &Lease) {
        let (blobs, chains) = lease.created();
        if blobs.is_empty() && chains.is_empty() {
            return;
        }
        let _w = self
            .inner
            .gc_lock
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let marks = self.mark_images();
        let active_chains = self.active_chains();
        for c in chains.iter().rev() {
            if active_chains.contains(c) || self.inner.leases.holds_snapshot(c, Some(lease.id())) {
                continue;
            }
            if let Err(e) = self.remove_layer(c) {
                tracing::warn!("rolling back layer {c}: {}", e.chain());
            }
        }
        for d in &blobs {
            if marks.blobs.contains(d) || self.inner.leases.holds_blob(d, Some(lease.id())) {
                continue;
            }
            if let Err(e) = self.inner.content.remove_blob(d) {
                tracing::warn!("rolling back blob {d}: {}", e.chain());
            }
        }
    }
}

#[cfg(test)]
mod tests;
