//! The build context as the client sends it: a tar (plain, gzip, bzip2 or
//! xz) in the request body. It is kept as it arrives, decompressed, in one
//! file of the build's own, with an index of its entries (kind, mode,
//! where the bytes are, their sha256 taken on the way in): one sequential
//! write instead of thousands of files, nothing held in memory, and a
//! COPY's cache key without reading its files again. The same tree holds
//! what `COPY --from` takes out of other images.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::BuildError;

/// A blocking reader over the chunks a request body delivers.
pub struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    buf: Bytes,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<Result<Bytes, String>>) -> ChunkReader {
        ChunkReader {
            rx,
            buf: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One path of a tree.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
    pub mtime: u64,
    /// Which backing file holds the bytes, and where.
    pub file: usize,
    pub offset: u64,
    /// sha256 of the content (files).
    pub sha256: [u8; 32],
    pub link: Option<String>,
}

/// Files by their path ('/'-separated, relative, no `.` or `..`), their
/// bytes in tar files written as they arrived.
#[derive(Default)]
pub struct Tree {
    files: Vec<File>,
    nodes: BTreeMap<String, Node>,
}

/// A path as the tree keys it: relative, cleaned; None when it climbs out.
pub fn key(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A tar entry's path as dockerd unpacks a context (in a chroot at its
/// root): cleaned, with `..` at the top staying at the top, so that
/// `../foo` and `/foo` are `foo`.
fn entry_key(p: &str) -> String {
    crate::daemon::volumes::clean(p)
        .trim_start_matches('/')
        .to_string()
}

/// Writes what it reads to a file and counts it, so that the positions the
/// tar reader reports are positions in the file.
struct Tee<R> {
    inner: R,
    out: std::io::BufWriter<File>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Tree {
    /// Adds the tar from `r` (decompressed as needed), kept in `store`,
    /// its paths under `prefix`. Returns the bytes of content.
    pub fn add_tar(
        &mut self,
        r: impl Read + Send + 'static,
        store: &Path,
        prefix: &str,
    ) -> Result<u64, BuildError> {
        let bad = |e: std::io::Error| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                BuildError::Context(
                    "no space left on device while receiving the build context".into(),
                )
            } else {
                BuildError::Context(format!("reading the build context: {e}"))
            }
        };
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(store)
            .map_err(bad)?;
        let index = self.files.len();
        let tee = Tee {
            inner: decompress::client_tar(r).map_err(bad)?,
            out: std::io::BufWriter::with_capacity(1 << 20, out.try_clone().map_err(bad)?),
        };
        let mut ar = tar::Archive::new(tee);
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        for entry in ar.entries().map_err(bad)? {
            let mut e = entry.map_err(bad)?;
            let raw = e.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(rel) = key(&format!("{prefix}/{}", entry_key(&raw))) else {
                return Err(BuildError::Context(format!(
                    "the context holds a path outside itself: {raw}"
                )));
            };
            let h = e.header();
            let mode = h.mode().unwrap_or(0o644) & 0o7777;
            let mtime = h.mtime().unwrap_or(0);
            let (kind, link) = match h.entry_type() {
                tar::EntryType::Directory => (Kind::Dir, None),
                tar::EntryType::Symlink => (
                    Kind::Symlink,
                    e.link_name()
                        .map_err(bad)?
                        .map(|l| l.to_string_lossy().into_owned()),
                ),
                tar::EntryType::Link => {
                    // A hard link is the file it names.
                    let target = e
                        .link_name()
                        .map_err(bad)?
                        .and_then(|l| key(&format!("{prefix}/{}", l.to_string_lossy())));
                    if let Some(n) = target.and_then(|t| self.nodes.get(&t).cloned()) {
                        self.insert(rel, n);
                    }
                    continue;
                }
                t if t.is_file() => (Kind::File, None),
                tar::EntryType::GNUSparse => {
                    return Err(BuildError::Context(format!(
                        "{raw}: sparse files are not supported in a build context"
                    )));
                }
                // Devices, fifos: a context has no use for them.
                _ => continue,
            };
            let size = if kind == Kind::File { e.size() } else { 0 };
            let offset = e.raw_file_position();
            let mut sha = Sha256::new();
            if kind == Kind::File {
                loop {
                    match e.read(&mut buf).map_err(bad)? {
                        0 => break,
                        n => sha.update(&buf[..n]),
                    }
                }
                bytes = bytes.saturating_add(size);
            }
            let node = Node {
                kind,
                mode,
                size,
                mtime,
                file: index,
                offset,
                sha256: sha.finalize().into(),
                link,
            };
            self.insert(rel, node);
        }
        let mut tee = ar.into_inner();
        tee.out.flush().map_err(bad)?;
        self.files.push(out);
        Ok(bytes)
    }

    /// A node, with the directories above it made when missing.
    fn insert(&mut self, rel: String, node: Node) {
        if rel.is_empty() {
            return;
        }
        let mut at = rel.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.nodes.entry(parent.to_string()).or_insert(Node {
                kind: Kind::Dir,
                mode: 0o755,
                size: 0,
                mtime: 0,
                file: 0,
                offset: 0,
                sha256: [0; 32],
                link: None,
            });
            at = parent;
        }
        self.nodes.insert(rel, node);
    }

    /// The same tree over the same files, for a step that adds to it
    /// (ADD's downloads) without changing the context.
    pub fn try_clone(&self) -> std::io::Result<Tree> {
        Ok(Tree {
            files: self
                .files
                .iter()
                .map(File::try_clone)
                .collect::<std::io::Result<_>>()?,
            nodes: self.nodes.clone(),
        })
    }

    pub fn get(&self, rel: &str) -> Option<&Node> {
        self.nodes.get(rel)
    }

    pub fn remove(&mut self, rel: &str) {
        self.nodes.remove(rel);
    }

    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    /// The paths below `dir` ("" is the root), relative to it, sorted.
    pub fn below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (String, &'a Node)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let len = prefix.len();
        let start = prefix.clone();
        self.nodes
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(move |(k, n)| (k[len..].to_string(), n))
    }

    /// Symlinks followed inside the tree (never out of it).
    pub fn resolve(&self, rel: &str) -> Option<String> {
        let mut pending: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut parts: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    parts.pop();
                    continue;
                }
                _ => {}
            }
            parts.push(c);
            let here = parts.join("/");
            if let Some(Node {
                kind: Kind::Symlink,
                link: Some(target),
                ..
            }) = self.nodes.get(&here)
            {
                links += 1;
                if links > 40 {
                    return None;
                }
                parts.pop();
                if target.starts_with('/') {
                    parts.clear();
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
        }
        Some(parts.join("/"))
    }

    /// A file's bytes.
    pub fn open(&self, n: &Node) -> std::io::Result<impl Read + '_> {
        let f = self
            .files
            .get(n.file)
            .ok_or_else(|| std::io::Error::other("no such backing file"))?;
        Ok(RangeReader {
            f,
            pos: n.offset,
            end: n.offset + n.size,
        })
    }

    pub fn read_all(&self, rel: &str) -> Option<Vec<u8>> {
        let n = self.nodes.get(rel).filter(|n| n.kind == Kind::File)?;
        let mut out = Vec::new();
        self.open(n).ok()?.read_to_end(&mut out).ok()?;
        Some(out)
    }
}

