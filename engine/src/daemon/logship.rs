//! Log drivers whose lines go to a server (syslog, gelf, fluentd), as dockerd's
//! dual logging keeps them: the container's output kept by its shim in a
//! json-file log (the cache `logs` reads: five 20 MiB files, gzipped,
//! unless the `cache-*` options say otherwise), and each line sent from
//! there by the engine. The engine sends rather than the shim: the shim,
//! which lives beside every container, stays as small as it is, and what a
//! container writes while berthd is down (an upgrade, a restart) is sent
//! when it is back, from the place it had noted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

use super::logs::{Line, Options};

/// Where a container's lines go: the driver's target.
#[derive(Debug, Clone)]
pub enum Remote {
    Syslog(super::syslog::Target),
    Gelf(super::gelf::Target),
    Fluentd(super::fluentd::Target),
}

/// Checks the options of a driver that sends its lines (in its own
/// words); None for the other drivers.
pub fn validate(driver: &str, opts: &BTreeMap<String, String>) -> Option<Result<(), String>> {
    match driver {
        "syslog" => Some(super::syslog::validate(opts)),
        "gelf" => Some(super::gelf::validate(opts)),
        "fluentd" => Some(super::fluentd::validate(opts)),
        _ => None,
    }
}

impl Remote {
    /// The target of a container of a driver that sends its lines, None
    /// for the others.
    pub fn of(
        c: &super::container::Container,
        opts: &BTreeMap<String, String>,
    ) -> Option<Result<Remote, String>> {
        match c.log_driver() {
            "syslog" => Some(super::syslog::target(c, opts).map(Remote::Syslog)),
            "gelf" => Some(super::gelf::target(c, opts).map(Remote::Gelf)),
            "fluentd" => Some(super::fluentd::target(c, opts).map(Remote::Fluentd)),
            _ => None,
        }
    }

    pub async fn dial(&self) -> Result<Conn, String> {
        match self {
            Remote::Syslog(t) => super::syslog::dial(t).await,
            Remote::Gelf(t) => super::gelf::dial(t).await,
            Remote::Fluentd(t) => super::fluentd::dial(t).await,
        }
    }

    /// Whether a start fails when no connection can be made (all but an
    /// asynchronous fluentd's).
    pub fn must_connect(&self) -> bool {
        match self {
            Remote::Fluentd(t) => t.synchronous(),
            _ => true,
        }
    }

    /// What is sent for a line: nothing for an empty one, else a message
    /// (or a GELF message's UDP chunks).
    fn messages(&self, pid: u32, l: &Line) -> Vec<Vec<u8>> {
        match self {
            Remote::Syslog(t) => super::syslog::message(t, pid, l).into_iter().collect(),
            Remote::Gelf(t) => super::gelf::messages(t, l),
            Remote::Fluentd(t) => vec![super::fluentd::event(t, l)],
        }
    }

    /// How many new connections a failed send tries, and how far apart.
    fn reconnects(&self) -> (u32, Duration) {
        match self {
            Remote::Syslog(_) => (1, Duration::ZERO),
            Remote::Gelf(t) => t.reconnects(),
            Remote::Fluentd(t) => t.reconnects(),
        }
    }

    fn name(&self) -> String {
        match self {
            Remote::Syslog(t) => format!("syslog {}", t.describe()),
            Remote::Gelf(t) => format!("gelf {}", t.describe()),
            Remote::Fluentd(t) => format!("fluentd {}", t.describe()),
        }
    }
}

/// A connection to a log server.
pub enum Conn {
    Datagram(UnixDatagram),
    Stream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    async fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Datagram(s) => s.send(message).await.map(drop),
            Conn::Udp(s) => s.send(message).await.map(drop),
            Conn::Stream(s) => s.write_all(message).await,
            Conn::Tcp(s) => s.write_all(message).await,
            Conn::Tls(s) => {
                s.write_all(message).await?;
                s.flush().await
            }
        }
    }
}

/// The cache's defaults (dockerd's): five files of 20 MiB, gzipped.
const CACHE_MAX_SIZE: u64 = 20 << 20;
const CACHE_MAX_FILES: u32 = 5;

/// The cache's rotation, or None when `cache-disabled` (nothing kept,
/// `logs` says the driver cannot be read).
pub fn cache(opts: &BTreeMap<String, String>) -> Result<Option<super::logopts::Rotation>, String> {
    let flag = |k: &str| {
        opts.get(k)
            .map(|v| {
                super::logopts::go_parse_bool(v)
                    .ok_or_else(|| format!("invalid value for option {k}: {v}"))
            })
            .transpose()
    };
    if flag("cache-disabled")? == Some(true) {
        return Ok(None);
    }
    let max_size = match opts.get("cache-max-size") {
        Some(v) => crate::config::parse_size(v)
            .map_err(|_| format!("failed to initialize logging driver: invalid size: '{v}'"))?,
        None => CACHE_MAX_SIZE,
    };
    let max_files = match opts.get("cache-max-file") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid value for max-file: {v}"))?,
        None => CACHE_MAX_FILES,
    };
    // Gzipped by the host's gzip: by default where there is one.
    let compress = match flag("cache-compress")? {
        Some(true) if !super::logopts::on_path("gzip") => {
            return Err(
                "cache-compress needs gzip on the host (none on PATH): install it, or set cache-compress=false"
                    .into(),
            );
        }
        Some(asked) => asked,
        None => super::logopts::on_path("gzip"),
    } && max_files > 1;
    Ok(Some(super::logopts::Rotation {
        max_size,
        max_files,
        compress,
    }))
}

