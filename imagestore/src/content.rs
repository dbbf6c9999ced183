//! The content store: blobs by digest under `content/blobs/<alg>/<hex>`.
//!
//! A blob is written into `content/ingest/<key>/data` while its digest and
//! size are checked, then renamed into place: it is either complete and
//! verified or not visible at all. An ingest keyed by its expected digest
//! survives an interruption and is resumed by the next writer of the same
//! digest; an ingest without one is discarded.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::digest::{self, Algorithm, Hasher};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::lease::Lease;

/// What the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentInfo {
    pub digest: Digest,
    pub size: u64,
    /// When the blob was committed to the store.
    pub created_at: SystemTime,
    /// Free-form labels; the store itself records
    /// `berth.distribution.source.<registry>` = comma-separated repositories
    /// the blob is known to exist in, for cross-repository mounts on push.
    pub labels: BTreeMap<String, String>,
}

/// A partial write that can be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestInfo {
    pub key: String,
    /// The digest the data must hash to, for resumable ingests.
    pub expected: Option<Digest>,
    /// Bytes written so far.
    pub offset: u64,
    pub total: Option<u64>,
    pub updated_at: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct IngestRef {
    expected: Descriptor,
}

pub(crate) struct Content {
    dir: PathBuf,
    /// Ingest keys a writer of this process holds: a second writer of the
    /// same digest waits for the first, then finds the blob committed or
    /// resumes what is left.
    active: Mutex<HashSet<String>>,
    released: Condvar,
    labels_lock: Mutex<()>,
    /// Blobs removed so far by this process: what was read from the store
    /// before is still there while the count has not moved.
    removals: std::sync::atomic::AtomicU64,
}

pub(crate) const SOURCE_LABEL_PREFIX: &str = "berth.distribution.source.";

