//! The container's output for a log driver plugin (Docker's
//! `docker.logdriver/1.0`): each line a `LogEntry` (stream, time, the line
//! without its newline, whether it is cut) behind its length as four
//! big-endian bytes, written into the FIFO the plugin reads (the engine
//! made it and had the plugin start logging from it). The json-file is
//! written beside it (Docker's dual logging), which `docker logs` reads.
//!
//! The FIFO is opened read-write: the open never waits for the plugin, and
//! the pipe outlives a plugin that restarts, keeping what was written
//! meanwhile for it to read once it logs from the FIFO again. A plugin
//! that stops reading holds a line back for [`STALL`] at most; after that
//! lines are dropped (with a warning) until it reads again, so a stopped
//! plugin never stops the container. Every frame fits in `PIPE_BUF`, which
//! the kernel writes whole or not at all: a longer line goes as several
//! entries marked partial (dockerd cuts at 16 KiB), so a frame is never
//! left half written for a plugin that is gone.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_proto::types::v1::LogEntry;
use prost::Message;

use crate::logfile::{LogFile, split_lines};

/// How long a line waits for a plugin that does not read.
const STALL: Duration = Duration::from_secs(2);

/// The most of a line one entry carries: its frame (the length, the
/// stream's name, the time, the flags) stays within `PIPE_BUF` (4096).
const MAX_PIECE: usize = 4000;

pub struct PluginLog {
    fifo: File,
    local: Option<LogFile>,
    /// The plugin did not read in time: lines are dropped until it does.
    stalled: bool,
    dropped: u64,
}

