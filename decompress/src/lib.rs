//! Archives as clients send them to Docker's engine (a build context, a
//! `docker cp` into a container): plain tar, gzip, bzip2 or xz, told by
//! their first bytes as dockerd's DecompressStream tells them.

use std::io::Read;

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

/// `r` through the decompressor its first bytes call for (none for a tar).
pub fn reader<'a, R: Read + Send + 'a>(mut r: R) -> std::io::Result<Box<dyn Read + Send + 'a>> {
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

/// A tar as a client sends it, decompressed and with its headers read as
/// Go's archive/tar reads them: a numeric field left empty (all NULs or
/// spaces: `mode`, `uid`, `gid`, `mtime`, as a header made field by field
/// leaves them) is 0 there, where the tar crate refuses the entry.
pub fn client_tar<'a, R: Read + Send + 'a>(r: R) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(Box::new(Lenient::new(reader(r)?)))
}

const BLOCK: usize = 512;

/// Passes a tar through, a block at a time, filling the empty numeric
/// fields of each header (and its checksum) with what Go reads there.
/// Data blocks pass untouched; once a header is not understood (a size
/// that does not parse, a bad checksum) the rest passes as it is.
struct Lenient<R> {
    inner: R,
    block: [u8; BLOCK],
    filled: usize,
    served: usize,
    /// Data blocks still to pass before the next header.
    data_blocks: u64,
    given_up: bool,
}

impl<R: Read> Lenient<R> {
    fn new(inner: R) -> Self {
        Lenient {
            inner,
            block: [0; BLOCK],
            filled: 0,
            served: 0,
            data_blocks: 0,
            given_up: false,
        }
    }
}

/// Fields Go reads as numbers, as (offset, length).
const NUMERIC: [(usize, usize); 4] = [(100, 8), (108, 8), (116, 8), (136, 12)];

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn checksum(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum()
}

/// Fixes one header block in place; the number of data blocks after it,
/// or None when the header is not one to read further.
fn mend(block: &mut [u8; BLOCK]) -> Option<u64> {
    if block.iter().all(|b| *b == 0) {
        return Some(0);
    }
    if octal(&block[148..156])? != checksum(block) {
        return None;
    }
    // Base-256 sizes (first byte 0x80) are for entries of 8 GiB and more.
    let size_field = &block[124..136];
    let size = if size_field[0] & 0x80 != 0 {
        size_field[1..]
            .iter()
            .try_fold(0u64, |n, b| n.checked_mul(256)?.checked_add(u64::from(*b)))?
    } else {
        octal(size_field)?
    };
    let mut changed = false;
    for (at, len) in NUMERIC {
        let field = &mut block[at..at + len];
        if field.iter().all(|b| *b == 0 || *b == b' ') {
            field[..len - 1].fill(b'0');
            field[len - 1] = 0;
            changed = true;
        }
    }
    if changed {
        let sum = format!("{:06o}\0 ", checksum(block));
        block[148..156].copy_from_slice(sum.as_bytes());
    }
    // Old GNU sparse headers carry extension blocks this does not follow.
    if block[156] == b'S' {
        return None;
    }
    Some(size.div_ceil(BLOCK as u64))
}

impl<R: Read> Read for Lenient<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.given_up {
            if self.served < self.filled {
                let n = out.len().min(self.filled - self.served);
                out[..n].copy_from_slice(&self.block[self.served..self.served + n]);
                self.served += n;
                return Ok(n);
            }
            return self.inner.read(out);
        }
        if self.served == self.filled {
            self.filled = 0;
            self.served = 0;
            while self.filled < BLOCK {
                match self.inner.read(&mut self.block[self.filled..])? {
                    0 => break,
                    n => self.filled += n,
                }
            }
            if self.filled < BLOCK {
                // A short tail: not a block to read, given as it came.
                self.given_up = true;
                return self.read(out);
            }
            if self.data_blocks > 0 {
                self.data_blocks -= 1;
            } else {
                match mend(&mut self.block) {
                    Some(n) => self.data_blocks = n,
                    None => self.given_up = true,
                }
            }
        }
        let n = out.len().min(self.filled - self.served);
        out[..n].copy_from_slice(&self.block[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    /// A reader that hands out one byte at a time, as a slow body does.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), out.first_mut()) {
                (Some((b, rest)), Some(o)) => {
                    *o = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn read_all(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::reader(Trickle(data))
            .and_then(|mut r| r.read_to_end(&mut out))
            .expect("reading");
        out
    }

    #[test]
    fn each_kind_reads_back_as_written() {
        let plain = b"ustar and more than six bytes".to_vec();
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
            assert_eq!(read_all(&data), plain);
        }
        // Shorter than any magic: given back as it is.
        assert_eq!(read_all(b"ab"), b"ab");
        assert_eq!(read_all(b""), b"");
    }

    /// A header made field by field (bollard's test does so with the tar
    /// crate): path, size, mode and checksum only, uid/gid/mtime all NULs.
    fn sloppy_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000744\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum::<u64>() + 8 * 32;
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    #[test]
    fn empty_numeric_fields_read_as_zero_as_go_reads_them() {
        let tar = [
            sloppy_tar("a.txt", b"first"),
            sloppy_tar("b.txt", &[7u8; 700]),
        ]
        .concat();
        // Two archives back to back: the second's header comes after the
        // first's data and end blocks, each still mended.
        let mut raw = tar::Archive::new(&tar[..]);
        let refused = raw
            .entries()
            .unwrap()
            .next()
            .map(|e| e.and_then(|e| e.header().uid()));
        assert!(matches!(refused, Some(Err(_))), "the tar crate took it");
        let mut out = Vec::new();
        super::client_tar(Trickle(&tar))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), tar.len());
        let mut ar = tar::Archive::new(&out[..]);
        ar.set_ignore_zeros(true);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header();
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 0)
            );
            assert_eq!(h.mode().unwrap(), 0o744);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((e.path().unwrap().display().to_string(), data.len()));
        }
        assert_eq!(seen, [("a.txt".into(), 5), ("b.txt".into(), 700)]);
    }

    #[test]
    fn a_well_made_tar_passes_untouched() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o4755);
        h.set_uid(1000);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "x/y", &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut out = Vec::new();
        super::client_tar(&tar[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar);
    }
}
