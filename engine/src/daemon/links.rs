//! Docker's legacy container links (`--link name:alias`). On the default
//! bridge the linked container's address, exposed ports and environment
//! reach the linking one as `ALIAS_*` variables and an /etc/hosts line; on
//! a user network a link is a name only the linking container resolves.
//! The variables are built as dockerd's links package builds them.

use super::Daemon;
use super::container::Container;
use crate::error::{ApiError, Result};

/// One link as a request writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The linked container's name (or id), no leading slash.
    pub name: String,
    pub alias: String,
}

/// `name`, `name:alias`, or the stored form `/name:/parent/alias`.
pub fn parse(spec: &str) -> Result<Link> {
    let (name, alias) = match spec.split_once(':') {
        Some((n, a)) => (n, a),
        None => (spec, spec),
    };
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() || spec.matches(':').count() > 1 {
        return Err(ApiError::bad_request(format!(
            "invalid link format: {spec:?}, it should be name:alias"
        )));
    }
    Ok(Link {
        name: name.to_string(),
        alias: alias.to_string(),
    })
}

/// How inspect shows a default-bridge link: `/web:/client/alias`.
pub fn stored(child: &str, parent: &str, alias: &str) -> String {
    format!("/{child}:/{parent}/{alias}")
}

/// An exposed port as `(number, proto)`; `None` for what is no port.
fn port(key: &str) -> Option<(u16, String)> {
    let (n, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((n.parse().ok()?, proto.to_ascii_lowercase()))
}

/// The variables a link gives the linking container, in dockerd's order:
/// the default (lowest) port, contiguous ranges, each port, the name, and
/// the linked container's own environment but HOME and PATH.
pub fn env(
    parent: &str,
    alias: &str,
    ip: &str,
    child_env: &[String],
    exposed: &[String],
) -> Vec<String> {
    let name = format!("/{parent}/{alias}");
    let prefix = alias.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed.iter().filter_map(|k| port(k)).collect();
    // By number; on the same number tcp first.
    ports.sort_by(|a, b| a.0.cmp(&b.0).then((a.1 != "tcp").cmp(&(b.1 != "tcp"))));
    ports.dedup();
    let mut out = Vec::new();
    if let Some((n, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{n}"));
    }
    let mut i = 0;
    while i < ports.len() {
        let j = next_contiguous(&ports, i);
        let (n, proto) = &ports[i];
        let up = proto.to_ascii_uppercase();
        if j > i + 1 {
            let (m, last) = &ports[j];
            let last_up = last.to_ascii_uppercase();
            out.push(format!("{prefix}_PORT_{n}_{up}_START={proto}://{ip}:{n}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_ADDR={ip}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_PROTO={proto}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_PORT_START={n}"));
            out.push(format!("{prefix}_PORT_{n}_{last_up}_END={last}://{ip}:{m}"));
            out.push(format!("{prefix}_PORT_{n}_{last_up}_PORT_END={m}"));
        }
        for (n, proto) in &ports[i..=j] {
            let up = proto.to_ascii_uppercase();
            out.push(format!("{prefix}_PORT_{n}_{up}={proto}://{ip}:{n}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_ADDR={ip}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_PORT={n}"));
            out.push(format!("{prefix}_PORT_{n}_{up}_PROTO={proto}"));
        }
        i = j + 1;
    }
    out.push(format!("{prefix}_NAME={name}"));
    for e in child_env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        out.push(format!("{prefix}_ENV_{k}={v}"));
    }
    out
}

/// The last index of the run starting at `i` whose numbers climb by at
/// most one per entry (dockerd counts a port on two protocols in it).
fn next_contiguous(ports: &[(u16, String)], i: usize) -> usize {
    let start = u32::from(ports[i].0);
    for (k, (n, _)) in ports.iter().enumerate().skip(i + 1) {
        // The k-th entry may be at most one above the one before it.
        if u32::from(*n) > start + (k - i) as u32 {
            return k - 1;
        }
    }
    ports.len() - 1
}

/// What a container's links give it when it starts.
#[derive(Default)]
pub struct Resolved {
    pub env: Vec<String>,
    /// `(address, names)` lines for /etc/hosts.
    pub hosts: Vec<(String, String)>,
}

impl Daemon {
    /// Checks and rewrites the links of a container being created: on the
    /// default bridge each linked container must exist and the link is
    /// stored as `/child:/parent/alias`; on a user network the links move
    /// to that network's endpoint, as dockerd keeps them.
    pub fn plan_links(
        &self,
        name: &str,
        hc: &mut crate::types::HostConfig,
        networking: &mut crate::types::NetworkingConfig,
    ) -> Result<()> {
        if hc.links.is_empty() {
            return Ok(());
        }
        let mode = hc.network_mode.as_str();
        if mode == "host" {
            return Err(ApiError::bad_request(
                "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
            ));
        }
        if mode.starts_with("container:") {
            return Err(ApiError::bad_request(
                "conflicting options: container type network can't be used with links. This would result in undefined behavior",
            ));
        }
        let links = std::mem::take(&mut hc.links);
        let network = super::netsetup::mode_network(mode);
        // `none` is no user network: its links name containers that must
        // exist, as dockerd checks them, though they give it nothing.
        if network != "bridge" && network != "none" {
            let ep = networking
                .endpoints_config
                .entry(mode.to_string())
                .or_default();
            for l in links {
                parse(&l)?;
                if !ep.links.contains(&l) {
                    ep.links.push(l);
                }
            }
            return Ok(());
        }
        for l in links {
            let link = parse(&l)?;
            // Not a 404: clients take that for a missing image.
            let child = self.find(&link.name).map_err(|_| {
                ApiError::bad_request(format!(
                    "could not get container for {}: No such container: {}",
                    link.name, link.name
                ))
            })?;
            let child_name = self.name_of(&child.id).unwrap_or(link.name);
            hc.links.push(stored(&child_name, name, &link.alias));
        }
        Ok(())
    }

    /// The environment and /etc/hosts lines of `c`'s links, as it starts.
    pub async fn resolve_links(&self, c: &Container) -> Result<Resolved> {
        let mut out = Resolved::default();
        // Without the default bridge there is no address to link by: the
        // links of a `none` container give it nothing, as in dockerd.
        let on_bridge = super::netsetup::mode_network(&c.host_config.network_mode) == "bridge";
        for l in c.host_config.links.iter().filter(|_| on_bridge) {
            let link = parse(l)?;
            let Ok(child) = self.find(&link.name) else {
                // Removed since: its link went with it.
                continue;
            };
            if child.id == c.id {
                continue;
            }
            let Some(cc) = lock_briefly(&child).await else {
                return Err(ApiError::conflict(format!(
                    "linked container {} is busy, try again",
                    link.name
                )));
            };
            if !cc.is_running() {
                return Err(ApiError::conflict(format!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    cc.name, c.name, link.alias
                )));
            }
            let Some(ip) = attachment_ip(&cc, "bridge") else {
                return Err(ApiError::conflict(format!(
                    "container {} not attached to default bridge network",
                    cc.id
                )));
            };
            let exposed: Vec<String> = cc.config.exposed_ports.keys().cloned().collect();
            out.env
                .extend(env(&c.name, &link.alias, &ip, &cc.config.env, &exposed));
            let mut names = format!("{} {}", link.alias, hostname(&cc));
            if link.alias != cc.name {
                names.push(' ');
                names.push_str(&cc.name);
            }
            out.hosts.push((ip, names));
        }
        // User networks: the alias names the linked container's address
        // on that network, for this container only.
        for (network, ep) in &c.networking.endpoints_config {
            let network = super::netsetup::mode_network(network);
            let Ok(n) = self.networks.get(network) else {
                continue;
            };
            for l in &ep.links {
                let Ok(link) = parse(l) else { continue };
                let Ok(child) = self.find(&link.name) else {
                    continue;
                };
                if child.id == c.id {
                    continue;
                }
                let Some(cc) = lock_briefly(&child).await else {
                    continue;
                };
                if let Some(ip) = attachment_ip(&cc, &n.name) {
                    out.hosts.push((ip, link.alias.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Records the aliases `c` links other containers by on its user
    /// networks, for the DNS records of those containers.
    pub fn note_links(&self, c: &Container) {
        let mut map = self.link_names.lock().unwrap_or_else(|e| e.into_inner());
        for (network, ep) in &c.networking.endpoints_config {
            let Ok(n) = self.networks.get(super::netsetup::mode_network(network)) else {
                continue;
            };
            for l in &ep.links {
                if let Ok(link) = parse(l) {
                    map.entry((n.id.clone(), link.name))
                        .or_default()
                        .insert((link.alias, c.id.clone()));
                }
            }
        }
    }

    /// The names others link `c` by on network `network_id`, each with
    /// the id of the container that links by it: the network's resolver
    /// answers a link's alias to its linking container only, as Docker's
    /// embedded DNS does (also through lookups that skip /etc/hosts).
    pub fn link_aliases(&self, network_id: &str, c: &Container) -> Vec<(String, String)> {
        let map = self.link_names.lock().unwrap_or_else(|e| e.into_inner());
        [c.name.as_str(), c.id.as_str(), c.short_id()]
            .iter()
            .filter_map(|k| map.get(&(network_id.to_string(), k.to_string())))
            .flatten()
            .cloned()
            .collect()
    }

    /// After `c` joined network `n` with links: the containers it links
    /// to there get the aliases in their DNS records.
    pub async fn register_link_targets(&self, c: &Container, n: &super::networks::Network) {
        let ep = c
            .networking
            .endpoints_config
            .iter()
            .find(|(k, _)| {
                self.networks
                    .get(super::netsetup::mode_network(k))
                    .is_ok_and(|x| x.id == n.id)
            })
            .map(|(_, ep)| ep.links.clone())
            .unwrap_or_default();
        for l in ep {
            let Ok(link) = parse(&l) else { continue };
            let Ok(target) = self.find(&link.name) else {
                continue;
            };
            if target.id == c.id {
                continue;
            }
            if let Some(t) = lock_briefly(&target).await {
                self.dns_reregister(&t, n);
            }
        }
    }

    /// Rewrites a running container's /etc files after its networks
    /// changed (its own address, and link names on the new network).
    pub async fn refresh_etc(&self, c: &Container) {
        let hosts = match self.resolve_links(c).await {
            Ok(r) => r.hosts,
            Err(_) => Vec::new(),
        };
        if let Err(e) = self.write_etc(c, false, &hosts) {
            tracing::warn!("{}: {}", c.id, e.message);
        }
    }

    /// `DELETE /containers/{/parent/alias}?link=1`: the parent forgets the
    /// link; the linked container is untouched.
    pub async fn remove_link(&self, link_name: &str) -> Result<()> {
        let full = if link_name.starts_with('/') {
            link_name.to_string()
        } else {
            format!("/{link_name}")
        };
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
        if parent.is_empty() {
            // A 500, as dockerd answers it.
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Conflict, cannot remove the default link name of the container",
            ));
        }
        let parent = parent.trim_start_matches('/');
        let missing = || ApiError::not_found(format!("No such container: {}", &full[1..]));
        let e = self.find(parent).map_err(|_| missing())?;
        let mut c = e.c.lock().await;
        let before = c.host_config.links.len();
        c.host_config
            .links
            .retain(|l| parse(l).map(|k| k.alias != alias).unwrap_or(true));
        if c.host_config.links.len() == before {
            return Err(missing());
        }
        c.save()
            .map_err(|err| ApiError::internal(format!("saving container {}: {err}", c.id)))?;
        Ok(())
    }

    /// The links inspect shows: those whose container still exists, under
    /// its current name.
    pub fn shown_links(&self, c: &Container) -> Vec<String> {
        c.host_config
            .links
            .iter()
            .filter_map(|l| {
                let link = parse(l).ok()?;
                let child = self.find(&link.name).ok()?;
                Some(stored(&self.name_of(&child.id)?, &c.name, &link.alias))
            })
            .collect()
    }
}

/// A linked container's record, unless it stays busy: its lock is held
/// while we hold ours, and two containers may link to each other.
pub(crate) async fn lock_briefly(
    e: &std::sync::Arc<super::Entry>,
) -> Option<super::record::Guard<'_>> {
    tokio::time::timeout(std::time::Duration::from_secs(2), e.c.lock())
        .await
        .ok()
}

fn hostname(c: &Container) -> String {
    if c.config.hostname.is_empty() {
        c.short_id().to_string()
    } else {
        c.config.hostname.clone()
    }
}

fn attachment_ip(c: &Container, network_name: &str) -> Option<String> {
    c.net
        .as_ref()?
        .attachments
        .iter()
        .find(|a| a.network_name == network_name)
        .map(|a| a.ip.clone())
        .filter(|ip| !ip.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_in_every_form_docker_writes() {
        let l = parse("web").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("web", "web"));
        let l = parse("web:db").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("web", "db"));
        let l = parse("/web:/client/db").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("web", "db"));
        assert!(parse(":x").is_err());
        assert!(parse("a:b:c").is_err());
    }

    #[test]
    fn variables_are_dockerds() {
        let exposed: Vec<String> = ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = env(
            "cl",
            "my-alias",
            "10.0.0.2",
            &["FOO=bar=baz".into(), "HOME=/x".into(), "PATH=/bin".into()],
            &exposed,
        );
        assert_eq!(env[0], "MY_ALIAS_PORT=udp://10.0.0.2:53");
        assert!(env.contains(&"MY_ALIAS_PORT_80_TCP=tcp://10.0.0.2:80".to_string()));
        assert!(env.contains(&"MY_ALIAS_PORT_8001_TCP_PROTO=tcp".to_string()));
        assert!(env.contains(&"MY_ALIAS_NAME=/cl/my-alias".to_string()));
        assert!(env.contains(&"MY_ALIAS_ENV_FOO=bar=baz".to_string()));
        assert!(
            !env.iter()
                .any(|e| e.contains("_ENV_HOME") || e.contains("_ENV_PATH"))
        );
        // Two contiguous ports are no range; 80 and 8000 are far apart.
        assert!(!env.iter().any(|e| e.contains("_START")));
    }

    #[test]
    fn a_run_of_three_ports_is_a_range_as_dockerd_counts_it() {
        let exposed: Vec<String> = ["7000/tcp", "7001/tcp", "7002/tcp", "7002/udp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = env("p", "r", "10.0.0.3", &[], &exposed);
        for want in [
            "R_PORT=tcp://10.0.0.3:7000",
            "R_PORT_7000_TCP_START=tcp://10.0.0.3:7000",
            "R_PORT_7000_TCP_PORT_START=7000",
            "R_PORT_7000_UDP_END=udp://10.0.0.3:7002",
            "R_PORT_7000_UDP_PORT_END=7002",
            "R_PORT_7002_UDP_ADDR=10.0.0.3",
        ] {
            assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
        }
    }
}