impl PluginLog {
    pub fn open(fifo: &Path, local: Option<LogFile>) -> io::Result<PluginLog> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        if !std::fs::metadata(fifo)?.file_type().is_fifo() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a FIFO", fifo.display()),
            ));
        }
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(fifo)?;
        Ok(PluginLog {
            fifo,
            local,
            stalled: false,
            dropped: 0,
        })
    }

    pub fn write(
        &mut self,
        stream: &str,
        data: &[u8],
        at: SystemTime,
        last: bool,
    ) -> io::Result<()> {
        let local = match &mut self.local {
            Some(l) => l.write(stream, data, at),
            None => Ok(()),
        };
        let time_nano = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let pieces = split_lines(data);
        for (i, piece) in pieces.iter().enumerate() {
            let (line, partial) = match piece.strip_suffix(b"\n") {
                Some(l) => (l, false),
                None => (*piece, !(last && i + 1 == pieces.len())),
            };
            let chunks: Vec<&[u8]> = if line.is_empty() {
                vec![line]
            } else {
                line.chunks(MAX_PIECE).collect()
            };
            for (j, chunk) in chunks.iter().enumerate() {
                let entry = LogEntry {
                    source: stream.to_string(),
                    time_nano,
                    line: chunk.to_vec(),
                    partial: partial || j + 1 < chunks.len(),
                    partial_log_metadata: None,
                };
                self.send(&frame(&entry))?;
            }
        }
        local
    }

    /// One frame into the FIFO, whole or not at all (a frame begun is
    /// finished, or the plugin would read the rest as another; one within
    /// `PIPE_BUF` is never begun and left).
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < frame.len() {
            match nix::unistd::write(&self.fifo, &frame[done..]) {
                Ok(n) => done += n,
                Err(nix::errno::Errno::EAGAIN) => {
                    let wait = if done > 0 {
                        None
                    } else if self.stalled {
                        Some(Duration::ZERO)
                    } else {
                        Some(STALL)
                    };
                    if !writable(&self.fifo, wait)? {
                        if !self.stalled {
                            tracing::warn!(
                                "the log plugin does not read; its lines are dropped until it does"
                            );
                        }
                        self.stalled = true;
                        self.dropped += 1;
                        return Ok(());
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.stalled {
            tracing::warn!(
                "the log plugin reads again; {} lines were dropped",
                self.dropped
            );
            self.stalled = false;
            self.dropped = 0;
        }
        Ok(())
    }
}

/// A `LogEntry` behind its length, as Docker's log driver protocol frames it.
pub fn frame(entry: &LogEntry) -> Vec<u8> {
    let len = entry.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec only fails for want of capacity, which a Vec grows.
    let _ = entry.encode(&mut out);
    out
}

/// Whether the FIFO takes bytes within `wait` (None: however long).
fn writable(fifo: &File, wait: Option<Duration>) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = match wait {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLOUT)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(mut raw: &[u8]) -> Vec<LogEntry> {
        let mut out = Vec::new();
        while raw.len() >= 4 {
            let len = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
            out.push(LogEntry::decode(&raw[4..4 + len]).unwrap());
            raw = &raw[4 + len..];
        }
        assert!(raw.is_empty());
        out
    }

    #[test]
    fn lines_go_to_the_fifo_as_framed_entries_and_to_the_local_file() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let local = LogFile::open(&d.path().join("local.log"), 0, 1).unwrap();
        let mut log = PluginLog::open(&fifo, Some(local)).unwrap();
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&fifo)
            .unwrap();
        let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        log.write("stdout", b"one\ntwo\nthr", at, false).unwrap();
        log.write("stderr", b"tail", at, true).unwrap();
        let mut raw = vec![0; 4096];
        let n = reader.read(&mut raw).unwrap();
        let got = entries(&raw[..n]);
        let seen: Vec<(&str, &[u8], bool)> = got
            .iter()
            .map(|e| (e.source.as_str(), e.line.as_slice(), e.partial))
            .collect();
        assert_eq!(
            seen,
            [
                ("stdout", &b"one"[..], false),
                ("stdout", &b"two"[..], false),
                ("stdout", &b"thr"[..], true),
                ("stderr", &b"tail"[..], false),
            ]
        );
        assert_eq!(got[0].time_nano, 1_700_000_000_123_456_789);
        let local = std::fs::read_to_string(d.path().join("local.log")).unwrap();
        assert_eq!(local.lines().count(), 4, "{local}");
    }

    #[test]
    fn a_long_line_goes_as_entries_that_each_fit_in_pipe_buf() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut log = PluginLog::open(&fifo, None).unwrap();
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&fifo)
            .unwrap();
        let mut line = vec![b'y'; 9000];
        line.push(b'\n');
        log.write("stdout", &line, SystemTime::now(), false)
            .unwrap();
        let mut raw = vec![0; 1 << 16];
        let n = reader.read(&mut raw).unwrap();
        let got = entries(&raw[..n]);
        let shape: Vec<(usize, bool)> = got.iter().map(|e| (e.line.len(), e.partial)).collect();
        assert_eq!(shape, [(4000, true), (4000, true), (1000, false)]);
        assert!(got.iter().all(|e| frame(e).len() <= 4096));
    }

    #[test]
    fn a_plugin_that_does_not_read_holds_the_container_back_only_so_long() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut log = PluginLog::open(&fifo, None).unwrap();
        let line = vec![b'x'; 1000];
        let started = std::time::Instant::now();
        // ~64 KiB fill the pipe; the rest wait STALL once, then drop.
        for _ in 0..200 {
            let mut l = line.clone();
            l.push(b'\n');
            log.write("stdout", &l, SystemTime::now(), false).unwrap();
        }
        assert!(log.stalled);
        assert!(started.elapsed() < STALL * 3, "{:?}", started.elapsed());
        // Read by the plugin again: whole frames, then lines flow.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&fifo)
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0; 1 << 16];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let kept = entries(&raw);
        assert!(kept.len() > 10 && kept.iter().all(|e| e.line == line));
        log.write("stdout", b"again\n", SystemTime::now(), false)
            .unwrap();
        assert!(!log.stalled);
    }

    trait NonBlock {
        fn custom_flags_nonblock(&mut self) -> &mut Self;
    }

    impl NonBlock for std::fs::OpenOptions {
        fn custom_flags_nonblock(&mut self) -> &mut Self {
            use std::os::unix::fs::OpenOptionsExt;
            self.custom_flags(libc::O_NONBLOCK)
        }
    }
}