struct RangeReader<'a> {
    f: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the context file is shorter than its index",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Receives the context from `body` into a tree kept in `dir`.
pub async fn receive(body: axum::body::Body, dir: &Path) -> Result<(Tree, u64), BuildError> {
    receive_chunks(
        body.into_data_stream()
            .map(|c| c.map_err(|e| e.to_string())),
        dir,
    )
    .await
}

/// A context from the chunks of a tar (a request body, a download).
pub async fn receive_chunks(
    stream: impl futures::Stream<Item = Result<Bytes, String>>,
    dir: &Path,
) -> Result<(Tree, u64), BuildError> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(16);
    let store = dir.join("context.tar");
    let unpack = tokio::task::spawn_blocking(move || {
        let mut t = Tree::default();
        let n = t.add_tar(ChunkReader::new(rx), &store, "")?;
        Ok::<_, BuildError>((t, n))
    });
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    unpack
        .await
        .map_err(|e| BuildError::Internal(format!("receiving the build context: {e}")))?
}

/// A path the client named inside the context (the Dockerfile), refused
/// when it would leave it.
pub fn inside(rel: &str) -> Result<String, BuildError> {
    key(rel).ok_or_else(|| {
        BuildError::Context(format!("forbidden path outside the build context: {rel}"))
    })
}

/// A directory for the files a build keeps.
pub fn store_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("tree-{n}.tar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn every_compression_gives_the_same_tree() {
        let plain = tar_of(&[("Dockerfile", b"FROM scratch\n"), ("a/b.txt", b"hi")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        for (i, data) in [
            plain.clone(),
            gz.finish().unwrap(),
            bz.finish().unwrap(),
            xz.finish().unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            let mut t = Tree::default();
            t.add_tar(
                std::io::Cursor::new(data),
                &dir.path().join(format!("{i}.tar")),
                "",
            )
            .unwrap();
            assert_eq!(t.read_all("a/b.txt").unwrap(), b"hi");
            assert_eq!(t.get("a").unwrap().kind, Kind::Dir, "parents are made");
            let want: [u8; 32] = Sha256::digest(b"hi").into();
            assert_eq!(t.get("a/b.txt").unwrap().sha256, want);
        }
    }

    #[test]
    fn paths_stay_inside_the_tree() {
        assert_eq!(inside("sub/../Dockerfile").unwrap(), "Dockerfile");
        assert!(inside("../Dockerfile").is_err());
        assert!(inside("a/../../x").is_err());
        let mut b = tar::Builder::new(Vec::new());
        let mut hdr = tar::Header::new_old();
        hdr.set_size(1);
        hdr.as_old_mut().name[..10].copy_from_slice(b"../escape\0");
        hdr.set_cksum();
        b.append(&hdr, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // An entry that climbs out lands at the top, as dockerd unpacks it
        // at its chroot's root.
        let mut t = Tree::default();
        t.add_tar(std::io::Cursor::new(data), &dir.path().join("x.tar"), "")
            .unwrap();
        assert_eq!(t.paths().collect::<Vec<_>>(), ["escape"]);
        assert_eq!(entry_key("/a/../../b/./c"), "b/c");
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, "link", "/real/dir").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "real/dir/f", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::default();
        t.add_tar(std::io::Cursor::new(data), &dir.path().join("x.tar"), "")
            .unwrap();
        assert_eq!(t.resolve("link/f").unwrap(), "real/dir/f");
        assert_eq!(t.resolve("../../link").unwrap(), "real/dir");
        let below: Vec<String> = t.below("real").map(|(p, _)| p).collect();
        assert_eq!(below, vec!["dir", "dir/f"]);
    }
}
