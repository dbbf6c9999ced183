//! daemon.json (Docker's keys where they apply) merged with berthd's flags.
//! An unknown key or a value of the wrong type is an error that names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub path: String,
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

/// The default bridge's IPv6 subnet: `fixed-cidr-v6` when `ipv6` is
/// on (dockerd has no default IPv6 pool to take one from).
pub fn bridge_ipv6(ipv6: Option<bool>, cidr: Option<&str>) -> Result<Option<String>, String> {
    match (ipv6.unwrap_or(false), cidr) {
        (false, _) => Ok(None),
        (true, None) => Err(
            "ipv6 on the default bridge needs fixed-cidr-v6 (an IPv6 subnet such as fd00:1::/64)"
                .into(),
        ),
        (true, Some(c)) => {
            let net: ipnet::Ipv6Net = c
                .parse()
                .map_err(|_| format!("fixed-cidr-v6 {c:?} is not an IPv6 subnet"))?;
            if net.prefix_len() > 126 {
                return Err(format!("fixed-cidr-v6 {c} is too small"));
            }
            Ok(Some(net.trunc().to_string()))
        }
    }
}

/// The file's keys, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub debug: Option<bool>,
    pub log_level: Option<String>,
    pub live_restore: Option<bool>,
    pub default_runtime: Option<String>,
    pub runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    pub log_driver: Option<String>,
    pub log_opts: Option<BTreeMap<String, String>>,
    pub insecure_registries: Option<Vec<String>>,
    pub registry_mirrors: Option<Vec<String>>,
    pub group: Option<String>,
    pub containerd: Option<PathBuf>,
    pub bip: Option<String>,
    /// The default bridge's interface (Docker's `bridge`, `-b`).
    pub bridge: Option<String>,
    /// IPv6 on the default bridge, in the `fixed-cidr-v6` subnet.
    pub ipv6: Option<bool>,
    pub fixed_cidr_v6: Option<String>,
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub authorization: Option<crate::authz::Policy>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub default_address_pools: Option<Vec<serde_json::Value>>,
    pub cgroup_parent: Option<String>,
    pub default_ulimits: Option<BTreeMap<String, serde_json::Value>>,
    pub storage_driver: Option<String>,
    pub labels: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub shutdown_timeout: Option<u64>,
    /// The address `--add-host name:host-gateway` gives (dockerd's key;
    /// the default bridge's gateway without it).
    pub host_gateway_ip: Option<std::net::Ipv4Addr>,
    /// berth's: how long a client may take to send a request's headers,
    /// or between two pieces of its body, and how long an idle keep-alive
    /// connection is kept ("60s").
    pub api_idle_timeout: Option<String>,
    /// berth's: open API connections one caller (a uid, a certificate)
    /// may hold; root is not limited.
    pub api_connections_per_caller: Option<u32>,
    /// berth's: where legacy plugins' sockets and specs are looked for
    /// (Docker's three directories when not given).
    pub plugin_dirs: Option<Vec<PathBuf>>,
    /// Docker's authorization plugins, asked in order about every call.
    pub authorization_plugins: Option<Vec<String>>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub debug: bool,
    pub log_level: String,
    pub live_restore: bool,
    pub default_runtime: String,
    /// The log driver of containers created without one.
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub group: String,
    pub lifecycled: PathBuf,
    pub cgroup_parent: String,
    pub labels: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub shutdown_timeout: u64,
    pub host_gateway_ip: Option<std::net::Ipv4Addr>,
    /// The default bridge's name, when the operator gives one.
    pub bridge: Option<String>,
    pub bip: Option<String>,
    /// The default bridge's IPv6 subnet (daemon.json `ipv6` with
    /// `fixed-cidr-v6`); IPv4 only without.
    pub bip6: Option<String>,
    pub default_address_pools: Vec<serde_json::Value>,
    /// For tcp:// hosts: the server's files, and whether clients must show
    /// a certificate of the CA (None: plain TCP, allowed only by --tls=false).
    pub tls: Option<(crate::tls::TlsFiles, bool)>,
    pub authorization: crate::authz::Policy,
    pub api_idle_timeout: std::time::Duration,
    pub api_connections_per_caller: usize,
    pub plugin_dirs: Vec<PathBuf>,
    pub authorization_plugins: Vec<String>,
}

