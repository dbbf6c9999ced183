//! A container's filesystem as a whole (image layers and its changes), for
//! the Snapshots service: `docker diff`, `export` and `cp` both ways.
//!
//! A container with a task has its rootfs mounted by its shim at
//! `<bundle>/rootfs`; one without is mounted here for the time of the call,
//! on a private directory, and unmounted on every way out.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use tonic::Status;

/// How deep symlinks may chain while resolving a path in a root.
const MAX_LINKS: usize = 40;

/// A temporary mount of a snapshot, unmounted and removed on drop.
pub struct TempRoot {
    path: PathBuf,
}

impl TempRoot {
    pub fn mount(dir: &Path, mounts: &[imagestore::Mount]) -> Result<TempRoot, Status> {
        fs::create_dir_all(dir)
            .map_err(|e| Status::internal(format!("creating {}: {e}", dir.display())))?;
        let root = TempRoot {
            path: dir.to_path_buf(),
        };
        imagestore::mount_all(mounts, &root.path)
            .map_err(|e| Status::internal(format!("mounting the snapshot: {}", e.chain())))?;
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Err(e) = imagestore::unmount(&self.path) {
            tracing::warn!("unmounting {}: {}", self.path.display(), e.chain());
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// Resolves `path` inside `root` as the container would see it: symlinks
/// in its parents are followed relative to the root, `..` stops at the
/// root. The last component is not followed (a symlink is itself), unless
/// the path ends with `/` or `/.`.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, Status> {
    let follow_last = path.ends_with('/') || path.ends_with("/.");
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components(path);
    pending.reverse();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." | "" => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        let candidate: PathBuf = root.join(parts.iter().collect::<PathBuf>()).join(&c);
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            parts.push(c);
            break;
        }
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Status::invalid_argument(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = fs::read_link(&candidate)
                    .map_err(|e| Status::internal(format!("readlink {path}: {e}")))?;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    parts.clear();
                }
                let mut more = components(&t);
                more.reverse();
                pending.extend(more);
            }
            _ => parts.push(c),
        }
    }
    Ok(root.join(parts.iter().collect::<PathBuf>()))
}

fn components(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// What Docker's archive endpoints report about a path.
pub struct Stat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: std::time::SystemTime,
    pub link_target: String,
    pub uid: u32,
    pub gid: u32,
    /// The path inside the root it resolved to, from `/`.
    pub resolved: String,
}

