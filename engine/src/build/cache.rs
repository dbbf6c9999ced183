//! The build cache: which image a step made from which parent. A step's key
//! is the digest of its parent image's id and of everything that decides
//! what the step makes (the instruction after substitution, the build
//! arguments it sees, the content and metadata of the files it copies), so
//! a hit can only be the image the step would make again. Entries are
//! files under the data root (written whole, by rename), so the cache
//! survives restarts of berthd and lifecycled; an entry whose image was
//! removed is a miss.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a step made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// lifecycled's name of the image record.
    pub image: String,
    /// The image id (sha256 of its config).
    pub id: String,
    /// The parent image id.
    pub parent: String,
    /// The step as the history shows it.
    pub created_by: String,
    pub created: SystemTime,
}

pub struct Cache {
    dir: PathBuf,
}

/// A step's key, from the parts that decide what it makes.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Cache {
    pub fn open(data_root: &Path) -> std::io::Result<Cache> {
        let dir = data_root.join("builder").join("cache");
        std::fs::create_dir_all(&dir)?;
        Ok(Cache { dir })
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())).then(|| self.dir.join(key))
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        let data = std::fs::read(self.path(key)?).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn put(&self, key: &str, e: &Entry) -> std::io::Result<()> {
        let Some(p) = self.path(key) else {
            return Ok(());
        };
        let data = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        crate::daemon::container::write_atomic(&p, &data)
    }

    pub fn remove(&self, key: &str) {
        if let Some(p) = self.path(key) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Every entry, with its key.
    pub fn all(&self) -> Vec<(String, Entry)> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let k = e.file_name().to_string_lossy().into_owned();
                let v = self.get(&k)?;
                Some((k, v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_keys_separate_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        let k = key(&["sha256:p", "RUN echo hi"]);
        assert_ne!(k, key(&["sha256:pR", "UN echo hi"]));
        assert!(c.get(&k).is_none());
        c.put(
            &k,
            &Entry {
                image: "moby-dangling@sha256:x".into(),
                id: "sha256:i".into(),
                parent: "sha256:p".into(),
                created_by: "/bin/sh -c echo hi".into(),
                created: SystemTime::now(),
            },
        )
        .unwrap();
        let again = Cache::open(dir.path()).unwrap();
        assert_eq!(again.get(&k).unwrap().id, "sha256:i");
        assert_eq!(again.all().len(), 1);
        again.remove(&k);
        assert!(again.get(&k).is_none());
        assert!(again.get("../../etc/passwd").is_none());
    }
}
