//! The container's log in Docker's json-file format: one JSON object per line,
//! `{"log":"…\n","stream":"stdout","time":"…"}`, rotated by size into `.1`,
//! `.2`, … as dockerd does, so `docker logs` tooling reads it unchanged.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Longest line written as one entry; longer output is split, as dockerd does.
const MAX_LINE: usize = 16 * 1024;

pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// `,"attrs":{…}` when the entries carry attributes, as serialized once.
    attrs: Vec<u8>,
    /// Runs the gzip of each rotated file, when the log compresses them.
    gzip: Option<Gzip>,
    /// The gzip of the last file rotated away, while it runs.
    compressing: Option<std::thread::JoinHandle<()>>,
}

impl LogFile {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<LogFile> {
        LogFile::with_attrs(path, max_size, max_files, &Default::default())
    }

    /// A log whose every entry carries `attrs` (sorted by name, as Go
    /// serializes dockerd's map).
    pub fn with_attrs(
        path: &Path,
        max_size: u64,
        max_files: u32,
        attrs: &std::collections::BTreeMap<String, String>,
    ) -> std::io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let attrs = if attrs.is_empty() {
            Vec::new()
        } else {
            let mut a = b",\"attrs\":".to_vec();
            a.extend_from_slice(&serde_json::to_vec(attrs)?);
            a
        };
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            attrs,
            gzip: None,
            compressing: None,
        })
    }

    /// Gzips the files it rotates away from now on (with `gzip`); a `.1`
    /// a shim that ended mid-gzip left behind is gzipped first.
    pub fn compressing_rotated(mut self, gzip: Option<Gzip>) -> std::io::Result<LogFile> {
        self.gzip = gzip;
        if self.gzip.is_some() && self.rotated(1, "").exists() {
            self.gzip_first()?;
        }
        Ok(self)
    }

    /// The rotated file `i`, plain (`ext` "") or gzipped (".gz").
    fn rotated(&self, i: u32, ext: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}{ext}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // A gzip still running owns `.1`: it ends before the names move.
        if let Some(running) = self.compressing.take() {
            let _ = running.join();
        }
        let ext = if self.gzip.is_some() { ".gz" } else { "" };
        // Only the files that exist are walked: a max-file of billions
        // must not cost billions of stats per rotation.
        let mut newest_kept = 0;
        while newest_kept + 1 < self.max_files - 1 && self.rotated(newest_kept + 1, ext).exists() {
            newest_kept += 1;
        }
        for i in (1..=newest_kept).rev() {
            fs::rename(self.rotated(i, ext), self.rotated(i + 1, ext))?;
        }
        if self.gzip.is_some() && self.rotated(1, "").exists() {
            tracing::warn!(
                "{}: the last rotated file could not be gzipped; it is replaced",
                self.path.display()
            );
        }
        fs::rename(&self.path, self.rotated(1, ""))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        if self.gzip.is_some() {
            self.gzip_first()?;
        }
        Ok(())
    }

    /// `.1` into `.1.gz` beside the writes, as dockerd compresses: the
    /// host's gzip in a process of its own (the shim, one per container,
    /// stays small and a failing gzip cannot take it down), waited for by
    /// a thread that puts the result in place.
    fn gzip_first(&mut self) -> std::io::Result<()> {
        let Some(gzip) = self.gzip.clone() else {
            return Ok(());
        };
        let (from, to) = (self.rotated(1, ""), self.rotated(1, ".gz"));
        let running = std::thread::Builder::new()
            .name("log-gzip".into())
            .stack_size(128 << 10)
            .spawn(move || {
                if let Err(e) = gzip_into(&gzip, &from, &to) {
                    tracing::warn!("compressing {}: {e}", from.display());
                }
            })?;
        self.compressing = Some(running);
        Ok(())
    }

    /// Writes one entry per line of `data` (a trailing partial line is written
    /// as its own entry: the caller hands in whole lines when it can). The
    /// entries of one call go out in one write per file: a write per line
    /// held `run -i cat` to ~40 MiB/s.
    pub fn write(&mut self, stream: &str, data: &[u8], at: SystemTime) -> std::io::Result<()> {
        let time = humantime::format_rfc3339_nanos(at).to_string();
        let mut buf = Vec::with_capacity(data.len() + data.len() / 4 + 96);
        for piece in split_lines(data) {
            let start = buf.len();
            buf.extend_from_slice(b"{\"log\":\"");
            escape_json(&mut buf, &String::from_utf8_lossy(piece));
            buf.extend_from_slice(b"\",\"stream\":\"");
            buf.extend_from_slice(stream.as_bytes());
            buf.push(b'"');
            buf.extend_from_slice(&self.attrs);
            buf.extend_from_slice(b",\"time\":\"");
            buf.extend_from_slice(time.as_bytes());
            buf.extend_from_slice(b"\"}\n");
            let n = (buf.len() - start) as u64;
            if self.max_size > 0 && self.size > 0 && self.size + n > self.max_size {
                // What came before this entry belongs to the file rotated away.
                self.file.write_all(&buf[..start])?;
                buf.drain(..start);
                self.rotate()?;
            }
            self.size += n;
        }
        self.file.write_all(&buf)
    }
}