pub fn stat(root: &Path, path: &str) -> Result<Stat, Status> {
    let p = resolve(root, path)?;
    let m = fs::symlink_metadata(&p).map_err(|e| not_found_or(path, e))?;
    asserted_directory(path, &m)?;
    let link_target = if m.file_type().is_symlink() {
        fs::read_link(&p)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    // "dir/." is named "." (what its archive's entries start with), as
    // dockerd names it (Go's filepath.Base).
    let name = if path.ends_with("/.") {
        ".".to_string()
    } else {
        Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    };
    let resolved = format!(
        "/{}",
        p.strip_prefix(root)
            .unwrap_or(Path::new(""))
            .to_string_lossy()
    );
    Ok(Stat {
        name,
        size: m.len() as i64,
        mode: m.mode(),
        mtime: m.modified().unwrap_or(std::time::UNIX_EPOCH),
        link_target,
        uid: m.uid(),
        gid: m.gid(),
        resolved,
    })
}

/// A path ending in `/` or `/.` names a directory: anything else there is
/// the error lstat gives dockerd.
fn asserted_directory(path: &str, m: &fs::Metadata) -> Result<(), Status> {
    if (path.ends_with('/') || path.ends_with("/.")) && !m.is_dir() {
        return Err(Status::internal(format!("lstat {path}: not a directory")));
    }
    Ok(())
}

fn not_found_or(path: &str, e: std::io::Error) -> Status {
    if e.kind() == std::io::ErrorKind::NotFound {
        Status::not_found(format!("{path}: no such file or directory"))
    } else {
        Status::internal(format!("{path}: {e}"))
    }
}

/// Writes a tar of `path` in the root: the path itself under its base name,
/// or, for a path ending in `/.`, what the directory holds.
pub fn read_archive(root: &Path, path: &str, out: impl Write) -> Result<(), Status> {
    read_archive_as(root, path, path, out)
}

/// [`read_archive`] of `path`, its entries named as `shown` would be: the
/// path the caller asked for, when `root` is a mount inside the
/// container's filesystem and `path` is relative to it.
pub fn read_archive_as(
    root: &Path,
    path: &str,
    shown: &str,
    out: impl Write,
) -> Result<(), Status> {
    let p = resolve(root, path)?;
    let m = fs::symlink_metadata(&p).map_err(|e| not_found_or(shown, e))?;
    asserted_directory(shown, &m)?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let werr = |e: std::io::Error| Status::internal(format!("archiving {shown}: {e}"));
    // Entries start with the name stat gives: "./…" for "dir/." (its
    // contents, the directory itself first), as dockerd's; the docker CLI
    // renames them by it when the destination does not exist.
    // The root itself is "/" ("/", "/bin/", …), as stat names it.
    let name = if shown.ends_with("/.") && m.is_dir() {
        PathBuf::from(".")
    } else if shown.trim_end_matches('/').is_empty() && shown.starts_with('/') {
        PathBuf::from("/")
    } else {
        Path::new(shown.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let name = name.as_os_str().as_bytes();
    append_named(&mut b, &p, &m, name).map_err(werr)?;
    if m.is_dir() {
        append_tree(&mut b, &p, name).map_err(werr)?;
    }
    b.finish().map_err(werr)
}

/// Appends what `dir` holds, named under `prefix` ("" for the top),
/// depth first in name order; mount points of other filesystems are
/// entered (the container sees them too) but not /proc-like pseudo files.
fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &[u8],
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let full = e.path();
        let mut name = prefix.to_vec();
        if !name.is_empty() && !name.ends_with(b"/") {
            name.push(b'/');
        }
        name.extend_from_slice(e.file_name().as_bytes());
        let m = fs::symlink_metadata(&full)?;
        if m.file_type().is_socket() {
            // tar has no sockets; Docker skips them too.
            continue;
        }
        append_named(b, &full, &m, &name)?;
        if m.is_dir() {
            append_tree(b, &full, &name)?;
        }
    }
    Ok(())
}

/// One entry, named exactly `name` (a directory's with a trailing `/`, as
/// Go's and GNU tar write them): the tar crate's own naming drops a
/// leading `./`, which the docker CLI renames `dir/.` copies by.
fn append_named<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    m: &fs::Metadata,
    name: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
    let ft = m.file_type();
    let mut name = name.to_vec();
    if ft.is_dir() && !name.ends_with(b"/") {
        name.push(b'/');
    }
    if ft.is_symlink() {
        let target = fs::read_link(path)?;
        long_field(
            b,
            &mut h,
            tar::EntryType::GNULongLink,
            target.as_os_str().as_bytes(),
        )?;
    }
    long_field(b, &mut h, tar::EntryType::GNULongName, &name)?;
    if !ft.is_file() {
        h.set_size(0);
        h.set_cksum();
        return b.append(&h, std::io::empty());
    }
    let size = h.size()?;
    h.set_cksum();
    // Exactly the size the header says, should the file change meanwhile.
    let f = fs::File::open(path)?;
    let data = f.take(size).chain(std::io::repeat(0)).take(size);
    b.append(&h, data)
}

/// Puts `value` in the header's name (or link name) field, after a GNU
/// long name (link) entry when it does not fit, as GNU tar does.
fn long_field<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    kind: tar::EntryType,
    value: &[u8],
) -> std::io::Result<()> {
    let link = kind == tar::EntryType::GNULongLink;
    let old = h.as_old_mut();
    let field: &mut [u8; 100] = if link {
        &mut old.linkname
    } else {
        &mut old.name
    };
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    if value.len() > field.len() {
        let mut lh = tar::Header::new_gnu();
        lh.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        lh.set_mode(0o644);
        lh.set_entry_type(kind);
        lh.set_size(value.len() as u64 + 1);
        lh.set_cksum();
        let mut data = value.to_vec();
        data.push(0);
        b.append(&lh, &data[..])?;
    }
    Ok(())
}

