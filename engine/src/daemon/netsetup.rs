//! A container's place on its networks: its network namespace, one CNI
//! attachment per network (eth0, eth1…), published ports, DNS records.
//! Everything added is recorded in the container (the exact CNI list,
//! runtime config and result), so teardown after an engine restart deletes
//! exactly that; teardown is idempotent and runs on exit, stop, removal
//! and at boot for containers that ended while the engine was away.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Daemon;
use super::container::Container;
use super::networks::Network;
use super::plugins::network;
use crate::error::{ApiError, Result};
use crate::network::cni::{Target, ipv4_of, ipv6_of};
use crate::network::relay::Bound;
use crate::network::{dns, netns};
use crate::types::EndpointSettings;

/// How long a start waits for the DNS server to serve the container's
/// names (see [`dns::wait_served`]); past it, the start goes ahead.
const NAMES_SERVED_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
/// The wait where the server lately did not answer in time.
const NAMES_SERVED_BRIEFLY: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetState {
    pub netns: PathBuf,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    pub network_name: String,
    pub ifname: String,
    pub conflist: Value,
    pub runtime_config: Value,
    pub result: Value,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
    /// The IPv6 address on a dual-stack network.
    #[serde(default)]
    pub ip6: String,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: String,
    pub aliases: Vec<String>,
    /// The DNS names it was registered under (user networks only).
    #[serde(default)]
    pub dns: bool,
}

impl Attachment {
    /// Whether it is a bridge's interface (ports are published through
    /// it, the host has its gateway), not a macvlan or ipvlan link: the
    /// plugin its list starts with says.
    pub fn on_bridge(&self) -> bool {
        self.conflist["plugins"][0]["type"] == "bridge"
    }

    /// An attachment whose ADD is under way: enough to DEL it.
    fn pending(n: &Network, ifname: &str, conflist: &Value, rt: &Value) -> Attachment {
        Attachment {
            network_id: n.id.clone(),
            network_name: n.name.clone(),
            ifname: ifname.to_string(),
            conflist: conflist.clone(),
            runtime_config: rt.clone(),
            result: Value::Null,
            ip: String::new(),
            prefix: 0,
            gateway: String::new(),
            mac: String::new(),
            ip6: String::new(),
            prefix6: 0,
            gateway6: String::new(),
            aliases: Vec::new(),
            dns: false,
        }
    }
}

/// A network about to be joined: its interface and the plugins' input.
struct PlannedAttach {
    ifname: String,
    conflist: Value,
    rt: Value,
}

/// An IPv6 network's bridge, made before its first plugin run with
/// duplicate address detection off, so that the gateway address the
/// plugin gives it serves at once, as Docker's bridge driver adds it
/// without DAD. Made by the plugin, the address stayed tentative for
/// about two seconds and a new network's first containers could not
/// reach their gateway over IPv6. A bridge that exists already (an
/// earlier start made it) is left as it is.
async fn prepare_v6_bridge(n: &Network) {
    if !n.ipv6 || n.bridge.is_empty() || super::networks::link_exists(&n.bridge) {
        return;
    }
    let mut add = tokio::process::Command::new("ip");
    add.args(["link", "add", "name", &n.bridge]);
    if let Some(mtu) = n.mtu() {
        add.args(["mtu", &mtu.to_string()]);
    }
    add.args(["type", "bridge"]);
    match add.output().await {
        // Another start on the network made it first: its own settings.
        Ok(o) if !o.status.success() => return,
        Err(e) => {
            tracing::warn!("making bridge {} of network {}: {e}", n.bridge, n.name);
            return;
        }
        Ok(_) => {}
    }
    let knob = format!("/proc/sys/net/ipv6/conf/{}/accept_dad", n.bridge);
    if let Err(e) = std::fs::write(&knob, "0") {
        tracing::warn!("{knob}: {e}");
    }
}

/// Forgets an attachment whose ADD was undone.
fn drop_pending(c: &mut Container, ifname: &str) {
    if let Some(s) = c.net.as_mut() {
        s.attachments.retain(|a| a.ifname != ifname);
    }
    let _ = c.save();
}

/// Whether the container's network mode gives it networks of ours (none
/// when its config disables networking: dockerd then gives it only a
/// loopback, whatever the mode names).
pub fn uses_networks(c: &Container) -> bool {
    !c.config.network_disabled
        && !matches!(c.host_config.network_mode.as_str(), "host" | "none")
        && !c.host_config.network_mode.starts_with("container:")
}

/// The network a mode names: "", "default" and "bridge" are the default
/// bridge.
pub fn mode_network(mode: &str) -> &str {
    match mode {
        "" | "default" => "bridge",
        m => m,
    }
}

/// Whether `n` may give the address the endpoint asks for, as dockerd
/// judges it at connect and at start: not on the default bridge, and on
/// another network only if its subnet was given at create.
pub fn check_asked_address(n: &Network, ep: &EndpointSettings) -> Result<()> {
    let asked = |k: &str| {
        ep.ipam_config
            .as_ref()
            .and_then(|v| v[k].as_str())
            .is_some_and(|s| !s.is_empty())
    };
    let (v4, v6) = (asked("IPv4Address"), asked("IPv6Address"));
    if n.name == "bridge" && (v4 || v6) {
        return Err(ApiError::bad_request(
            "user specified IP address is supported on user defined networks only",
        ));
    }
    if v4 && !n.subnet_given {
        return Err(ApiError::bad_request(
            "user specified IP address is supported only when connecting to networks with user configured subnets",
        ));
    }
    Ok(())
}

