//! The gelf log driver, as Docker's (Graylog's GELF 1.1): each line a JSON
//! message (`version`, `host`, `short_message`, `timestamp` to the
//! millisecond, `level` 6 for stdout and 3 for stderr, then the
//! container's fields `_container_id`, `_container_name`, `_image_id`,
//! `_image_name`, `_command`, `_tag`, `_created` and the labels and
//! variables the options name, sorted, as Go's encoder writes them), sent
//! over UDP (gzip unless told zlib or none; chunked past 1420 bytes) or TCP
//! (each message ending in a NUL, reconnecting as `gelf-tcp-*` say). The
//! lines are sent by the engine from the container's log (see
//! [`super::logship`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpStream, UdpSocket};

use super::container::Container;
use super::logs::Line;
use super::logship::Conn;

/// Graylog's largest UDP chunk, and the header each chunk carries.
const CHUNK: usize = 1420;
const CHUNK_HEADER: usize = 12;
/// GELF's limit on the chunks of one message.
const MAX_CHUNKS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zlib,
    None,
}

/// Where a container's messages go and what they carry.
#[derive(Debug, Clone)]
pub struct Target {
    tcp: bool,
    /// host:port.
    address: String,
    compression: Compression,
    level: u32,
    max_reconnect: u32,
    reconnect_delay: Duration,
    host: String,
    /// The container's fields, as a JSON object's members (no braces).
    extra: String,
}

impl Target {
    pub fn describe(&self) -> String {
        format!(
            "{}://{}",
            if self.tcp { "tcp" } else { "udp" },
            self.address
        )
    }

    /// go-gelf's TCP writer tries `gelf-tcp-max-reconnect` new connections
    /// `gelf-tcp-reconnect-delay` seconds apart; over UDP one is made again.
    pub fn reconnects(&self) -> (u32, Duration) {
        if self.tcp {
            (self.max_reconnect, self.reconnect_delay)
        } else {
            (1, Duration::ZERO)
        }
    }
}

/// The options dockerd's gelf driver takes, and every driver's and the
/// cache's (checked apart).
const COMMON: &[&str] = &[
    "mode",
    "max-buffer-size",
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];