/// Starts a command and returns what waits for its exit status: the
/// shim's reaper collects its children, so the log cannot wait itself.
pub type Gzip = std::sync::Arc<
    dyn Fn(&mut std::process::Command) -> std::io::Result<Box<dyn FnOnce() -> Option<u32> + Send>>
        + Send
        + Sync,
>;

impl Drop for LogFile {
    /// A rotated file is left whole: its gzip ends before the shim does.
    fn drop(&mut self) {
        if let Some(running) = self.compressing.take() {
            let _ = running.join();
        }
    }
}

/// `from` gzipped into `to`, which appears whole (written beside it, then
/// renamed) before `from` goes: a reader sees one or the other complete.
fn gzip_into(gzip: &Gzip, from: &Path, to: &Path) -> std::io::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = File::create(&tmp)?;
    let mut cmd = std::process::Command::new("gzip");
    cmd.args(["-c", "-n", "--"])
        .arg(from)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(std::process::Stdio::null());
    let status = gzip(&mut cmd).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        std::io::Error::new(e.kind(), format!("running gzip (the host's, on PATH): {e}"))
    })?();
    if status != Some(0) {
        let _ = fs::remove_file(&tmp);
        return Err(std::io::Error::other(format!("gzip ended with {status:?}")));
    }
    out.sync_all()?;
    fs::rename(&tmp, to)?;
    fs::remove_file(from)
}

/// Runs gzip as a child the shim's reaper collects.
pub fn reaped_gzip(reaper: std::sync::Arc<crate::reaper::Reaper>) -> Gzip {
    std::sync::Arc::new(move |cmd: &mut std::process::Command| {
        let exited = reaper.spawn_command(cmd)?;
        Ok(
            Box::new(move || exited.blocking_recv().ok().map(|e| e.status))
                as Box<dyn FnOnce() -> Option<u32> + Send>,
        )
    })
}

pub use berth_logescape::escape_json;

enum LogMsg {
    /// Output of a stream; `last`: what a stream held at its end.
    Entry {
        stream: &'static str,
        data: Vec<u8>,
        at: SystemTime,
        last: bool,
    },
    Flushed(tokio::sync::oneshot::Sender<()>),
    Reopen(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

/// Where a container's output is kept: Docker's json-file log, the CRI's
/// log, or the systemd journal (the journald driver).
pub enum Sink {
    File(LogFile),
    Cri(crate::crilog::CriLog),
    Journal(crate::journal::Journal),
    Plugin(crate::pluginlog::PluginLog),
}

impl Sink {
    fn write(
        &mut self,
        stream: &str,
        data: &[u8],
        at: SystemTime,
        last: bool,
    ) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write(stream, data, at),
            Sink::Cri(f) => f.write(stream, data, at),
            Sink::Journal(j) => j.write(stream, data, last),
            Sink::Plugin(p) => p.write(stream, data, at, last),
        }
    }

