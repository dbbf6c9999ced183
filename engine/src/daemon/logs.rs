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
    /// The entry's `attrs` (json-file log options labels/env/tag), by name.
    pub attrs: Vec<(String, String)>,
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
        attrs: v["attrs"]
            .as_object()
            .map(|a| {
                let mut attrs: Vec<(String, String)> = a
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                attrs.sort();
                attrs
            })
            .unwrap_or_default(),
    })
}

/// `--since`/`--until` as Docker's API gives them: unix seconds with an
/// optional fraction ("1700000000.123456789"). "" and "0" mean unset; a
/// time before the epoch is the epoch. A value that is not a number, or
/// that no clock can hold, is an error (a 400 for the caller), never a
/// wrapped or panicking addition.
pub fn parse_time(s: &str) -> Result<Option<SystemTime>, String> {
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let bad = || format!("invalid timestamp {s:?}: expected unix seconds, e.g. 1700000000.5");
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs
        .parse()
        .map_err(|e: std::num::ParseIntError| format!("{}: {e}", bad()))?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    let Ok(secs) = u64::try_from(secs) else {
        return Ok(Some(SystemTime::UNIX_EPOCH));
    };
    // Event times are i64 nanoseconds (as Docker's): the last second they
    // can hold is in 2262.
    if secs > (i64::MAX / 1_000_000_000) as u64 {
        return Err(format!("invalid timestamp {s:?}: out of range"));
    }
    Ok(Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)))
}

/// The log files, oldest first: the rotated ones (`path.N`, or
/// `path.N.gz` when the log compresses them), then the live one. A file
/// seen both plain and gzipped (its gzip just done) is read plain.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = rotated_names(path).into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