/// dockerd's parseAddress: `udp://host:port` or `tcp://host:port`.
fn address(a: Option<&String>) -> Result<(bool, String), String> {
    let a = a
        .filter(|a| !a.is_empty())
        .ok_or("gelf-address is a required parameter")?;
    let (scheme, rest) = a
        .split_once("://")
        .ok_or_else(|| format!("gelf-address should be in form proto://address, got {a}"))?;
    let tcp = match scheme {
        "udp" => false,
        "tcp" => true,
        _ => {
            return Err(format!(
                "gelf-address should be in form proto://address, got {a}"
            ));
        }
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((name, port)) = host
        .rsplit_once(':')
        .filter(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    else {
        return Err("gelf: please provide gelf-address as proto://host:port".into());
    };
    // No host is this one, as Go dials ":port".
    let name = if name.is_empty() { "127.0.0.1" } else { name };
    Ok((tcp, format!("{name}:{port}")))
}

/// Checks the options a container or daemon.json gives the driver, in
/// dockerd's words.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), String> {
    let (tcp, _) = address(opts.get("gelf-address"))?;
    for (k, v) in opts {
        match k.as_str() {
            "gelf-address" | "tag" | "labels" | "env" => {}
            "labels-regex" | "env-regex" => {
                regex::Regex::new(v).map_err(|e| format!("invalid log opt {k}: {e}"))?;
            }
            "gelf-compression-level" | "gelf-compression-type" if tcp => {
                return Err("compression is only supported on UDP".into());
            }
            "gelf-compression-level" => {
                v.parse::<i32>()
                    .ok()
                    .filter(|l| (-1..=9).contains(l))
                    .ok_or_else(|| {
                        format!("unknown value {v:?} for log opt {k:?} for gelf log driver")
                    })?;
            }
            "gelf-compression-type" => {
                if !matches!(v.as_str(), "gzip" | "zlib" | "none") {
                    return Err(format!(
                        "unknown value {v:?} for log opt {k:?} for gelf log driver"
                    ));
                }
            }
            "gelf-tcp-max-reconnect" | "gelf-tcp-reconnect-delay" if !tcp => {
                return Err(format!("{k:?} is only valid for TCP"));
            }
            "gelf-tcp-max-reconnect" | "gelf-tcp-reconnect-delay" => {
                v.parse::<u32>()
                    .map_err(|_| format!("{k:?} must be a positive integer"))?;
            }
            k if COMMON.contains(&k) => {}
            _ => return Err(format!("unknown log opt {k:?} for gelf log driver")),
        }
    }
    if let Some(t) = opts.get("tag") {
        super::journal::check_tag(t)?;
    }
    super::logship::cache(opts)?;
    Ok(())
}

/// Where the container's messages go, and the fields each carries.
pub fn target(c: &Container, opts: &BTreeMap<String, String>) -> Result<Target, String> {
    let (tcp, address) = address(opts.get("gelf-address"))?;
    let num = |k: &str, default: u32| opts.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let compression = match opts.get("gelf-compression-type").map(String::as_str) {
        Some("zlib") => Compression::Zlib,
        Some("none") => Compression::None,
        _ => Compression::Gzip,
    };
    // go-gelf's default level is flate's best speed; -1 is zlib's default.
    let level = match opts.get("gelf-compression-level").map(|v| v.parse::<i32>()) {
        Some(Ok(-1)) => 6,
        Some(Ok(l)) if (0..=9).contains(&l) => l as u32,
        _ => 1,
    };
    let image = c.image_id.clone();
    let mut extra = BTreeMap::from([
        ("_container_id".to_string(), c.id.clone()),
        ("_container_name".to_string(), c.name.clone()),
        ("_image_id".to_string(), image),
        ("_image_name".to_string(), c.config.image.clone()),
        (
            "_command".to_string(),
            std::iter::once(c.path.as_str())
                .chain(c.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("_tag".to_string(), super::journal::tag(c, opts)?),
        ("_created".to_string(), go_rfc3339_nano(c.created)),
    ]);
    extra.extend(super::journal::extra_attributes(c, opts, extra_key)?);
    let members = serde_json::to_string(&extra).map_err(|e| e.to_string())?;
    Ok(Target {
        tcp,
        address,
        compression,
        level,
        max_reconnect: num("gelf-tcp-max-reconnect", 3),
        reconnect_delay: Duration::from_secs(num("gelf-tcp-reconnect-delay", 1).into()),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        extra: members[1..members.len() - 1].to_string(),
    })
}

/// A label's or variable's field name: `_` before it unless it has one.
fn extra_key(k: &str) -> String {
    if k.starts_with('_') {
        k.to_string()
    } else {
        format!("_{k}")
    }
}

/// Go's RFC3339Nano: the fraction without its trailing zeros.
fn go_rfc3339_nano(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_nanos(t).to_string();
    match s.strip_suffix('Z').and_then(|s| s.split_once('.')) {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{frac}Z")
            }
        }
        None => s,
    }
}

/// Connects as go-gelf does (dockerd's start fails in these words when
/// nothing answers).
pub async fn dial(t: &Target) -> Result<Conn, String> {
    let proto = if t.tcp { "tcp" } else { "udp" };
    let failed = |e| {
        let why = super::logship::dial_error(proto, &t.address, &e);
        format!("gelf: cannot connect to GELF endpoint: {} {why}", t.address)
    };
    if t.tcp {
        return Ok(Conn::Tcp(
            TcpStream::connect(&t.address).await.map_err(failed)?,
        ));
    }
    let to = tokio::net::lookup_host(&t.address)
        .await
        .map_err(failed)?
        .next()
        .ok_or_else(|| {
            format!(
                "gelf: cannot connect to GELF endpoint: {}: no such host",
                t.address
            )
        })?;
    let any: std::net::SocketAddr = if to.is_ipv4() {
        ([0u8; 4], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = UdpSocket::bind(any).await.map_err(failed)?;
    s.connect(to).await.map_err(failed)?;
    Ok(Conn::Udp(s))
}

/// What is sent for a line: nothing for an empty one; over TCP the
/// message and a NUL; over UDP the message compressed as asked, in
/// chunks when it is larger than one (none when it needs more than 128).
pub fn messages(t: &Target, l: &Line) -> Vec<Vec<u8>> {
    let line = l.data.strip_suffix(b"\n").unwrap_or(&l.data);
    if line.is_empty() {
        return Vec::new();
    }
    let mut json = message(t, line, l.at, l.stderr).into_bytes();
    if t.tcp {
        json.push(0);
        return vec![json];
    }
    let packed = compress(t, &json);
    if packed.len() <= CHUNK {
        return vec![packed];
    }
    chunks(&packed, rand::random::<[u8; 8]>())
}

/// The GELF message of a line, written as Go's encoder writes it.
fn message(t: &Target, line: &[u8], at: SystemTime, stderr: bool) -> String {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    // In Go's order: version, host, short_message, timestamp, level, then
    // the container's fields (sorted).
    let mut out = String::with_capacity(line.len() + t.extra.len() + 96);
    out.push_str(&format!(
        "{{\"version\":\"1.1\",\"host\":{},\"short_message\":{}",
        serde_json::Value::String(t.host.clone()),
        serde_json::Value::String(String::from_utf8_lossy(line).into_owned())
    ));
    out.push_str(&format!(
        ",\"timestamp\":{},\"level\":{}",
        millis as f64 / 1000.0,
        if stderr { 3 } else { 6 }
    ));
    if !t.extra.is_empty() {
        out.push(',');
        out.push_str(&t.extra);
    }
    out.push('}');
    go_escape(&out)
}

/// What Go's JSON encoder escapes that serde_json leaves: `<`, `>`, `&`
/// (only ever inside strings in JSON text) and the two Unicode line
/// separators.
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn compress(t: &Target, json: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::new(t.level);
    let packed = match t.compression {
        Compression::None => return json.to_vec(),
        Compression::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), level);
            w.write_all(json).and_then(|()| w.finish())
        }
        Compression::Zlib => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), level);
            w.write_all(json).and_then(|()| w.finish())
        }
    };
    packed.unwrap_or_else(|_| json.to_vec())
}

