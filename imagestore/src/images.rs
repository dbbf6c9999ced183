//! Image records: a name in a namespace pointing at a manifest (or index)
//! descriptor, one JSON file each under `images/<ns>/<sha256 of name>.json`
//! (names hold `/`, `:` and `@`, so they are hashed for the file name and
//! kept in full inside), written crash-safe, cached in memory for reads.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

use crate::digest;
use crate::error::{Error, Result};
use crate::fsutil;

/// An image: a name and what it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The full reference the image is known by, e.g.
    /// `docker.io/library/busybox:latest` or `127.0.0.1:5000/x/y@sha256:…`.
    /// The store does not normalise names; that is the engine's business.
    pub name: String,
    /// The manifest or index the name points at.
    pub target: Descriptor,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl ImageRecord {
    /// A record with empty labels, created now.
    pub fn new(name: impl Into<String>, target: Descriptor) -> ImageRecord {
        let now = SystemTime::now();
        ImageRecord {
            name: name.into(),
            target,
            labels: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// Namespaces name directories: letters, digits, `.`, `_`, `-`, and not only
/// dots (the rule lifecycled applies to the gRPC header).
pub(crate) fn validate_namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !ns.chars().all(|c| c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidNamespace {
            namespace: ns.to_string(),
        })
    }
}

pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidImageName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 4096 {
        return bad("it is longer than 4096 bytes");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("it contains whitespace or control characters");
    }
    Ok(())
}

type Key = (String, String);

pub(crate) struct Images {
    dir: PathBuf,
    cache: RwLock<HashMap<Key, ImageRecord>>,
}

impl Images {
    /// Loads every record; a file that does not parse is reported and
    /// skipped (a torn write cannot happen, a hand edit can).
    pub(crate) fn open(dir: PathBuf) -> Result<Images> {
        fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        let mut cache = HashMap::new();
        for ns in fs::read_dir(&dir).map_err(Error::io("reading directory", &dir))? {
            let ns = ns.map_err(Error::io("reading directory", &dir))?;
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            if validate_namespace(&ns_name).is_err() || !ns.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(ns.path()).map_err(Error::io("reading directory", ns.path()))? {
                let Ok(f) = f else { continue };
                let p = f.path();
                if p.extension().and_then(|e| e.to_str()) != Some("json") {
                    // A temporary file of a write that did not finish.
                    let _ = fs::remove_file(&p);
                    continue;
                }
                match fs::read(&p).map_err(|e| e.to_string()).and_then(|d| {
                    serde_json::from_slice::<ImageRecord>(&d).map_err(|e| e.to_string())
                }) {
                    Ok(r) => {
                        cache.insert((ns_name.clone(), r.name.clone()), r);
                    }
                    Err(e) => tracing::error!("skipping image record {}: {e}", p.display()),
                }
            }
        }
        Ok(Images {
            dir,
            cache: RwLock::new(cache),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Key, ImageRecord>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Key, ImageRecord>> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, ns: &str, name: &str) -> PathBuf {
        let h = digest::sha256_of(name.as_bytes());
        let hex = h.as_ref().trim_start_matches("sha256:").to_string();
        self.dir.join(ns).join(format!("{hex}.json"))
    }

    pub(crate) fn list(&self, ns: &str) -> Vec<ImageRecord> {
        let mut v: Vec<ImageRecord> = self
            .read()
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, r)| r.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every record of every namespace (the garbage collector's roots).
    pub(crate) fn all(&self) -> Vec<(String, ImageRecord)> {
        self.read()
            .iter()
            .map(|((ns, _), r)| (ns.clone(), r.clone()))
            .collect()
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Result<ImageRecord> {
        self.read()
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| Error::ImageNotFound {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
    }

    /// Creates or replaces; a replaced record keeps its `created_at`.
    pub(crate) fn put(&self, ns: &str, mut r: ImageRecord) -> Result<ImageRecord> {
        validate_namespace(ns)?;
        validate_name(&r.name)?;
        digest::split(r.target.digest())?;
        let mut cache = self.write();
        let key = (ns.to_string(), r.name.clone());
        let now = SystemTime::now();
        if let Some(old) = cache.get(&key) {
            r.created_at = old.created_at;
        }
        r.updated_at = now;
        self.persist(ns, &r)?;
        cache.insert(key, r.clone());
        Ok(r)
    }

    fn persist(&self, ns: &str, r: &ImageRecord) -> Result<()> {
        let path = self.path(ns, &r.name);
        let data = serde_json::to_vec_pretty(r).map_err(|e| Error::Io {
            op: "encoding",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        fsutil::write_atomic(&path, &data)
    }

    pub(crate) fn delete(&self, ns: &str, name: &str) -> Result<ImageRecord> {
        let mut cache = self.write();
        let key = (ns.to_string(), name.to_string());
        let r = cache
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::ImageNotFound {
                namespace: ns.to_string(),
                name: name.to_string(),
            })?;
        let path = self.path(ns, name);
        fsutil::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
        cache.remove(&key);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn desc(n: u8) -> Descriptor {
        Descriptor::new(MediaType::ImageManifest, 10, digest::sha256_of(&[n]))
    }

    #[test]
    fn records_survive_a_reopen_and_namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = Images::open(dir.path().join("images")).unwrap();
        let a = imgs
            .put("a", ImageRecord::new("127.0.0.1:5000/x/y:1", desc(1)))
            .unwrap();
        imgs.put("b", ImageRecord::new("127.0.0.1:5000/x/y:1", desc(2)))
            .unwrap();
        let mut again = ImageRecord::new("127.0.0.1:5000/x/y:1", desc(3));
        again.labels.insert("k".into(), "v".into());
        let again = imgs.put("a", again).unwrap();
        assert_eq!(again.created_at, a.created_at, "a replace keeps created_at");
        drop(imgs);
        let imgs = Images::open(dir.path().join("images")).unwrap();
        let got = imgs.get("a", "127.0.0.1:5000/x/y:1").unwrap();
        assert_eq!(got.target, desc(3));
        assert_eq!(got.labels["k"], "v");
        assert_eq!(
            imgs.get("b", "127.0.0.1:5000/x/y:1").unwrap().target,
            desc(2)
        );
        imgs.delete("a", "127.0.0.1:5000/x/y:1").unwrap();
        assert!(matches!(
            imgs.get("a", "127.0.0.1:5000/x/y:1"),
            Err(Error::ImageNotFound { .. })
        ));
        assert_eq!(imgs.list("b").len(), 1);
    }

    #[test]
    fn bad_names_and_namespaces_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = Images::open(dir.path().join("images")).unwrap();
        for ns in ["", "..", "a/b"] {
            assert!(imgs.put(ns, ImageRecord::new("x", desc(1))).is_err());
        }
        assert!(imgs.put("default", ImageRecord::new("", desc(1))).is_err());
        assert!(
            imgs.put("default", ImageRecord::new("a b", desc(1)))
                .is_err()
        );
    }
}
