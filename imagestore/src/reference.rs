//! Strict image references: `registry[:port]/path/name[:tag][@digest]`.
//!
//! The registry host is required: turning `busybox` into
//! `docker.io/library/busybox:latest` is Docker's convention and the engine's
//! business, so a reference that reaches this crate is already in full.

use std::fmt;

use oci_spec::image::Digest;

use crate::digest::parse_digest;
use crate::error::{Error, Result};

const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A parsed reference. Display gives it back in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `s` strictly, with an error that names the part that is wrong.
    ///
    /// ```
    /// let r = imagestore::Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
    /// assert_eq!(r.registry(), "127.0.0.1:5000");
    /// assert_eq!(r.repository(), "team/app");
    /// assert_eq!(r.tag(), Some("v1"));
    /// assert!(imagestore::Reference::parse("busybox").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |reason: String| Error::InvalidReference {
            reference: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("it contains the character {c:?}")));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = parse_digest(d).map_err(|e| bad(format!("digest: {e}")))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(format!("tag {t:?} {r}")))?;
        }
        let Some((registry, repository)) = name.split_once('/') else {
            return Err(bad(format!(
                "it has no registry host; write it in full, e.g. docker.io/library/{name}"
            )));
        };
        if !looks_like_host(registry) {
            return Err(bad(format!(
                "{registry:?} is not a registry host (a host has a '.' or a ':port', or is localhost); \
                 write the reference in full, e.g. docker.io/{name}"
            )));
        }
        validate_host(registry).map_err(|r| bad(format!("registry {registry:?} {r}")))?;
        if repository.is_empty() {
            return Err(bad("the repository name is empty".into()));
        }
        for comp in repository.split('/') {
            validate_component(comp)
                .map_err(|r| bad(format!("repository component {comp:?} {r}")))?;
        }
        if name.len() > NAME_MAX {
            return Err(bad(format!(
                "the name is {} characters, more than {NAME_MAX}",
                name.len()
            )));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    /// Whether the registry is this machine's own (`localhost`, 127.0.0.0/8,
    /// ::1, with or without a port): Docker and containerd reach those
    /// over plain HTTP unless told otherwise.
    pub fn on_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }

    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository as Docker shows it: Docker Hub's host left out, and
    /// its `library/` for an official image (`busybox`, `user/app`,
    /// `host:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.registry != "docker.io" {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// The whole reference as Docker shows it (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_ref());
        }
        s
    }

    /// The same repository with another digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with no tag or digest (for blob operations).
    pub(crate) fn repository_only(&self) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: None,
        }
    }

    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.to_string(),
            ),
            (None, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.to_string(),
            ),
            (Some(t), None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
            ),
            // Blob URLs only use registry and repository; the tag is unused.
            (None, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                "latest".to_string(),
            ),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn looks_like_host(s: &str) -> bool {
    s.contains('.') || s.contains(':') || s == "localhost"
}

pub(crate) fn validate_host(s: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // [IPv6]:port
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| "has an unclosed '['".to_string())?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("has {addr:?}, which is not an IPv6 address"));
        }
        match after {
            "" => return Ok(()),
            p => (
                "",
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| "has text after ']' that is not a port".to_string())?,
                ),
            ),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return Err(format!(
            "has port {p:?}, which is not a number from 0 to 65535"
        ));
    }
    if !host.is_empty() || !s.starts_with('[') {
        if host.is_empty() {
            return Err("has an empty host name".into());
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "has the label {label:?}: host labels are letters, digits and inner '-'"
                ));
            }
        }
    }
    Ok(())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("is empty (two '/' in a row or a trailing '/')".into());
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("has uppercase letters; repository names are lowercase".into());
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a lowercase letter or digit".into());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "has the separator {sep:?}; only '.', '_', '__' and '-' may join letters and digits"
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("is empty".into());
    }
    if t.len() > TAG_MAX {
        return Err(format!("is longer than {TAG_MAX} characters"));
    }
    let first = t.as_bytes()[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err("must start with a letter, a digit or '_'".into());
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!("has the character {c:?}"));
    }
    Ok(())
}

/// Whether a registry `host[:port]` is on loopback: `localhost`,
/// 127.0.0.0/8 or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_forms_leave_out_docker_hub() {
        let f = |s: &str| {
            let r = Reference::parse(s).unwrap();
            (r.familiar_name(), r.familiar())
        };
        assert_eq!(
            f("docker.io/library/busybox:latest"),
            ("busybox".into(), "busybox:latest".into())
        );
        assert_eq!(
            f("docker.io/team/app:1"),
            ("team/app".into(), "team/app:1".into())
        );
        assert_eq!(
            f("docker.io/library/a/b:1"),
            ("library/a/b".into(), "library/a/b:1".into())
        );
        assert_eq!(
            f("127.0.0.1:5000/library/x:y"),
            (
                "127.0.0.1:5000/library/x".into(),
                "127.0.0.1:5000/library/x:y".into()
            )
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            f(&format!("docker.io/library/busybox@{d}")).1,
            format!("busybox@{d}")
        );
    }

    #[test]
    fn full_references_parse() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r =
            Reference::parse(&format!("registry.example.com:5000/a/b-c/d__e:v1.0@{d}")).unwrap();
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.repository(), "a/b-c/d__e");
        assert_eq!(r.tag(), Some("v1.0"));
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(
            r.to_string(),
            format!("registry.example.com:5000/a/b-c/d__e:v1.0@{d}")
        );

        let r = Reference::parse("docker.io/library/busybox:latest").unwrap();
        assert_eq!(r.repository(), "library/busybox");
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!((r.tag(), r.digest()), (None, None));
        let r = Reference::parse("127.0.0.1:5000/x").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert!(Reference::parse("[::1]:5000/x:y").is_ok());
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("busybox", "no registry host"),
            ("library/busybox:latest", "not a registry host"),
            ("docker.io/Library/busybox", "lowercase"),
            ("docker.io/library/busybox:", "tag \"\" is empty"),
            ("docker.io/library/busybox:-x", "must start"),
            ("docker.io/library/busybox:a/b", "separator"),
            ("docker.io/library//busybox", "is empty"),
            ("docker.io/library/busy..box", "separator"),
            ("docker.io:99999/x", "port"),
            ("docker.io/x@sha256:abc", "digest"),
            ("docker.io/x@md5:abc", "digest"),
            ("docker.io/x y", "character"),
            ("exa_mple.com/x", "label"),
        ];
        for (input, want) in cases {
            let e = Reference::parse(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(e.contains(&format!("{input:?}")), "{input:?}: {e}");
        }
        let long = format!("example.com/{}", "a".repeat(300));
        assert!(
            Reference::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
    }
}
