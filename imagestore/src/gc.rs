//! Garbage collection, mark and sweep. Roots are the image records of every
//! namespace, the active snapshots and the leases; a blob or unpacked layer
//! reachable from none of them is removed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use oci_spec::image::{Descriptor, Digest};

use crate::Store;
use crate::content;
use crate::digest::chain_ids;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::resolve::{self, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Parsed, media_types};

/// Ingests nobody resumed for this long are removed.
const INGEST_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    /// Chain ids of the unpacked layers removed.
    pub snapshots_removed: Vec<Digest>,
    pub ingests_removed: Vec<String>,
    /// Bytes of blobs removed (unpacked layers not counted).
    pub bytes_freed: u64,
}

pub(crate) struct Marks {
    pub(crate) blobs: HashSet<Digest>,
    /// Chain ids of the layers of every image (for every platform present).
    pub(crate) chains: HashSet<Digest>,
    /// A blob → one `ns/name` of an image that needs it.
    pub(crate) users: HashMap<Digest, String>,
}

impl Store {
    /// Marks what the image records reach, walking from each target through
    /// whichever indexes, manifests and configs are present.
    pub(crate) fn mark_images(&self) -> Marks {
        let mut m = Marks {
            blobs: HashSet::new(),
            chains: HashSet::new(),
            users: HashMap::new(),
        };
        for (ns, rec) in self.inner.images.all() {
            let user = format!("{ns}/{}", rec.name);
            self.mark(&rec.target, &user, &mut m, 0);
        }
        m
    }

    fn mark(&self, d: &Descriptor, user: &str, m: &mut Marks, depth: usize) {
        let digest = d.digest().clone();
        m.users
            .entry(digest.clone())
            .or_insert_with(|| user.to_string());
        if !m.blobs.insert(digest.clone()) || depth > 8 {
            return;
        }
        let mt = d.media_type().to_string();
        let maybe_manifest = media_types::is_index(&mt)
            || media_types::is_manifest(&mt)
            || mt.is_empty()
            || mt == "application/octet-stream";
        if !maybe_manifest || !self.inner.content.exists(&digest) {
            return;
        }
        let Ok(data) = self.inner.content.read_blob(&digest, MAX_MANIFEST_SIZE) else {
            return;
        };
        match resolve::parse_manifest(&data, &mt, digest.as_ref()) {
            Ok(Parsed::Index(idx)) => {
                for c in idx.manifests() {
                    self.mark(c, user, m, depth + 1);
                }
            }
            Ok(Parsed::Manifest(man)) => {
                let cfg = man.config();
                m.users
                    .entry(cfg.digest().clone())
                    .or_insert_with(|| user.to_string());
                m.blobs.insert(cfg.digest().clone());
                for l in man.layers() {
                    m.users
                        .entry(l.digest().clone())
                        .or_insert_with(|| user.to_string());
                    m.blobs.insert(l.digest().clone());
                }
                if let Ok(cdata) = self.inner.content.read_blob(cfg.digest(), MAX_CONFIG_SIZE)
                    && let Ok((_, diff_ids)) =
                        resolve::parse_config(&cdata, cfg.digest().as_ref(), man.layers().len())
                {
                    m.chains.extend(chain_ids(&diff_ids));
                }
            }
            Err(_) => {}
        }
    }

    /// Chain ids active snapshots sit on, with everything under them.
    pub(crate) fn active_chains(&self) -> HashSet<Digest> {
        let st = self.inner.snapshots.lock();
        let mut keep = HashSet::new();
        for a in st.active.values() {
            let mut cur = a.parent.clone();
            while let Some(c) = cur {
                if !keep.insert(c.clone()) {
                    break;
                }
                cur = st.committed.get(&c).and_then(|i| i.parent.clone());
            }
        }
        keep
    }

    /// Removes every blob and unpacked layer that no image, active snapshot
    /// or lease needs, and ingests nobody resumed for a day.
    pub fn gc(&self) -> Result<GcReport> {
        let _w = self
            .inner
            .gc_lock
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let marks = self.mark_images();
        let (lease_blobs, lease_chains) = {
            let leases = self.inner.leases.lock();
            let mut b = HashSet::new();
            let mut c = HashSet::new();
            for l in leases.values() {
                b.extend(l.blobs.iter().cloned());
                c.extend(l.snapshots.iter().cloned());
            }
            (b, c)
        };
        let mut report = GcReport::default();

        // Layers: what images, leases and active snapshots need, and
        // everything under those.
        let mut keep: HashSet<Digest> = self.active_chains();
        {
            let st = self.inner.snapshots.lock();
            for root in marks.chains.iter().chain(lease_chains.iter()) {
                let mut cur = Some(root.clone());
                while let Some(c) = cur {
                    if !keep.insert(c.clone()) {
                        break;
                    }
                    cur = st.committed.get(&c).and_then(|i| i.parent.clone());
                }
            }
        }
        let unused: Vec<Digest> = {
            let st = self.inner.snapshots.lock();
            st.committed
                .keys()
                .filter(|c| !keep.contains(*c))
                .cloned()
                .collect()
        };
        for c in unused {
            self.remove_layer(&c)?;
            report.snapshots_removed.push(c);
        }

        for info in self.inner.content.list()? {
            if marks.blobs.contains(&info.digest) || lease_blobs.contains(&info.digest) {
                continue;
            }
            report.bytes_freed += self.inner.content.remove_blob(&info.digest)?;
            report.blobs_removed.push(info.digest);
        }

        let ingest = self.inner.content.ingest_dir();
        for e in std::fs::read_dir(&ingest).map_err(Error::io("reading directory", &ingest))? {
            let e = e.map_err(Error::io("reading directory", &ingest))?;
            let key = e.file_name().to_string_lossy().into_owned();
            if self.inner.content.is_active(&key)
                || !content::ingest_older_than(&e.path(), INGEST_EXPIRY)
            {
                continue;
            }
            fsutil::remove_tree(&e.path())?;
            report.ingests_removed.push(key);
        }
        if !report.blobs_removed.is_empty() || !report.snapshots_removed.is_empty() {
            tracing::info!(
                "gc removed {} blobs ({} bytes) and {} layers",
                report.blobs_removed.len(),
                report.bytes_freed,
                report.snapshots_removed.len()
            );
        }
        Ok(report)
    }
}
