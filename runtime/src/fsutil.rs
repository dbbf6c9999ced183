//! Path helpers for building a container's root without being fooled by
//! symlinks planted in the image.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Joins `unsafe_path` to `root`, resolving symlinks as if `root` were `/`, so
/// that the result never leaves `root` (what filepath-securejoin does for runc).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<PathBuf> = vec![unsafe_path.to_path_buf()];
    let mut links = 0;
    while let Some(path) = pending.pop() {
        let mut comps: Vec<Component> = path.components().collect();
        comps.reverse();
        while let Some(c) = comps.pop() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let candidate = resolved.join(name);
                    let full = root.join(&candidate);
                    match fs::symlink_metadata(&full) {
                        Ok(m) if m.file_type().is_symlink() => {
                            links += 1;
                            if links > 255 {
                                return Err(Error::Invalid(format!(
                                    "too many symlinks resolving {} in {}",
                                    unsafe_path.display(),
                                    root.display()
                                )));
                            }
                            let target = fs::read_link(&full)
                                .map_err(|e| Error::io("reading symlink", &full, e))?;
                            if target.is_absolute() {
                                resolved = PathBuf::new();
                            }
                            // Resolve the target first, then whatever was left.
                            let rest: PathBuf = comps
                                .drain(..)
                                .rev()
                                .map(|c| c.as_os_str().to_owned())
                                .collect::<Vec<_>>()
                                .iter()
                                .collect();
                            if !rest.as_os_str().is_empty() {
                                pending.push(rest);
                            }
                            pending.push(target);
                            break;
                        }
                        _ => resolved = candidate,
                    }
                }
            }
        }
    }
    Ok(root.join(resolved))
}

/// Creates `path` as a directory, or as an empty file when the thing to be
/// mounted on it is a file.
pub fn create_mount_point(path: &Path, as_file: bool) -> Result<()> {
    if as_file {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating directory", parent, e))?;
        }
        if fs::symlink_metadata(path).is_err() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(|e| Error::io("creating mount point", path, e))?;
        }
        Ok(())
    } else {
        fs::create_dir_all(path).map_err(|e| Error::io("creating mount point", path, e))
    }
}

pub fn file_name(p: &Path) -> &OsStr {
    p.file_name().unwrap_or(OsStr::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/", root.join("up")).unwrap();
        symlink("../../../../etc", root.join("dots")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/up/etc/passwd")).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            secure_join(root, Path::new("dots/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/abs/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../x")).unwrap(),
            root.join("x")
        );
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert!(secure_join(dir.path(), Path::new("/a/x")).is_err());
    }
}