pub fn parse_file(path: &Path, text: &str) -> Result<File, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let mut f: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Invalid {
            path: path.to_path_buf(),
            message: if at.is_empty() || at == "." {
                inner.to_string()
            } else {
                format!("{at}: {inner}")
            },
        }
    })?;
    let bad = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if let Some(mirrors) = &mut f.registry_mirrors {
        for m in mirrors.iter_mut() {
            *m = mirror(m).map_err(bad)?;
        }
    }
    let driver = f.log_driver.as_deref().unwrap_or("json-file");
    // Any other name is a log driver plugin's, looked up at start.
    if crate::daemon::plugins::logging::DOCKER_ONLY.contains(&driver) {
        return Err(bad(format!(
            "log-driver {driver:?}: berth has the json-file, local, journald, syslog, gelf, fluentd and none drivers, and log driver plugins"
        )));
    }
    if driver == "journald" {
        crate::daemon::journal::validate(&f.log_opts.clone().unwrap_or_default())
            .map_err(|e| bad(format!("log-opts: {e}")))?;
    }
    if let Some(checked) =
        crate::daemon::logship::validate(driver, &f.log_opts.clone().unwrap_or_default())
    {
        checked.map_err(|e| bad(format!("log-opts: {e}")))?;
    }
    crate::daemon::logopts::check(driver, &f.log_opts.clone().unwrap_or_default())
        .map_err(|e| bad(format!("log-opts: {e}")))?;
    if let Some(l) = &f.log_level
        && !["debug", "info", "warn", "error", "fatal"].contains(&l.as_str())
    {
        return Err(bad(format!(
            "log-level {l:?}: use debug, info, warn, error or fatal"
        )));
    }
    if let Some(rt) = &f.default_runtime {
        let known = rt == "berth-runtime"
            || rt == "runc"
            || f.runtimes.as_ref().is_some_and(|r| r.contains_key(rt));
        if !known {
            return Err(bad(format!(
                "default-runtime {rt:?} is not a configured runtime"
            )));
        }
    }
    if let Some(a) = &f.authorization {
        a.validate().map_err(bad)?;
    }
    for h in f.hosts.iter().flatten() {
        crate::hosts::parse(h).map_err(|e| bad(format!("hosts: {e}")))?;
    }
    if let Some(t) = &f.api_idle_timeout {
        idle_timeout(t).map_err(bad)?;
    }
    if f.api_connections_per_caller == Some(0) {
        return Err(bad("api-connections-per-caller: at least 1".into()));
    }
    if let Some(p) = &f.cgroup_parent
        && p.split('/').any(|c| c == ".." || c == ".")
    {
        return Err(bad(format!(
            "cgroup-parent {p:?}: '.' and '..' are not allowed"
        )));
    }
    Ok(f)
}

/// A `registry-mirrors` entry as dockerd takes it: an http or https URL
/// of a host, written as `scheme://host/` (what `info` shows).
pub fn mirror(m: &str) -> Result<String, String> {
    let (scheme, rest) = m
        .split_once("://")
        .ok_or_else(|| format!("invalid mirror: unsupported scheme \"\" in {m:?}"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "invalid mirror: unsupported scheme {scheme:?} in {m:?}"
        ));
    }
    let (host, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "invalid mirror: path, query, or fragment at end of the URI {m:?}"
        ));
    }
    if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(format!("invalid mirror: {m:?} names no host"));
    }
    Ok(format!("{scheme}://{host}/"))
}