/// What a caller asks of an endpoint, checked before anything is made:
/// aliases become DNS records, the address a CNI argument.
pub fn validate_endpoint(network: &str, ep: &EndpointSettings) -> Result<()> {
    for a in &ep.aliases {
        super::names::validate_alias(a).map_err(ApiError::bad_request)?;
    }
    if let Some(ip) = ep
        .ipam_config
        .as_ref()
        .and_then(|v| v["IPv4Address"].as_str())
        .filter(|s| !s.is_empty())
    {
        ip.parse::<std::net::Ipv4Addr>().map_err(|_| {
            ApiError::bad_request(format!("invalid IPv4 address {ip:?} on network {network}"))
        })?;
    }
    if let Some(mac) = endpoint_mac(ep) {
        validate_mac(mac)?;
    }
    for ll in link_local_ips(ep) {
        let ok = match ll.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.is_link_local(),
            Ok(std::net::IpAddr::V6(a)) => a.segments()[0] & 0xffc0 == 0xfe80,
            Err(_) => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "invalid link-local IP address: {ll}"
            )));
        }
    }
    if let Some(ip) = ep
        .ipam_config
        .as_ref()
        .and_then(|v| v["IPv6Address"].as_str())
        .filter(|s| !s.is_empty())
    {
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| {
            ApiError::bad_request(format!("invalid IPv6 address {ip:?} on network {network}"))
        })?;
    }
    Ok(())
}

/// `EndpointSettings.MacAddress`: the interface's address on this network
/// (dockerd applies it from API 1.44; older ones only kept it).
pub fn endpoint_mac(ep: &EndpointSettings) -> Option<&str> {
    ep.other
        .get("MacAddress")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
}

/// `IPAMConfig.LinkLocalIPs`: extra addresses of the interface.
fn link_local_ips(ep: &EndpointSettings) -> Vec<String> {
    ep.ipam_config
        .as_ref()
        .and_then(|v| v["LinkLocalIPs"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `--mac-address`: six hex pairs, as Docker's net.ParseMAC takes them.
pub fn validate_mac(mac: &str) -> Result<()> {
    if mac.is_empty() || crate::network::is_mac(mac) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("invalid MAC address: {mac}")))
    }
}

impl Daemon {
    /// What a network needs before a container joins it: the bridge of
    /// an IPv6 network, the network's firewall rules; for one on a host
    /// interface (macvlan, ipvlan), the parent berthd made for it, made
    /// again if it is gone (the plugin then names what is wrong).
    async fn prepare_network(&self, n: &Network) {
        if n.made_parent {
            let (driver, id, parent) = (n.driver.clone(), n.id.clone(), n.parent.clone());
            let remade = tokio::task::spawn_blocking(move || {
                crate::network::parent::remake(&driver, &id, &parent)
            })
            .await;
            if let Ok(Err(e)) = remade {
                tracing::warn!("network {}: {e}", n.name);
            }
        }
        if n.bridge.is_empty() {
            return;
        }
        prepare_v6_bridge(n).await;
        self.firewall
            .ensure_network(&n.bridge, &n.subnet, n.internal)
            .await;
    }

    fn netns_path(&self, c: &Container) -> PathBuf {
        self.cfg.exec_root.join("netns").join(&c.id)
    }

    pub(crate) fn ipam_dir(&self) -> PathBuf {
        self.cfg.exec_root.join("ipam")
    }

    /// The network a container names `key` by (its mode, or an endpoint's
    /// name): the one it joined under that name, else the one of that name
    /// now (before its first start, or after a connect while stopped).
    pub fn network_of(&self, c: &Container, key: &str) -> Result<Network> {
        match c.joined.get(key) {
            Some(id) => self.networks.get(id),
            None => self.networks.get(key),
        }
    }

    /// The networks a container is on, in order: its mode's, then those it
    /// was connected to.
    pub fn container_networks(&self, c: &Container) -> Result<Vec<(Network, EndpointSettings)>> {
        if !uses_networks(c) {
            return Ok(Vec::new());
        }
        let first = mode_network(&c.host_config.network_mode);
        let mut out = Vec::new();
        let n = self.network_of(c, first)?;
        // Clients name the mode's network as the mode says ("default").
        let ep = c
            .networking
            .endpoints_config
            .iter()
            .find(|(k, _)| mode_network(k) == first || **k == n.name)
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        if !c.mode_detached {
            out.push((n, ep));
        }
        for (name, ep) in &c.networking.endpoints_config {
            let name = mode_network(name);
            if name == first {
                continue;
            }
            let n = self.network_of(c, name)?;
            if !out.iter().any(|(o, _)| o.id == n.id) {
                out.push((n, ep.clone()));
            }
        }
        Ok(out)
    }

    /// Before the task is made: the network namespace its spec names
    /// (`c.net` set; no namespace without CNI or with a network mode that
    /// makes none). On failure nothing stays set up. The networks join
    /// with [`Daemon::net_attach_all`].
    pub async fn net_prepare(&self, c: &mut Container) -> Result<()> {
        if !uses_networks(c) {
            return Ok(());
        }
        // Leftovers of an earlier run (a crash before teardown) go first.
        self.net_down(c).await;
        if !self.cni.available() {
            tracing::warn!(
                "no CNI plugins found: container {} gets an unconnected network namespace",
                c.id
            );
            return Ok(());
        }
        let path = self.netns_path(c);
        // Not saved yet: a namespace whose engine died before the first
        // attachment was written ahead is one no record owns, and goes at
        // the next start (recover).
        c.net = Some(NetState {
            netns: path.clone(),
            attachments: Vec::new(),
        });
        let made = path.clone();
        let created = tokio::task::spawn_blocking(move || netns::create_for_ipv4_interfaces(&made))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
            .and_then(|r| r.map_err(|e| ApiError::internal(e.to_string())));
        if let Err(e) = created {
            self.net_down(c).await;
            return Err(e);
        }
        Ok(())
    }

    /// Every network of the container, in the namespace
    /// [`Daemon::net_prepare`] made (with its loopback up); the plugins of
    /// all of them at once
    /// (as containerd's go-cni attaches networks): they touch different
    /// interfaces, and a container on two networks waited for one plugin
    /// chain after the other. Then its names served (see
    /// [`Daemon::await_names`]).
    pub async fn net_attach_all(&self, c: &mut Container) -> Result<()> {
        let attached = self.attach_all_networks(c).await;
        self.release_addresses(&c.id);
        attached
    }

