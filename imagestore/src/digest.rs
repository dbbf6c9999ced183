//! Digests: strict parsing (they name files), hashing while data streams,
//! and the chain ids that name unpacked layers.

use std::io::{self, Read, Write};
use std::str::FromStr;

use oci_spec::image::Digest;
use sha2::Digest as _;

use crate::error::{Error, Result};

/// The algorithms the store accepts. Both name a directory under
/// `content/blobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Parses `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase, and nothing else:
/// a digest becomes a file name, so anything looser is a path trick.
pub fn parse_digest(s: &str) -> Result<Digest> {
    let bad = |reason: &str| Error::InvalidDigest {
        digest: s.to_string(),
        reason: reason.to_string(),
    };
    let (alg, hex) = s
        .split_once(':')
        .ok_or_else(|| bad("expected <algorithm>:<hex>"))?;
    let alg = match alg {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return Err(bad("only sha256 and sha512 are supported")),
    };
    if hex.len() != alg.hex_len() {
        return Err(bad(&format!(
            "{} needs {} hex digits, found {}",
            alg.name(),
            alg.hex_len(),
            hex.len()
        )));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("the hex part must be lowercase 0-9a-f"));
    }
    Digest::from_str(s).map_err(|e| bad(&e.to_string()))
}

/// The algorithm and hex of a digest that came in through a type which does
/// not check as strictly as [`parse_digest`].
pub(crate) fn split(d: &Digest) -> Result<(Algorithm, &str)> {
    let s: &str = d.as_ref();
    parse_digest(s)?;
    let alg = if s.starts_with("sha256:") {
        Algorithm::Sha256
    } else {
        Algorithm::Sha512
    };
    Ok((alg, &s[alg.name().len() + 1..]))
}

/// The first 12 hex digits, as Docker shows layer ids.
pub fn short(d: &Digest) -> String {
    let s: &str = d.as_ref();
    let hex = s.split_once(':').map(|(_, h)| h).unwrap_or(s);
    hex.chars().take(12).collect()
}

pub(crate) fn sha256_of(data: &[u8]) -> Digest {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(data);
    h.finish()
}

/// Chain ids as the OCI image spec defines them: the first is the first
/// diff id, each next one is `sha256(previous + " " + diff_id)`. They name
/// a layer together with everything under it, which is what an unpacked
/// layer directory depends on.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// An incremental hash in one of the accepted algorithms.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(alg: Algorithm) -> Hasher {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Digest {
        let s = match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        // A hash we just computed always has the right shape.
        Digest::from_str(&s).expect("a computed digest parses")
    }
}

/// Hashes (sha256) and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    /// Reads what is left (tar streams end before their padding does), then
    /// returns the digest and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes (sha256) and counts everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_could_be_paths_are_refused() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(parse_digest(&good).is_ok());
        assert!(parse_digest(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:../../etc/passwd".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("md5:{}", "a".repeat(32)),
            "a".repeat(64),
            String::new(),
        ] {
            let e = parse_digest(&bad).unwrap_err();
            assert!(e.to_string().contains("is not valid"), "{bad}: {e}");
        }
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256_of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn known_sha256() {
        assert_eq!(
            sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
