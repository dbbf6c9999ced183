//! `-H` host addresses: unix:///path (tcp:// comes with the remote-access issue).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    Unix(PathBuf),
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
    if s.starts_with("tcp://") || s.starts_with("fd://") {
        return Err(format!("{s:?}: only unix:// hosts are supported so far"));
    }
    Err(format!("{s:?} is not a host address (unix:///path)"))
}