/// GELF's chunks: 0x1e 0x0f, the message's id, the chunk's number and the
/// count, then its part.
fn chunks(packed: &[u8], id: [u8; 8]) -> Vec<Vec<u8>> {
    let parts: Vec<&[u8]> = packed.chunks(CHUNK - CHUNK_HEADER).collect();
    if parts.len() > MAX_CHUNKS {
        tracing::warn!(
            "gelf: a message of {} bytes needs more than {MAX_CHUNKS} chunks: dropped",
            packed.len()
        );
        return Vec::new();
    }
    let count = parts.len() as u8;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut c = Vec::with_capacity(CHUNK_HEADER + part.len());
            c.extend_from_slice(&[0x1e, 0x0f]);
            c.extend_from_slice(&id);
            c.push(i as u8);
            c.push(count);
            c.extend_from_slice(part);
            c
        })
        .collect()
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
    fn options_are_refused_in_dockerds_words() {
        let refused = |kv: &[(&str, &str)]| validate(&opts(kv)).unwrap_err();
        assert_eq!(refused(&[]), "gelf-address is a required parameter");
        assert_eq!(
            refused(&[("gelf-address", "http://x:1")]),
            "gelf-address should be in form proto://address, got http://x:1"
        );
        assert_eq!(
            refused(&[("gelf-address", "udp://x")]),
            "gelf: please provide gelf-address as proto://host:port"
        );
        let tcp = ("gelf-address", "tcp://127.0.0.1:1");
        let udp = ("gelf-address", "udp://127.0.0.1:1");
        assert_eq!(
            refused(&[tcp, ("gelf-compression-type", "gzip")]),
            "compression is only supported on UDP"
        );
        assert_eq!(
            refused(&[udp, ("gelf-compression-level", "11")]),
            r#"unknown value "11" for log opt "gelf-compression-level" for gelf log driver"#
        );
        assert_eq!(
            refused(&[udp, ("gelf-tcp-max-reconnect", "2")]),
            r#""gelf-tcp-max-reconnect" is only valid for TCP"#
        );
        assert_eq!(
            refused(&[tcp, ("gelf-tcp-max-reconnect", "-1")]),
            r#""gelf-tcp-max-reconnect" must be a positive integer"#
        );
        assert_eq!(
            refused(&[udp, ("bogus", "1")]),
            r#"unknown log opt "bogus" for gelf log driver"#
        );
        assert!(
            validate(&opts(&[
                udp,
                ("cache-disabled", "true"),
                ("tag", "{{.Name}}")
            ]))
            .is_ok()
        );
    }

    fn target(tcp: bool, compression: Compression) -> Target {
        Target {
            tcp,
            address: "127.0.0.1:1".into(),
            compression,
            level: 1,
            max_reconnect: 3,
            reconnect_delay: Duration::from_secs(1),
            host: "vm".into(),
            extra: r#""_container_name":"web","_tag":"abc""#.into(),
        }
    }

    #[test]
    fn a_message_is_written_as_dockerds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_645_688_642);
        let m = message(&target(false, Compression::None), b"a <b> & c", at, true);
        assert_eq!(
            m,
            r#"{"version":"1.1","host":"vm","short_message":"a \u003cb\u003e \u0026 c","timestamp":1796645688.642,"level":3,"_container_name":"web","_tag":"abc"}"#
        );
        let whole = UNIX_EPOCH + Duration::from_secs(1_796_645_688);
        let m = message(&target(false, Compression::None), b"x", whole, false);
        assert!(m.contains(r#""timestamp":1796645688,"level":6"#), "{m}");
        assert_eq!(
            go_rfc3339_nano(UNIX_EPOCH + Duration::from_nanos(1_796_645_688_738_352_470)),
            "2026-12-07T12:14:48.73835247Z"
        );
        assert_eq!(go_rfc3339_nano(whole), "2026-12-07T12:14:48Z");
    }

    fn line(data: &str) -> Line {
        Line {
            stderr: false,
            data: data.as_bytes().to_vec(),
            time: String::new(),
            at: SystemTime::now(),
            attrs: Vec::new(),
        }
    }

    #[test]
    fn udp_messages_are_compressed_and_chunked_tcp_ones_end_in_nul() {
        use std::io::Read;
        assert!(messages(&target(false, Compression::Gzip), &line("\n")).is_empty());
        let m = messages(&target(false, Compression::Gzip), &line("hi\n"));
        assert_eq!(m.len(), 1);
        let mut json = String::new();
        flate2::read::GzDecoder::new(&m[0][..])
            .read_to_string(&mut json)
            .unwrap();
        assert!(json.contains(r#""short_message":"hi""#), "{json}");
        let m = messages(&target(false, Compression::Zlib), &line("hi\n"));
        assert_eq!(m[0][0], 0x78, "a zlib stream");
        let m = messages(&target(true, Compression::Gzip), &line("hi\n"));
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with(b"{\"version\"") && m[0].ends_with(b"}\0"));
        // 3000 bytes uncompressed: three chunks of one id, numbered.
        let big = "a".repeat(3000);
        let m = messages(&target(false, Compression::None), &line(&big));
        assert_eq!(m.len(), 3);
        for (i, c) in m.iter().enumerate() {
            assert_eq!(&c[..2], &[0x1e, 0x0f]);
            assert_eq!(&c[2..10], &m[0][2..10]);
            assert_eq!((c[10], c[11]), (i as u8, 3));
            assert!(c.len() <= CHUNK);
        }
        let whole: Vec<u8> = m.iter().flat_map(|c| c[12..].to_vec()).collect();
        assert!(String::from_utf8(whole).unwrap().contains(&big));
    }
}