    /// The file at its path again; json-file logs rotate themselves and
    /// the journal has no file, so only the CRI's log reopens.
    fn reopen(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Cri(f) => f.reopen(),
            Sink::File(_) | Sink::Journal(_) | Sink::Plugin(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "only a CRI log can be reopened",
            )),
        }
    }
}

/// A log written by a thread of its own: encoding and writing a busy
/// container's output (a GiB of NULs is six GiB of JSON) runs beside the
/// relay of that output to clients instead of in turn with it. The
/// channel is bounded, so a container that outruns the disk (or journald)
/// waits for it, as with dockerd's blocking log mode.
#[derive(Clone)]
pub struct LogWriter {
    tx: tokio::sync::mpsc::Sender<LogMsg>,
}

impl LogWriter {
    pub fn spawn(mut sink: Sink) -> std::io::Result<LogWriter> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<LogMsg>(8);
        std::thread::Builder::new()
            .name("log".into())
            .stack_size(256 << 10)
            .spawn(move || {
                while let Some(m) = rx.blocking_recv() {
                    match m {
                        LogMsg::Entry {
                            stream,
                            data,
                            at,
                            last,
                        } => {
                            if let Err(e) = sink.write(stream, &data, at, last) {
                                tracing::warn!("writing log: {e}");
                            }
                        }
                        LogMsg::Flushed(done) => {
                            let _ = done.send(());
                        }
                        LogMsg::Reopen(done) => {
                            let _ = done.send(sink.reopen());
                        }
                    }
                }
            })?;
        Ok(LogWriter { tx })
    }

    pub async fn write(&self, stream: &'static str, data: Vec<u8>) {
        self.send(stream, data, false).await
    }

    /// What a stream held when it ended: a line without its newline here is
    /// whole, not cut.
    pub async fn write_last(&self, stream: &'static str, data: Vec<u8>) {
        self.send(stream, data, true).await
    }

    async fn send(&self, stream: &'static str, data: Vec<u8>, last: bool) {
        let _ = self
            .tx
            .send(LogMsg::Entry {
                stream,
                data,
                at: SystemTime::now(),
                last,
            })
            .await;
    }

    /// Reopens the file, after everything sent before went to the old one.
    pub async fn reopen(&self) -> std::io::Result<()> {
        let (done, reopened) = tokio::sync::oneshot::channel();
        let gone = || std::io::Error::other("the log writer has stopped");
        self.tx
            .send(LogMsg::Reopen(done))
            .await
            .map_err(|_| gone())?;
        reopened.await.map_err(|_| gone())?
    }

    /// Resolves once everything sent before is in the file.
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(LogMsg::Flushed(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

pub(crate) fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // Only as far as a line may go: binary output without newlines
        // would otherwise be scanned to its end once per piece.
        let window = &rest[..rest.len().min(MAX_LINE)];
        let end = memchr::memchr(b'\n', window).map_or(window.len(), |i| i + 1);
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// Gathers output into whole lines so that a line written in two reads is one
/// log entry.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Returns what can be logged now: everything up to the last newline, or
    /// everything when the buffer grows past a line's maximum.
    pub fn push(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        self.pending.extend_from_slice(data);
        match memchr::memrchr(b'\n', &self.pending) {
            Some(i) => {
                let rest = self.pending.split_off(i + 1);
                Some(std::mem::replace(&mut self.pending, rest))
            }
            None if self.pending.len() >= MAX_LINE => Some(std::mem::take(&mut self.pending)),
            None => None,
        }
    }

    pub fn flush(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn writes_one_docker_entry_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = LogFile::open(&p, 0, 1).unwrap();
        log.write("stdout", b"one\ntwo\n", SystemTime::now())
            .unwrap();
        log.write("stderr", b"three", SystemTime::now()).unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["log"], "one\n");
        assert_eq!(e[1]["stream"], "stdout");
        assert_eq!(e[2]["log"], "three");
        assert_eq!(e[2]["stream"], "stderr");
        assert!(e[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn entries_carry_attrs_between_stream_and_time_as_dockerds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let attrs = std::collections::BTreeMap::from([
            ("zeta".to_string(), "1".to_string()),
            ("app".to_string(), "a \"b\"".to_string()),
        ]);
        let mut log = LogFile::with_attrs(&p, 0, 1, &attrs).unwrap();
        log.write("stdout", b"x\n", SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"attrs\":{\"app\":\"a \\\"b\\\"\",\"zeta\":\"1\"},\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n"
        );
    }

    /// gzip waited for by the test itself (no reaper here).
    fn waited_gzip() -> Gzip {
        std::sync::Arc::new(|cmd: &mut std::process::Command| {
            let mut child = cmd.spawn()?;
            Ok(
                Box::new(move || child.wait().ok()?.code().map(|c| c as u32))
                    as Box<dyn FnOnce() -> Option<u32> + Send>,
            )
        })
    }

    fn forty_lines(log: &mut LogFile) {
        for i in 0..40 {
            let line = format!("line {i}\n");
            log.write("stdout", line.as_bytes(), SystemTime::now())
                .unwrap();
        }
    }

    fn gunzip(p: &Path) -> String {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(p).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = LogFile::open(&p, 200, 3).unwrap();
        forty_lines(&mut log);
        assert!(p.exists());
        assert!(dir.path().join("c-json.log.1").exists());
        assert!(dir.path().join("c-json.log.2").exists());
        assert!(!dir.path().join("c-json.log.3").exists());
        assert!(fs::metadata(&p).unwrap().len() <= 200);
        let last = entries(&p);
        assert_eq!(last.last().unwrap()["log"], "line 39\n");
    }

    #[test]
    fn compresses_what_it_rotates_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let mut log = LogFile::open(&p, 200, 3)
            .unwrap()
            .compressing_rotated(Some(waited_gzip()))
            .unwrap();
        forty_lines(&mut log);
        drop(log);
        let names: Vec<String> = {
            let mut n: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names,
            ["container.log", "container.log.1.gz", "container.log.2.gz"],
            "the newest rotated file is gzipped once the writer is done"
        );
        // Each is a whole gzip of whole entries, the newest just before
        // the live file's first.
        let text = gunzip(&dir.path().join("container.log.1.gz"));
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let first_live = entries(&p)[0]["log"].as_str().unwrap().to_string();
        let n = |s: &str| s.trim().trim_start_matches("line ").parse::<u32>().unwrap();
        assert_eq!(n(last["log"].as_str().unwrap()) + 1, n(&first_live));

        // A `.1` left by a shim that ended mid-gzip is gzipped at the next
        // open.
        fs::write(dir.path().join("container.log.1"), b"{}\n").unwrap();
        drop(
            LogFile::open(&p, 200, 3)
                .unwrap()
                .compressing_rotated(Some(waited_gzip()))
                .unwrap(),
        );
        assert!(!dir.path().join("container.log.1").exists());
        assert_eq!(gunzip(&dir.path().join("container.log.1.gz")), "{}\n");
    }

    #[test]
    fn escapes_as_dockerd_and_reads_back_as_json() {
        let text = "a\"b\\c\n\r\t\u{0}\u{1f}<>&\u{2028}\u{2029}é\u{7f}\u{0}\u{0}\u{1}\n\u{0}";
        let mut out = Vec::new();
        escape_json(&mut out, text);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            concat!(
                r#"a\"b\\c\n\r\t\u0000\u001f\u003c\u003e\u0026\u2028\u2029é"#,
                "\u{7f}",
                r#"\u0000\u0000\u0001\n\u0000"#
            )
        );
        let back: String = serde_json::from_slice(&[b"\"", &out[..], b"\""].concat()).unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn line_buffer_joins_split_lines() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"hel"), None);
        assert_eq!(b.push(b"lo\nwor"), Some(b"hello\n".to_vec()));
        assert_eq!(b.flush(), Some(b"wor".to_vec()));
    }
}
