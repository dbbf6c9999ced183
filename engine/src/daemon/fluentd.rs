//! The fluentd log driver, as Docker's: each line an event of Fluentd's
//! Forward protocol, `[tag, time, record, {}]` in MessagePack as
//! fluent-logger-golang writes it (the time in seconds, or an EventTime to
//! the nanosecond with `fluentd-sub-second-precision`; the record's
//! `container_id`, `container_name`, `source`, `log` and the labels and
//! variables the options name), over TCP or a unix socket. The lines are
//! sent by the engine from the container's log (see [`super::logship`]).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use tokio::net::{TcpStream, UnixStream};

use super::container::Container;
use super::logs::Line;
use super::logship::Conn;

/// Where a container's events go and what they carry.
#[derive(Debug, Clone)]
pub struct Target {
    /// host:port, or a unix socket's path.
    address: String,
    unix: bool,
    /// Whether the start goes ahead without a connection (`fluentd-async`).
    asynchronous: bool,
    sub_second: bool,
    max_retries: u32,
    retry_wait: Duration,
    tag: String,
    /// The record's fields every event carries (the line's beside them).
    fields: Vec<(String, String)>,
}

impl Target {
    pub fn describe(&self) -> String {
        if self.unix {
            format!("unix://{}", self.address)
        } else {
            format!("tcp://{}", self.address)
        }
    }

    pub fn reconnects(&self) -> (u32, Duration) {
        (self.max_retries, self.retry_wait)
    }

    /// Whether a start waits for the connection (`fluentd-async` not set).
    pub fn synchronous(&self) -> bool {
        !self.asynchronous
    }
}

/// The options dockerd's fluentd driver takes, and every driver's and the
/// cache's.
const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "tag",
    "fluentd-address",
    "fluentd-async",
    "fluentd-async-connect",
    "fluentd-async-reconnect-interval",
    "fluentd-buffer-limit",
    "fluentd-max-retries",
    "fluentd-request-ack",
    "fluentd-retry-wait",
    "fluentd-sub-second-precision",
    "mode",
    "max-buffer-size",
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];

/// dockerd's parseAddress: `[tcp://]host[:port]` (127.0.0.1:24224 by
/// default) or `unix:///path`.
fn address(a: Option<&String>) -> Result<(bool, String), String> {
    let Some(a) = a.filter(|a| !a.is_empty()) else {
        return Ok((false, "127.0.0.1:24224".into()));
    };
    let (scheme, rest) = a.split_once("://").unwrap_or(("tcp", a));
    match scheme {
        "unix" => {
            if rest.trim_start_matches('/').is_empty() {
                return Err("path is empty".into());
            }
            Ok((true, rest.to_string()))
        }
        "tcp" => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !path.is_empty() {
                return Err("should not contain a path element".into());
            }
            let (host, port) = match host.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') => (h, p),
                _ => (host, ""),
            };
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            let port = if port.is_empty() {
                24224
            } else {
                port.parse::<u16>().map_err(|_| {
                    format!("invalid port: strconv.ParseUint: parsing {port:?}: invalid syntax")
                })?
            };
            Ok((false, format!("{host}:{port}")))
        }
        other => Err(format!("unsupported scheme: '{other}'")),
    }
}

fn flag(opts: &BTreeMap<String, String>, k: &str) -> Result<bool, String> {
    match opts.get(k) {
        None => Ok(false),
        Some(v) => super::logopts::go_parse_bool(v)
            .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax")),
    }
}

/// Checks the options a container or daemon.json gives the driver.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in opts {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(format!("unknown log opt '{k}' for fluentd log driver"));
        }
        if matches!(k.as_str(), "labels-regex" | "env-regex") {
            regex::Regex::new(v).map_err(|e| format!("invalid log opt {k}: {e}"))?;
        }
    }
    address(opts.get("fluentd-address"))?;
    for k in [
        "fluentd-async",
        "fluentd-async-connect",
        "fluentd-sub-second-precision",
        "fluentd-request-ack",
    ] {
        flag(opts, k)?;
    }
    if let Some(v) = opts.get("fluentd-max-retries") {
        v.parse::<u64>()
            .map_err(|_| format!("strconv.ParseUint: parsing {v:?}: invalid syntax"))?;
    }
    if let Some(v) = opts.get("fluentd-retry-wait") {
        dockerfile::parse_go_duration(v)?;
    }
    if let Some(t) = opts.get("tag") {
        super::journal::check_tag(t)?;
    }
    super::logship::cache(opts)?;
    Ok(())
}

