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
}
