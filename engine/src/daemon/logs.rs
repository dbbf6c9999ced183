//! Reading a container's json-file log (and its rotated files) for `logs`:
//! stream selection, since/until, tail, and follow that keeps following
//! across rotation.

use std::io::{BufRead, BufReader};
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

/// The rotated files (`path.N`) with their index and inode, newest first.
fn rotated(path: &Path) -> Vec<(u32, u64, PathBuf)> {
    let mut out: Vec<(u32, u64, PathBuf)> = files(path)
        .into_iter()
        .filter(|p| p != path)
        .filter_map(|p| {
            let n = p.extension()?.to_str()?.parse::<u32>().ok()?;
            let ino = std::fs::metadata(&p).ok()?.ino();
            Some((n, ino, p))
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

/// The file written after the one with inode `ino`: the rotated file one
/// index newer, or the live file. None when `ino` is the live file. Opened
/// and checked by inode, so that a rotation racing with us is noticed and
/// the lookup done again.
fn successor(path: &Path, ino: u64) -> Option<(std::fs::File, u64)> {
    for _ in 0..10 {
        let live = std::fs::metadata(path).ok().map(|m| m.ino());
        if live == Some(ino) {
            return None;
        }
        let rot = rotated(path);
        let next = match rot.iter().position(|r| r.1 == ino) {
            // Ours is .k: the next is .(k-1), or the live file after .1.
            Some(0) => None,
            Some(i) => Some((rot[i - 1].2.clone(), rot[i - 1].1)),
            // Ours was rotated away entirely: the oldest that is left.
            None => rot.last().map(|r| (r.2.clone(), r.1)),
        };
        let (p, want) = match next {
            Some(n) => n,
            None => (path.to_path_buf(), live?),
        };
        if let Ok(f) = std::fs::File::open(&p)
            && f.metadata().map(|m| m.ino()).ok() == Some(want)
        {
            return Some((f, want));
        }
    }
    None
}

/// Reads the complete lines from `r` to its end; a trailing partial line
/// stays in `pending` for the next read.
fn read_lines(
    r: &mut BufReader<std::fs::File>,
    pending: &mut String,
    o: &Options,
) -> (Vec<Line>, bool) {
    let mut out = Vec::new();
    let mut got = false;
    let mut buf = String::new();
    while let Ok(n) = r.read_line(&mut buf) {
        if n == 0 {
            break;
        }
        got = true;
        pending.push_str(&buf);
        buf.clear();
        if pending.ends_with('\n') {
            if let Some(l) = parse_line(pending.trim_end()).filter(|l| wanted(l, o)) {
                out.push(l);
            }
            pending.clear();
        }
    }
    (out, got)
}

/// Sends what is logged so far, then what comes, until `running` says the
/// container has stopped and the file holds nothing more. The file being
/// read is kept open, and on rotation every file written after it is read
/// in turn (found by inode), so no line is lost to a rename or to several
/// rotations between two reads (what Docker's follow loses).
pub fn follow(
    path: PathBuf,
    o: Options,
    mut running: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // The live file first, then what is older than it.
        let mut current = std::fs::File::open(&path).ok().and_then(|f| {
            let ino = f.metadata().ok()?.ino();
            Some((BufReader::new(f), ino))
        });
        let mut history = Vec::new();
        if let Some((_, ino)) = &current {
            let rot = rotated(&path);
            let older = match rot.iter().position(|r| r.1 == *ino) {
                Some(i) => &rot[i + 1..],
                None => &rot[..],
            };
            for r in older.iter().rev() {
                if let Ok(f) = std::fs::File::open(&r.2) {
                    history.extend(read_lines(&mut BufReader::new(f), &mut String::new(), &o).0);
                }
            }
        }
        let mut pending = String::new();
        if let Some((r, _)) = current.as_mut() {
            history.extend(read_lines(r, &mut pending, &o).0);
        }
        if let Some(n) = o.tail {
            let skip = history.len().saturating_sub(n);
            history.drain(..skip);
        }
        for l in history {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        loop {
            let alive = *running.borrow_and_update();
            let mut got = false;
            if current.is_none() {
                current = std::fs::File::open(&path).ok().and_then(|f| {
                    let ino = f.metadata().ok()?.ino();
                    Some((BufReader::new(f), ino))
                });
            }
            while let Some((r, ino)) = current.as_mut() {
                let (lines, g) = read_lines(r, &mut pending, &o);
                got |= g;
                for l in lines {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
                // Rotated: what we hold is complete; go on with its successor.
                match successor(&path, *ino) {
                    Some((f, next)) => {
                        let (lines, _) = read_lines(r, &mut pending, &o);
                        for l in lines {
                            if tx.send(l).await.is_err() {
                                return;
                            }
                        }
                        pending.clear();
                        current = Some((BufReader::new(f), next));
                        got = true;
                    }
                    None => break,
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
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
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