    async fn attach_all_networks(&self, c: &mut Container) -> Result<()> {
        let netns = c.net.as_ref().map(|n| n.netns.clone()).unwrap_or_default();
        let networks = self.container_networks(c)?;
        // Ports are published through the first network's interface, and
        // only a bridge publishes them: dockerd's macvlan and ipvlan
        // ignore them.
        let ports = match networks.first() {
            Some((n, _)) if n.is_parented() || n.is_remote() => {
                c.published = Default::default();
                json!([])
            }
            _ => self.port_mappings(c)?,
        };
        let mut planned = Vec::new();
        for (n, ep) in networks {
            match self.plan_attach(c, &n, &ep, &ports).await {
                Ok(Some(p)) => planned.push((n, ep, p)),
                Ok(None) => {}
                Err(e) => {
                    for (_, _, p) in &planned {
                        self.abandon(c, p).await;
                    }
                    return Err(e);
                }
            }
        }
        if let Some((n, _, _)) = planned
            .iter()
            .find(|(n, _, _)| self.networks.is_leaving(&n.id))
        {
            for (_, _, p) in &planned {
                self.abandon(c, p).await;
            }
            return Err(ApiError::not_found(format!("network {} not found", n.name)));
        }
        for (n, _, _) in &planned {
            self.prepare_network(n).await;
        }
        let _ = c.save();
        berth_fault::point("berthd:net.before-cni-add");
        let id = c.id.clone();
        let results = futures::future::join_all(planned.iter().map(|(_, _, p)| {
            let target = Target {
                args: "",
                container_id: &id,
                netns: &netns,
                ifname: &p.ifname,
            };
            async move { self.plugins_add(&p.conflist, &target, &p.rt).await }
        }))
        .await;
        berth_fault::point("berthd:net.after-cni-add");
        let mut first: Option<ApiError> = None;
        for ((n, ep, p), added) in planned.into_iter().zip(results) {
            let finished = match added {
                Ok(result) if first.is_none() => self.finish_attach(c, &n, &ep, p, result).await,
                Ok(result) => {
                    // Another network failed: this one is undone as well
                    // (the failed start's teardown DELs what the record holds).
                    self.record_added(c, p, result);
                    Ok(())
                }
                Err(e) => {
                    self.undo_add(c, &p, None).await;
                    Err(attach_error(c, &n, &p, e))
                }
            };
            if let Err(e) = finished {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        self.serve_relays(c, &ports);
        let asked = std::time::Instant::now();
        self.await_names(c).await;
        tracing::debug!(
            "{}: names served {:.1} ms after the plugins ended",
            c.id,
            asked.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    }

    /// The container's ports published on every host address relayed from
    /// the host's IPv6 ones to its first interface's address (bound by
    /// [`Daemon::port_mappings`]).
    fn serve_relays(&self, c: &Container, ports: &Value) {
        let Some(target) = self.relay_target(c) else {
            self.relays.stop(&c.id);
            return;
        };
        let mut to = std::collections::HashMap::new();
        for m in ports.as_array().into_iter().flatten() {
            let everywhere = matches!(m["hostIP"].as_str(), None | Some("") | Some("0.0.0.0"));
            let host = m["hostPort"].as_u64().and_then(|p| u16::try_from(p).ok());
            let inside = m["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok());
            let proto = m["protocol"].as_str().unwrap_or("tcp").to_string();
            if let (true, Some(host), Some(inside)) = (everywhere, host, inside) {
                to.insert((proto, host), inside);
            }
        }
        self.relays.serve(&c.id, target, &to);
    }

    /// Where the relays send: the address of the interface ports are
    /// published on.
    fn relay_target(&self, c: &Container) -> Option<std::net::IpAddr> {
        c.net
            .as_ref()?
            .attachments
            .iter()
            .find(|a| a.ifname == "eth0")?
            .ip
            .parse()
            .ok()
    }

    /// After an engine restart: a running container's ports on the host's
    /// IPv6 addresses bound and relayed again (they went with the last
    /// engine, as docker-proxy goes with dockerd).
    pub fn resume_relays(&self, c: &Container) {
        if self.relays.serving(&c.id) || c.net.is_none() {
            return;
        }
        let mut to = std::collections::HashMap::new();
        for (p, bs) in &c.published {
            let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let Ok(inside) = num.parse::<u16>() else {
                continue;
            };
            for b in bs.iter().filter(|b| b.host_ip == "::") {
                let Ok(host) = b.host_port.parse::<u16>() else {
                    continue;
                };
                match Bound::at(host, proto) {
                    Ok(Some(bound)) => {
                        self.relays.hold(&c.id, bound);
                        to.insert((proto.to_string(), host), inside);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        "container {}: publishing [::]:{host}/{proto} again: {e}",
                        c.id
                    ),
                }
            }
        }
        if let Some(target) = self.relay_target(c) {
            self.relays.serve(&c.id, target, &to);
        }
    }

    /// The container's names served on every network that resolves them
    /// before its processes ask (see [`dns::wait_served`]).
    async fn await_names(&self, c: &Container) {
        let Some(state) = &c.net else { return };
        let askers: Vec<dns::Asker> = state
            .attachments
            .iter()
            .filter(|a| a.dns)
            .filter_map(|a| {
                Some(dns::Asker {
                    own: a.ip.parse().ok()?,
                    gateway: a.gateway.parse().ok().filter(|_| a.on_bridge()),
                })
            })
            .collect();
        if askers.is_empty() {
            return;
        }
        // A server that did not answer there lately (another one holds
        // port 53?) costs each start little.
        let inside = self.dns.serves_inside();
        let limit = if self.dns.recently_unserved(&askers, inside) {
            NAMES_SERVED_BRIEFLY
        } else {
            NAMES_SERVED_WITHIN
        };
        let (netns, name) = (state.netns.clone(), c.short_id().to_string());
        let unserved = tokio::task::spawn_blocking(move || {
            dns::wait_served(&netns, &name, &askers, inside, limit)
        })
        .await
        .unwrap_or_default();
        if !unserved.is_empty() {
            self.dns.note_unserved(&unserved);
            tracing::warn!(
                "the DNS server did not answer container {} on {unserved:?} within {limit:?}: its peers' names may not resolve at first",
                c.id
            );
        }
    }

    /// Joins one more network (start, or `network connect` while running).
    pub async fn net_attach(
        &self,
        c: &mut Container,
        n: &Network,
        ep: &EndpointSettings,
        ports: &Value,
    ) -> Result<()> {
        let attached = self.attach_network(c, n, ep, ports).await;
        self.release_addresses(&c.id);
        attached
    }

    async fn attach_network(
        &self,
        c: &mut Container,
        n: &Network,
        ep: &EndpointSettings,
        ports: &Value,
    ) -> Result<()> {
        let Some(p) = self.plan_attach(c, n, ep, ports).await? else {
            return Ok(());
        };
        if self.networks.is_leaving(&n.id) {
            self.abandon(c, &p).await;
            return Err(ApiError::not_found(format!("network {} not found", n.name)));
        }
        self.prepare_network(n).await;
        let _ = c.save();
        berth_fault::point("berthd:net.before-cni-add");
        let netns = c.net.as_ref().map(|s| s.netns.clone()).unwrap_or_default();
        let target = Target {
            args: "",
            container_id: &c.id,
            netns: &netns,
            ifname: &p.ifname,
        };
        let added = self.plugins_add(&p.conflist, &target, &p.rt).await;
        berth_fault::point("berthd:net.after-cni-add");
        match added {
            Ok(result) => {
                self.finish_attach(c, n, ep, p, result).await?;
                self.await_names(c).await;
                Ok(())
            }
            Err(e) => {
                self.undo_add(c, &p, None).await;
                Err(attach_error(c, n, &p, e))
            }
        }
    }

    /// What joining `n` takes: the endpoint checked, the interface named,
    /// the plugins' config, and a pending attachment in the record (not
    /// saved: the caller saves before any plugin runs), so that what an
    /// ADD cut short by the engine's death made (address lease, veth,
    /// port rules) is found in the record and deleted when the engine
    /// comes back. None without a network namespace.
    async fn plan_attach(
        &self,
        c: &mut Container,
        n: &Network,
        ep: &EndpointSettings,
        ports: &Value,
    ) -> Result<Option<PlannedAttach>> {
        let Some(state) = c.net.as_ref() else {
            return Ok(None);
        };
        if n.driver != "bridge" && !n.is_parented() && !n.is_remote() {
            return Err(ApiError::bad_request(format!(
                "container cannot be connected to network {} (driver {})",
                n.name, n.driver
            )));
        }
        let ifname = format!("eth{}", state.attachments.len());
        check_asked_address(n, ep)?;
        let outside = |ip: &str| {
            ApiError::internal(format!(
                "Invalid address {ip}: It does not belong to any of this network's subnets"
            ))
        };
        let ip = ep
            .ipam_config
            .as_ref()
            .and_then(|v| v["IPv4Address"].as_str())
            .filter(|s| !s.is_empty())
            .map(String::from);
        if let Some(ip) = &ip {
            let addr: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {ip}")))?;
            let subnet: ipnet::Ipv4Net = n
                .subnet
                .parse()
                .map_err(|_| ApiError::internal(format!("network {} has no subnet", n.name)))?;
            if !subnet.contains(&addr) {
                return Err(outside(ip));
            }
            // An auxiliary address is the network's, never a container's.
            if n.aux_addresses
                .values()
                .any(|a| a.parse::<std::net::Ipv4Addr>() == Ok(addr))
            {
                return Err(ApiError::forbidden("Address already in use"));
            }
        }
        let ip6 = ep
            .ipam_config
            .as_ref()
            .and_then(|v| v["IPv6Address"].as_str())
            .filter(|s| !s.is_empty())
            .map(String::from);
        // On a network without EnableIPv6 the address is kept in the
        // endpoint's config and not given, as dockerd does.
        let ip6 = ip6.filter(|_| n.ipv6);
        if let Some(ip6) = &ip6 {
            let addr: std::net::Ipv6Addr = ip6
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv6 address: {ip6}")))?;
            let inside = n
                .subnet6
                .parse::<ipnet::Ipv6Net>()
                .is_ok_and(|s| s.contains(&addr));
            if !inside {
                return Err(outside(ip6));
            }
        }
        // None asked: the lowest free one, as dockerd's allocator gives
        // them (the plugin's own pick goes round the range), leased by the
        // plugin as an asked one is.
        let (ip, ip6) = if n.ipam_driver.is_empty() {
            (
                ip.or_else(|| self.pick_address(c, n, false)),
                ip6.or_else(|| self.pick_address(c, n, true)),
            )
        } else {
            self.plugin_addresses(n, ip, ip6).await?
        };
        // The endpoint's own address first; the container's `--mac-address`
        // is its first interface's.
        // Else, as dockerd, one made of its IPv4 address: an address given
        // again to the next container comes with the same MAC, so its peers'
        // ARP caches stay right.
        // A plugin's network keeps the MAC its interface has (or the
        // plugin gives), as dockerd's remote driver does.
        let mac = endpoint_mac(ep)
            .map(String::from)
            .or_else(|| {
                (!c.config.mac_address.is_empty() && state.attachments.is_empty())
                    .then(|| c.config.mac_address.clone())
            })
            .or_else(|| {
                (!n.is_remote())
                    .then(|| ip.as_deref()?.parse().ok().map(mac_of))
                    .flatten()
            });
        let publish = ifname == "eth0"
            && !n.is_parented()
            && !n.is_remote()
            && ports.as_array().is_some_and(|p| !p.is_empty());
        let conflist = if n.is_remote() {
            network::remote_conflist(n)
        } else {
            n.conflist(
                &self.ipam_dir(),
                ip.as_deref(),
                ip6.as_deref(),
                mac.as_deref(),
                publish,
            )
        };
        let mut rt = json!({});
        if n.is_remote() {
            // The endpoint's id is on the record before the plugin hears
            // of it: an engine that dies mid-way deletes it when back.
            rt["endpointID"] = json!(network::new_endpoint_id());
            rt["gateway"] = json!(ifname == "eth0" && !n.internal);
            rt["options"] = network::port_options(c);
        }
        if publish {
            rt["portMappings"] = ports.clone();
        }
        let mut fixed = Vec::new();
        if let Some(ip) = &ip {
            fixed.push(format!(
                "{ip}/{}",
                n.subnet.split('/').nth(1).unwrap_or("32")
            ));
        }
        if let Some(ip6) = &ip6 {
            fixed.push(format!(
                "{ip6}/{}",
                n.subnet6.split('/').nth(1).unwrap_or("128")
            ));
        }
        if !fixed.is_empty() {
            rt["ips"] = json!(fixed);
        }
        if let Some(mac) = &mac {
            rt["mac"] = json!(mac);
        }
        if let Some(s) = c.net.as_mut() {
            s.attachments
                .push(Attachment::pending(n, &ifname, &conflist, &rt));
        }
        Ok(Some(PlannedAttach {
            ifname,
            conflist,
            rt,
        }))
    }

    /// A container's addresses on `n` from its IPAM plugin (those asked,
    /// or the plugin's picks); the first given back if the second fails.
    async fn plugin_addresses(
        &self,
        n: &Network,
        ip: Option<String>,
        ip6: Option<String>,
    ) -> Result<(Option<String>, Option<String>)> {
        let v4 = self.ipam_request_address(n, ip.as_deref(), false).await?;
        if !n.ipv6 || n.pool_id6.is_empty() {
            return Ok((Some(v4), None));
        }
        match self.ipam_request_address(n, ip6.as_deref(), true).await {
            Ok(v6) => Ok((Some(v4), Some(v6))),
            Err(e) => {
                self.ipam_release_addresses(&n.id, &[v4]).await;
                Err(e)
            }
        }
    }

    /// A planned attachment that will not be added: its pending record
    /// dropped, its addresses given back to an IPAM plugin.
    async fn abandon(&self, c: &mut Container, p: &PlannedAttach) {
        drop_pending(c, &p.ifname);
        let network_id = p.conflist["name"].as_str().unwrap_or_default();
        self.ipam_release_addresses(network_id, &planned_ips(&p.rt))
            .await;
    }

    /// The lowest address of `n` (IPv6 with `six`) that host-local has
    /// not leased (its lease files are named after the addresses, in the
    /// network's directory) and no other start or connect has picked;
    /// held for `c` until [`Daemon::release_addresses`]. None without a
    /// subnet of that family or a free address (the plugin then says
    /// what is wrong).
    fn pick_address(&self, c: &Container, n: &Network, six: bool) -> Option<String> {
        use std::net::IpAddr;
        let leased: std::collections::HashSet<IpAddr> =
            std::fs::read_dir(self.ipam_dir().join(&n.id))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
        let mut held = self
            .addresses_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let taken = |ip: IpAddr| {
            leased.contains(&ip)
                || held
                    .get(&(n.id.clone(), ip))
                    .is_some_and(|owner| *owner != c.id)
        };
        let ip: IpAddr = if six {
            n.lowest_free6(|a| taken(a.into()))?.into()
        } else {
            n.lowest_free4(|a| taken(a.into()))?.into()
        };
        held.insert((n.id.clone(), ip), c.id.clone());
        Some(ip.to_string())
    }

    /// Lets go of the addresses picked for container `id`: leased by now,
    /// or not to be.
    fn release_addresses(&self, id: &str) {
        self.addresses_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| owner != id);
    }

    /// An ADD undone with a DEL, as the CNI spec asks, and its pending
    /// attachment dropped. A network plugin's endpoint that failed was
    /// undone step by step already (a plugin that refused CreateEndpoint
    /// hears nothing more, as with libnetwork).
    async fn undo_add(&self, c: &mut Container, p: &PlannedAttach, result: Option<&Value>) {
        if network::is_remote_list(&p.conflist) && result.is_none() {
            self.abandon(c, p).await;
            return;
        }
        let netns = c.net.as_ref().map(|s| s.netns.clone()).unwrap_or_default();
        let target = Target {
            args: "",
            container_id: &c.id,
            netns: &netns,
            ifname: &p.ifname,
        };
        let _ = self.plugins_del(&p.conflist, &target, &p.rt, result).await;
        drop_pending(c, &p.ifname);
    }

    /// The ADD of an attachment's list: CNI's plugins, or a network
    /// plugin's endpoint (see [`network`]).
    async fn plugins_add(
        &self,
        list: &Value,
        target: &Target<'_>,
        rt: &Value,
    ) -> std::result::Result<Value, String> {
        if network::is_remote_list(list) {
            return self.remote_add(list, target, rt).await;
        }
        self.cni
            .add(list, target, rt)
            .await
            .map_err(|e| e.to_string())
    }

    /// The DEL of an attachment's list, as [`Daemon::plugins_add`] made it.
    async fn plugins_del(
        &self,
        list: &Value,
        target: &Target<'_>,
        rt: &Value,
        result: Option<&Value>,
    ) -> std::result::Result<(), String> {
        let deleted = if network::is_remote_list(list) {
            self.remote_del(list, target, rt, result).await
        } else {
            self.cni
                .del(list, target, rt, result)
                .await
                .map_err(|e| e.to_string())
        };
        let network_id = list["name"].as_str().unwrap_or_default();
        self.ipam_release_addresses(network_id, &planned_ips(rt))
            .await;
        deleted
    }

    /// The plugins' result kept on the pending attachment (for the DEL of
    /// a start that fails as a whole).
    fn record_added(&self, c: &mut Container, p: PlannedAttach, result: Value) {
        if let Some(a) = c
            .net
            .as_mut()
            .and_then(|s| s.attachments.iter_mut().find(|a| a.ifname == p.ifname))
        {
            a.result = result;
        }
    }

    /// After the plugins' ADD: link-local addresses, the attachment as the
    /// plugins made it, DNS names, the record saved, the event.
    async fn finish_attach(
        &self,
        c: &mut Container,
        n: &Network,
        ep: &EndpointSettings,
        p: PlannedAttach,
        result: Value,
    ) -> Result<()> {
        let netns = c.net.as_ref().map(|s| s.netns.clone()).unwrap_or_default();
        // A network plugin may name the interface with a prefix of its own.
        let planned = p.ifname.clone();
        let ifname = if network::is_remote_list(&p.conflist) {
            result["interfaces"][0]["name"]
                .as_str()
                .unwrap_or(&planned)
                .to_string()
        } else {
            planned.clone()
        };
        for ll in link_local_ips(ep) {
            // As dockerd: the whole link-local range is on the interface.
            let cidr = if ll.contains(':') {
                format!("{ll}/64")
            } else {
                format!("{ll}/16")
            };
            let out = tokio::process::Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .args(["ip", "addr", "add", &cidr, "dev", &ifname])
                .output()
                .await;
            if let Err(why) = out.map_err(|e| e.to_string()).and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                }
            }) {
                self.undo_add(c, &p, Some(&result)).await;
                return Err(ApiError::internal(format!(
                    "adding link-local address {ll}: {why}"
                )));
            }
        }
        let (addr, prefix, gateway, mac) = ipv4_of(&result, &ifname).unwrap_or_default();
        let (ip6, prefix6, gateway6) = ipv6_of(&result, &ifname).unwrap_or_default();
        let mut aliases = ep.aliases.clone();
        let mut a = Attachment {
            network_id: n.id.clone(),
            network_name: n.name.clone(),
            ifname,
            conflist: p.conflist,
            runtime_config: p.rt,
            result,
            ip: addr,
            prefix,
            gateway,
            mac,
            ip6,
            prefix6,
            gateway6,
            aliases: aliases.clone(),
            dns: false,
        };
        if n.resolves_names() && self.dns.available() && !a.ip.is_empty() {
            a.dns = self.dns_register(c, n, &a.ip, &a.ip6, std::mem::take(&mut aliases));
        }
        if let Some(s) = c.net.as_mut() {
            match s.attachments.iter_mut().find(|p| p.ifname == planned) {
                Some(p) => *p = a,
                None => s.attachments.push(a),
            }
        }
        c.joined.insert(n.name.clone(), n.id.clone());
        let _ = c.save();
        if n.resolves_names() {
            self.register_link_targets(c, n).await;
        }
        self.network_event(n, "connect", &c.id);
        Ok(())
    }