/// The rotated files by index, oldest first, each once (plain over gzipped).
fn rotated_names(path: &Path) -> Vec<(u32, PathBuf)> {
    let mut rotated: std::collections::BTreeMap<u32, PathBuf> = Default::default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = f.strip_prefix(&format!("{name}.")) else {
                continue;
            };
            let (index, gz) = match rest.strip_suffix(".gz") {
                Some(i) => (i, true),
                None => (rest, false),
            };
            if let Ok(n) = index.parse::<u32>() {
                let plain_known = rotated.get(&n).is_some_and(|p| !is_gz(p));
                if !(gz && plain_known) {
                    rotated.insert(n, e.path());
                }
            }
        }
    }
    rotated.into_iter().rev().collect()
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// A log file's lines: a gzipped one's as they were before.
fn open_lines(p: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let f = std::fs::File::open(p)?;
    Ok(if is_gz(p) {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
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
        let Ok(file) = open_lines(&f) else {
            continue;
        };
        for line in file.lines().map_while(Result::ok) {
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

/// The plain rotated files (`path.N`) with their index and inode, newest
/// first: what a follower may hold. A gzipped one is a copy of a file
/// rotated before any the follower holds (see `gzipped_history`): on a
/// compressed log only the newest rotated file stays plain, and only
/// while its gzip runs, so a follower more than one rotation behind
/// loses the file between (a plain log gives it max-file - 1 rotations).
fn rotated(path: &Path) -> Vec<(u32, u64, PathBuf)> {
    let mut out: Vec<(u32, u64, PathBuf)> = files(path)
        .into_iter()
        .filter(|p| p != path && !is_gz(p))
        .filter_map(|p| {
            let n = p.extension()?.to_str()?.parse::<u32>().ok()?;
            let ino = std::fs::metadata(&p).ok()?.ino();
            Some((n, ino, p))
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

/// The live file's inode and the rotated files (newest first) at one
/// moment: listed until two listings agree. A rotation renames every
/// file and makes a new live one, so a listing taken while it runs sees
/// some files twice or not at all; a rename between or during two
/// listings changes a name's inode in one of them, and inodes never go
/// back to a name they left.
fn snapshot(path: &Path) -> (Option<u64>, Vec<(u32, u64, PathBuf)>) {
    let take = || (std::fs::metadata(path).ok().map(|m| m.ino()), rotated(path));
    let mut last = take();
    for _ in 0..50 {
        let now = take();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// The file written after `held` (inode `ino`): the rotated file one
/// index newer, or the live file. None when `held` is the live file, or
/// while it cannot be told. Opened and checked by inode, so that a
/// rotation racing with us is noticed and the lookup done again.
fn successor(path: &Path, held: &std::fs::File, ino: u64) -> Option<(std::fs::File, u64)> {
    for _ in 0..10 {
        let (live, rot) = snapshot(path);
        if live == Some(ino) {
            return None;
        }
        let next = match rot.iter().position(|r| r.1 == ino) {
            // Ours is .k: the next is .(k-1), or the live file after .1.
            Some(0) => None,
            Some(i) => Some((rot[i - 1].2.clone(), rot[i - 1].1)),
            // Ours was rotated away entirely (deleted: what is left is all
            // newer): the oldest that is left.
            None if held.metadata().is_ok_and(|m| m.nlink() == 0) => {
                rot.last().map(|r| (r.2.clone(), r.1))
            }
            // Still linked but not seen: asked again.
            None => continue,
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

/// The rotated files older than the one with inode `ino`, oldest first,
/// each opened and checked by inode. A rotation while they are opened
/// shifts every name by one (`.1` becomes the file the follower already
/// holds): the listing is then taken again, or its lines came twice.
fn older_than(path: &Path, ino: u64) -> Vec<std::fs::File> {
    let mut held = Vec::new();
    for _ in 0..10 {
        held.clear();
        let (live, rot) = snapshot(path);
        let older = match rot.iter().position(|r| r.1 == ino) {
            Some(i) => &rot[i + 1..],
            None if live == Some(ino) => &rot[..],
            // Ours is gone: whatever is left is newer.
            None => &[],
        };
        let mut moved = false;
        for r in older.iter().rev() {
            match std::fs::File::open(&r.2) {
                Ok(f) if f.metadata().map(|m| m.ino()).ok() == Some(r.1) => held.push(f),
                _ => {
                    moved = true;
                    break;
                }
            }
        }
        if !moved {
            break;
        }
    }
    held
}

/// The gzipped rotated files older than every file in `held`, oldest
/// first, open. A gzipped file is a new inode, so a copy of a held file
/// (gzipped since it was opened) is told by its first entry, which holds
/// the time to the nanosecond: from that copy on, the files are held.
fn gzipped_history(path: &Path, held: &[&std::fs::File]) -> Vec<Box<dyn BufRead + Send>> {
    let held_first: Vec<String> = held.iter().filter_map(|f| first_line_at(f)).collect();
    let mut out: Vec<Box<dyn BufRead + Send>> = Vec::new();
    for (_, p) in rotated_names(path).into_iter().filter(|(_, p)| is_gz(p)) {
        let Ok(mut r) = open_lines(&p) else {
            continue;
        };
        let mut first = String::new();
        if r.read_line(&mut first).is_err() {
            continue;
        }
        if held_first.contains(&first) {
            break;
        }
        out.push(Box::new(std::io::Read::chain(
            std::io::Cursor::new(first.into_bytes()),
            r,
        )));
    }
    out
}

/// The first line of `f` (its first 256 KiB at most), read without moving
/// its offset.
fn first_line_at(f: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 256 << 10];
    let n = f.read_at(&mut buf, 0).ok()?;
    let end = buf[..n]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(n, |i| i + 1);
    (end > 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Reads the complete lines from `r` to its end; a trailing partial line
/// stays in `pending` for the next read.
fn read_lines(r: &mut dyn BufRead, pending: &mut String, o: &Options) -> (Vec<Line>, bool) {
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

/// The files a follower reads, oldest first, each held open from the
/// moment it is seen: a file rotated away and deleted while the follower
/// waits on a slow client stays readable through its handle.
struct Chain {
    path: PathBuf,
    /// The file being read, then every file written after it, ending
    /// with the live file when it has been seen.
    files: std::collections::VecDeque<(BufReader<std::fs::File>, u64)>,
}

impl Chain {
    fn open(path: &Path) -> Chain {
        let mut c = Chain {
            path: path.to_path_buf(),
            files: Default::default(),
        };
        c.extend();
        c
    }

    /// Opens every file written since the newest one held (the live file
    /// first of all when none is held).
    fn extend(&mut self) {
        if self.files.is_empty() {
            let Some(f) = std::fs::File::open(&self.path).ok().and_then(|f| {
                let ino = f.metadata().ok()?.ino();
                Some((BufReader::new(f), ino))
            }) else {
                return;
            };
            self.files.push_back(f);
        }
        while let Some((held, ino)) = self.files.back()
            && let Some((f, next)) = successor(&self.path, held.get_ref(), *ino)
        {
            // A file held already is never its own successor.
            if self.files.iter().any(|(_, i)| *i == next) {
                break;
            }
            self.files.push_back((BufReader::new(f), next));
        }
    }

    /// The lines written since the last call, across rotations.
    fn read(&mut self, pending: &mut String, o: &Options) -> (Vec<Line>, bool) {
        self.extend();
        let mut out = Vec::new();
        let mut got = false;
        // A file with a successor was rotated before this read began: what
        // it holds is complete.
        while let Some((r, _)) = self.files.front_mut() {
            let (lines, g) = read_lines(r, pending, o);
            out.extend(lines);
            got |= g;
            if self.files.len() < 2 {
                break;
            }
            pending.clear();
            self.files.pop_front();
            got = true;
        }
        (out, got)
    }
}

/// The inotify instance, with the raw fd tokio's AsyncFd wants.
struct Inotify(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for Inotify {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// Wakes a follower the moment the shim rotates the log (a file renamed
/// or made in its directory), so that each rotated file is opened before
/// later rotations delete it; a follower that only polled could be left
/// behind by a few rotations while it waited for a CPU. Polling stays as
/// the fallback (and where inotify cannot be had).
struct Rotations(Option<tokio::io::unix::AsyncFd<Inotify>>);

impl Rotations {
    fn watch(path: &Path) -> Rotations {
        use nix::sys::inotify::{AddWatchFlags, InitFlags};
        let watch = || {
            let dir = path.parent()?;
            let i =
                nix::sys::inotify::Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                    .ok()?;
            i.add_watch(dir, AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE)
                .ok()?;
            // SAFETY: the Inotify owns its descriptor, which stays open
            // and the same until the AsyncFd (which owns the Inotify) drops.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    Inotify(i),
                    tokio::io::Interest::READABLE,
                )
            }
            .ok()
        };
        Rotations(watch())
    }

    /// Resolves at the next change in the directory, or after `poll`.
    async fn changed(&mut self, poll: Duration) {
        let Some(fd) = &self.0 else {
            tokio::time::sleep(poll).await;
            return;
        };
        let wait = async {
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return std::future::pending().await;
                };
                match ready.get_inner().0.read_events() {
                    Ok(_) => return,
                    Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                    Err(_) => return std::future::pending().await,
                }
            }
        };
        let _ = tokio::time::timeout(poll, wait).await;
    }
}

/// Sends one line; while the client is slow, keeps opening the files
/// rotation makes, so none is deleted before it is held.
async fn send_held(
    tx: &mpsc::Sender<Line>,
    l: Line,
    chain: &mut Chain,
    rotations: &mut Rotations,
) -> bool {
    loop {
        tokio::select! {
            permit = tx.reserve() => match permit {
                Ok(p) => {
                    p.send(l);
                    return true;
                }
                Err(_) => return false,
            },
            _ = rotations.changed(Duration::from_millis(20)) => chain.extend(),
        }
    }
}

/// What is logged so far, for a follower whose chain starts at the live
/// file: the gzipped files, then the plain rotated ones (on a log that
/// compresses, only `.1`, while its gzip runs), then what the chain holds.
/// The plain ones are opened first: a gzip that ends in between leaves its
/// file held, not missed, and its copy is known by its first entry.
fn history(path: &Path, chain: &mut Chain, pending: &mut String, o: &Options) -> Vec<Line> {
    let plain = match chain.files.front().map(|(_, i)| *i) {
        Some(ino) => older_than(path, ino),
        None => Vec::new(),
    };
    let held: Vec<&std::fs::File> = plain
        .iter()
        .chain(chain.files.iter().map(|(r, _)| r.get_ref()))
        .collect();
    let mut history = Vec::new();
    for mut f in gzipped_history(path, &held) {
        history.extend(read_lines(&mut *f, &mut String::new(), o).0);
    }
    for f in plain {
        history.extend(read_lines(&mut BufReader::new(f), &mut String::new(), o).0);
    }
    history.extend(chain.read(pending, o).0);
    if let Some(n) = o.tail {
        let skip = history.len().saturating_sub(n);
        history.drain(..skip);
    }
    history
}

/// Sends what is logged so far, then what comes, until `running` says the
/// container has stopped and the file holds nothing more. Every file is
/// held open from the moment it is seen and read in the order written
/// (found by inode), so no line is lost to a rename or to rotations while
/// the client is slow (what Docker's follow loses).
pub fn follow(
    path: PathBuf,
    o: Options,
    mut running: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // Watching before the first open: no rotation slips in between.
        let mut rotations = Rotations::watch(&path);
        let mut chain = Chain::open(&path);
        let mut pending = String::new();
        let history = history(&path, &mut chain, &mut pending, &o);
        for l in history {
            if !send_held(&tx, l, &mut chain, &mut rotations).await {
                return;
            }
        }
        loop {
            let alive = *running.borrow_and_update();
            let (lines, got) = chain.read(&mut pending, &o);
            for l in lines {
                if !send_held(&tx, l, &mut chain, &mut rotations).await {
                    return;
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
                    _ = rotations.changed(Duration::from_millis(50)) => {}
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

    /// A writer rotating as the shim does (rename .k to .k+1 from the
    /// oldest, the live file to .1, a new live file; the oldest replaced)
    /// every three lines, and a follower reading as fast as it can: every
    /// line once, in order. The writer never gets so far ahead that a file
    /// is deleted before the follower could open it (the inotify wake-up
    /// covers that in `follow`); the races are the listings and renames.
    #[test]
    fn a_follower_racing_rotations_reads_each_line_once() {
        follower_racing_rotations(false);
    }

    /// The same with each rotated file gzipped as the shim does with
    /// `compress` (`.1` into `.1.gz`, then `.1` removed): the follower
    /// holds files by inode, so a gzip never shows it a line twice.
    #[test]
    fn a_follower_racing_compressed_rotations_reads_each_line_once() {
        follower_racing_rotations(true);
    }

    fn gzip_into(from: &Path, to: &Path) {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&std::fs::read(from).unwrap()).unwrap();
        std::fs::write(to, gz.finish().unwrap()).unwrap();
        std::fs::remove_file(from).unwrap();
    }

    fn follower_racing_rotations(compress: bool) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        std::fs::write(&p, "").unwrap();
        const LINES: u32 = 20_000;
        // Opened before the writer starts: what a follower finds already
        // rotated is `older_than`'s (follow's history), not the chain's.
        let mut chain = Chain::open(&p);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let writer = {
            let (p, seen) = (p.clone(), seen.clone());
            std::thread::spawn(move || {
                use std::io::Write;
                let name = |i: u32| PathBuf::from(format!("{}.{i}", p.display()));
                let gz = |i: u32| PathBuf::from(format!("{}.{i}.gz", p.display()));
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                for i in 1..=LINES {
                    writeln!(
                        f,
                        r#"{{"log":"line-{i}\n","stream":"stdout","time":"2026-12-04T00:00:00.000000000Z"}}"#
                    )
                    .unwrap();
                    if i % 3 == 0 {
                        // The follower has the file before last by now
                        // (or the test already failed). A gzipped log
                        // keeps one plain rotated file, briefly: the
                        // follower must hold the live one (have read its
                        // first line) before it rotates.
                        let slack = if compress { 2 } else { 6 };
                        let end = std::time::Instant::now() + Duration::from_secs(10);
                        while seen.load(std::sync::atomic::Ordering::Relaxed) + slack < i
                            && std::time::Instant::now() < end
                        {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        let rotated = |k: u32| if compress { gz(k) } else { name(k) };
                        for k in (1..=3).rev() {
                            if rotated(k).exists() {
                                std::fs::rename(rotated(k), rotated(k + 1)).unwrap();
                            }
                        }
                        std::fs::rename(&p, name(1)).unwrap();
                        f = std::fs::File::create(&p).unwrap();
                        if compress {
                            gzip_into(&name(1), &gz(1));
                        }
                    }
                }
            })
        };
        let o = Options {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut pending = String::new();
        let mut got: Vec<u32> = Vec::new();
        let number = |l: &Line| -> u32 {
            let text = String::from_utf8_lossy(&l.data).into_owned();
            text.trim_end()
                .strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        loop {
            let done = writer.is_finished();
            let (lines, _) = chain.read(&mut pending, &o);
            got.extend(lines.iter().map(number));
            if let Some(last) = got.last() {
                seen.store(*last, std::sync::atomic::Ordering::Relaxed);
            }
            if done && got.last() == Some(&LINES) {
                break;
            }
            if done && lines.is_empty() {
                break;
            }
        }
        writer.join().unwrap();
        let first_wrong = got
            .iter()
            .enumerate()
            .find(|(i, n)| **n != *i as u32 + 1)
            .map(|(i, _)| &got[i.saturating_sub(3)..(i + 3).min(got.len())]);
        assert_eq!(first_wrong, None, "{} lines", got.len());
        assert_eq!(got.len(), LINES as usize);
    }

    /// A follower's history on a log that compresses, when the live file
    /// it opened was rotated and gzipped before the history was read: the
    /// gzipped copy of the file it holds is told by its first entry, so
    /// no line comes twice or is missed.
    #[test]
    fn a_followers_history_skips_the_gzipped_copy_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let name = |n: &str| dir.path().join(format!("container.log{n}"));
        let lines = |from: u32| -> String {
            (from..from + 3)
                .map(|i| {
                    format!(
                        "{}\n",
                        serde_json::json!({"log": format!("l{i}\n"), "stream": "stdout", "time": format!("2026-01-01T00:00:{i:02}Z")})
                    )
                })
                .collect()
        };
        std::fs::write(name(".1"), lines(1)).unwrap();
        gzip_into(&name(".1"), &name(".1.gz"));
        std::fs::write(&p, lines(4)).unwrap();
        let mut chain = Chain::open(&p);
        // Rotated since: .1.gz to .2.gz, the held file to .1 then gzipped.
        std::fs::rename(name(".1.gz"), name(".2.gz")).unwrap();
        std::fs::rename(&p, name(".1")).unwrap();
        gzip_into(&name(".1"), &name(".1.gz"));
        std::fs::write(&p, lines(7)).unwrap();
        let o = Options {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut pending = String::new();
        let mut got: Vec<String> = history(&p, &mut chain, &mut pending, &o)
            .iter()
            .map(|l| String::from_utf8_lossy(&l.data).trim().to_string())
            .collect();
        got.extend(
            chain
                .read(&mut pending, &o)
                .0
                .iter()
                .map(|l| String::from_utf8_lossy(&l.data).trim().to_string()),
        );
        assert_eq!(got, ["l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"]);
    }

    /// Gzipped rotated files are read as they were, oldest first; one seen
    /// both plain and gzipped (its gzip just done) once.
    #[test]
    fn reads_gzipped_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let name = |n: &str| dir.path().join(format!("container.log{n}"));
        let line = |s: &str| {
            format!(
                "{}\n",
                serde_json::json!({"log": format!("{s}\n"), "stream": "stdout", "time": "2026-01-01T00:00:01Z"})
            )
        };
        std::fs::write(name(".3"), line("one")).unwrap();
        gzip_into(&name(".3"), &name(".2.gz"));
        std::fs::write(name(".1"), line("two")).unwrap();
        std::fs::copy(name(".1"), name(".x")).unwrap();
        gzip_into(&name(".x"), &name(".1.gz"));
        std::fs::write(&p, line("three")).unwrap();
        let o = Options {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let texts = |lines: Vec<Line>| -> Vec<String> {
            lines
                .iter()
                .map(|l| String::from_utf8_lossy(&l.data).trim().to_string())
                .collect()
        };
        assert_eq!(texts(read_all(&p, &o)), ["one", "two", "three"]);
        std::fs::remove_file(name(".1")).unwrap();
        assert_eq!(texts(read_all(&p, &o)), ["one", "two", "three"]);
    }

    #[test]
    fn older_files_are_found_by_inode_after_a_rotation() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let name = |n: u32| dir.path().join(format!("c-json.log.{n}"));
        std::fs::write(name(2), "one\n").unwrap();
        std::fs::write(name(1), "two\n").unwrap();
        std::fs::write(&p, "three\n").unwrap();
        let held = std::fs::metadata(&p).unwrap().ino();
        let text = |files: Vec<std::fs::File>| {
            files
                .into_iter()
                .map(|mut f| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                    s
                })
                .collect::<String>()
        };
        assert_eq!(text(older_than(&p, held)), "one\ntwo\n");
        // Rotated since the live file was opened: it is .1 now, and only
        // what is older than it comes back.
        std::fs::rename(name(2), name(3)).unwrap();
        std::fs::rename(name(1), name(2)).unwrap();
        std::fs::rename(&p, name(1)).unwrap();
        std::fs::write(&p, "four\n").unwrap();
        assert_eq!(text(older_than(&p, held)), "one\ntwo\n");
    }

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
                since: parse_time("1767225602").unwrap(),
                ..Default::default()
            },
        );
        assert_eq!(since.len(), 2);
    }

    #[test]
    fn timestamps_out_of_range_are_errors_not_panics() {
        assert_eq!(parse_time("").unwrap(), None);
        assert_eq!(parse_time("0").unwrap(), None);
        assert_eq!(
            parse_time("1.5").unwrap(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1500))
        );
        assert_eq!(parse_time("-5").unwrap(), Some(SystemTime::UNIX_EPOCH));
        for bad in [
            "9999999999999999999",
            "18446744073709551615",
            "9223372036854775807",
            "abc",
            "1.x",
            "1.1234567890",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
