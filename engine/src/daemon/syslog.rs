//! The syslog log driver, as Docker's (through Go's srslog): options
//! checked in dockerd's words; a message per line, empty ones left out,
//! priority the facility's with 6 for stdout and 3 for stderr, in the
//! format asked, ending in a newline, over a unix datagram or stream
//! socket, UDP, TCP or TLS. The lines are sent by the engine from the
//! container's log (see [`super::logship`]); a send that fails is tried
//! once more on a new connection, as srslog does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

use super::container::Container;
use super::logs::Line;
use super::logship::Conn;

/// Where a host's own syslog listens, as srslog looks for it.
const LOCAL: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// Where a container's lines go and how they are written.
#[derive(Debug, Clone)]
pub struct Target {
    /// "unixgram", "unix", "udp", "tcp"; "" for the host's syslog.
    network: String,
    /// A socket's path, or host:port.
    address: String,
    facility: u32,
    /// "", "rfc3164", "rfc5424" or "rfc5424micro".
    format: String,
    tag: String,
    hostname: String,
    /// For tcp+tls: the CA to trust (the host's bundle without one), the
    /// client's certificate and key, whether to check the server at all.
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_skip_verify: bool,
}

/// The options dockerd's syslog driver takes, and every driver's
/// (`mode`, `max-buffer-size`) and the cache's.
const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "syslog-address",
    "syslog-facility",
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "syslog-tls-skip-verify",
    "tag",
    "syslog-format",
    "mode",
    "max-buffer-size",
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];

/// Syslog's facilities by name, as Go's log/syslog numbers them.
const FACILITIES: &[(&str, u32)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Checks the options a container or daemon.json gives the driver.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in opts {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(format!("unknown log opt '{k}' for syslog log driver"));
        }
        if matches!(k.as_str(), "labels-regex" | "env-regex") {
            regex::Regex::new(v).map_err(|e| format!("invalid log opt {k}: {e}"))?;
        }
    }
    address(opts.get("syslog-address").map_or("", |a| a.as_str()))?;
    if let Some(v) = opts.get("syslog-tls-skip-verify") {
        super::logopts::go_parse_bool(v)
            .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax"))?;
    }
    facility(opts.get("syslog-facility").map_or("", |f| f.as_str()))?;
    format(opts.get("syslog-format").map_or("", |f| f.as_str()))?;
    if let Some(t) = opts.get("tag") {
        super::journal::check_tag(t)?;
    }
    super::logship::cache(opts)?;
    Ok(())
}

impl Target {
    pub fn describe(&self) -> String {
        format!("{} {}", self.network, self.address)
    }
}

/// Where the container's lines go.
pub fn target(c: &Container, opts: &BTreeMap<String, String>) -> Result<Target, String> {
    let (network, address) = address(opts.get("syslog-address").map_or("", |a| a.as_str()))?;
    Ok(Target {
        network,
        address,
        facility: facility(opts.get("syslog-facility").map_or("", |f| f.as_str()))?,
        format: format(opts.get("syslog-format").map_or("", |f| f.as_str()))?,
        tag: super::journal::tag(c, opts)?,
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        tls_ca: opts.get("syslog-tls-ca-cert").map(PathBuf::from),
        tls_cert: opts.get("syslog-tls-cert").map(PathBuf::from),
        tls_key: opts.get("syslog-tls-key").map(PathBuf::from),
        tls_skip_verify: opts
            .get("syslog-tls-skip-verify")
            .and_then(|v| super::logopts::go_parse_bool(v))
            .unwrap_or(false),
    })
}

/// dockerd's parseAddress: "" for the host's syslog, a unix or unixgram
/// socket that exists, or udp/tcp/tcp+tls to host[:514].
fn address(a: &str) -> Result<(String, String), String> {
    if a.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (scheme, rest) = a.split_once("://").ok_or_else(|| {
        format!(
            "unsupported scheme: '{}'",
            a.split(':').next().unwrap_or("")
        )
    })?;
    match scheme {
        "unix" | "unixgram" => {
            std::fs::metadata(rest).map_err(|e| format!("stat {rest}: {}", go_error(&e)))?;
            Ok((scheme.to_string(), rest.to_string()))
        }
        "udp" | "tcp" | "tcp+tls" => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = if has_port(host) {
                host.to_string()
            } else if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:514")
            } else {
                format!("{host}:514")
            };
            Ok((scheme.to_string(), host))
        }
        other => Err(format!("unsupported scheme: '{other}'")),
    }
}