    /// The container's record on a network's DNS server: its name, short
    /// id and aliases, and the aliases others link it by; whether it took.
    fn dns_register(
        &self,
        c: &Container,
        n: &Network,
        ip: &str,
        ip6: &str,
        aliases: Vec<String>,
    ) -> bool {
        let mut names = vec![c.name.clone(), c.short_id().to_string()];
        // The container answers to its hostname too, as dockerd adds it to
        // the endpoint's aliases on a user-defined network.
        let hostname = &c.config.hostname;
        if !hostname.is_empty() && dns::is_dns_name(hostname) && !names.contains(hostname) {
            names.push(hostname.clone());
        }
        // An alias that is no DNS name (dockerd takes any) is kept in the
        // endpoint's config and not served.
        for a in aliases {
            if dns::is_dns_name(&a) && !names.contains(&a) {
                names.push(a);
            }
        }
        // Docker's resolver answers `<name>.<network>` as well (where the
        // network's name can be part of a DNS name).
        let qualified: Vec<String> = names
            .iter()
            .map(|x| format!("{x}.{}", n.name))
            .filter(|q| dns::is_dns_name(q))
            .collect();
        names.extend(qualified);
        let record = dns::Record {
            container_id: &c.id,
            ipv4: ip,
            ipv6: ip6,
            names,
            linked_as: self.link_aliases(&n.id, c),
        };
        // Docker's resolver forwards other names to the container's DNS
        // servers (its own, or the daemon's), else to the host's.
        let upstreams = match c.host_config.dns.as_ref().filter(|d| !d.is_empty()) {
            Some(own) => own.as_slice(),
            None => self.cfg.dns.as_slice(),
        };
        match self
            .dns
            .add(&n.id, n.dns_gateway(), n.internal, &record, upstreams)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("DNS for {} on {}: {e}", c.id, n.name);
                false
            }
        }
    }

    /// `c`'s DNS record on network `n` again (its link aliases changed).
    pub fn dns_reregister(&self, c: &Container, n: &Network) {
        for a in c.net.iter().flat_map(|s| &s.attachments) {
            if a.dns && a.network_id == n.id {
                self.dns_register(c, n, &a.ip, &a.ip6, a.aliases.clone());
            }
        }
    }

    /// After a rename: the new name on every network that resolves it.
    pub fn net_renamed(&self, c: &Container) {
        for a in c.net.iter().flat_map(|s| &s.attachments).filter(|a| a.dns) {
            if let Ok(n) = self.networks.get(&a.network_id) {
                self.dns_register(c, &n, &a.ip, &a.ip6, a.aliases.clone());
            }
        }
    }

    /// Leaves one network (`network disconnect` while running, or teardown);
    /// the caller saves the record.
    pub async fn net_detach(&self, c: &mut Container, network_id: &str) {
        let Some(state) = c.net.as_mut() else { return };
        let Some(i) = state
            .attachments
            .iter()
            .position(|a| a.network_id == network_id)
        else {
            return;
        };
        let a = state.attachments.remove(i);
        let netns = state.netns.clone();
        self.cni_del(&c.id, &netns, &a).await;
        self.forget_attachment(&c.id, &a);
    }

    /// The plugins' DEL of one attachment.
    async fn cni_del(&self, id: &str, netns: &std::path::Path, a: &Attachment) {
        let target = Target {
            args: "",
            container_id: id,
            netns,
            ifname: &a.ifname,
        };
        if let Err(e) = self
            .plugins_del(
                &a.conflist,
                &target,
                &a.runtime_config,
                Some(&a.result).filter(|r| !r.is_null()),
            )
            .await
        {
            tracing::warn!("leaving network {}: {e}", a.network_name);
        }
    }

    /// After the DEL: the container's names off the network's DNS, and
    /// the event.
    fn forget_attachment(&self, id: &str, a: &Attachment) {
        let n = self.networks.get(&a.network_id).ok();
        if a.dns {
            let gw = n.as_ref().map(|n| n.dns_gateway()).unwrap_or_default();
            if let Err(e) = self.dns.remove(&a.network_id, gw, id) {
                tracing::warn!("DNS for {id} on {}: {e}", a.network_name);
            }
        }
        if let Some(n) = &n {
            self.network_event(n, "disconnect", id);
        }
    }

    /// Everything [`Daemon::net_prepare`] and [`Daemon::net_attach_all`]
    /// made, gone. Safe to call again. The
    /// container's processes are gone: its namespace goes first, and the
    /// kernel takes its interfaces down with it in the background, so the
    /// plugins' DEL only releases addresses and rules (deleting a veth in
    /// the namespace cost ~20 ms per stop). The networks' DELs run at
    /// once, as their ADDs do.
    pub async fn net_down(&self, c: &mut Container) {
        self.relays.stop(&c.id);
        let Some(state) = c.net.clone() else { return };
        // A plugin's interfaces go back to it before the namespace goes
        // (the kernel would delete them with it): its DeleteEndpoint
        // deletes them, as with dockerd.
        for a in &state.attachments {
            if network::is_remote_list(&a.conflist) && !a.result.is_null() {
                self.remote_take_out(&state.netns, &a.result).await;
            }
        }
        let path = state.netns.clone();
        let removed = tokio::task::spawn_blocking(move || netns::remove(&path)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!("removing the network namespace of {}: {e}", c.id);
        }
        let id = c.id.clone();
        futures::future::join_all(
            state
                .attachments
                .iter()
                .rev()
                .map(|a| self.cni_del(&id, &state.netns, a)),
        )
        .await;
        for a in state.attachments.iter().rev() {
            self.forget_attachment(&id, a);
        }
        c.net = None;
        let _ = c.save();
    }

    /// The container's published ports as portmap's runtime config; -P
    /// picks free host ports for every exposed port without a binding.
    pub fn port_mappings(&self, c: &mut Container) -> Result<Value> {
        // What an earlier, failed start bound.
        self.relays.stop(&c.id);
        let mapped = self.map_ports(c);
        if mapped.is_err() {
            // The IPv6 ports bound before the one that failed.
            self.relays.stop(&c.id);
        }
        mapped
    }

    fn map_ports(&self, c: &mut Container) -> Result<Value> {
        let mut out = Vec::new();
        let mut bindings = c.host_config.port_bindings.clone().unwrap_or_default();
        if c.host_config.publish_all_ports {
            for p in c.config.exposed_ports.keys() {
                bindings.entry(p.clone()).or_default();
            }
        }
        let mut resolved = crate::types::Map::<Vec<crate::types::PortBinding>>::new();
        // One start at a time picks and checks ports, and what it picks is
        // held until its start ends (see `ports_in_flight`).
        let mut in_flight = self
            .ports_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (port, list) in &bindings {
            let (num, proto) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
            let container_port: u16 = num
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid port {port}")))?;
            let list = if list.is_empty() && c.host_config.publish_all_ports {
                vec![crate::types::PortBinding::default()]
            } else {
                list.clone()
            };
            for b in list {
                let taken_by_a_start = |port: u16| {
                    in_flight
                        .get(&(proto.to_string(), port))
                        .is_some_and(|owner| *owner != c.id)
                };
                let shown = if b.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    b.host_ip.as_str()
                };
                // The relay on the host's IPv6 addresses, when a free port
                // was looked for (bound while looking).
                let mut relay = None;
                // Port 0 is "any free one", as dockerd's allocator reads it.
                let host_port: u16 = if b.host_port.is_empty() || b.host_port == "0" {
                    let (port, bound) =
                        self.next_free_port(c, &b.host_ip, proto, &taken_by_a_start)?;
                    relay = Some(bound);
                    port
                } else if let Some((lo, hi)) = b.host_port.split_once('-') {
                    // A range: the first port in it that is free, as
                    // dockerd's allocator picks one.
                    let range = lo.parse::<u16>().ok().zip(hi.parse::<u16>().ok());
                    let Some((lo, hi)) = range.filter(|(lo, hi)| lo <= hi) else {
                        return Err(ApiError::bad_request(format!(
                            "invalid host port {}",
                            b.host_port
                        )));
                    };
                    (lo..=hi)
                        .find(|&p| {
                            !taken_by_a_start(p)
                                && self.check_port_free(c, &b.host_ip, p, proto).is_ok()
                        })
                        .ok_or_else(|| {
                            ApiError::internal(format!(
                                "driver failed programming external connectivity: Bind for {shown}:{lo}-{hi} failed: port is already allocated"
                            ))
                        })?
                } else {
                    b.host_port.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid host port {}", b.host_port))
                    })?
                };
                if taken_by_a_start(host_port) {
                    return Err(ApiError::internal(format!(
                        "driver failed programming external connectivity: Bind for {shown}:{host_port} failed: port is already allocated"
                    )));
                }
                self.check_port_free(c, &b.host_ip, host_port, proto)?;
                // On every host address: the IPv6 ones too, through a relay
                // (dockerd's proxy listens on [::] beside 0.0.0.0).
                let on_ipv6 = if matches!(b.host_ip.as_str(), "" | "0.0.0.0") {
                    match relay.map_or_else(|| Bound::at(host_port, proto), Ok) {
                        Ok(Some(bound)) => {
                            self.relays.hold(&c.id, bound);
                            true
                        }
                        Ok(None) => false,
                        Err(e) => return Err(relay_failed(c, proto, host_port, &e)),
                    }
                } else {
                    false
                };
                in_flight.insert((proto.to_string(), host_port), c.id.clone());
                out.push(
                    json!({"hostPort": host_port, "containerPort": container_port,
                    "protocol": proto, "hostIP": b.host_ip}),
                );
                resolved
                    .entry(port.clone())
                    .or_default()
                    .push(crate::types::PortBinding {
                        host_ip: if b.host_ip.is_empty() {
                            "0.0.0.0".into()
                        } else {
                            b.host_ip.clone()
                        },
                        host_port: host_port.to_string(),
                    });
                if on_ipv6 {
                    resolved
                        .entry(port.clone())
                        .or_default()
                        .push(crate::types::PortBinding {
                            host_ip: "::".into(),
                            host_port: host_port.to_string(),
                        });
                }
            }
        }
        c.published = resolved;
        Ok(Value::Array(out))
    }

    /// A host port for a binding that names none, as dockerd's allocator
    /// hands them out: the next after the last one given (for that host
    /// address and protocol) in the kernel's ephemeral range, going round
    /// it, so the first is 32768 and a port just let go is not given again
    /// at once. One is taken when no other start holds it, nothing on the
    /// host has it, and (on every host address) its IPv6 relay can bind
    /// it: another engine on this host may forward it. Returns the port
    /// and, for every host address, the relay bound on it.
    fn next_free_port(
        &self,
        c: &Container,
        host_ip: &str,
        proto: &str,
        taken_by_a_start: &dyn Fn(u16) -> bool,
    ) -> Result<(u16, Option<Bound>)> {
        let (lo, hi) = ephemeral_ports();
        let key = (host_ip.to_string(), proto.to_string());
        let mut last = self.last_ports.lock().unwrap_or_else(|e| e.into_inner());
        let from = last.get(&key).copied().unwrap_or(hi);
        let everywhere = matches!(host_ip, "" | "0.0.0.0");
        for port in ports_after(from, lo, hi) {
            if taken_by_a_start(port) || self.check_port_free(c, host_ip, port, proto).is_err() {
                continue;
            }
            let relay = if everywhere {
                match Bound::at(port, proto) {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => return Err(relay_failed(c, proto, port, &e)),
                }
            } else {
                None
            };
            last.insert(key, port);
            return Ok((port, relay));
        }
        Err(ApiError::internal(format!(
            "driver failed programming external connectivity on endpoint {}: all ports are allocated",
            c.name.trim_start_matches('/')
        )))
    }

    /// Docker's "port is already allocated": another container of ours, or
    /// anything on the host listening there.
    /// dockerd names the endpoint that could not be published (the
    /// starting container's).
    fn check_port_free(&self, c: &Container, host_ip: &str, port: u16, proto: &str) -> Result<()> {
        let id = c.id.as_str();
        let shown = if host_ip.is_empty() {
            "0.0.0.0"
        } else {
            host_ip
        };
        for e in self.all() {
            if e.id == id {
                continue;
            }
            let Ok(other) = e.c.try_lock() else { continue };
            if other.net.is_none() {
                continue;
            }
            for (p, bs) in &other.published {
                let other_proto = p.split_once('/').map_or("tcp", |x| x.1);
                if other_proto != proto {
                    continue;
                }
                for b in bs {
                    let same_ip =
                        b.host_ip == "0.0.0.0" || shown == "0.0.0.0" || b.host_ip == shown;
                    if same_ip && b.host_port == port.to_string() {
                        return Err(ApiError::internal(format!(
                            "driver failed programming external connectivity on endpoint {}: Bind for {shown}:{port} failed: port is already allocated",
                            c.name.trim_start_matches('/')
                        )));
                    }
                }
            }
        }
        let addr = format!("{shown}:{port}");
        let taken = match proto {
            "udp" => std::net::UdpSocket::bind(&addr).is_err(),
            _ => std::net::TcpListener::bind(&addr).is_err(),
        };
        if taken {
            return Err(ApiError::internal(format!(
                "driver failed programming external connectivity: Error starting userland proxy: listen {proto} {addr}: bind: address already in use"
            )));
        }
        Ok(())
    }
}