impl Content {
    pub(crate) fn open(dir: PathBuf) -> Result<Content> {
        for d in ["blobs/sha256", "blobs/sha512", "ingest", "labels"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(Error::io("creating directory", &p))?;
        }
        // Ingests without an expected digest cannot be resumed by anyone.
        let ingest = dir.join("ingest");
        for e in fs::read_dir(&ingest)
            .map_err(Error::io("reading directory", &ingest))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                fsutil::remove_tree(&e.path())?;
            }
        }
        // Temporary files of label writes that did not finish.
        let labels = dir.join("labels");
        for e in fs::read_dir(&labels)
            .map_err(Error::io("reading directory", &labels))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                fsutil::remove_file(&e.path())?;
            }
        }
        Ok(Content {
            dir,
            active: Mutex::new(HashSet::new()),
            released: Condvar::new(),
            labels_lock: Mutex::new(()),
            removals: Default::default(),
        })
    }

    pub(crate) fn removals(&self) -> u64 {
        self.removals.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> Result<PathBuf> {
        let (alg, hex) = digest::split(d)?;
        Ok(self.dir.join("blobs").join(alg.name()).join(hex))
    }

    fn labels_path(&self, d: &Digest) -> Result<PathBuf> {
        let (alg, hex) = digest::split(d)?;
        Ok(self
            .dir
            .join("labels")
            .join(format!("{}-{hex}.json", alg.name())))
    }

    pub(crate) fn exists(&self, d: &Digest) -> bool {
        self.blob_path(d).map(|p| p.is_file()).unwrap_or(false)
    }

    pub(crate) fn info(&self, d: &Digest) -> Result<ContentInfo> {
        let p = self.blob_path(d)?;
        let md = match fs::metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound {
                    digest: d.to_string(),
                });
            }
            Err(e) => return Err(Error::io("reading", &p)(e)),
        };
        Ok(ContentInfo {
            digest: d.clone(),
            size: md.len(),
            created_at: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            labels: self.labels(d)?,
        })
    }

    pub(crate) fn list(&self) -> Result<Vec<ContentInfo>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.dir.join("blobs").join(alg.name());
            for e in fs::read_dir(&dir).map_err(Error::io("reading directory", &dir))? {
                let e = e.map_err(Error::io("reading directory", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(d) = digest::parse_digest(&format!("{}:{name}", alg.name())) else {
                    continue;
                };
                match self.info(&d) {
                    Ok(i) => out.push(i),
                    Err(Error::BlobNotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
        Ok(out)
    }

    pub(crate) fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d)?;
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound {
                    digest: d.to_string(),
                }
            } else {
                Error::io("opening", &p)(e)
            }
        })
    }

    /// Reads a small blob (a manifest, a config) whole, refusing ones larger
    /// than `limit` so that a hostile descriptor cannot exhaust memory.
    pub(crate) fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(d)?;
        let f = self.open_blob(d)?;
        let mut data = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(Error::io("reading", &p))?;
        if data.len() as u64 > limit {
            return Err(Error::InvalidContent {
                what: "blob",
                digest: d.to_string(),
                reason: format!("larger than {limit} bytes, too large for a manifest or config"),
            });
        }
        Ok(data)
    }

    /// Removes a blob and its labels; returns the bytes freed.
    pub(crate) fn remove_blob(&self, d: &Digest) -> Result<u64> {
        let p = self.blob_path(d)?;
        let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        fsutil::remove_file(&p)?;
        // Counted once the file is gone: whoever read the blob took the
        // count before, and sees it moved.
        self.removals
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        fsutil::remove_file(&self.labels_path(d)?)?;
        if let Some(parent) = p.parent() {
            fsutil::sync_dir(parent)?;
        }
        Ok(size)
    }

    pub(crate) fn labels(&self, d: &Digest) -> Result<BTreeMap<String, String>> {
        let p = self.labels_path(d)?;
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::InvalidContent {
                what: "labels of blob",
                digest: d.to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("reading", &p)(e)),
        }
    }

    /// Changes a blob's labels under a lock: `f` gets the current set.
    pub(crate) fn update_labels(
        &self,
        d: &Digest,
        f: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<BTreeMap<String, String>> {
        let _g = self.labels_lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.exists(d) {
            return Err(Error::BlobNotFound {
                digest: d.to_string(),
            });
        }
        let mut labels = self.labels(d)?;
        f(&mut labels);
        let p = self.labels_path(d)?;
        if labels.is_empty() {
            fsutil::remove_file(&p)?;
        } else {
            let data = serde_json::to_vec(&labels).map_err(|e| Error::InvalidContent {
                what: "labels of blob",
                digest: d.to_string(),
                reason: e.to_string(),
            })?;
            fsutil::write_atomic(&p, &data)?;
        }
        Ok(labels)
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.dir.join("ingest")
    }

    pub(crate) fn is_active(&self, key: &str) -> bool {
        self.active().contains(key)
    }

    pub(crate) fn ingests(&self) -> Result<Vec<IngestInfo>> {
        let dir = self.ingest_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io("reading directory", &dir))? {
            let e = e.map_err(Error::io("reading directory", &dir))?;
            let key = e.file_name().to_string_lossy().into_owned();
            let data = e.path().join("data");
            let Ok(md) = fs::metadata(&data) else {
                continue;
            };
            let r: Option<IngestRef> = fs::read(e.path().join("ref.json"))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok());
            out.push(IngestInfo {
                key,
                expected: r.as_ref().map(|r| r.expected.digest().clone()),
                offset: md.len(),
                total: r.as_ref().map(|r| r.expected.size()),
                updated_at: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn active(&self) -> MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim(&self, key: &str) {
        let mut active = self.active();
        while active.contains(key) {
            active = self
                .released
                .wait(active)
                .unwrap_or_else(|e| e.into_inner());
        }
        active.insert(key.to_string());
    }

    fn release(&self, key: &str) {
        self.active().remove(key);
        self.released.notify_all();
    }
}

/// A blob being written. Bytes are hashed and counted as they arrive; a
/// writer with an expected descriptor refuses bytes past the expected size.
/// [`BlobWriter::commit`] verifies and publishes; dropping a writer keeps
/// what a resumable ingest received for the next attempt.
pub struct BlobWriter {
    store: Store,
    key: String,
    dir: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    offset: u64,
    expected: Option<Descriptor>,
    overflow: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("key", &self.key)
            .field("offset", &self.offset)
            .finish()
    }
}

impl BlobWriter {
    /// Opens an ingest. Returns `None` when the expected blob is already in
    /// the store (possibly written meanwhile by a writer this one waited for).
    pub(crate) fn open(store: &Store, expected: Option<&Descriptor>) -> Result<Option<BlobWriter>> {
        let content = &store.inner.content;
        let key = match expected {
            Some(e) => {
                let (alg, hex) = digest::split(e.digest())?;
                if content.exists(e.digest()) {
                    return Ok(None);
                }
                format!("{}-{hex}", alg.name())
            }
            None => fsutil::unique("tmp-"),
        };
        content.claim(&key);
        let res = Self::open_claimed(store, expected, &key);
        if !matches!(res, Ok(Some(_))) {
            content.release(&key);
        }
        res
    }

    fn open_claimed(
        store: &Store,
        expected: Option<&Descriptor>,
        key: &str,
    ) -> Result<Option<BlobWriter>> {
        let content = &store.inner.content;
        if let Some(e) = expected
            && content.exists(e.digest())
        {
            return Ok(None);
        }
        let dir = content.ingest_dir().join(key);
        fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        let data = dir.join("data");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data)
            .map_err(Error::io("opening", &data))?;
        let alg = match expected {
            Some(e) => digest::split(e.digest())?.0,
            None => Algorithm::Sha256,
        };
        let mut hasher = Hasher::new(alg);
        let mut offset = 0;
        if let Some(e) = expected {
            let len = file.metadata().map_err(Error::io("reading", &data))?.len();
            if len > e.size() {
                file.set_len(0).map_err(Error::io("truncating", &data))?;
            } else if len > 0 {
                // Resuming: the hash state is not on disk, so the bytes are
                // hashed again (fast next to fetching them again).
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).map_err(Error::io("reading", &data))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    offset += n as u64;
                }
            }
            let r = dir.join("ref.json");
            if !r.exists() {
                let body = serde_json::to_vec(&IngestRef {
                    expected: e.clone(),
                })
                .map_err(|err| Error::InvalidContent {
                    what: "descriptor",
                    digest: e.digest().to_string(),
                    reason: err.to_string(),
                })?;
                fsutil::write_atomic(&r, &body)?;
            }
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io("seeking", &data))?;
        Ok(Some(BlobWriter {
            store: store.clone(),
            key: key.to_string(),
            dir,
            file: Some(file),
            hasher,
            offset,
            expected: expected.cloned(),
            overflow: false,
        }))
    }

    /// Bytes already in the ingest: a resumed download starts here.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn expected(&self) -> Option<&Descriptor> {
        self.expected.as_ref()
    }

    /// Whether a write was refused for going past the expected size.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Drops what was received and starts over at offset 0 (the source
    /// could not resume where the ingest stopped).
    pub fn reset(&mut self) -> Result<()> {
        let data = self.data_path();
        if let Some(f) = self.file.as_mut() {
            f.set_len(0).map_err(Error::io("truncating", &data))?;
            f.seek(SeekFrom::Start(0))
                .map_err(Error::io("seeking", &data))?;
        }
        let alg = match &self.expected {
            Some(e) => digest::split(e.digest())?.0,
            None => Algorithm::Sha256,
        };
        self.hasher = Hasher::new(alg);
        self.offset = 0;
        self.overflow = false;
        Ok(())
    }

    /// Verifies size and digest against the expected descriptor, makes the
    /// blob durable and visible, and puts it under `lease`. On a mismatch
    /// the ingest is discarded: bad bytes are never resumed.
    pub fn commit(mut self, lease: Option<&Lease>) -> Result<Descriptor> {
        let data = self.data_path();
        let Some(file) = self.file.take() else {
            return Err(Error::Io {
                op: "committing",
                path: data,
                source: io::Error::other("the writer is already closed"),
            });
        };
        let synced = file.sync_all();
        drop(file);
        synced.map_err(Error::io("syncing", &data))?;
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(Algorithm::Sha256));
        let actual = hasher.finish();
        if let Some(e) = self.expected.clone() {
            if self.offset != e.size() {
                self.discard_files();
                return Err(Error::SizeMismatch {
                    what: format!("blob {}", e.digest()),
                    expected: e.size(),
                    actual: self.offset,
                });
            }
            if actual != *e.digest() {
                self.discard_files();
                return Err(Error::DigestMismatch {
                    what: format!("blob {}", e.digest()),
                    expected: e.digest().to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let content = &self.store.inner.content;
        let target = content.blob_path(&actual)?;
        {
            // The gc lock orders this publish against a collection: the
            // blob is visible only together with its lease entry.
            let _gc = self
                .store
                .inner
                .gc_lock
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let existed = target.is_file();
            if let Some(l) = lease {
                if existed {
                    l.add_blob(&actual);
                } else {
                    l.record_created_blob(&actual);
                }
            }
            if !existed {
                fs::set_permissions(&data, fs::Permissions::from_mode(0o444))
                    .map_err(Error::io("setting permissions of", &data))?;
                fs::rename(&data, &target).map_err(Error::io("publishing", &target))?;
                if let Some(parent) = target.parent() {
                    fsutil::sync_dir(parent)?;
                }
            }
        }
        self.discard_files();
        let mut d = match &self.expected {
            Some(e) => e.clone(),
            None => Descriptor::new(
                MediaType::Other("application/octet-stream".into()),
                self.offset,
                actual.clone(),
            ),
        };
        d.set_size(self.offset);
        d.set_digest(actual);
        Ok(d)
    }

    /// Throws the ingest away.
    pub fn discard(mut self) {
        self.file.take();
        self.discard_files();
    }

    fn discard_files(&mut self) {
        self.file.take();
        if let Err(e) = fsutil::remove_tree(&self.dir) {
            tracing::warn!("removing ingest {}: {}", self.dir.display(), e.chain());
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.expected
            && self.offset + buf.len() as u64 > e.size()
        {
            self.overflow = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is larger than its descriptor's {} bytes",
                    e.digest(),
                    e.size()
                ),
            ));
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the writer is closed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() && (self.expected.is_none() || self.offset == 0) {
            // Nothing anyone could resume.
            self.discard_files();
        }
        self.store.inner.content.release(&self.key);
    }
}

/// Copies `reader` into `writer`, telling the caller's read errors apart
/// from the store's write errors.
pub(crate) fn copy_into(
    reader: &mut dyn Read,
    w: &mut BlobWriter,
    what: &dyn Fn() -> String,
) -> Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Read {
                    what: what(),
                    source,
                });
            }
        };
        if let Err(source) = w.write_all(&buf[..n]) {
            if w.overflowed() {
                let e = w.expected().cloned();
                return Err(Error::SizeMismatch {
                    what: format!(
                        "blob {}",
                        e.as_ref()
                            .map(|e| e.digest().to_string())
                            .unwrap_or_default()
                    ),
                    expected: e.map(|e| e.size()).unwrap_or(0),
                    actual: w.offset() + n as u64,
                });
            }
            return Err(Error::Io {
                op: "writing",
                path: w.data_path(),
                source,
            });
        }
        total += n as u64;
    }
}

/// Whether `path` is an ingest directory older than `age` (used by the
/// garbage collector for ingests nobody resumed).
pub(crate) fn ingest_older_than(path: &Path, age: std::time::Duration) -> bool {
    let data = path.join("data");
    let md = fs::metadata(&data).or_else(|_| fs::metadata(path));
    match md.and_then(|m| m.modified()) {
        Ok(t) => t.elapsed().map(|e| e > age).unwrap_or(false),
        Err(_) => true,
    }
}
