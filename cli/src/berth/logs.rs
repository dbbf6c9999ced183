//! `berth logs --follow` that outlives the engine: when the stream is cut
//! (berthd died or restarted while the container ran on), it connects again
//! and asks for the lines since the last one it printed, and drops those it
//! already printed, so that nothing is lost or shown twice. The docker CLI
//! ends at the cut; berthd keeps the log (the shim writes it) across its
//! restarts, so resuming is only a matter of asking from the right place.
//!
//! Lines are asked for with their timestamps (nanoseconds, as the log file
//! keeps them), which are what a resumed request starts from; `--since` is
//! inclusive, so the lines stamped with the last time are counted and that
//! many are skipped. A container with a terminal has no frames to tell its
//! lines apart, so its stream ends at a cut as Docker's does.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use hyper::Method;
use tokio::io::AsyncReadExt;

use super::Ctx;
use super::client::{Error, empty};
use super::containers::BodyReader;

/// How long a cut stream waits for the engine to come back.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Where a follower is in the log: the newest time printed and how many
/// lines carried it.
#[derive(Debug, Default)]
struct Resume {
    last: Option<SystemTime>,
    at_last: usize,
    /// Lines stamped `last` still to drop in the current stream.
    skip: usize,
}

impl Resume {
    /// Whether a line stamped `at` is new; notes it when it is.
    fn admit(&mut self, at: SystemTime) -> bool {
        match self.last {
            Some(l) if at < l => false,
            Some(l) if at == l => {
                if self.skip > 0 {
                    self.skip -= 1;
                    false
                } else {
                    self.at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(at);
                self.at_last = 1;
                self.skip = 0;
                true
            }
        }
    }

    /// A new stream replays from `last`: the lines already printed at that
    /// time are dropped again.
    fn reconnect(&mut self) {
        self.skip = self.at_last;
    }

    /// The API's `since` for the next stream: unix seconds and nanoseconds.
    fn since(&self) -> Option<String> {
        let d = self.last?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
    }
}

/// How a stream ended.
enum Ended {
    /// The container stopped (or `--until` passed): the engine closed it.
    Done,
    /// The connection broke before the engine ended the stream.
    Cut,
}

/// What the user asked of `logs --follow`, as API parameters.
pub struct Ask {
    /// Every parameter but `since`, `tail` and `timestamps`.
    pub query: String,
    pub tail: String,
    pub since: Option<String>,
    pub timestamps: bool,
}

/// Follows the log of container `id` (no terminal). The user's `since`
/// and `tail` shape the first stream; a resumed one starts where the
/// last ended.
pub async fn follow(ctx: &Ctx, id: &str, ask: &Ask) -> Result<i32> {
    let mut resume = Resume::default();
    let mut first = true;
    loop {
        let (since, tail) = if first {
            (ask.since.clone(), ask.tail.as_str())
        } else {
            (resume.since().or_else(|| ask.since.clone()), "all")
        };
        let mut path = format!(
            "/containers/{id}/logs?{}&timestamps=1&tail={}",
            ask.query,
            super::client::q(tail)
        );
        if let Some(s) = &since {
            path.push_str(&format!("&since={s}"));
        }
        let resp = if first {
            ctx.client.request(Method::GET, &path, empty(), &[]).await?
        } else {
            reconnect(ctx, &path).await?
        };
        first = false;
        match copy(
            BodyReader::new(resp.into_body()),
            &mut resume,
            ask.timestamps,
        )
        .await?
        {
            Ended::Done => return Ok(0),
            Ended::Cut => resume.reconnect(),
        }
    }
}

/// Asks again until the engine answers, for up to [`RECONNECT_FOR`]; an
/// answer that is an error (the container was removed meanwhile) ends it.
async fn reconnect(ctx: &Ctx, path: &str) -> Result<hyper::Response<hyper::body::Incoming>> {
    let deadline = Instant::now() + RECONNECT_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        tokio::time::sleep(wait).await;
        match ctx.client.request(Method::GET, path, empty(), &[]).await {
            Ok(r) => return Ok(r),
            Err(e @ Error::Daemon { .. }) => return Err(e.into()),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            // Not back yet.
            Err(_) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// Copies a multiplexed stream of timestamped lines to stdout and stderr,
/// dropping what was printed before.
async fn copy(mut r: BodyReader, resume: &mut Resume, timestamps: bool) -> Result<Ended> {
    use std::io::Write;
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            // The stream's end between two frames: the engine ended it.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Ended::Done),
            Err(_) => return Ok(Ended::Cut),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if r.read_exact(&mut buf).await.is_err() {
            return Ok(Ended::Cut);
        }
        let (at, text) = split_time(&buf);
        if let Some(at) = at
            && !resume.admit(at)
        {
            continue;
        }
        let out: &[u8] = if timestamps || at.is_none() {
            &buf
        } else {
            text
        };
        if header[0] == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(out)?;
            e.flush()?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(out)?;
            o.flush()?;
        }
    }
}

/// A line's timestamp and the text after it.
fn split_time(line: &[u8]) -> (Option<SystemTime>, &[u8]) {
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return (None, line);
    };
    let at = std::str::from_utf8(&line[..space])
        .ok()
        .and_then(|s| humantime::parse_rfc3339(s).ok());
    match at {
        Some(at) => (Some(at), &line[space + 1..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 0) + Duration::from_nanos(n)
    }

    #[test]
    fn a_resumed_stream_drops_exactly_what_was_printed() {
        let mut r = Resume::default();
        // Two lines share a time (possible at the clock's resolution).
        for at in [t(1), t(2), t(2)] {
            assert!(r.admit(at));
        }
        assert_eq!(r.since().as_deref(), Some("1700000000.000000002"));
        r.reconnect();
        // The replay from t(2) inclusive: both t(2) lines were printed, a
        // third at t(2) and what follows were not.
        let replay = [t(2), t(2), t(2), t(3)];
        let admitted: Vec<bool> = replay.iter().map(|&at| r.admit(at)).collect();
        assert_eq!(admitted, [false, false, true, true]);
        // Older lines never come back.
        assert!(!r.admit(t(1)));
    }

    #[test]
    fn timestamps_are_split_off_and_kept_when_asked() {
        let (at, text) = split_time(b"2024-01-02T03:04:05.000000006Z hello world\n");
        assert_eq!(
            at,
            Some(SystemTime::UNIX_EPOCH + Duration::new(1_704_164_645, 6))
        );
        assert_eq!(text, b"hello world\n");
        assert_eq!(split_time(b"no time here").0, None);
    }
}
