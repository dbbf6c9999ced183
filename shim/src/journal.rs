//! The container's output as systemd journal entries, as Docker's journald
//! log driver writes them: one entry per line, sent as a datagram in the
//! journal's native protocol, with MESSAGE, PRIORITY (6 for stdout, 3 for
//! stderr) and the container's fields. The protocol is a few lines of
//! framing; a crate for it would bring its own dependencies into every shim,
//! whose memory is counted per container.

use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::logfile::split_lines;

/// Where journald receives native-protocol entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
    /// The fields every entry carries, framed once.
    fixed: Vec<u8>,
    buf: Vec<u8>,
    /// The last send failed: said once, not once per line.
    failing: bool,
}

impl Journal {
    pub fn open(fields: &HashMap<String, String>) -> io::Result<Journal> {
        Journal::open_at(Path::new(SOCKET), fields)
    }

    fn open_at(path: &Path, fields: &HashMap<String, String>) -> io::Result<Journal> {
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "journald is not enabled on this host",
            ));
        }
        let mut names: Vec<&String> = fields.keys().collect();
        names.sort();
        let mut fixed = Vec::new();
        for name in names {
            if !valid_name(name) {
                tracing::warn!("journal field {name:?} left out: not a journal field name");
                continue;
            }
            push_field(&mut fixed, name, fields[name].as_bytes());
        }
        Ok(Journal {
            socket: UnixDatagram::unbound()?,
            path: path.to_path_buf(),
            fixed,
            buf: Vec::new(),
            failing: false,
        })
    }

    /// Sends an entry per line of `data`. A piece without its newline is
    /// marked partial (`CONTAINER_PARTIAL_MESSAGE=true`, as Docker marks a
    /// line cut at 16 KiB) unless it ends the stream (`last`).
    pub fn write(&mut self, stream: &str, data: &[u8], last: bool) -> io::Result<()> {
        let pieces = split_lines(data);
        let priority: &[u8] = if stream == "stderr" { b"3" } else { b"6" };
        for (i, piece) in pieces.iter().enumerate() {
            let (message, partial) = match piece.strip_suffix(b"\n") {
                Some(m) => (m, false),
                None => (*piece, !(last && i + 1 == pieces.len())),
            };
            self.buf.clear();
            self.buf.extend_from_slice(&self.fixed);
            push_field(&mut self.buf, "MESSAGE", message);
            push_field(&mut self.buf, "PRIORITY", priority);
            if partial {
                push_field(&mut self.buf, "CONTAINER_PARTIAL_MESSAGE", b"true");
            }
            // Each send names the socket: a restarted journald is found
            // at the same path.
            match self.socket.send_to(&self.buf, &self.path) {
                Ok(_) => self.failing = false,
                Err(e) if self.failing => {
                    tracing::debug!("sending to the journal: {e}");
                }
                Err(e) => {
                    self.failing = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// What journald takes as a field name from a client: capitals, digits and
/// `_`, not starting with `_` (those are its own), at most 64 bytes.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// One field in the native protocol: `NAME=value\n`, or, when the value
/// holds a newline, the name, a newline, the value's length as 64-bit
/// little-endian, the value and a newline.
fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if memchr::memchr(b'\n', value).is_some() {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_framed_as_the_native_protocol_says() {
        let mut out = Vec::new();
        push_field(&mut out, "MESSAGE", b"hello");
        push_field(&mut out, "LABEL", b"two\nlines");
        let mut want = b"MESSAGE=hello\nLABEL\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(out, want);
    }

    #[test]
    fn a_line_is_an_entry_and_a_cut_line_is_marked_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let journald = UnixDatagram::bind(&path).unwrap();
        let fields = HashMap::from([
            ("CONTAINER_ID".to_string(), "abc".to_string()),
            ("bad name".to_string(), "x".to_string()),
        ]);
        let mut j = Journal::open_at(&path, &fields).unwrap();
        let long = vec![b'x'; 16 * 1024 + 3];
        j.write("stdout", b"one\n\n", false).unwrap();
        j.write("stderr", &long, false).unwrap();
        j.write("stdout", b"end", true).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        for _ in 0..5 {
            let n = journald.recv(&mut buf).unwrap();
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        assert_eq!(got[0], "CONTAINER_ID=abc\nMESSAGE=one\nPRIORITY=6\n");
        assert_eq!(got[1], "CONTAINER_ID=abc\nMESSAGE=\nPRIORITY=6\n");
        let cut = format!(
            "CONTAINER_ID=abc\nMESSAGE={}\nPRIORITY=3\nCONTAINER_PARTIAL_MESSAGE=true\n",
            "x".repeat(16 * 1024)
        );
        assert_eq!(got[2], cut);
        assert_eq!(
            got[3],
            "CONTAINER_ID=abc\nMESSAGE=xxx\nPRIORITY=3\nCONTAINER_PARTIAL_MESSAGE=true\n"
        );
        assert_eq!(got[4], "CONTAINER_ID=abc\nMESSAGE=end\nPRIORITY=6\n");
    }

    #[test]
    fn no_journal_is_said_as_docker_says_it() {
        let err = Journal::open_at(Path::new("/nonexistent/socket"), &HashMap::new())
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "journald is not enabled on this host");
    }

    #[test]
    fn only_client_field_names_pass() {
        assert!(valid_name("CONTAINER_ID_FULL"));
        assert!(valid_name("COM_EXAMPLE_LABEL2"));
        for bad in ["", "_PID", "lower", "WITH-DASH", "9LIVES", &"A".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
