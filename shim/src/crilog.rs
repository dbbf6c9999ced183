//! The container's log in the CRI format the kubelet reads (and rotates:
//! it renames the file and asks for it to be reopened):
//! `<RFC 3339 time> <stream> <tag> <line>`, one line per record, the tag
//! `F` for a whole line and `P` for a piece of one (a line longer than
//! 16 KiB, or output that ended without its newline), as containerd's CRI
//! writes it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::logfile::split_lines;

pub struct CriLog {
    path: PathBuf,
    file: File,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl CriLog {
    pub fn open(path: &Path) -> std::io::Result<CriLog> {
        Ok(CriLog {
            path: path.to_path_buf(),
            file: open(path)?,
        })
    }

    /// The file at the path again (after the kubelet renamed it away).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.file = open(&self.path)?;
        Ok(())
    }

    /// One record per line of `data`; the records of a call go out in one
    /// write.
    pub fn write(&mut self, stream: &str, data: &[u8], at: SystemTime) -> std::io::Result<()> {
        let time = humantime::format_rfc3339_nanos(at).to_string();
        let mut buf = Vec::with_capacity(data.len() + 48);
        for piece in split_lines(data) {
            let (line, tag) = match piece.strip_suffix(b"\n") {
                // As Go's bufio.ReadLine, which containerd reads with: the
                // end of line is "\n" or "\r\n".
                Some(l) => (l.strip_suffix(b"\r").unwrap_or(l), b'F'),
                None => (piece, b'P'),
            };
            buf.extend_from_slice(time.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(stream.as_bytes());
            buf.push(b' ');
            buf.push(tag);
            buf.push(b' ');
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
        self.file.write_all(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_cut_lines_are_tagged_as_the_kubelet_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c/0.log");
        let mut log = CriLog::open(&p).unwrap();
        log.write("stdout", b"one\r\ntwo\n", SystemTime::UNIX_EPOCH)
            .unwrap();
        log.write("stderr", b"half", SystemTime::UNIX_EPOCH)
            .unwrap();
        let long = vec![b'x'; 16 * 1024 + 3];
        log.write(
            "stdout",
            &[&long[..], b"\n"].concat(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1970-01-01T00:00:00.000000000Z stdout F one");
        assert_eq!(lines[1], "1970-01-01T00:00:00.000000000Z stdout F two");
        assert_eq!(lines[2], "1970-01-01T00:00:00.000000000Z stderr P half");
        assert_eq!(lines[3].len(), 31 + "stdout P ".len() + 16 * 1024);
        assert!(lines[3].contains(" stdout P xxx"));
        assert_eq!(lines[4], "1970-01-01T00:00:00.000000000Z stdout F xxx");

        std::fs::rename(&p, dir.path().join("c/0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write("stdout", b"after\n", SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("F after\n"));
    }
}
