//! Crash-safe file writes: a change is either fully on disk or not at all.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name no other writer in this or another process uses at the same time.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// fsync of a directory, so that a rename or a new entry in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("syncing directory", dir))
}

/// Writes `data` to `path` through a temporary file in the same directory:
/// write, fsync, rename, fsync the directory. Readers see the old content or
/// the new, never a torn file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io("creating directory", dir))?;
    let tmp = dir.join(unique(".tmp-"));
    let res = (|| -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Io {
            op: "writing",
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(dir)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            op: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes a directory tree, treating "already gone" as success.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            op: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Moves a tree out of sight with one rename (so that it disappears
/// atomically), then deletes it.
pub(crate) fn remove_tree_atomic(path: &Path, trash: &Path) -> Result<()> {
    let dest: PathBuf = trash.join(unique("del-"));
    match fs::rename(path, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "removing",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    remove_tree(&dest)
}

/// Bytes used by a tree (allocated blocks, each inode once) and its inode count.
pub(crate) fn disk_usage(path: &Path) -> Result<crate::snapshots::Usage> {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut u = crate::snapshots::Usage::default();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).map_err(Error::io("reading", &p))?;
        if seen.insert((md.dev(), md.ino())) {
            u.size += md.blocks() * 512;
            u.inodes += 1;
            if !md.is_dir() {
                u.content += md.len();
            }
        }
        if md.is_dir() {
            for e in fs::read_dir(&p).map_err(Error::io("reading directory", &p))? {
                let e = e.map_err(Error::io("reading directory", &p))?;
                stack.push(e.path());
            }
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["b.json"]);
    }
}
