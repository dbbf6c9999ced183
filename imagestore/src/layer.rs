//! Layers as tar streams, both ways.
//!
//! [`apply`] unpacks one layer into an empty directory of its own, the way
//! overlayfs wants its lower layers: an OCI/AUFS whiteout `.wh.name` becomes
//! a 0:0 character device `name`, an opaque marker `.wh..wh..opq` becomes
//! the `trusted.overlay.opaque=y` attribute of its directory. Entries that
//! would land outside the directory (`..`, absolute paths, a path through a
//! symlink, a hard link to something outside) are refused.
//!
//! [`write_diff`] does the reverse for a snapshot's own directory (an
//! overlay upper dir): overlay whiteouts become OCI whiteouts again.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use oci_spec::image::Digest;

use crate::digest::HashingReader;
use crate::error::{Error, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// AUFS keeps its own bookkeeping under names with this prefix.
const AUFS_META_PREFIX: &str = ".wh..wh.";

/// How a layer blob is compressed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        use crate::resolve::media_types::*;
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps `r` in the decompressor its first bytes call for.
pub(crate) fn decompress<'a>(
    r: impl Read + Send + 'a,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let mut head = Vec::with_capacity(4);
    // fill_buf may return fewer bytes than the magic needs; keep asking.
    while head.len() < 4 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let take = (4 - head.len()).min(buf.len());
        head.extend_from_slice(&buf[..take]);
        r.consume(take);
    }
    let c = Compression::detect(&head);
    let joined = io::Cursor::new(head).chain(r);
    let out: Box<dyn Read + Send + 'a> = match c {
        Compression::None => Box::new(joined),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(joined)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(joined)?),
    };
    Ok((c, out))
}

/// What [`apply`] found.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// sha256 of the uncompressed stream.
    pub diff_id: Digest,
    /// What the layer's files hold: regular files' bytes and symlinks'
    /// targets, hard links once, directories and whiteouts nothing. Docker
    /// measures a layer so (its overlay2 driver walks the applied directory
    /// for the same sum); the tar's own size counts headers and padding.
    pub content_size: u64,
}

/// An entry's share of [`Applied::content_size`].
fn content_bytes<R: Read>(entry: &tar::Entry<'_, R>) -> u64 {
    use tar::EntryType as T;
    match entry.header().entry_type() {
        T::Regular | T::Continuous | T::GNUSparse => entry.size(),
        T::Symlink => entry.link_name_bytes().map_or(0, |l| l.len() as u64),
        _ => 0,
    }
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

struct EntryCtx<'a> {
    layer: &'a str,
    entry: String,
}

impl EntryCtx<'_> {
    fn unsafe_entry(&self, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: self.entry.clone(),
            reason: reason.into(),
        }
    }
}

/// Splits a tar path into components, refusing what could leave the root.
fn clean_components(raw: &[u8], ctx: &EntryCtx<'_>) -> Result<Vec<OsString>> {
    if raw.first() == Some(&b'/') {
        return Err(ctx.unsafe_entry("is an absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(ctx.unsafe_entry("escapes the layer root through '..'")),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

/// Makes sure every directory on the way to an entry exists as a real
/// directory of this layer, creating the missing ones; a symlink on the way
/// is refused (following it is how an entry escapes the root).
fn ensure_dirs(root: &Path, comps: &[OsString], ctx: &EntryCtx<'_>) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in comps {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            Ok(md) if is_whiteout(&md) => {
                // Deleted below, then created again in this same layer: an
                // opaque directory.
                fs::remove_file(&cur).map_err(Error::io("removing", &cur))?;
                mkdir(&cur, 0o755)?;
                set_xattr(&cur, OPAQUE_XATTR, b"y").map_err(Error::io("marking opaque", &cur))?;
            }
            Ok(md) if md.file_type().is_symlink() => {
                return Err(ctx.unsafe_entry(format!(
                    "goes through the symlink {:?}",
                    cur.strip_prefix(root).unwrap_or(&cur)
                )));
            }
            Ok(_) => {
                return Err(ctx.unsafe_entry(format!(
                    "is under {:?}, which is not a directory",
                    cur.strip_prefix(root).unwrap_or(&cur)
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => mkdir(&cur, 0o755)?,
            Err(e) => return Err(Error::io("reading", &cur)(e)),
        }
    }
    Ok(cur)
}

/// The first step of `comps` that exists and is not a directory.
fn non_dir_on_the_way(root: &Path, comps: &[OsString]) -> Option<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in comps {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Some(cur),
            Err(_) => return None,
        }
    }
    None
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::create_dir(p).map_err(Error::io("creating directory", p))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting mode of", p))
}

/// Clears the way for a new entry at `p`. An existing directory stays when
/// the new entry is a directory too (its content merges).
fn clear(p: &Path, keep_dir: bool) -> Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(p).map_err(Error::io("removing", p))?;
        }
        Ok(_) => fs::remove_file(p).map_err(Error::io("removing", p))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", p)(e)),
    }
    Ok(false)
}

