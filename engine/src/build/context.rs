//! The build context as the client sends it: a tar (plain, gzip, bzip2 or
//! xz) in the request body, unpacked to a directory of the build's own as
//! it arrives, so that a context of any size costs disk, not memory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::BuildError;

/// A blocking reader over the chunks a request body delivers.
struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    buf: Bytes,
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

/// A reader that gives back the bytes it was asked to peek at.
struct Peeked<R> {
    head: Vec<u8>,
    pos: usize,
    rest: R,
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.head.len() {
            let n = out.len().min(self.head.len() - self.pos);
            out[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.rest.read(out)
    }
}

/// The archive's decompressor, chosen by its first bytes as dockerd's
/// DecompressStream chooses.
pub fn decompress<R: Read + Send + 'static>(mut r: R) -> std::io::Result<Box<dyn Read + Send>> {
    let mut head = vec![0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    head.truncate(got);
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        "xz"
    } else {
        "tar"
    };
    let r = Peeked {
        head,
        pos: 0,
        rest: r,
    };
    Ok(match kind {
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(r)),
        "bzip2" => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        "xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
        _ => Box::new(r),
    })
}

/// Unpacks the context from `body` into `dir` (which exists and is empty):
/// every entry must stay inside it; owners are not kept (a COPY gives its
/// files to root unless told otherwise), modes and times are.
pub async fn receive(body: axum::body::Body, dir: &Path) -> Result<u64, BuildError> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(16);
    let dir = dir.to_path_buf();
    let unpack = tokio::task::spawn_blocking(move || {
        unpack(
            ChunkReader {
                rx,
                buf: Bytes::new(),
            },
            &dir,
        )
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string());
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    unpack
        .await
        .map_err(|e| BuildError::Internal(format!("unpacking the build context: {e}")))?
}

fn unpack(r: impl Read + Send + 'static, dir: &Path) -> Result<u64, BuildError> {
    let bad = |e: std::io::Error| BuildError::Context(e.to_string());
    let mut ar = tar::Archive::new(decompress(r).map_err(bad)?);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(false);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    let mut bytes = 0u64;
    for entry in ar.entries().map_err(bad)? {
        let mut e = entry.map_err(bad)?;
        let path = e.path().map_err(bad)?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(BuildError::Context(format!(
                "the context holds a path outside itself: {}",
                path.display()
            )));
        }
        bytes = bytes.saturating_add(e.header().size().unwrap_or(0));
        // unpack_in refuses what would land outside `dir` (absolute paths
        // are made relative, symlinks in the context are not followed out).
        match e.unpack_in(dir) {
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => {
                return Err(BuildError::Context(
                    "no space left on device while unpacking the build context".into(),
                ));
            }
            Err(err) => {
                return Err(BuildError::Context(format!(
                    "unpacking {}: {err}",
                    path.display()
                )));
            }
        }
    }
    Ok(bytes)
}

/// A path the client named inside the context (the Dockerfile), refused
/// when it would leave it.
pub fn inside(ctx: &Path, rel: &str) -> Result<PathBuf, BuildError> {
    let clean = crate::daemon::volumes::clean(&format!("/{rel}"));
    if rel.split('/').any(|c| c == "..") && !clean_is_inside(rel) {
        return Err(BuildError::Context(format!(
            "forbidden path outside the build context: {rel}"
        )));
    }
    Ok(ctx.join(clean.trim_start_matches('/')))
}

/// Whether `..` components of a relative path stay inside its root.
fn clean_is_inside(rel: &str) -> bool {
    let mut depth: i64 = 0;
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
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
    fn every_compression_unpacks_to_the_same_files() {
        use std::io::Write;
        let plain = tar_of(&[("Dockerfile", b"FROM scratch\n"), ("a/b.txt", b"hi")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        for data in [
            plain.clone(),
            gz.finish().unwrap(),
            bz.finish().unwrap(),
            xz.finish().unwrap(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            unpack(std::io::Cursor::new(data), dir.path()).unwrap();
            assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"hi");
        }
    }

    #[test]
    fn paths_stay_inside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inside(dir.path(), "sub/../Dockerfile").is_ok());
        assert!(inside(dir.path(), "../Dockerfile").is_err());
        assert!(inside(dir.path(), "a/../../x").is_err());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        let mut raw = tar_of(&[]);
        raw.clear();
        let mut b = tar::Builder::new(Vec::new());
        let mut hdr = tar::Header::new_old();
        hdr.set_size(1);
        hdr.as_old_mut().name[..10].copy_from_slice(b"../escape\0");
        hdr.set_cksum();
        b.append(&hdr, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(unpack(std::io::Cursor::new(data), dir.path()).is_err());
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }
}