/// `api-idle-timeout`: a duration ("30s", "2m") of at least a second.
pub fn idle_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("api-idle-timeout {s:?}: {e}"))?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("api-idle-timeout {s:?}: at least 1s"));
    }
    Ok(d)
}

/// "10m", "1g", "512k", "4096" → bytes (Docker's units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('b') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 10m, 1g)"))?;
    if n < 0.0 {
        return Err(format!("{s:?} is negative"));
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let p = Path::new("/etc/berth/daemon.json");
        let e = parse_file(p, r#"{"data-root": "/x", "bogus": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse_file(p, r#"{"live-restore": "yes"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("live-restore"), "{e}");
        let e = parse_file(p, r#"{"log-opts": {"max-size": "ten"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("log-opts") && e.contains("'ten'"), "{e}");
        let e = parse_file(p, r#"{"log-driver": "local", "log-opts": {"tag": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown log opt 'tag' for log driver local"),
            "{e}"
        );
        parse_file(
            p,
            r#"{"log-driver": "local", "log-opts": {"max-size": "1m", "compress": "false"}}"#,
        )
        .unwrap();
        let f = parse_file(p, r#"{"log-opts": {"max-size": "10m", "max-file": "3"}, "insecure-registries": ["127.0.0.1:5000"]}"#).unwrap();
        assert_eq!(f.insecure_registries.unwrap(), vec!["127.0.0.1:5000"]);
        let e = parse_file(p, r#"{"host-gateway-ip": "gateway"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("host-gateway-ip"), "{e}");
        let f = parse_file(p, r#"{"host-gateway-ip": "10.0.0.1"}"#).unwrap();
        assert_eq!(f.host_gateway_ip, Some([10, 0, 0, 1].into()));
    }

    #[test]
    fn registry_mirrors_are_urls_of_hosts_as_dockerd_takes_them() {
        let p = Path::new("/etc/berth/daemon.json");
        let f = parse_file(
            p,
            r#"{"registry-mirrors": ["http://127.0.0.1:5000", "https://m.example:443/"]}"#,
        )
        .unwrap();
        assert_eq!(
            f.registry_mirrors.unwrap(),
            ["http://127.0.0.1:5000/", "https://m.example:443/"]
        );
        for (bad, why) in [
            ("127.0.0.1:5000", "unsupported scheme"),
            ("ftp://m.example", "unsupported scheme \"ftp\""),
            ("https://m.example/v2/", "path, query, or fragment"),
            ("https://m.example?x=1", "path, query, or fragment"),
            ("https://", "names no host"),
        ] {
            let json = format!(r#"{{"registry-mirrors": ["{bad}"]}}"#);
            let e = parse_file(p, &json).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn log_drivers_and_their_options_are_checked() {
        let p = Path::new("/etc/berth/daemon.json");
        parse_file(
            p,
            r#"{"log-driver": "journald", "log-opts": {"tag": "{{.Name}}"}}"#,
        )
        .unwrap();
        parse_file(p, r#"{"log-driver": "none"}"#).unwrap();
        // A plugin's name: looked up when berthd starts.
        parse_file(
            p,
            r#"{"log-driver": "loki", "log-opts": {"loki-url": "x"}}"#,
        )
        .unwrap();
        parse_file(
            p,
            r#"{"log-driver": "syslog", "log-opts": {"syslog-address": "udp://127.0.0.1:5514", "syslog-format": "rfc5424"}}"#,
        )
        .unwrap();
        let e = parse_file(
            p,
            r#"{"log-driver": "syslog", "log-opts": {"syslog-facility": "nope"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid syslog facility"), "{e}");
        let e = parse_file(p, r#"{"log-driver": "gelf"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gelf-address is a required parameter"), "{e}");
        let e = parse_file(p, r#"{"log-driver": "awslogs"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("syslog") && e.contains("journald"), "{e}");
        let e = parse_file(
            p,
            r#"{"log-driver": "journald", "log-opts": {"max-file": "3"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown log opt 'max-file' for journald"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("x").is_err());
    }
}