fn cstring(p: &[u8]) -> io::Result<CString> {
    CString::new(p).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a name"))
}

pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name.as_bytes())?;
    // SAFETY: p and n are NUL-terminated and live across the call; value
    // points at value.len() readable bytes; lsetxattr does not keep them.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name.as_bytes())?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: p and n are NUL-terminated; buf has buf.len() writable
        // bytes and the kernel writes at most that many.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

fn list_xattrs(path: &Path) -> io::Result<Vec<String>> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: p is NUL-terminated; buf has buf.len() writable bytes and
        // the kernel writes at most that many.
        let r = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// Owner, times and attributes of a tar entry, with PAX records applied.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: SystemTime,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut uid = h.uid()? as u32;
    let mut gid = h.gid()? as u32;
    let mode = h.mode()? & 0o7777;
    let mut mtime = UNIX_EPOCH + Duration::from_secs(h.mtime()?);
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            } else if key == "uid" {
                if let Some(v) = ext.value().ok().and_then(|v| v.parse().ok()) {
                    uid = v;
                }
            } else if key == "gid" {
                if let Some(v) = ext.value().ok().and_then(|v| v.parse().ok()) {
                    gid = v;
                }
            } else if key == "mtime"
                && let Some(t) = ext.value().ok().and_then(parse_pax_time)
            {
                mtime = t;
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

fn parse_pax_time(v: &str) -> Option<SystemTime> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn timespec(t: SystemTime) -> TimeSpec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    TimeSpec::new(d.as_secs() as i64, d.subsec_nanos() as i64)
}

fn set_times_nofollow(p: &Path, t: SystemTime) -> Result<()> {
    let ts = timespec(t);
    utimensat(None, p, &ts, &ts, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| Error::io("setting times of", p)(e.into()))
}

fn apply_xattrs(p: &Path, xattrs: &[(String, Vec<u8>)]) {
    for (name, value) in xattrs {
        // Overlay's own attributes are the store's to set, never a layer's.
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Err(e) = set_xattr(p, name, value) {
            tracing::warn!("setting {name} on {}: {e}", p.display());
        }
    }
}

/// Unpacks `reader` (a tar, maybe gzip or zstd compressed) into `dest`,
/// which must exist and be empty, and returns the digest of the
/// uncompressed stream for the caller to check against the diff id.
pub(crate) fn apply(reader: impl Read + Send, dest: &Path, layer: &str) -> Result<Applied> {
    let bad = |source: io::Error| Error::BadLayer {
        layer: layer.to_string(),
        source,
    };
    let (_, plain) = decompress(reader).map_err(bad)?;
    let mut archive = tar::Archive::new(HashingReader::new(plain));
    let mut dirs: Vec<(PathBuf, SystemTime)> = Vec::new();
    let mut content_size = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        content_size += content_bytes(&entry);
        let raw = entry.path_bytes().into_owned();
        let ctx = EntryCtx {
            layer,
            entry: String::from_utf8_lossy(&raw).into_owned(),
        };
        apply_entry(&mut entry, &raw, dest, &ctx, &mut dirs).map_err(|e| match e {
            Error::Read { source, .. } => bad(source),
            e => e,
        })?;
    }
    // Parents were touched after their own entry set their time.
    for (p, t) in dirs.iter().rev() {
        set_times_nofollow(p, *t)?;
    }
    let (diff_id, _) = archive.into_inner().finish().map_err(bad)?;
    Ok(Applied {
        diff_id,
        content_size,
    })
}