/// The whole root as a tar (docker export).
pub fn export(root: &Path, out: impl Write) -> Result<(), Status> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let werr = |e: std::io::Error| Status::internal(format!("exporting: {e}"));
    append_tree(&mut b, root, b"").map_err(werr)?;
    b.finish().map_err(werr)
}

/// Makes the directory `path` of the root and its missing parents (0755,
/// root-owned), resolving what exists as the container would; a file on
/// the way is an error.
pub fn create_dir(root: &Path, path: &str) -> Result<(), Status> {
    let dir = resolve(root, &format!("{}/", path.trim_end_matches('/')))?;
    if !dir.starts_with(root) {
        return Err(Status::invalid_argument(format!(
            "{path}: outside the root"
        )));
    }
    // Each missing component is made in turn: an existing one is followed
    // only after `resolve` has kept it inside the root.
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Status::invalid_argument(format!(
                    "{path}: {} is not a directory",
                    at.strip_prefix(root).unwrap_or(&at).display()
                )));
            }
            Err(_) => {
                fs::create_dir(&at)
                    .map_err(|e| Status::internal(format!("creating {path}: {e}")))?;
                fs::set_permissions(
                    &at,
                    <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
                )
                .map_err(|e| Status::internal(format!("creating {path}: {e}")))?;
            }
        }
    }
    Ok(())
}

/// The container's mounts an archive written at `base` (the container's
/// path of the extraction point) may reach into: by mount point, the
/// source on the host. `own` is the mount the extraction point is in, if
/// any (its source is the root written in).
#[derive(Debug, Default)]
pub struct Routes {
    pub base: String,
    pub own: String,
    pub mounts: Vec<Route>,
}

/// One mount of the container's.
#[derive(Debug)]
pub struct Route {
    pub point: String,
    pub source: PathBuf,
    pub read_only: bool,
}

impl Routes {
    /// The mount (point, source) an entry at `rel` under the extraction
    /// point lands in, with the entry's container path, when it is another
    /// than the one written in.
    fn of(&self, rel: &Path) -> Option<(String, &Route)> {
        // Lexically, as the engine matched the extraction point.
        let mut parts: Vec<String> = Vec::new();
        for c in components(&self.base)
            .into_iter()
            .chain(components(&rel.to_string_lossy()))
        {
            match c.as_str() {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                _ => parts.push(c),
            }
        }
        let full = format!("/{}", parts.join("/"));
        let route = self
            .mounts
            .iter()
            .filter(|r| {
                let point = r.point.trim_end_matches('/');
                full == point || full.starts_with(&format!("{point}/"))
            })
            .max_by_key(|r| r.point.trim_end_matches('/').len())?;
        (route.point.trim_end_matches('/') != self.own.trim_end_matches('/'))
            .then_some((full, route))
    }
}

/// An entry whose path is another mount of the container's: written in
/// that mount's source, as the container sees it. An entry that would
/// replace the mount itself is refused with dockerd's words (its archive
/// extraction cannot unlink a mount point either); a directory entry
/// there is the mount's own directory.
fn unpack_routed<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    full: &str,
    route: &Route,
) -> Result<(), Status> {
    let (point, source) = (route.point.trim_end_matches('/'), route.source.as_path());
    let inner = full.get(point.len()..).unwrap_or_default();
    let kind = entry.header().entry_type();
    if inner.is_empty() {
        if kind.is_dir() && source.is_dir() {
            return Ok(());
        }
        return Err(Status::internal(format!(
            "Error processing tar file: unlinkat {full}: device or resource busy"
        )));
    }
    if route.read_only {
        return Err(Status::internal(format!(
            "extracting {full}: mounted volume is marked read-only"
        )));
    }
    if !source.is_dir() {
        let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(Status::internal(format!("{full}: {e}")));
    }
    // A hard link's target is named from the archive's root, which is not
    // this mount's.
    if kind.is_hard_link() {
        return Err(Status::invalid_argument(format!(
            "extracting {full}: a hard link into the mount at {point}"
        )));
    }
    let (parent, name) = inner.rsplit_once('/').unwrap_or(("", inner));
    let dir = resolve(source, &format!("{parent}/"))?;
    entry.unpack(dir.join(name)).map_err(|e| {
        let why = std::error::Error::source(&e).map(|s| format!(": {s}"));
        Status::invalid_argument(format!("extracting {full}: {e}{}", why.unwrap_or_default()))
    })?;
    Ok(())
}