/// Where the container's events go, and the fields each record carries.
pub fn target(c: &Container, opts: &BTreeMap<String, String>) -> Result<Target, String> {
    let (unix, address) = address(opts.get("fluentd-address"))?;
    // The labels and variables asked win over the container's fields (and
    // over `source` and `log`), as dockerd fills the record.
    let mut fields = BTreeMap::from([
        ("container_id".to_string(), c.id.clone()),
        ("container_name".to_string(), format!("/{}", c.name)),
    ]);
    fields.extend(super::journal::extra_attributes(c, opts, str::to_string)?);
    let fields = fields.into_iter().collect();
    Ok(Target {
        address,
        unix,
        asynchronous: flag(opts, "fluentd-async")? || flag(opts, "fluentd-async-connect")?,
        sub_second: flag(opts, "fluentd-sub-second-precision")?,
        // Bounded here: the lines wait in the cache, not in memory.
        max_retries: opts
            .get("fluentd-max-retries")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(10, |n| n.clamp(1, 10) as u32),
        retry_wait: opts
            .get("fluentd-retry-wait")
            .and_then(|v| dockerfile::parse_go_duration(v).ok())
            .and_then(|ns| u64::try_from(ns).ok())
            .map(Duration::from_nanos)
            .unwrap_or(Duration::from_secs(1)),
        tag: super::journal::tag(c, opts)?,
        fields,
    })
}

/// How long a connection may take: fluent-logger-golang's default, which
/// dockerd keeps (a server that drops the packets fails a start in 3 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn dial(t: &Target) -> Result<Conn, String> {
    let proto = if t.unix { "unix" } else { "tcp" };
    let failed = |e| super::logship::dial_error(proto, &t.address, &e);
    let connect = async {
        Ok(if t.unix {
            Conn::Stream(UnixStream::connect(&t.address).await.map_err(failed)?)
        } else {
            Conn::Tcp(TcpStream::connect(&t.address).await.map_err(failed)?)
        })
    };
    tokio::time::timeout(DIAL_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| Err(format!("dial {proto} {}: i/o timeout", t.address)))
}

/// The event of a line (empty lines too, as dockerd sends them).
pub fn event(t: &Target, l: &Line) -> Vec<u8> {
    let line = l.data.strip_suffix(b"\n").unwrap_or(&l.data);
    let since = l.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = Vec::with_capacity(line.len() + 256);
    out.push(0x94);
    str(&mut out, t.tag.as_bytes());
    if t.sub_second {
        // EventTime: ext 0 of seconds and nanoseconds, big-endian.
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&(since.as_secs() as u32).to_be_bytes());
        out.extend_from_slice(&since.subsec_nanos().to_be_bytes());
    } else {
        int(&mut out, since.as_secs());
    }
    let given = |k: &str| t.fields.iter().any(|(f, _)| f == k);
    let (source, log) = (!given("source"), !given("log"));
    map_len(
        &mut out,
        t.fields.len() + usize::from(source) + usize::from(log),
    );
    for (k, v) in &t.fields {
        str(&mut out, k.as_bytes());
        str(&mut out, v.as_bytes());
    }
    if source {
        str(&mut out, b"source");
        str(&mut out, if l.stderr { b"stderr" } else { b"stdout" });
    }
    if log {
        str(&mut out, b"log");
        str(&mut out, line);
    }
    out.push(0x80);
    out
}

