//! Container records, one JSON file each under `<root>/containers/<ns>/<id>.json`,
//! written crash-safe (temporary file, fsync, rename, fsync of the directory),
//! with an in-memory copy for reads.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountRecord {
    pub r#type: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub runtime: String,
    /// The OCI spec as JSON text.
    pub spec: String,
    pub rootfs: Vec<MountRecord>,
    pub snapshot_key: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// What a service keeps with the record beside its labels, as
    /// containerd's container extensions (the CRI's pod and container
    /// metadata): written with it in the same atomic file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

impl Record {
    pub fn to_api(&self) -> api::Container {
        api::Container {
            id: self.id.clone(),
            labels: self.labels.clone().into_iter().collect(),
            image: self.image.clone(),
            runtime: self.runtime.clone(),
            spec: self.spec.clone().into_bytes(),
            rootfs: self
                .rootfs
                .iter()
                .map(|m| pb::Mount {
                    r#type: m.r#type.clone(),
                    source: m.source.clone(),
                    target: m.target.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            snapshot_key: self.snapshot_key.clone(),
            created_at: Some(crate::timestamp(self.created_at)),
            updated_at: Some(crate::timestamp(self.updated_at)),
        }
    }

    pub fn mounts(&self) -> Vec<pb::Mount> {
        self.to_api().rootfs
    }
}

pub struct Store {
    dir: PathBuf,
    cache: RwLock<HashMap<(String, String), Record>>,
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

impl Store {
    /// Loads every record; files that do not parse are reported and skipped
    /// (a torn write cannot happen, but a hand-edited file can).
    pub fn open(root: &Path) -> std::io::Result<Store> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir)?;
        let mut cache = HashMap::new();
        for ns in fs::read_dir(&dir)?.flatten() {
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            for f in fs::read_dir(ns.path())?.flatten() {
                let p = f.path();
                if p.extension().and_then(|e| e.to_str()) != Some("json") {
                    let _ = fs::remove_file(&p); // leftover temporary file
                    continue;
                }
                match fs::read(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|d| serde_json::from_slice::<Record>(&d).map_err(|e| e.to_string()))
                {
                    Ok(r) => {
                        cache.insert((ns_name.clone(), r.id.clone()), r);
                    }
                    Err(e) => tracing::error!("skipping container record {}: {e}", p.display()),
                }
            }
        }
        Ok(Store {
            dir,
            cache: RwLock::new(cache),
        })
    }

    fn path(&self, ns: &str, id: &str) -> PathBuf {
        self.dir.join(ns).join(format!("{id}.json"))
    }

    fn persist(&self, ns: &str, r: &Record) -> Result<(), StoreError> {
        let path = self.path(ns, &r.id);
        let data = serde_json::to_vec(r).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &data).map_err(|source| StoreError::Io { path, source })
    }

    pub fn create(&self, ns: &str, r: Record) -> Result<Record, StoreError> {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let key = (ns.to_string(), r.id.clone());
        if cache.contains_key(&key) {
            return Err(StoreError::Exists(r.id));
        }
        self.persist(ns, &r)?;
        cache.insert(key, r.clone());
        Ok(r)
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Record, StoreError> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    pub fn list(&self, ns: &str) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, r)| r.clone())
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    pub fn update(
        &self,
        ns: &str,
        id: &str,
        f: impl FnOnce(&mut Record),
    ) -> Result<Record, StoreError> {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let key = (ns.to_string(), id.to_string());
        let mut r = cache
            .get(&key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        f(&mut r);
        r.updated_at = SystemTime::now();
        self.persist(ns, &r)?;
        cache.insert(key, r.clone());
        Ok(r)
    }

    pub fn delete(&self, ns: &str, id: &str) -> Result<Record, StoreError> {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let key = (ns.to_string(), id.to_string());
        let r = cache
            .get(&key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let path = self.path(ns, id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        cache.remove(&key);
        Ok(r)
    }
}

/// Whether a record matches every filter (`labels.K==V`, `labels.K`, `id==X`,
/// `image==X`, `runtime==X`).
pub fn matches(r: &Record, filters: &[String]) -> Result<bool, String> {
    for f in filters {
        let (key, want) = match f.split_once("==") {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (f.trim(), None),
        };
        let have: Option<&str> = if let Some(label) = key.strip_prefix("labels.") {
            r.labels.get(label).map(String::as_str)
        } else {
            match key {
                "id" => Some(r.id.as_str()),
                "image" => Some(r.image.as_str()),
                "runtime" => Some(r.runtime.as_str()),
                _ => return Err(format!("filter {f:?}: unknown field {key:?}")),
            }
        };
        let ok = match (have, want) {
            (Some(h), Some(w)) => h == w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Record {
        Record {
            id: id.into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            image: "busybox".into(),
            runtime: "berth-runtime".into(),
            spec: "{}".into(),
            rootfs: vec![],
            snapshot_key: String::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            extensions: BTreeMap::new(),
        }
    }

    #[test]
    fn records_survive_a_reopen_and_namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.create("a", rec("one")).unwrap();
        assert!(matches!(
            s.create("a", rec("one")),
            Err(StoreError::Exists(_))
        ));
        s.create("b", rec("one")).unwrap();
        s.update("a", "one", |r| {
            r.labels.insert("x".into(), "y".into());
        })
        .unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.list("a").len(), 1);
        assert_eq!(s.get("a", "one").unwrap().labels["x"], "y");
        assert!(!s.get("b", "one").unwrap().labels.contains_key("x"));
        s.delete("a", "one").unwrap();
        assert!(s.get("a", "one").is_err());
    }

    #[test]
    fn label_filters() {
        let r = rec("one");
        assert!(matches(&r, &["labels.app==web".into()]).unwrap());
        assert!(matches(&r, &["labels.app".into(), "id==one".into()]).unwrap());
        assert!(!matches(&r, &["labels.app==db".into()]).unwrap());
        assert!(!matches(&r, &["labels.missing".into()]).unwrap());
        assert!(matches(&r, &["bogus==1".into()]).is_err());
    }
}