/// Extracts a tar into the directory `path` of the root (docker cp in).
/// Entries may not leave the root, through `..` or through a symlink;
/// with `no_overwrite_dir_non_dir`, a directory is never replaced by a
/// file nor a file by a directory. An entry in another of the container's
/// mounts (`routes`) is written in that mount's source.
pub fn write_archive(
    root: &Path,
    path: &str,
    input: impl Read + Send,
    no_overwrite_dir_non_dir: bool,
    routes: &Routes,
) -> Result<(), Status> {
    let dir = resolve(root, &format!("{}/", path.trim_end_matches('/')))?;
    let m = fs::metadata(&dir).map_err(|e| not_found_or(path, e))?;
    if !m.is_dir() {
        return Err(Status::invalid_argument(
            "extraction point is not a directory",
        ));
    }
    let bad = |e: std::io::Error| Status::invalid_argument(format!("reading the archive: {e}"));
    // Compressed, and with headers made field by field, as dockerd takes
    // it too (bollard sends gzip with uid, gid and mtime left empty).
    let mut ar = tar::Archive::new(decompress::client_tar(input).map_err(bad)?);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(true);
    let mut dirs = Vec::new();
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let rel = entry.path().map_err(bad)?.into_owned();
        if rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
        {
            return Err(Status::invalid_argument(format!(
                "the archive holds an unsafe path: {}",
                rel.display()
            )));
        }
        if let Some((full, route)) = routes.of(&rel) {
            unpack_routed(&mut entry, &full, route)?;
            continue;
        }
        if no_overwrite_dir_non_dir {
            let target = dir.join(&rel);
            if let Ok(existing) = fs::symlink_metadata(&target) {
                let entry_is_dir = entry.header().entry_type().is_dir();
                if existing.is_dir() && !entry_is_dir {
                    return Err(Status::invalid_argument(format!(
                        "cannot overwrite directory {:?} with non-directory",
                        target.strip_prefix(root).unwrap_or(&target)
                    )));
                }
                if !existing.is_dir() && entry_is_dir {
                    return Err(Status::invalid_argument(format!(
                        "cannot overwrite non-directory {:?} with directory",
                        target.strip_prefix(root).unwrap_or(&target)
                    )));
                }
            }
        }
        // unpack_in refuses entries that would land outside `dir`, also
        // through symlinks the container holds.
        entry.unpack_in(&dir).map_err(|e| {
            // The tar crate's own error names the file; why is its source.
            let why = std::error::Error::source(&e).map(|s| format!(": {s}"));
            Status::invalid_argument(format!(
                "extracting {}: {e}{}",
                rel.display(),
                why.unwrap_or_default()
            ))
        })?;
        if entry.header().entry_type().is_dir()
            && let Ok(mtime) = entry.header().mtime()
        {
            dirs.push((dir.join(&rel), mtime));
        }
    }
    // A directory's time is its entry's once what it holds is written (each
    // entry extracted into it changed it), deepest first, as tar does.
    for (d, mtime) in dirs.into_iter().rev() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        if fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir())
            && let Ok(f) = fs::File::open(&d)
        {
            let _ = f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t));
        }
    }
    Ok(())
}

/// Docker's kinds of change.
pub const MODIFIED: i32 = 0;
pub const ADDED: i32 = 1;
pub const DELETED: i32 = 2;

