//! Values from a create request that become lines of the container's
//! /etc/hostname, /etc/hosts and /etc/resolv.conf, or fields of the CNI
//! configuration: each checked for its own grammar (an address parses as
//! one, a name is a name), so that none can add a line or a field.

use crate::error::{ApiError, Result};
use crate::types::{Config, HostConfig};

fn bad(m: String) -> ApiError {
    ApiError::bad_request(m)
}

/// A host or domain name: dot-separated labels of letters, digits, `-`
/// and `_` (which container hostnames use), each starting with a letter or
/// digit.
fn is_domain(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|label| {
            label.len() <= 63
                && label
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

pub fn validate(config: &Config, hc: &HostConfig) -> Result<()> {
    let wd = &config.working_dir;
    if !wd.is_empty() && !wd.starts_with('/') {
        return Err(bad(format!(
            "the working directory '{wd}' is invalid, it needs to be an absolute path"
        )));
    }
    if wd.contains('\0') {
        return Err(bad("the working directory holds a NUL byte".to_string()));
    }
    if !hc.isolation.is_empty() && !hc.isolation.eq_ignore_ascii_case("default") {
        return Err(bad(format!(
            "Invalid isolation: {:?} - linux only supports 'default'",
            hc.isolation
        )));
    }
    // berth's layers are overlayfs on the host's file system, without the
    // project quotas a size would need: dockerd's answer on such a host.
    if hc
        .other
        .get("StorageOpt")
        .and_then(|o| o.as_object())
        .is_some_and(|o| !o.is_empty())
    {
        return Err(bad(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
                .to_string(),
        ));
    }
    // sethostname takes at most 64 bytes.
    if !config.hostname.is_empty() && !is_domain(&config.hostname, 64) {
        return Err(bad(format!("invalid hostname format: {}", config.hostname)));
    }
    if !config.domainname.is_empty() && !is_domain(&config.domainname, 255) {
        return Err(bad(format!(
            "invalid domainname format: {}",
            config.domainname
        )));
    }
    for h in &hc.extra_hosts {
        // name:ip (the ip may itself hold colons) or name=ip.
        let (name, ip) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| bad(format!("bad format for add-host: {h:?}")))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if !is_domain(name, 255) {
            return Err(bad(format!("invalid hostname in add-host: {h:?}")));
        }
        if ip != "host-gateway" && !is_ip(ip) {
            return Err(bad(format!("invalid IP address in add-host: {ip:?}")));
        }
    }
    for d in hc.dns.iter().flatten() {
        if !is_ip(d) {
            return Err(bad(format!("{d:?} is not an ip address")));
        }
    }
    for s in hc.dns_search.iter().flatten() {
        if s != "." && !is_domain(s.trim_end_matches('.'), 255) {
            return Err(bad(format!("{s:?} is not a valid domain")));
        }
    }
    for o in hc.dns_options.iter().flatten() {
        if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("invalid DNS option {o:?}")));
        }
    }
    for (port, bindings) in hc.port_bindings.iter().flatten() {
        validate_port(port)?;
        for b in bindings {
            if !b.host_ip.is_empty() && !is_ip(&b.host_ip) {
                return Err(bad(format!(
                    "invalid host IP {:?} for port {port}: not an address",
                    b.host_ip
                )));
            }
            if !b.host_port.is_empty() {
                let (lo, hi) = b
                    .host_port
                    .split_once('-')
                    .unwrap_or((&b.host_port, &b.host_port));
                // go-connections' ParsePortRange, as dockerd reads it.
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if lo <= hi => {}
                    _ => {
                        return Err(bad(format!(
                            "invalid port specification: {:?}",
                            b.host_port
                        )));
                    }
                }
            }
        }
    }
    for port in config.exposed_ports.keys() {
        validate_port(port)?;
    }
    Ok(())
}

/// `80`, `80/tcp`, `53/udp`, `9/sctp`.
fn validate_port(port: &str) -> Result<()> {
    let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    if num.parse::<u16>().is_err() {
        return Err(bad(format!("invalid port specification: {num:?}")));
    }
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad(format!(
            "invalid proto {proto:?} for port {port:?}: tcp, udp or sctp"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_adds_a_line() {
        let ok = |c: Config, hc: HostConfig| validate(&c, &hc).is_ok();
        assert!(ok(
            Config {
                hostname: "web-1.example".into(),
                ..Default::default()
            },
            HostConfig {
                extra_hosts: vec![
                    "db:10.0.0.2".into(),
                    "v6:::1".into(),
                    "gw:host-gateway".into()
                ]
                .into(),
                dns: Some(vec!["1.1.1.1".into()]),
                dns_search: Some(vec!["example.com".into()]),
                dns_options: Some(vec!["ndots:2".into()]),
                ..Default::default()
            }
        ));
        let hc = HostConfig::default;
        for bad in [
            HostConfig {
                extra_hosts: vec!["x:1.2.3.4\n6.6.6.6 registry".into()].into(),
                ..hc()
            },
            HostConfig {
                dns: Some(vec!["1.1.1.1\nnameserver 10.0.0.66".into()]),
                ..hc()
            },
            HostConfig {
                dns_search: Some(vec!["a b".into()]),
                ..hc()
            },
            HostConfig {
                dns_options: Some(vec!["x\noptions y".into()]),
                ..hc()
            },
            HostConfig {
                port_bindings: Some([("80/icmp".to_string(), vec![])].into()),
                ..hc()
            },
        ] {
            assert!(validate(&Config::default(), &bad).is_err(), "{bad:?}");
        }
        assert!(
            validate(
                &Config {
                    hostname: "a\nb".into(),
                    ..Default::default()
                },
                &hc()
            )
            .is_err()
        );
    }
}