/// Whether `host` ends in `:port` (an IPv6 address is in brackets).
fn has_port(host: &str) -> bool {
    let tail = match host.rfind(']') {
        Some(i) => &host[i + 1..],
        None if host.matches(':').count() == 1 => &host[host.find(':').unwrap_or(0)..],
        None => return false,
    };
    tail.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Go's text for the errors os.Stat gives.
fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// dockerd's parseFacility: a name, or a number 0..23; daemon by default.
fn facility(f: &str) -> Result<u32, String> {
    if f.is_empty() {
        return Ok(3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(name, _)| *name == f) {
        return Ok(*n);
    }
    f.parse::<u32>()
        .ok()
        .filter(|n| *n <= 23)
        .ok_or_else(|| "invalid syslog facility".to_string())
}

/// dockerd's parseLogFormat.
fn format(f: &str) -> Result<String, String> {
    match f {
        "" | "rfc3164" | "rfc5424" | "rfc5424micro" => Ok(f.to_string()),
        _ => Err("Invalid syslog format".into()),
    }
}

/// Connects to `t`, failing in Go's words (`dial tcp 127.0.0.1:1: connect:
/// connection refused`), as dockerd's start fails with them.
pub async fn dial(t: &Target) -> Result<Conn, String> {
    let failed = |e| super::logship::dial_error(&t.network, &t.address, &e);
    match t.network.as_str() {
        "" => local().await,
        "unixgram" => {
            let s = UnixDatagram::unbound().map_err(failed)?;
            s.connect(&t.address).map_err(failed)?;
            Ok(Conn::Datagram(s))
        }
        "unix" => Ok(Conn::Stream(
            UnixStream::connect(&t.address).await.map_err(failed)?,
        )),
        "udp" => {
            let to = tokio::net::lookup_host(&t.address)
                .await
                .map_err(failed)?
                .next()
                .ok_or_else(|| format!("dial udp {}: no such host", t.address))?;
            let any: std::net::SocketAddr = if to.is_ipv4() {
                ([0u8; 4], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let s = UdpSocket::bind(any).await.map_err(failed)?;
            s.connect(to).await.map_err(failed)?;
            Ok(Conn::Udp(s))
        }
        "tcp" => Ok(Conn::Tcp(
            TcpStream::connect(&t.address).await.map_err(failed)?,
        )),
        "tcp+tls" => {
            let cfg = tls_config(t)?;
            let host = t.address.rsplit_once(':').map_or("", |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("dial tcp+tls {}: {e}", t.address))?;
            let tcp = TcpStream::connect(&t.address).await.map_err(failed)?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("dial tcp+tls {}: {e}", t.address))?;
            Ok(Conn::Tls(Box::new(tls)))
        }
        other => Err(format!("unsupported scheme: '{other}'")),
    }
}

/// The host's bundle of trusted CAs (Debian's ca-certificates).
const HOST_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client side of tcp+tls, as Docker's tlsconfig.Client makes it.
fn tls_config(t: &Target) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let certs = |p: &Path| {
        CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if t.tls_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let ca = t.tls_ca.clone().unwrap_or_else(|| PathBuf::from(HOST_CAS));
        for c in certs(&ca)? {
            roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        builder.with_root_certificates(roots)
    };
    let cfg = match (&t.tls_cert, &t.tls_key) {
        (Some(cert), Some(key)) => {
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs(cert)?, key)
                .map_err(|e| format!("{}: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(std::sync::Arc::new(cfg))
}

/// `syslog-tls-skip-verify`: any server certificate is taken (its
/// signatures on the handshake are still checked).
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The host's syslog: a datagram socket, then a stream, at each place.
async fn local() -> Result<Conn, String> {
    for path in LOCAL {
        if let Ok(s) = UnixDatagram::unbound()
            && s.connect(path).is_ok()
        {
            return Ok(Conn::Datagram(s));
        }
        if let Ok(s) = UnixStream::connect(path).await {
            return Ok(Conn::Stream(s));
        }
    }
    Err("Unix syslog delivery error".into())
}

/// A line as the message dockerd sends for it, or None for an empty one.
pub fn message(t: &Target, pid: u32, l: &Line) -> Option<Vec<u8>> {
    let line = l.data.strip_suffix(b"\n").unwrap_or(&l.data);
    if line.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 96);
    header(
        &mut out,
        t,
        pid,
        if l.stderr { 3 } else { 6 },
        &Local::at(l.at),
    );
    out.extend_from_slice(line);
    out.push(b'\n');
    // RFC 5425's octet counting, where dockerd frames RFC 5424 over TLS.
    if t.network == "tcp+tls" && t.format.starts_with("rfc5424") {
        let mut framed = format!("{} ", out.len()).into_bytes();
        framed.extend_from_slice(&out);
        return Some(framed);
    }
    Some(out)
}

/// A message's header in the format asked, as dockerd writes each:
/// `""` `<PRI>Jan _2 15:04:05 TAG[PID]: `, `rfc3164` with the host's name
/// before the tag, `rfc5424` `<PRI>1 TIME HOST TAG PID TAG - ` (seconds;
/// microseconds for `rfc5424micro`), in the local zone.
fn header(out: &mut Vec<u8>, t: &Target, pid: u32, severity: u32, at: &Local) {
    use std::io::Write;
    let pri = (t.facility << 3) | severity;
    let (tag, host) = (&t.tag, &t.hostname);
    let _ = match t.format.as_str() {
        "rfc3164" => write!(out, "<{pri}>{} {host} {tag}[{pid}]: ", at.stamp()),
        "rfc5424" => write!(
            out,
            "<{pri}>1 {} {host} {tag} {pid} {tag} - ",
            at.rfc3339(false)
        ),
        "rfc5424micro" => write!(
            out,
            "<{pri}>1 {} {host} {tag} {pid} {tag} - ",
            at.rfc3339(true)
        ),
        _ => write!(out, "<{pri}>{} {tag}[{pid}]: ", at.stamp()),
    };
}

/// A time broken down in the local zone (libc's, as Go's time.Local).
struct Local {
    tm: libc::tm,
    micros: u32,
}

impl Local {
    fn at(t: SystemTime) -> Local {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as libc::time_t;
        // SAFETY: localtime_r fills the zeroed tm it is given from the
        // time it points at; both live across the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        unsafe { libc::localtime_r(&secs, &mut tm) };
        Local {
            tm,
            micros: since.subsec_micros(),
        }
    }

    /// Go's time.Stamp: `Jan _2 15:04:05`.
    fn stamp(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let tm = &self.tm;
        let month = MONTHS[tm.tm_mon.clamp(0, 11) as usize];
        format!(
            "{month} {:>2} {:02}:{:02}:{:02}",
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
        )
    }

    /// RFC 3339 with the zone's offset (`Z` for UTC), microseconds when asked.
    fn rfc3339(&self, micros: bool) -> String {
        let tm = &self.tm;
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        );
        if micros {
            s.push_str(&format!(".{:06}", self.micros));
        }
        match tm.tm_gmtoff {
            0 => s.push('Z'),
            off => {
                let sign = if off < 0 { '-' } else { '+' };
                let off = off.unsigned_abs();
                s.push_str(&format!("{sign}{:02}:{:02}", off / 3600, off % 3600 / 60));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::logship::{Remote, send_from, sent_mark};
    use std::io::Write;
    use std::time::Duration;

    fn target(network: &str, address: &str, format: &str) -> Target {
        Target {
            network: network.into(),
            address: address.into(),
            facility: 3,
            format: format.into(),
            tag: "web".into(),
            hostname: "host1".into(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_skip_verify: false,
        }
    }

    #[test]
    fn each_format_is_written_as_dockerd_writes_it() {
        // 2026-12-07 11:45:03.238936, in a zone given by hand.
        // SAFETY: a tm is plain data; zeroed is a valid one.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        (tm.tm_year, tm.tm_mon, tm.tm_mday) = (126, 11, 7);
        (tm.tm_hour, tm.tm_min, tm.tm_sec) = (11, 45, 3);
        let mut at = Local {
            tm,
            micros: 238_936,
        };
        let head = |f: &str, severity, at: &Local| {
            let mut out = Vec::new();
            header(&mut out, &target("udp", "x:1", f), 42, severity, at);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(head("", 6, &at), "<30>Dec  7 11:45:03 web[42]: ");
        assert_eq!(
            head("rfc3164", 3, &at),
            "<27>Dec  7 11:45:03 host1 web[42]: "
        );
        assert_eq!(
            head("rfc5424", 6, &at),
            "<30>1 2026-12-07T11:45:03Z host1 web 42 web - "
        );
        assert_eq!(
            head("rfc5424micro", 6, &at),
            "<30>1 2026-12-07T11:45:03.238936Z host1 web 42 web - "
        );
        at.tm.tm_gmtoff = 5 * 3600 + 30 * 60;
        assert!(head("rfc5424", 6, &at).contains("T11:45:03+05:30 "));
        at.tm.tm_gmtoff = -3600;
        assert!(head("rfc5424", 6, &at).contains("T11:45:03-01:00 "));
    }

    fn line(stderr: bool, data: &str) -> Line {
        Line {
            stderr,
            data: data.as_bytes().to_vec(),
            time: String::new(),
            at: SystemTime::now(),
            attrs: Vec::new(),
        }
    }

    #[test]
    fn a_line_is_a_message_and_an_empty_one_none() {
        let t = target("udp", "x:1", "rfc3164");
        let m = String::from_utf8(message(&t, 7, &line(true, "oops\n")).unwrap()).unwrap();
        assert!(
            m.starts_with("<27>") && m.ends_with(" host1 web[7]: oops\n"),
            "{m}"
        );
        let m = String::from_utf8(message(&t, 7, &line(false, "cut")).unwrap()).unwrap();
        assert!(m.starts_with("<30>") && m.ends_with("]: cut\n"), "{m}");
        assert!(message(&t, 7, &line(false, "\n")).is_none());
    }

    /// A json-file entry as the shim writes it.
    fn entry(stream: &str, text: &str, secs: u64) -> String {
        let at = UNIX_EPOCH + Duration::from_secs(secs);
        format!(
            "{}\n",
            serde_json::json!({"log": format!("{text}\n"), "stream": stream,
                "time": humantime::format_rfc3339_nanos(at).to_string()})
        )
    }

    #[tokio::test]
    async fn lines_of_one_time_are_counted_in_the_mark() {
        // One write of the container's, two lines of one time: the mark
        // says one of them went, the other goes now.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let t0 = 1_800_000_000;
        std::fs::write(
            &log,
            [
                entry("stdout", "a", t0),
                entry("stdout", "b", t0),
                entry("stdout", "c", t0 + 1),
            ]
            .concat(),
        )
        .unwrap();
        let mark = sent_mark(dir.path());
        let time = humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(t0));
        std::fs::write(&mark, format!("{time} 1")).unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let t = target("udp", &server.local_addr().unwrap().to_string(), "");
        let stopped = tokio::sync::watch::channel(false).1;
        send_from(log, mark.clone(), Remote::Syslog(t), None, stopped).await;
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert!(
            got[0].ends_with("]: b\n") && got[1].ends_with("]: c\n"),
            "{got:?}"
        );
        server.set_nonblocking(true).unwrap();
        assert!(server.recv(&mut buf).is_err(), "a sent again");
        let later = humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(t0 + 1));
        assert_eq!(
            std::fs::read_to_string(&mark).unwrap(),
            format!("{later} 1")
        );
    }

    #[tokio::test]
    async fn lines_are_sent_once_across_restarts_of_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let mark = sent_mark(dir.path());
        std::fs::write(
            &log,
            [
                entry("stdout", "one", 1_800_000_000),
                entry("stdout", "", 1_800_000_001),
                entry("stderr", "two", 1_800_000_002),
            ]
            .concat(),
        )
        .unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let t = target("udp", &server.local_addr().unwrap().to_string(), "rfc5424");
        let stopped = || tokio::sync::watch::channel(false).1;
        // No connection given (as after an engine restart): made at once.
        send_from(
            log.clone(),
            mark.clone(),
            Remote::Syslog(t.clone()),
            None,
            stopped(),
        )
        .await;
        let mut buf = [0u8; 512];
        let mut recv = || {
            let n = server.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        assert!(recv().ends_with(" web - one\n"));
        let two = recv();
        assert!(
            two.starts_with("<27>1 ") && two.ends_with(" web - two\n"),
            "{two}"
        );
        // Again from the mark: only what came after it.
        let more = entry("stdout", "three", 1_800_000_003);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(more.as_bytes())
            .unwrap();
        send_from(
            log.clone(),
            mark.clone(),
            Remote::Syslog(t),
            None,
            stopped(),
        )
        .await;
        assert!(recv().ends_with(" web - three\n"));
        server.set_nonblocking(true).unwrap();
        assert!(server.recv(&mut buf).is_err(), "nothing sent twice");
        assert!(
            std::fs::read_to_string(&mark)
                .unwrap()
                .starts_with("2027-01-15T08:00:03")
        );
    }

    #[tokio::test]
    async fn a_lost_stream_connection_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = target("unix", sock.to_str().unwrap(), "");
        let conn = dial(&t).await.unwrap();
        drop(listener.accept().unwrap());
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, entry("stdout", "again", 1_800_000_000)).unwrap();
        let stopped = tokio::sync::watch::channel(false).1;
        send_from(
            log,
            sent_mark(dir.path()),
            Remote::Syslog(t),
            Some(conn),
            stopped,
        )
        .await;
        let (mut second, _) = listener.accept().unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut second, &mut got).unwrap_or_default();
        assert!(got.ends_with("]: again\n"), "{got:?}");
    }

    #[tokio::test]
    async fn nothing_listening_is_said_in_gos_words() {
        let t = target("tcp", "127.0.0.1:1", "");
        let err = dial(&t).await.err().unwrap();
        assert_eq!(err, "dial tcp 127.0.0.1:1: connect: connection refused");
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_refused_in_dockerds_words() {
        let refused = |kv: &[(&str, &str)]| validate(&opts(kv)).unwrap_err();
        assert_eq!(
            refused(&[("max-size", "1m")]),
            "unknown log opt 'max-size' for syslog log driver"
        );
        assert_eq!(
            refused(&[("syslog-address", "http://x")]),
            "unsupported scheme: 'http'"
        );
        assert_eq!(
            refused(&[("syslog-address", "unix:///does/not/exist")]),
            "stat /does/not/exist: no such file or directory"
        );
        assert_eq!(
            refused(&[("syslog-facility", "24")]),
            "invalid syslog facility"
        );
        assert_eq!(
            refused(&[("syslog-facility", "nosuch")]),
            "invalid syslog facility"
        );
        assert_eq!(
            refused(&[("syslog-format", "json")]),
            "Invalid syslog format"
        );
        assert!(refused(&[("syslog-tls-skip-verify", "yes")]).contains("ParseBool"));
        assert_eq!(
            refused(&[("cache-disabled", "maybe")]),
            "invalid value for option cache-disabled: maybe"
        );
        assert!(
            validate(&opts(&[
                ("syslog-address", "udp://127.0.0.1"),
                ("syslog-facility", "local3"),
                ("syslog-format", "rfc5424micro"),
                ("tag", "{{.Name}}"),
                ("mode", "non-blocking"),
                ("cache-max-size", "1m"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn addresses_and_facilities_read_as_dockerd_reads_them() {
        let a = |s: &str| address(s).unwrap();
        assert_eq!(a(""), ("".into(), "".into()));
        assert_eq!(a("udp://10.0.0.1"), ("udp".into(), "10.0.0.1:514".into()));
        assert_eq!(a("tcp://h:601"), ("tcp".into(), "h:601".into()));
        assert_eq!(a("udp://[::1]"), ("udp".into(), "[::1]:514".into()));
        assert_eq!(a("udp://[::1]:55"), ("udp".into(), "[::1]:55".into()));
        assert_eq!(a("unixgram:///"), ("unixgram".into(), "/".into()));
        assert_eq!(facility("").unwrap(), 3);
        assert_eq!(facility("local7").unwrap(), 23);
        assert_eq!(facility("11").unwrap(), 11);
    }
}