fn apply_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    root: &Path,
    ctx: &EntryCtx<'_>,
    dirs: &mut Vec<(PathBuf, SystemTime)>,
) -> Result<()> {
    let read_err = |source: io::Error| Error::Read {
        what: format!("entry {:?}", ctx.entry),
        source,
    };
    let kind = entry.header().entry_type();
    let comps = clean_components(raw, ctx)?;
    if comps.iter().any(|c| {
        c.as_bytes().starts_with(AUFS_META_PREFIX.as_bytes())
            && c.as_bytes() != OPAQUE_MARKER.as_bytes()
    }) {
        return Ok(());
    }
    let meta = entry_meta(entry).map_err(read_err)?;
    let Some((name, parents)) = comps.split_last() else {
        // The root itself ("./"): its mode and owner become the rootfs's.
        if kind.is_dir() {
            std::os::unix::fs::lchown(root, Some(meta.uid), Some(meta.gid))
                .map_err(Error::io("changing owner of", root))?;
            fs::set_permissions(root, fs::Permissions::from_mode(meta.mode))
                .map_err(Error::io("setting mode of", root))?;
            dirs.push((root.to_path_buf(), meta.mtime));
        }
        return Ok(());
    };
    let name_bytes = name.as_bytes();
    if name_bytes == OPAQUE_MARKER.as_bytes() {
        let dir = ensure_dirs(root, parents, ctx)?;
        set_xattr(&dir, OPAQUE_XATTR, b"y").map_err(Error::io("marking opaque", &dir))?;
        return Ok(());
    }
    if let Some(target) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(ctx.unsafe_entry("is a whiteout without a name"));
        }
        // Under something this layer made a non-directory (tools do write
        // `dir` as a file followed by `dir/.wh.x`), the deletion is moot:
        // the new entry hides the whole lower directory already.
        if let Some(blocker) = non_dir_on_the_way(root, parents) {
            tracing::debug!(
                "layer {}: ignoring whiteout {:?} under non-directory {:?}",
                ctx.layer,
                ctx.entry,
                blocker
            );
            return Ok(());
        }
        let dir = ensure_dirs(root, parents, ctx)?;
        let p = dir.join(OsStr::from_bytes(target));
        // Something this same layer put there wins over the deletion of
        // what the layers below had.
        if fs::symlink_metadata(&p).is_ok() {
            return Ok(());
        }
        mknod(&p, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| Error::io("creating whiteout", &p)(e.into()))?;
        std::os::unix::fs::lchown(&p, Some(meta.uid), Some(meta.gid))
            .map_err(Error::io("changing owner of", &p))?;
        return Ok(());
    }
    let dir = ensure_dirs(root, parents, ctx)?;
    let p = dir.join(name);
    use tar::EntryType as T;
    match kind {
        T::Directory => {
            if !clear(&p, true)? {
                mkdir(&p, 0o700)?;
            }
            std::os::unix::fs::lchown(&p, Some(meta.uid), Some(meta.gid))
                .map_err(Error::io("changing owner of", &p))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(meta.mode))
                .map_err(Error::io("setting mode of", &p))?;
            apply_xattrs(&p, &meta.xattrs);
            dirs.push((p, meta.mtime));
        }
        T::Regular | T::Continuous | T::GNUSparse => {
            clear(&p, false)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
                .map_err(Error::io("creating", &p))?;
            copy_entry(entry, &mut f, &p).map_err(|e| match e {
                CopyError::Read(source) => read_err(source),
                CopyError::Write(source) => Error::io("writing", &p)(source),
            })?;
            // Owner first: chown clears the set-id bits that chmod sets.
            std::os::unix::fs::fchown(&f, Some(meta.uid), Some(meta.gid))
                .map_err(Error::io("changing owner of", &p))?;
            f.set_permissions(fs::Permissions::from_mode(meta.mode))
                .map_err(Error::io("setting mode of", &p))?;
            apply_xattrs(&p, &meta.xattrs);
            f.set_times(
                FileTimes::new()
                    .set_accessed(meta.mtime)
                    .set_modified(meta.mtime),
            )
            .map_err(Error::io("setting times of", &p))?;
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ctx.unsafe_entry("is a symlink without a target"))?
                .into_owned();
            clear(&p, false)?;
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p)
                .map_err(Error::io("creating symlink", &p))?;
            std::os::unix::fs::lchown(&p, Some(meta.uid), Some(meta.gid))
                .map_err(Error::io("changing owner of", &p))?;
            apply_xattrs(&p, &meta.xattrs);
            set_times_nofollow(&p, meta.mtime)?;
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ctx.unsafe_entry("is a hard link without a target"))?
                .into_owned();
            let tcomps = clean_components(&target, ctx)
                .map_err(|_| ctx.unsafe_entry("is a hard link to a path outside the layer"))?;
            let Some((tname, tparents)) = tcomps.split_last() else {
                return Err(ctx.unsafe_entry("is a hard link to the root"));
            };
            let tdir = existing_dir(root, tparents, ctx)?;
            let tpath = tdir.join(tname);
            match fs::symlink_metadata(&tpath) {
                Ok(md) if md.is_dir() => {
                    return Err(ctx.unsafe_entry("is a hard link to a directory"));
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(ctx.unsafe_entry(format!(
                        "is a hard link to {:?}, which is not in this layer",
                        String::from_utf8_lossy(&target)
                    )));
                }
            }
            if tpath == p {
                return Ok(());
            }
            clear(&p, false)?;
            // linkat without AT_SYMLINK_FOLLOW links a symlink itself.
            fs::hard_link(&tpath, &p).map_err(Error::io("creating hard link", &p))?;
        }
        T::Char | T::Block | T::Fifo => {
            let (flag, dev) = match kind {
                T::Fifo => (SFlag::S_IFIFO, 0),
                _ => {
                    let h = entry.header();
                    let major = h.device_major().map_err(read_err)?.unwrap_or(0);
                    let minor = h.device_minor().map_err(read_err)?.unwrap_or(0);
                    let flag = if kind == T::Char {
                        SFlag::S_IFCHR
                    } else {
                        SFlag::S_IFBLK
                    };
                    (flag, makedev(major as u64, minor as u64))
                }
            };
            clear(&p, false)?;
            mknod(&p, flag, Mode::from_bits_truncate(0o600), dev)
                .map_err(|e| Error::io("creating device node", &p)(e.into()))?;
            std::os::unix::fs::lchown(&p, Some(meta.uid), Some(meta.gid))
                .map_err(Error::io("changing owner of", &p))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(meta.mode))
                .map_err(Error::io("setting mode of", &p))?;
            apply_xattrs(&p, &meta.xattrs);
            set_times_nofollow(&p, meta.mtime)?;
        }
        // PAX and GNU long-name headers are folded into the next entry by
        // the tar crate; anything else has no place in a root filesystem.
        other => tracing::debug!(
            "layer {}: skipping {:?} entry {:?}",
            ctx.layer,
            other,
            ctx.entry
        ),
    }
    Ok(())
}

