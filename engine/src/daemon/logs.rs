//! Reading a container's json-file log (and its rotated files) for `logs`:
//! stream selection, since/until, tail, and follow that keeps following
//! across rotation.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Line {
    pub stderr: bool,
    pub data: Vec<u8>,
    /// As written in the log (RFC 3339 with nanoseconds).
    pub time: String,
    pub at: SystemTime,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// None: everything.
    pub tail: Option<usize>,
    pub follow: bool,
}

fn parse_line(text: &str) -> Option<Line> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let time = v["time"].as_str()?.to_string();
    let at = humantime::parse_rfc3339(&time).ok()?;
    Some(Line {
        stderr: v["stream"].as_str() == Some("stderr"),
        data: v["log"].as_str().unwrap_or("").as_bytes().to_vec(),
        time,
        at,
    })
}

/// `--since`/`--until` as Docker's API gives them: unix seconds with an
/// optional fraction ("1700000000.123456789").
pub fn parse_time(s: &str) -> Option<SystemTime> {
    if s.is_empty() || s == "0" {
        return None;
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let secs: u64 = secs.parse().ok()?;
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, frac.parse().ok()?))
}

/// The log files, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = f
                .strip_prefix(&format!("{name}."))
                .and_then(|n| n.parse().ok())
            {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

fn wanted(l: &Line, o: &Options) -> bool {
    (if l.stderr { o.stderr } else { o.stdout })
        && o.since.is_none_or(|s| l.at >= s)
        && o.until.is_none_or(|u| l.at <= u)
}

/// Everything logged so far that the options select.
pub fn read_all(path: &Path, o: &Options) -> Vec<Line> {
    let mut out = Vec::new();
    for f in files(path) {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            if let Some(l) = parse_line(&line)
                && wanted(&l, o)
            {
                out.push(l);
            }
        }
    }
    if let Some(n) = o.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    out
}

/// Sends what is logged so far, then what comes, until `running` says the
/// container has stopped and the file holds nothing more. Rotation (the file
/// renamed away and a new one started) is followed.
pub fn follow(
    path: PathBuf,
    o: Options,
    mut running: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        for l in read_all(&path, &o) {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut ino = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
        let mut pending = String::new();
        loop {
            let alive = *running.borrow_and_update();
            // New data in the file we follow, or in its successor.
            let meta = std::fs::metadata(&path).ok();
            let rotated = meta
                .as_ref()
                .is_some_and(|m| m.ino() != ino || m.len() < pos);
            if rotated {
                // Drain the rest of the rotated file (now `.1`) before moving on.
                let old = PathBuf::from(format!("{}.1", path.display()));
                if let Ok(f) = std::fs::File::open(&old)
                    && f.metadata().map(|m| m.ino()).unwrap_or(0) == ino
                {
                    let mut r = BufReader::new(f);
                    let _ = r.seek(SeekFrom::Start(pos));
                    for line in r.lines().map_while(Result::ok) {
                        if let Some(l) = parse_line(&line).filter(|l| wanted(l, &o))
                            && tx.send(l).await.is_err()
                        {
                            return;
                        }
                    }
                }
                pos = 0;
                ino = meta.as_ref().map(|m| m.ino()).unwrap_or(0);
                pending.clear();
            }
            let mut got = false;
            if let Ok(f) = std::fs::File::open(&path) {
                let mut r = BufReader::new(f);
                if r.seek(SeekFrom::Start(pos)).is_ok() {
                    let mut buf = String::new();
                    while let Ok(n) = r.read_line(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        pos += n as u64;
                        got = true;
                        pending.push_str(&buf);
                        buf.clear();
                        if pending.ends_with('\n') {
                            if let Some(l) =
                                parse_line(pending.trim_end()).filter(|l| wanted(l, &o))
                                && tx.send(l).await.is_err()
                            {
                                return;
                            }
                            pending.clear();
                        }
                    }
                }
            }
            if o.until.is_some_and(|u| SystemTime::now() > u) {
                return;
            }
            if !alive && !got {
                return;
            }
            if !got {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = running.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotated_files_in_order_with_tail_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let line = |s: &str, stream: &str, t: &str| {
            format!(
                "{}\n",
                serde_json::json!({"log": s, "stream": stream, "time": t})
            )
        };
        std::fs::write(
            dir.path().join("c-json.log.1"),
            line("one\n", "stdout", "2026-01-01T00:00:01Z"),
        )
        .unwrap();
        std::fs::write(
            &p,
            line("two\n", "stderr", "2026-01-01T00:00:02Z")
                + &line("three\n", "stdout", "2026-01-01T00:00:03Z"),
        )
        .unwrap();
        let all = read_all(
            &p,
            &Options {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        );
        let texts: Vec<String> = all
            .iter()
            .map(|l| String::from_utf8_lossy(&l.data).into_owned())
            .collect();
        assert_eq!(texts, ["one\n", "two\n", "three\n"]);
        let out = read_all(
            &p,
            &Options {
                stdout: true,
                ..Default::default()
            },
        );
        assert_eq!(out.len(), 2);
        let tail = read_all(
            &p,
            &Options {
                stdout: true,
                stderr: true,
                tail: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(tail[0].data, b"three\n");
        let since = read_all(
            &p,
            &Options {
                stdout: true,
                stderr: true,
                since: parse_time("1767225602"),
                ..Default::default()
            },
        );
        assert_eq!(since.len(), 2);
    }
}