/// The changes of a snapshot, from its overlay upper directory against its
/// lower layers: whiteouts are deletions, what exists below is modified,
/// the rest added.
pub fn changes(mounts: &[imagestore::Mount]) -> Result<Vec<(String, i32)>, Status> {
    let (upper, lowers) = match mounts.first() {
        Some(m) if m.r#type == "overlay" => {
            let opt = |k: &str| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix(&format!("{k}=")).map(String::from))
            };
            let upper = opt("upperdir")
                .ok_or_else(|| Status::internal("the snapshot's mount has no upperdir"))?;
            let lowers: Vec<PathBuf> = opt("lowerdir")
                .unwrap_or_default()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            (PathBuf::from(upper), lowers)
        }
        Some(m) => (PathBuf::from(&m.source), Vec::new()),
        None => return Ok(Vec::new()),
    };
    let mut out = BTreeMap::new();
    walk_changes(&upper, Path::new("/"), &lowers, &mut out)
        .map_err(|e| Status::internal(format!("reading the snapshot's changes: {e}")))?;
    Ok(out.into_iter().collect())
}

fn walk_changes(
    dir: &Path,
    at: &Path,
    lowers: &[PathBuf],
    out: &mut BTreeMap<String, i32>,
) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let path = at.join(&name);
        let key = path.to_string_lossy().into_owned();
        let m = e.metadata()?;
        let rel = path.strip_prefix("/").unwrap_or(&path);
        if m.file_type().is_char_device() && m.rdev() == 0 {
            out.insert(key, DELETED);
            continue;
        }
        let below = lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok());
        out.insert(key, if below { MODIFIED } else { ADDED });
        if m.is_dir() {
            walk_changes(&e.path(), &path, lowers, out)?;
        }
    }
    Ok(())
}