/// MessagePack's smallest string form for `s`.
fn str(out: &mut Vec<u8>, s: &[u8]) {
    match s.len() {
        n @ 0..=31 => out.push(0xa0 | n as u8),
        n @ 32..=0xff => out.extend_from_slice(&[0xd9, n as u8]),
        n @ 0x100..=0xffff => {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s);
}

fn map_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

/// An int as Go's msgp writes an int64: the smallest signed form.
fn int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0x7f => out.push(n as u8),
        0x80..=0x7fff => {
            out.push(0xd1);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x8000..=0x7fff_ffff => {
            out.push(0xd2);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn addresses_and_options_read_as_dockerd_reads_them() {
        let a = |s: &str| address(Some(&s.to_string()));
        assert_eq!(address(None).unwrap(), (false, "127.0.0.1:24224".into()));
        assert_eq!(a("fluent:24225").unwrap(), (false, "fluent:24225".into()));
        assert_eq!(
            a("tcp://10.0.0.1").unwrap(),
            (false, "10.0.0.1:24224".into())
        );
        assert_eq!(
            a("unix:///run/f.sock").unwrap(),
            (true, "/run/f.sock".into())
        );
        assert_eq!(a("unix:///").unwrap_err(), "path is empty");
        assert_eq!(a("http://x").unwrap_err(), "unsupported scheme: 'http'");
        assert_eq!(
            a("tcp://x:1/p").unwrap_err(),
            "should not contain a path element"
        );
        let refused = |kv: &[(&str, &str)]| validate(&opts(kv)).unwrap_err();
        assert_eq!(
            refused(&[("bogus", "1")]),
            "unknown log opt 'bogus' for fluentd log driver"
        );
        assert!(refused(&[("fluentd-async", "maybe")]).contains("ParseBool"));
        assert!(refused(&[("fluentd-retry-wait", "soon")]).contains("invalid duration"));
        assert!(
            validate(&opts(&[
                ("fluentd-retry-wait", "500ms"),
                ("tag", "{{.Name}}")
            ]))
            .is_ok()
        );
        assert!(
            refused(&[("fluentd-retry-wait", &format!("{}h", "9".repeat(40)))])
                .contains("invalid duration")
        );
    }

    fn target(sub_second: bool) -> Target {
        Target {
            address: "127.0.0.1:1".into(),
            unix: false,
            asynchronous: false,
            sub_second,
            max_retries: 1,
            retry_wait: Duration::ZERO,
            tag: "7f4e2736b346".into(),
            fields: vec![("container_name".into(), "/fl1".into())],
        }
    }

    #[test]
    fn an_event_is_written_as_fluent_logger_golang_writes_it() {
        let at = UNIX_EPOCH + Duration::new(1_796_645_888, 12_345);
        let l = Line {
            stderr: true,
            data: b"err\n".to_vec(),
            time: String::new(),
            at,
            attrs: Vec::new(),
        };
        let mut want = b"\x94\xac7f4e2736b346\xd2\x6b\x16\xa4\x00\x83".to_vec();
        want.extend_from_slice(b"\xaecontainer_name\xa4/fl1\xa6source\xa6stderr\xa3log\xa3err\x80");
        assert_eq!(event(&target(false), &l), want);
        let sub = event(&target(true), &l);
        assert_eq!(
            &sub[..24],
            b"\x94\xac7f4e2736b346\xd7\x00\x6b\x16\xa4\x00\x00\x00\x30\x39"
        );
        // An empty line is an event too, as dockerd's.
        let empty = Line {
            data: b"\n".to_vec(),
            at: SystemTime::now(),
            ..l
        };
        assert!(event(&target(false), &empty).ends_with(b"\xa3log\xa0\x80"));
        // A label named `log` wins over the line, as in dockerd's record.
        let mut labelled = target(false);
        labelled.fields.push(("log".into(), "x".into()));
        let e = event(&labelled, &empty);
        assert!(e.ends_with(b"\x83\xaecontainer_name\xa4/fl1\xa3log\xa1x\xa6source\xa6stderr\x80"));
    }

    #[test]
    fn long_strings_take_the_longer_forms() {
        let mut out = Vec::new();
        str(&mut out, &[b'a'; 40]);
        assert_eq!(&out[..2], &[0xd9, 40]);
        out.clear();
        str(&mut out, &vec![b'a'; 300]);
        assert_eq!(&out[..3], &[0xda, 1, 44]);
        out.clear();
        int(&mut out, 5);
        int(&mut out, 300);
        assert_eq!(out, [5, 0xd1, 1, 44]);
    }
}
