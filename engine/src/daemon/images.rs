//! Docker's image names: normalisation (`busybox` →
//! `docker.io/library/busybox:latest`) and the familiar form shown back.

pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Parses and normalises a Docker image reference. Errors read like Docker's.
pub fn normalize(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err(
            "invalid reference format: repository name must have at least one component".into(),
        );
    }
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => {
            let ok = d
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                || d.strip_prefix("sha512:")
                    .is_some_and(|h| h.len() == 128 && h.chars().all(|c| c.is_ascii_hexdigit()));
            if !ok {
                return Err(format!("invalid reference format: bad digest {d:?}"));
            }
            (r, Some(d))
        }
        None => (name, None),
    };
    // A tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Err(format!("invalid reference format: bad tag {t:?}"));
        }
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    let first = parts[0];
    // As Docker splits a name: a first component with a dot, a port or a
    // capital (registry hosts may have them; repository paths may not) is
    // a registry; Docker Hub's old name is Docker Hub.
    let has_domain = parts.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    let domain = match has_domain.then(|| parts.remove(0)) {
        Some("index.docker.io") | None => DEFAULT_REGISTRY,
        Some(d) => d,
    };
    let domain_ok = domain.starts_with('[') // an IPv6 address
        || domain.split_once(':').map_or(domain, |(host, _)| host)
        .split('.')
        .all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && domain
            .split_once(':')
            .is_none_or(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
    if !domain_ok {
        return Err(format!("invalid reference format: {name:?}"));
    }
    if parts
        .iter()
        .any(|p| p.chars().any(|c| c.is_ascii_uppercase()))
    {
        return Err("invalid reference format: repository name must be lowercase".into());
    }
    if parts.is_empty()
        || parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                || p.starts_with(['.', '_', '-'])
                || p.ends_with(['.', '_', '-'])
        })
    {
        return Err(format!("invalid reference format: {name:?}"));
    }
    let mut path = parts.join("/");
    if domain == DEFAULT_REGISTRY && parts.len() == 1 {
        path = format!("library/{path}");
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

/// This machine's architecture as Go and OCI name it (`amd64`, `arm64`).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// The name as Docker shows it: `busybox:latest`, `user/app:1`, `host:5000/x:y`.
pub fn familiar(full: &str) -> String {
    if let Some(rest) = full.strip_prefix("docker.io/library/") {
        return rest.to_string();
    }
    if let Some(rest) = full.strip_prefix("docker.io/") {
        return rest.to_string();
    }
    full.to_string()
}

/// Repository without tag or digest.
pub fn repository(full: &str) -> &str {
    let no_digest = full.split('@').next().unwrap_or(full);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

/// A reference's repository as Docker shows it, without tag or digest
/// (`docker.io/library/busybox:1` → `busybox`); what is no reference
/// stays as it is.
pub fn strip_tag(name: &str) -> String {
    match normalize(name) {
        Ok(full) => familiar(repository(&full)),
        Err(_) => name.to_string(),
    }
}

/// The registry host of a normalised name.
pub fn registry(full: &str) -> &str {
    full.split('/').next().unwrap_or(DEFAULT_REGISTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("busybox:1.35").unwrap(),
            "docker.io/library/busybox:1.35"
        );
        assert_eq!(normalize("user/app").unwrap(), "docker.io/user/app:latest");
        assert_eq!(
            normalize("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/a/b:v1").unwrap(),
            "127.0.0.1:5000/a/b:v1"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&format!("busybox@{d}")).unwrap(),
            format!("docker.io/library/busybox@{d}")
        );
        // A registry host may have capitals, Docker Hub's old name is Docker
        // Hub; a repository path may not have capitals.
        assert_eq!(
            normalize("HOSTNAME.DOMAIN.COM:443/foo/bar").unwrap(),
            "HOSTNAME.DOMAIN.COM:443/foo/bar:latest"
        );
        assert_eq!(normalize("Host/foo").unwrap(), "Host/foo:latest");
        assert_eq!(
            normalize("index.docker.io/busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("index.docker.io/library/busybox:1").unwrap(),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            normalize("busybox:TAG").unwrap(),
            "docker.io/library/busybox:TAG"
        );
        assert_eq!(
            normalize("host.com/Foo").unwrap_err(),
            "invalid reference format: repository name must be lowercase"
        );
        for bad in [
            "",
            "Busybox",
            "a//b",
            "x:",
            "x@sha256:zz",
            "-a",
            "-index:5000/busybox",
            "host:port/x",
            "a_b.com/x",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stripped_tags() {
        assert_eq!(strip_tag("busybox:latest"), "busybox");
        assert_eq!(strip_tag("docker.io/library/busybox:1.36"), "busybox");
        assert_eq!(strip_tag("localhost:5000/app/x:y"), "localhost:5000/app/x");
        assert_eq!(strip_tag("busybox"), "busybox");
        assert_eq!(strip_tag("Not A Reference"), "Not A Reference");
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/u/a:1"), "u/a:1");
        assert_eq!(familiar("h:5000/x:y"), "h:5000/x:y");
        assert_eq!(repository("h:5000/x:y"), "h:5000/x");
        assert_eq!(
            repository("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
    }
}

/// An OS and architecture (and variant) as `--platform` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: String,
}

const OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
];
const ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// Parses `os[/arch[/variant]]` (or an os or architecture alone), as
/// containerd's platforms do, with their aliases (x86_64, aarch64, …). A
/// single word must be a known os or architecture; two or three words are
/// taken as given (lowercased, aliases resolved), so that a platform no
/// image has is a "does not match" later rather than a refusal here.
pub fn parse_platform(s: &str) -> Result<Platform, String> {
    let lower = s.to_ascii_lowercase();
    let arch_of = |a: &str| -> String {
        match a {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "i386" => "386",
            "armhf" | "armel" => "arm",
            a => a,
        }
        .to_string()
    };
    let parts: Vec<&str> = lower.split('/').collect();
    let component = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if let Some(p) = parts.iter().find(|p| !component(p)) {
        return Err(format!(
            "{p:?} is an invalid component of {s:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
        ));
    }
    let host_arch = || arch_of(std::env::consts::ARCH);
    let (os, arch, variant) = match parts.as_slice() {
        [one] if OSES.contains(one) => (one.to_string(), host_arch(), ""),
        [one] if ARCHES.contains(&arch_of(one).as_str()) => ("linux".to_string(), arch_of(one), ""),
        [_] => {
            return Err(format!(
                "{s:?}: unknown operating system or architecture: invalid argument"
            ));
        }
        [os, arch] => (os.to_string(), arch_of(arch), ""),
        [os, arch, variant] => (os.to_string(), arch_of(arch), *variant),
        _ => {
            return Err(format!(
                "{s:?}: cannot parse platform specifier: invalid argument"
            ));
        }
    };
    Ok(Platform {
        os,
        arch,
        variant: variant.to_string(),
    })
}

#[cfg(test)]
mod platform_tests {
    use super::*;

    #[test]
    fn platforms_parse_as_containerd_reads_them() {
        let p = |s| parse_platform(s).unwrap();
        assert_eq!(
            (p("linux/arm64").os, p("linux/arm64").arch),
            ("linux".into(), "arm64".into())
        );
        assert_eq!(p("linux/x86_64").arch, "amd64");
        assert_eq!(p("arm64").os, "linux");
        assert_eq!(p("linux/arm/v7").variant, "v7");
        assert_eq!(
            parse_platform("bogus").unwrap_err(),
            "\"bogus\": unknown operating system or architecture: invalid argument"
        );
        // Two or three words are taken as given (an image may not match).
        assert_eq!(p("linuxDifferentOS/amd64").os, "linuxdifferentos");
        assert_eq!(p("linux/amd64DifferentArch").arch, "amd64differentarch");
        assert_eq!(
            parse_platform("lin ux/amd64").unwrap_err(),
            r#""lin ux" is an invalid component of "lin ux/amd64": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument"#
        );
        assert!(parse_platform("linux/amd64/v1/x").is_err());
    }
}