/// The cache's defaults, for the file that carries the lines when the
/// cache is disabled.
pub fn default_cache() -> super::logopts::Rotation {
    super::logopts::Rotation {
        max_size: CACHE_MAX_SIZE,
        max_files: CACHE_MAX_FILES,
        compress: super::logopts::on_path("gzip"),
    }
}

/// A connection that failed, in Go's words (`dial tcp 127.0.0.1:1:
/// connect: connection refused`), as dockerd's drivers fail a start.
pub fn dial_error(proto: &str, address: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("dial {proto} {address}: connect: {why}")
}

/// Where the last line sent is noted (its time as the log has it, and how
/// many lines of that very time were sent: one write of the container's
/// can be several lines of one time), so that a berthd that comes back
/// goes on from there.
pub fn sent_mark(dir: &Path) -> PathBuf {
    dir.join("log-sent")
}

/// Sends the lines of the log at `log` from after the mark until
/// `running` says the container stopped and the log holds nothing more.
/// `conn` is the connection the start made (None after a restart of the
/// engine: made here). A line that cannot be sent, even on a new
/// connection, is dropped and said in the engine's log (once a streak),
/// as dockerd's copier drops it.
pub async fn send_from(
    log: PathBuf,
    mark: PathBuf,
    t: Remote,
    mut conn: Option<Conn>,
    running: tokio::sync::watch::Receiver<bool>,
) {
    let noted_before = std::fs::read_to_string(&mark).unwrap_or_default();
    let (mark_time, mut skip) = match noted_before.split_once(' ') {
        Some((t, n)) => (t.to_string(), n.trim().parse::<u64>().unwrap_or(0)),
        None => (String::new(), 0),
    };
    let since = humantime::parse_rfc3339(&mark_time).ok();
    let o = Options {
        stdout: true,
        stderr: true,
        since,
        follow: true,
        ..Default::default()
    };
    let mut lines = super::logs::follow(log, o, running);
    let pid = std::process::id();
    let mut failing = false;
    // The last line's time, and how many lines of that time went.
    let mut sent: Option<(String, u64)> = None;
    let mut noted = tokio::time::Instant::now();
    while let Some(l) = lines.recv().await {
        // Lines of the noted time sent before the engine went away.
        if skip > 0 && l.time == mark_time {
            skip -= 1;
            sent = Some((l.time, sent.map_or(1, |(_, n)| n + 1)));
            continue;
        }
        skip = 0;
        let messages = t.messages(pid, &l);
        if !messages.is_empty() {
            match send(&t, &mut conn, &messages).await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("{}: a line dropped: {e}", t.name());
                }
                Err(_) => {}
            }
        }
        sent = Some(match sent {
            Some((time, n)) if time == l.time => (time, n + 1),
            _ => (l.time, 1),
        });
        // Noted at most every second: after a crash of the engine, what
        // the last second sent may be sent again, never lost.
        if noted.elapsed() >= Duration::from_secs(1) {
            note(&mark, sent.as_ref());
            noted = tokio::time::Instant::now();
        }
    }
    note(&mark, sent.as_ref());
}

/// Sends a line's messages on the connection, or on new ones (as many
/// as the driver tries, that far apart) when it fails.
async fn send(t: &Remote, conn: &mut Option<Conn>, messages: &[Vec<u8>]) -> Result<(), String> {
    if let Some(c) = conn.as_mut()
        && send_all(c, messages).await.is_ok()
    {
        return Ok(());
    }
    *conn = None;
    let (tries, apart) = t.reconnects();
    let mut last = String::from("not connected");
    for i in 0..tries.max(1) {
        if i > 0 {
            tokio::time::sleep(apart).await;
        }
        match t.dial().await {
            Ok(mut c) => match send_all(&mut c, messages).await {
                Ok(()) => {
                    *conn = Some(c);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn send_all(c: &mut Conn, messages: &[Vec<u8>]) -> std::io::Result<()> {
    for m in messages {
        c.send(m).await?;
    }
    Ok(())
}

fn note(mark: &Path, sent: Option<&(String, u64)>) {
    // A container removed as it ended (`--rm`) has no place to note it.
    let gone = mark.parent().is_some_and(|d| !d.exists());
    if let Some((time, n)) = sent
        && !gone
        && let Err(e) = std::fs::write(mark, format!("{time} {n}"))
    {
        tracing::warn!("{}: {e}", mark.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_cache_keeps_dockerds_defaults_unless_told() {
        let c = cache(&opts(&[])).unwrap().unwrap();
        assert_eq!((c.max_size, c.max_files, c.compress), (20 << 20, 5, true));
        let c = cache(&opts(&[("cache-max-file", "1"), ("cache-max-size", "1k")]))
            .unwrap()
            .unwrap();
        assert_eq!((c.max_size, c.max_files, c.compress), (1024, 1, false));
        assert!(
            cache(&opts(&[("cache-disabled", "true")]))
                .unwrap()
                .is_none()
        );
    }
}