/// A Write that hands its bytes to an async receiver in chunks.
pub struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, Status>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChunkWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, Status>>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A Read over chunks arriving from an async stream.
pub struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = (self.cur.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("../../..", root.join("usr/bin/up")).unwrap();
        assert_eq!(resolve(root, "/bin/sh").unwrap(), root.join("usr/bin/sh"));
        // The last component is the link itself unless asked to follow.
        assert_eq!(resolve(root, "/bin").unwrap(), root.join("bin"));
        assert_eq!(resolve(root, "/bin/").unwrap(), root.join("usr/bin"));
        // `..` stops at the root, through links too.
        assert_eq!(resolve(root, "/../../etc").unwrap(), root.join("etc"));
        assert_eq!(resolve(root, "/usr/bin/up/etc").unwrap(), root.join("etc"));
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, "/loop/x").is_err());
    }

    #[test]
    fn archives_round_trip_and_refuse_escapes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("data/sub")).unwrap();
        fs::write(root.join("data/sub/f"), b"hi").unwrap();
        let mut tar = Vec::new();
        read_archive(&root, "/data", &mut tar).unwrap();
        fs::create_dir_all(root.join("copy")).unwrap();
        write_archive(&root, "/copy", &tar[..], false, &Routes::default()).unwrap();
        assert_eq!(fs::read(root.join("copy/data/sub/f")).unwrap(), b"hi");
        let names = |tar: &[u8]| -> Vec<String> {
            tar::Archive::new(tar)
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&tar), ["data/", "data/sub/", "data/sub/f"]);
        // The contents only, with "/.": named from ".", the directory
        // first, as dockerd's (the docker CLI renames them by the name).
        let mut tar = Vec::new();
        read_archive(&root, "/data/.", &mut tar).unwrap();
        assert_eq!(names(&tar), ["./", "./sub/", "./sub/f"]);
        assert_eq!(stat(&root, "/data/.").unwrap().name, ".");
        // The root is "/" and what it holds "/…", as dockerd names them.
        let mut whole = Vec::new();
        read_archive(&root, "/", &mut whole).unwrap();
        let all = names(&whole);
        assert_eq!(all[0], "/");
        assert!(all.contains(&"/data/sub/f".to_string()), "{all:?}");
        assert!(all.iter().all(|n| n.starts_with('/')), "{all:?}");
        assert_eq!(stat(&root, "/data/").unwrap().name, "data");
        fs::create_dir_all(root.join("flat")).unwrap();
        write_archive(&root, "/flat", &tar[..], false, &Routes::default()).unwrap();
        assert!(root.join("flat/sub/f").exists());
        // Long names and link targets come whole (GNU long name entries).
        let long = "n".repeat(150);
        fs::create_dir_all(root.join("data/deep")).unwrap();
        fs::write(root.join("data/deep").join(&long), b"long").unwrap();
        symlink(format!("/{long}/target"), root.join("data/deep/ln")).unwrap();
        let mut tar = Vec::new();
        read_archive(&root, "/data/deep/.", &mut tar).unwrap();
        assert_eq!(
            names(&tar),
            ["./".to_string(), "./ln".into(), format!("./{long}")]
        );
        let mut a = tar::Archive::new(&tar[..]);
        let link = a.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(
            link.link_name().unwrap().unwrap().to_string_lossy(),
            format!("/{long}/target")
        );
        fs::create_dir_all(root.join("deepcopy")).unwrap();
        write_archive(&root, "/deepcopy", &tar[..], false, &Routes::default()).unwrap();
        assert_eq!(
            fs::read(root.join("deepcopy").join(&long)).unwrap(),
            b"long"
        );
        fs::remove_dir_all(root.join("data/deep")).unwrap();
        // A file asked for as a directory is not one.
        assert!(stat(&root, "/data/sub/f/").is_err());
        assert!(read_archive(&root, "/data/sub/f/", &mut Vec::new()).is_err());
        // Directories keep their archived times once filled.
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let f = fs::File::open(root.join("data/sub")).unwrap();
        f.set_times(fs::FileTimes::new().set_modified(old)).unwrap();
        let mut tar = Vec::new();
        read_archive(&root, "/data/sub", &mut tar).unwrap();
        fs::create_dir_all(root.join("timed")).unwrap();
        write_archive(&root, "/timed", &tar[..], false, &Routes::default()).unwrap();
        assert_eq!(
            fs::metadata(root.join("timed/sub"))
                .unwrap()
                .modified()
                .unwrap(),
            old
        );
        // A symlink in the container pointing out of it is not followed out.
        symlink("/", root.join("escape")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "escape/pwned-by-berth-test", &b"x"[..])
            .unwrap();
        let evil = b.into_inner().unwrap();
        let _ = write_archive(&root, "/", &evil[..], false, &Routes::default());
        assert!(!Path::new("/pwned-by-berth-test").exists());
        // A directory is not replaced by a file when asked not to.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "data", &b"x"[..]).unwrap();
        let file_over_dir = b.into_inner().unwrap();
        assert!(write_archive(&root, "/", &file_over_dir[..], true, &Routes::default()).is_err());
        assert!(root.join("data").is_dir());
        assert!(stat(&root, "/nope").is_err_and(|s| s.code() == tonic::Code::NotFound));
        let st = stat(&root, "/data/sub/f").unwrap();
        assert_eq!((st.name.as_str(), st.size), ("f", 2));
    }

    /// A tar of files (`Some(content)`, mode 0644) and directories
    /// (`None`, mode 0700), owned by whoever runs the test.
    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(nix::unistd::getuid().as_raw().into());
            h.set_gid(nix::unistd::getgid().as_raw().into());
            h.set_mtime(0);
            let data = data.unwrap_or_else(|| {
                h.set_entry_type(tar::EntryType::Directory);
                b""
            });
            h.set_size(data.len() as u64);
            h.set_mode(if h.entry_type().is_dir() {
                0o700
            } else {
                0o644
            });
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn what_lands_in_another_mount_is_written_in_its_source() {
        let t = tempfile::tempdir().unwrap();
        let (root, vol, ro, etc) = (
            t.path().join("root"),
            t.path().join("vol"),
            t.path().join("ro"),
            t.path().join("etc"),
        );
        for d in [&root, &vol, &ro, &etc] {
            fs::create_dir_all(d).unwrap();
        }
        fs::create_dir_all(root.join("data")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(etc.join("hosts"), b"engine's").unwrap();
        let routes = |base: &str| Routes {
            base: base.into(),
            own: String::new(),
            mounts: vec![
                Route {
                    point: "/data".into(),
                    source: vol.clone(),
                    read_only: false,
                },
                Route {
                    point: "/ro".into(),
                    source: ro.clone(),
                    read_only: true,
                },
                Route {
                    point: "/etc/hosts".into(),
                    source: etc.join("hosts"),
                    read_only: false,
                },
            ],
        };
        // `cp dir c:/` with dir/data/...: the volume gets it, not the
        // directory under it; the mount's own directory entry is passed.
        let tar = tar_of(&[
            ("data", None),
            ("data/sub", None),
            ("data/sub/f", Some(b"in the volume")),
            ("top", Some(b"in the root")),
        ]);
        write_archive(&root, "/", &tar[..], false, &routes("/")).unwrap();
        assert_eq!(fs::read(vol.join("sub/f")).unwrap(), b"in the volume");
        assert!(!root.join("data/sub").exists());
        assert_eq!(fs::read(root.join("top")).unwrap(), b"in the root");
        // Through a path the engine did not clean.
        let tar = tar_of(&[("data/g", Some(b"g"))]);
        write_archive(&root, "/etc/..", &tar[..], false, &routes("/etc/..")).unwrap();
        assert_eq!(fs::read(vol.join("g")).unwrap(), b"g");
        // A file mounted there is not replaced (dockerd cannot unlink it
        // either), nor is anything written in a read-only mount.
        let tar = tar_of(&[("hosts", Some(b"mine"))]);
        let e = write_archive(&root, "/etc", &tar[..], false, &routes("/etc")).unwrap_err();
        assert!(e.message().contains("device or resource busy"), "{e:?}");
        assert_eq!(fs::read(etc.join("hosts")).unwrap(), b"engine's");
        assert!(!root.join("etc/hosts").exists());
        let tar = tar_of(&[("ro/x", Some(b"x"))]);
        let e = write_archive(&root, "/", &tar[..], false, &routes("/")).unwrap_err();
        assert!(e.message().contains("read-only"), "{e:?}");
        assert!(!ro.join("x").exists() && !root.join("ro/x").exists());
        // Written in the mount the extraction point is in: as before.
        let mut own = routes("/data");
        own.own = "/data".into();
        let tar = tar_of(&[("h", Some(b"h"))]);
        write_archive(&vol, "/", &tar[..], false, &own).unwrap();
        assert_eq!(fs::read(vol.join("h")).unwrap(), b"h");
    }

    #[test]
    fn symlinks_planted_in_a_mount_lead_nowhere_outside_it() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (root, vol, victim) = (
            t.path().join("root"),
            t.path().join("vol"),
            t.path().join("victim"),
        );
        for d in [&root, &vol, &victim] {
            fs::create_dir_all(d).unwrap();
        }
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
        // What a process of the container could leave in its volume.
        symlink(&victim, vol.join("x")).unwrap();
        let routes = Routes {
            base: "/".into(),
            own: String::new(),
            mounts: vec![Route {
                point: "/data".into(),
                source: vol.clone(),
                read_only: false,
            }],
        };
        let tar = tar_of(&[("data/x/", None)]);
        assert!(write_archive(&root, "/", &tar[..], false, &routes).is_err());
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "a directory entry changed what the link points at"
        );
        let tar = tar_of(&[("data/x/planted", Some(b"p"))]);
        assert!(write_archive(&root, "/", &tar[..], false, &routes).is_err());
        assert!(!victim.join("planted").exists());
    }

    #[test]
    fn changes_read_the_upper_dir() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), b"root").unwrap();
        fs::write(lower.join("gone"), b"x").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), b"root2").unwrap();
        fs::write(upper.join("new"), b"n").unwrap();
        nix::sys::stat::mknod(
            &upper.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o000),
            0,
        )
        .unwrap();
        let m = imagestore::Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                format!("lowerdir={}", lower.display()),
                format!("upperdir={}", upper.display()),
            ],
        };
        let c = changes(&[m]).unwrap();
        assert_eq!(
            c,
            vec![
                ("/etc".to_string(), MODIFIED),
                ("/etc/passwd".to_string(), MODIFIED),
                ("/gone".to_string(), DELETED),
                ("/new".to_string(), ADDED),
            ]
        );
    }
}
