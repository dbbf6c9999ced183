//! `-H` host addresses: unix:///path and tcp://host:port.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    Unix(PathBuf),
    /// host:port, as given (names are resolved when binding).
    Tcp(String),
}

pub fn parse(s: &str) -> Result<Host, String> {
    if let Some(p) = s.strip_prefix("unix://") {
        if p.is_empty() || !p.starts_with('/') {
            return Err(format!("{s:?}: a unix host needs an absolute path"));
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(s)));
    }
    if let Some(a) = s.strip_prefix("tcp://") {
        let a = a.trim_end_matches('/');
        let (host, port) = match a.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, p),
            _ => (a, "2376"),
        };
        if port.parse::<u16>().is_err() {
            return Err(format!("{s:?}: invalid port {port:?}"));
        }
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        return Ok(Host::Tcp(format!("{host}:{port}")));
    }
    if s.starts_with("fd://") {
        return Err(format!("{s:?}: fd:// (socket activation) is not supported"));
    }
    Err(format!(
        "{s:?} is not a host address (unix:///path or tcp://host:port)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_dockerd_takes_them() {
        assert_eq!(
            parse("unix:///run/x.sock"),
            Ok(Host::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            parse("tcp://127.0.0.1:2376"),
            Ok(Host::Tcp("127.0.0.1:2376".into()))
        );
        assert_eq!(parse("tcp://:2375"), Ok(Host::Tcp("0.0.0.0:2375".into())));
        assert_eq!(
            parse("tcp://example.org"),
            Ok(Host::Tcp("example.org:2376".into()))
        );
        assert!(parse("tcp://h:port").is_err());
        assert!(parse("http://x").is_err());
    }
}