/// dockerd's MAC address for an interface with IPv4 address `ip`: 02:42
/// and the address's four bytes.
fn mac_of(ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The kernel's ephemeral port range, where dockerd's allocator takes
/// host ports from (its own default when the kernel's cannot be read).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| lo <= hi && *lo > 0)
        .unwrap_or((49153, 65535))
}

/// Every port of lo..=hi once, from the one after `last`, going round.
fn ports_after(last: u16, lo: u16, hi: u16) -> impl Iterator<Item = u16> {
    let start = if last < lo || last >= hi {
        lo
    } else {
        last + 1
    };
    (start..=hi).chain(lo..start)
}

/// dockerd's words when its proxy cannot listen on the host's IPv6
/// addresses for `c`'s published `port`.
fn relay_failed(c: &Container, proto: &str, port: u16, e: &std::io::Error) -> ApiError {
    ApiError::internal(format!(
        "driver failed programming external connectivity on endpoint {}: Error starting userland proxy: listen {proto}6 [::]:{port}: bind: {}",
        c.name.trim_start_matches('/'),
        go_errno(e)
    ))
}

/// An error as Go's syscall package words it ("address already in use").
fn go_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// The addresses (`ip/prefix`) an attachment's runtime config fixes.
fn planned_ips(rt: &Value) -> Vec<String> {
    rt["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// Why joining `n` failed: a network plugin's endpoint in dockerd's
/// words, else the CNI plugins' error.
fn attach_error(c: &Container, n: &Network, p: &PlannedAttach, e: String) -> ApiError {
    if network::is_remote_list(&p.conflist) {
        return ApiError::internal(format!(
            "failed to create endpoint {} on network {}: {e}",
            c.name.trim_start_matches('/'),
            n.name
        ));
    }
    network_error(n, e)
}

fn network_error(n: &Network, e: impl std::fmt::Display) -> ApiError {
    let m = e.to_string();
    if m.contains("already allocated") || m.contains("no IP addresses available") {
        ApiError::conflict(format!("network {}: {m}", n.name))
    } else if m.contains("requested IP address") || m.contains("not in range") {
        ApiError::bad_request(format!("network {}: {m}", n.name))
    } else {
        ApiError::internal(format!("network {}: {m}", n.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_is_made_of_the_address_as_dockerd_makes_it() {
        assert_eq!(mac_of("172.17.0.2".parse().unwrap()), "02:42:ac:11:00:02");
        assert_eq!(mac_of("10.255.7.254".parse().unwrap()), "02:42:0a:ff:07:fe");
    }

    #[test]
    fn free_ports_are_looked_for_after_the_last_one_given() {
        let all = |last, lo, hi| ports_after(last, lo, hi).collect::<Vec<u16>>();
        // The first: the range's first port (dockerd's 32768).
        assert_eq!(all(60999, 32768, 60999).first(), Some(&32768));
        assert_eq!(all(10, 10, 14), [11, 12, 13, 14, 10]);
        assert_eq!(all(12, 10, 14), [13, 14, 10, 11, 12]);
        assert_eq!(all(14, 10, 14), [10, 11, 12, 13, 14]);
        // A last port outside the range (the range changed) starts it over.
        assert_eq!(all(3, 10, 12), [10, 11, 12]);
        assert_eq!(all(65535, 65534, 65535), [65534, 65535]);
        assert_eq!(all(7, 7, 7), [7]);
    }
}