/// The directory at `comps` if every step is a real directory.
fn existing_dir(root: &Path, comps: &[OsString], ctx: &EntryCtx<'_>) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in comps {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            _ => {
                return Err(ctx.unsafe_entry(
                    "is a hard link through something that is not a directory of this layer",
                ));
            }
        }
    }
    Ok(cur)
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy_entry(r: &mut impl Read, f: &mut File, _p: &Path) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        f.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Writes the tar of a snapshot directory (a layer dir or an overlay upper
/// dir), entries sorted by name so that the same tree gives the same bytes.
/// Paths in `exclude` (relative to `dir`) are left out.
pub(crate) fn write_diff(dir: &Path, out: &mut dyn Write, exclude: &[PathBuf]) -> Result<()> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk(&mut b, dir, Path::new(""), &mut links, exclude)?;
    b.finish().map_err(|source| Error::Write {
        what: "the layer tar".into(),
        source,
    })
}

fn tar_err(source: io::Error) -> Error {
    Error::Write {
        what: "the layer tar".into(),
        source,
    }
}

fn header_for(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn pax_xattrs<W: Write>(b: &mut tar::Builder<W>, p: &Path) -> Result<()> {
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    for name in list_xattrs(p).map_err(Error::io("listing attributes of", p))? {
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = get_xattr(p, &name).map_err(Error::io("reading attributes of", p))? {
            recs.push((format!("SCHILY.xattr.{name}"), v));
        }
    }
    if !recs.is_empty() {
        b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(tar_err)?;
    }
    Ok(())
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    abs: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    exclude: &[PathBuf],
) -> Result<()> {
    let mut names: Vec<OsString> = fs::read_dir(abs)
        .map_err(Error::io("reading directory", abs))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(Error::io("reading directory", abs))?;
    names.sort();
    for name in names {
        let p = abs.join(&name);
        let r = rel.join(&name);
        if exclude.contains(&r) {
            continue;
        }
        let md = fs::symlink_metadata(&p).map_err(Error::io("reading", &p))?;
        let ft = md.file_type();
        if is_whiteout(&md) {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(&name);
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_mode(0o600);
            b.append_data(&mut h, rel.join(wh), io::empty())
                .map_err(tar_err)?;
        } else if ft.is_dir() {
            let mut h = header_for(&md, tar::EntryType::Directory);
            pax_xattrs(b, &p)?;
            b.append_data(&mut h, &r, io::empty()).map_err(tar_err)?;
            let opaque = get_xattr(&p, OPAQUE_XATTR)
                .map_err(Error::io("reading attributes of", &p))?
                .is_some_and(|v| v == b"y");
            if opaque {
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_mode(0o600);
                b.append_data(&mut h, r.join(OPAQUE_MARKER), io::empty())
                    .map_err(tar_err)?;
            }
            walk(b, &p, &r, links, exclude)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    let mut h = header_for(&md, tar::EntryType::Link);
                    b.append_link(&mut h, &r, first).map_err(tar_err)?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), r.clone());
            }
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            pax_xattrs(b, &p)?;
            let f = File::open(&p).map_err(Error::io("opening", &p))?;
            // A file that changes while it is read would corrupt the tar;
            // take exactly the size the header announced.
            let mut data = f.take(md.len());
            b.append_data(&mut h, &r, &mut data).map_err(tar_err)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&p).map_err(Error::io("reading link", &p))?;
            let mut h = header_for(&md, tar::EntryType::Symlink);
            pax_xattrs(b, &p)?;
            b.append_link(&mut h, &r, &target).map_err(tar_err)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = header_for(&md, kind);
            if kind != tar::EntryType::Fifo {
                let rdev = md.rdev();
                h.set_device_major(nix::sys::stat::major(rdev) as u32)
                    .map_err(tar_err)?;
                h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
                    .map_err(tar_err)?;
            }
            b.append_data(&mut h, &r, io::empty()).map_err(tar_err)?;
        }
        // Sockets are not content.
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A tar built entry by entry, for layers with exactly the shape a test needs.
    pub(crate) struct TarBuilder {
        b: tar::Builder<Vec<u8>>,
    }

    impl TarBuilder {
        pub(crate) fn new() -> Self {
            TarBuilder {
                b: tar::Builder::new(Vec::new()),
            }
        }

        fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h
        }

        /// Writes the name straight into the header, so that even names
        /// the tar crate would refuse (`..`, absolute) can be tested.
        fn raw(&mut self, mut h: tar::Header, name: &str, data: &[u8]) -> &mut Self {
            let bytes = name.as_bytes();
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            self.b.append(&h, data).unwrap();
            self
        }

        pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
            self.raw(Self::header(tar::EntryType::Directory, 0o755, 0), name, b"")
        }

        pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.raw(
                Self::header(tar::EntryType::Regular, 0o644, data.len() as u64),
                name,
                data,
            )
        }

        pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
            h.set_link_name(target).unwrap();
            self.raw(h, name, b"")
        }

        pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
            let t = target.as_bytes();
            h.as_gnu_mut().unwrap().linkname[..t.len()].copy_from_slice(t);
            self.raw(h, name, b"")
        }

        pub(crate) fn finish(&mut self) -> Vec<u8> {
            let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
            b.into_inner().unwrap()
        }
    }

    fn unpack(data: &[u8]) -> (tempfile::TempDir, Result<Applied>) {
        let dir = tempfile::tempdir().unwrap();
        let r = apply(data, dir.path(), "test");
        (dir, r)
    }

    #[test]
    fn a_layer_is_sized_by_what_its_files_hold_as_docker_walks_it() {
        let tar = TarBuilder::new()
            .dir("bin/")
            .file("bin/tool", &[7u8; 1000])
            .hardlink("bin/again", "bin/tool")
            .symlink("bin/link", "tool")
            .file("empty", b"")
            .file(".wh.gone", b"")
            .finish();
        let (dir, r) = unpack(&tar);
        let applied = r.unwrap();
        assert_eq!(applied.content_size, 1000 + 4);
        // The same sum as a walk of the unpacked files (Docker's way).
        let walked = crate::fsutil::disk_usage(dir.path()).unwrap().content;
        assert_eq!(applied.content_size, walked);
        assert!((tar.len() as u64) > applied.content_size + 512);
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
        let tar = TarBuilder::new()
            .file(".wh.gone", b"")
            .dir("etc/")
            .file("etc/.wh..wh..opq", b"")
            .file("etc/new", b"new")
            .dir("var/")
            .file("var/.wh.lib", b"")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        let gone = fs::symlink_metadata(dir.path().join("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(
            get_xattr(&dir.path().join("etc"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(fs::read(dir.path().join("etc/new")).unwrap(), b"new");
        assert!(is_whiteout(
            &fs::symlink_metadata(dir.path().join("var/lib")).unwrap()
        ));
    }

    #[test]
    fn a_whiteout_under_a_path_this_layer_made_a_file_is_moot() {
        let tar = TarBuilder::new()
            .file("conf.d", b"now a file")
            .file("conf.d/.wh.a", b"")
            .symlink("lnk", "/etc")
            .file("lnk/.wh.passwd", b"")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("conf.d")).unwrap(), b"now a file");
        assert!(
            fs::symlink_metadata(dir.path().join("lnk"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn aufs_bookkeeping_is_skipped() {
        let tar = TarBuilder::new()
            .dir(".wh..wh.plnk/")
            .file(".wh..wh.plnk/123.456", b"x")
            .file(".wh..wh.aufs", b"")
            .dir(".wh..wh.orph/")
            .file("kept", b"k")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("kept")]);
    }

    #[test]
    fn a_file_and_its_whiteout_in_one_layer_keep_the_file() {
        let tar = TarBuilder::new()
            .file("a", b"x")
            .file(".wh.a", b"")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"x");
    }

    #[test]
    fn entries_that_escape_the_root_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (TarBuilder::new().file("../evil", b"x").finish(), "'..'"),
            (
                TarBuilder::new().file("a/../../evil", b"x").finish(),
                "'..'",
            ),
            (
                TarBuilder::new().file("/etc/evil", b"x").finish(),
                "absolute",
            ),
            (
                TarBuilder::new()
                    .symlink("lnk", "/tmp")
                    .file("lnk/evil", b"x")
                    .finish(),
                "symlink",
            ),
            (
                TarBuilder::new()
                    .symlink("lnk", "..")
                    .file("lnk/evil", b"x")
                    .finish(),
                "symlink",
            ),
            (
                TarBuilder::new().hardlink("h", "../../etc/passwd").finish(),
                "outside",
            ),
            (
                TarBuilder::new().hardlink("h", "/etc/passwd").finish(),
                "outside",
            ),
            (
                TarBuilder::new()
                    .symlink("lnk", "/etc")
                    .hardlink("h", "lnk/passwd")
                    .finish(),
                "not a directory",
            ),
        ];
        for (tar, want) in cases {
            let outside = tempfile::tempdir().unwrap();
            let dir = outside.path().join("root");
            fs::create_dir(&dir).unwrap();
            let e = apply(&tar[..], &dir, "sha256:test").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.starts_with("layer sha256:test: entry"), "{msg}");
            assert!(!outside.path().join("evil").exists());
        }
    }

    #[test]
    fn symlinks_may_point_anywhere_without_being_followed() {
        let tar = TarBuilder::new()
            .symlink("abs", "/etc/passwd")
            .symlink("up", "../../..")
            .file("real", b"r")
            .hardlink("hard", "real")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        assert_eq!(
            fs::read_link(dir.path().join("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        let a = fs::metadata(dir.path().join("real")).unwrap();
        let b = fs::metadata(dir.path().join("hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
    }

    #[test]
    fn compressed_layers_unpack_and_hash_uncompressed() {
        let tar = TarBuilder::new().dir("d/").file("d/f", b"hello").finish();
        let want = crate::digest::sha256_of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
        for (data, c) in [
            (&tar, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            assert_eq!(Compression::detect(&data[..4]), c);
            let (dir, r) = unpack(data);
            let r = r.unwrap();
            assert_eq!(r.diff_id, want);
            assert_eq!(fs::read(dir.path().join("d/f")).unwrap(), b"hello");
        }
    }

    #[test]
    fn a_truncated_layer_is_an_error() {
        let tar = TarBuilder::new().file("f", &[7u8; 5000]).finish();
        let (_dir, r) = unpack(&tar[..1024]);
        assert!(matches!(r, Err(Error::BadLayer { .. })), "{r:?}");
    }

    #[test]
    fn diff_turns_overlay_whiteouts_back_into_oci_whiteouts() {
        let tar = TarBuilder::new()
            .file(".wh.gone", b"")
            .dir("etc/")
            .file("etc/.wh..wh..opq", b"")
            .file("etc/new", b"new")
            .symlink("lnk", "etc/new")
            .hardlink("hard", "etc/new")
            .finish();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        let mut out = Vec::new();
        write_diff(dir.path(), &mut out, &[]).unwrap();
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(&out[..]);
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            names.push((
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            ));
        }
        let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "etc",
                "etc/.wh..wh..opq",
                "etc/new",
                ".wh.gone",
                "hard",
                "lnk"
            ]
        );
        // And the diff unpacks to the same tree.
        let (again, r) = unpack(&out);
        r.unwrap();
        assert!(is_whiteout(
            &fs::symlink_metadata(again.path().join("gone")).unwrap()
        ));
        assert_eq!(fs::read(again.path().join("hard")).unwrap(), b"new");
        assert!(
            get_xattr(&again.path().join("etc"), OPAQUE_XATTR)
                .unwrap()
                .is_some()
        );
    }
}
