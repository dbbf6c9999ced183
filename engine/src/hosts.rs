//! `-H` host addresses: unix:///path, tcp://host:port, and fd:// for the
//! sockets systemd passes (socket activation).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    Unix(PathBuf),
    /// host:port, as given (names are resolved when binding).
    Tcp(String),
    /// Sockets passed by systemd (the listen-fds protocol): all of them
    /// (`fd://`), or the one with this descriptor number (`fd://3`).
    Fd(Option<i32>),
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
    if let Some(n) = s.strip_prefix("fd://") {
        if n.is_empty() {
            return Ok(Host::Fd(None));
        }
        return match n.parse::<i32>() {
            Ok(fd) if fd >= 3 => Ok(Host::Fd(Some(fd))),
            _ => Err(format!(
                "{s:?}: fd:// takes the sockets systemd passes: fd:// for all, fd://3 for one"
            )),
        };
    }
    Err(format!(
        "{s:?} is not a host address (unix:///path or tcp://host:port)"
    ))
}

/// The listening sockets systemd passed to this process (the listen-fds
/// protocol, read by the sd-notify crate), by descriptor number. The
/// variables are removed so that nothing this process starts believes the
/// sockets are its own. Call once, before any thread starts.
pub fn activated_sockets() -> Vec<(i32, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    // SAFETY: called at start-up, before any other thread exists (the
    // function removes environment variables).
    match unsafe { sd_notify::listen_fds_and_unset_env() } {
        Ok(fds) => fds
            // SAFETY: systemd handed these descriptors to this process,
            // and each is owned once, here.
            .map(|fd| (fd, unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
            .collect(),
        Err(e) => {
            tracing::warn!("sockets passed by systemd: {e}");
            Vec::new()
        }
    }
}

/// Whether the sockets `-H fd://` and `fd://N` ask for were passed:
/// checked at start, before the daemon opens anything.
pub fn check_activated(
    hosts: &[Host],
    passed: &[(i32, std::os::fd::OwnedFd)],
) -> Result<(), String> {
    for h in hosts {
        match h {
            Host::Fd(None) if passed.is_empty() => {
                return Err("-H fd://: no sockets were passed to berthd (LISTEN_FDS/LISTEN_PID are not set for it; start it through berthd.socket)".into());
            }
            Host::Fd(Some(n)) if !passed.iter().any(|(fd, _)| fd == n) => {
                return Err(format!(
                    "-H fd://{n}: systemd passed no socket {n} to berthd (LISTEN_FDS)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Tells systemd the daemon is ready (READY=1) when it asked for it
/// through NOTIFY_SOCKET (Type=notify in berthd.service); nothing
/// otherwise.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("telling systemd we are ready: {e}");
    }
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
        assert_eq!(parse("fd://"), Ok(Host::Fd(None)));
        assert_eq!(parse("fd://4"), Ok(Host::Fd(Some(4))));
        assert!(parse("fd://x").is_err());
        assert!(parse("fd://1").is_err());
        assert!(parse("http://x").is_err());
    }
}
