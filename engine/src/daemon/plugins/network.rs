//! Networks a plugin drives (`docker network create -d PLUGIN`), as
//! dockerd drives them through libnetwork's remote driver: the engine
//! keeps the network and gives the addresses (Docker's default IPAM), the
//! plugin makes the interfaces. `CreateNetwork`/`DeleteNetwork` with the
//! network; for each container on it `CreateEndpoint` and `Join`, after
//! which the interface the plugin names is moved into the container's
//! namespace and set up (see [`crate::network::sandbox`]), and
//! `ProgramExternalConnectivity` for the one that is its way out; at the
//! end `RevokeExternalConnectivity`, `Leave`, the interface handed back,
//! `DeleteEndpoint`.
//!
//! An attachment to such a network is recorded like a CNI one, with a
//! list whose one plugin is [`REMOTE`] (never run as a CNI plugin): the
//! endpoint's id is in its runtime config before the plugin is asked, so
//! that what an engine that died half-way made is deleted when it comes
//! back, through the same records and paths as a bridge's.

use serde_json::{Value, json};

use super::client::{self, Addr};
use crate::daemon::Daemon;
use crate::daemon::container::Container;
use crate::daemon::networks::Network;
use crate::error::{ApiError, Result};
use crate::network::cni::{CNI_VERSION, Target};
use crate::network::sandbox;
use crate::types::{Map, PortBinding};

/// The plugin type of an attachment's list that a network plugin serves.
pub const REMOTE: &str = "berth-remote";

/// The list an attachment to `n` is recorded with.
pub fn remote_conflist(n: &Network) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": n.id,
        "plugins": [{"type": REMOTE, "driver": n.driver, "network": n.id}],
    })
}

/// Whether an attachment's list is a network plugin's.
pub fn is_remote_list(list: &Value) -> bool {
    list["plugins"][0]["type"] == REMOTE
}

/// A new endpoint's id, as libnetwork makes them (64 hex digits).
pub fn new_endpoint_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A port's protocol as Go's `syscall` numbers it (libnetwork's types).
fn proto_number(proto: &str) -> u8 {
    match proto {
        "udp" => 17,
        "sctp" => 132,
        _ => 6,
    }
}

/// The container's exposed ports and port bindings as libnetwork hands
/// them to a driver (`com.docker.network.endpoint.exposedports`,
/// `com.docker.network.portmap`): publishing them is the plugin's.
pub fn port_options(c: &Container) -> Value {
    ports_for_driver(
        &c.config.exposed_ports,
        c.host_config.port_bindings.as_ref().unwrap_or(&Map::new()),
    )
}

fn ports_for_driver(exposed_ports: &Map<Value>, bindings: &Map<Vec<PortBinding>>) -> Value {
    let mut exposed = Vec::new();
    let mut portmap = Vec::new();
    let mut ports: std::collections::BTreeSet<&String> = exposed_ports.keys().collect();
    ports.extend(bindings.keys());
    for port in ports {
        let (num, proto) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
        let Ok(num) = num.parse::<u16>() else {
            continue;
        };
        let proto = proto_number(proto);
        exposed.push(json!({"Proto": proto, "Port": num}));
        for b in bindings.get(port).into_iter().flatten() {
            let (lo, hi) = match b.host_port.split_once('-') {
                Some((lo, hi)) => (lo.parse().unwrap_or(0u16), hi.parse().unwrap_or(0u16)),
                None => {
                    let p = b.host_port.parse().unwrap_or(0u16);
                    (p, p)
                }
            };
            portmap.push(json!({
                "Proto": proto, "IP": "", "Port": num,
                "HostIP": b.host_ip, "HostPort": lo, "HostPortEnd": hi,
            }));
        }
    }
    json!({
        "com.docker.network.endpoint.exposedports": exposed,
        "com.docker.network.portmap": portmap,
    })
}

/// The lease file's name of an address (`ip/prefix`): the address as it
/// parses, never a path of its own.
fn lease_name(cidr: &str) -> std::result::Result<String, String> {
    let ip = cidr.split('/').next().unwrap_or_default();
    ip.parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("invalid address {cidr:?}"))
}

/// An attachment's endpoint as its record has it.
struct Endpoint<'a> {
    network_id: &'a str,
    driver: &'a str,
    endpoint_id: &'a str,
    /// `address/prefix`, as the engine gave them.
    ips: Vec<String>,
}

impl Endpoint<'_> {
    fn of<'a>(list: &'a Value, rt: &'a Value) -> Endpoint<'a> {
        Endpoint {
            network_id: list["plugins"][0]["network"].as_str().unwrap_or_default(),
            driver: list["plugins"][0]["driver"].as_str().unwrap_or_default(),
            endpoint_id: rt["endpointID"].as_str().unwrap_or_default(),
            ips: rt["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        }
    }
}

impl Daemon {
    /// Where the plugin that drives networks as `driver` answers, or
    /// dockerd's reason why there is none: an enabled managed plugin of
    /// that name first, else a legacy one in the plugin directories.
    pub async fn network_driver(&self, driver: &str) -> std::result::Result<Addr, ApiError> {
        self.plugin_serving(driver, "networkdriver", "NetworkDriver")
            .await
            .map(|(addr, _)| addr)
            .map_err(ApiError::not_found)
    }

    /// The scope a network plugin's `GetCapabilities` tells (`local`
    /// unless it says otherwise).
    pub async fn network_plugin_scope(&self, addr: &Addr) -> Result<String> {
        let caps = client::call(addr, "NetworkDriver.GetCapabilities", &json!({}))
            .await
            .map_err(ApiError::internal)?;
        Ok(caps["Scope"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("local")
            .to_string())
    }

    /// The plugin's `CreateNetwork` for a network just recorded, with
    /// the pools Docker's default IPAM gave it; its refusal is the
    /// create's (dockerd's `remote: …`).
    pub async fn remote_create_network(&self, addr: &Addr, n: &Network) -> Result<()> {
        let prefix = |s: &str| s.split('/').nth(1).unwrap_or("32").to_string();
        let mut v4 = json!({"AddressSpace": "LocalDefault", "Pool": n.subnet});
        if !n.gateway.is_empty() {
            v4["Gateway"] = json!(format!("{}/{}", n.gateway, prefix(&n.subnet)));
        }
        if !n.aux_addresses.is_empty() {
            v4["AuxAddresses"] = json!(
                n.aux_addresses
                    .iter()
                    .map(|(k, a)| (k.clone(), format!("{a}/{}", prefix(&n.subnet))))
                    .collect::<std::collections::BTreeMap<_, _>>()
            );
        }
        let mut v6 = Vec::new();
        if n.ipv6 && !n.subnet6.is_empty() {
            let mut d = json!({"AddressSpace": "LocalDefault", "Pool": n.subnet6});
            if !n.gateway6.is_empty() {
                d["Gateway"] = json!(format!("{}/{}", n.gateway6, prefix(&n.subnet6)));
            }
            v6.push(d);
        }
        let mut options = json!({
            "com.docker.network.enable_ipv6": n.ipv6,
            "com.docker.network.generic": n.options,
        });
        if n.internal {
            options["com.docker.network.internal"] = json!(true);
        }
        let req = json!({
            "NetworkID": n.id,
            "Options": options,
            "IPv4Data": [v4],
            "IPv6Data": v6,
        });
        client::call(addr, "NetworkDriver.CreateNetwork", &req)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::internal(format!("remote: {e}")))
    }

    /// The plugin's `DeleteNetwork`: a plugin that cannot be found keeps
    /// the network (dockerd's `failed deleting network`); what the plugin
    /// answers is only logged, as libnetwork logs it.
    pub async fn remote_delete_network(&self, n: &Network) -> Result<()> {
        let addr = self
            .network_driver(&n.driver)
            .await
            .map_err(|e| ApiError::internal(format!("failed deleting network: {}", e.message)))?;
        if let Err(e) = client::call(
            &addr,
            "NetworkDriver.DeleteNetwork",
            &json!({"NetworkID": n.id}),
        )
        .await
        {
            tracing::warn!("driver error deleting network {}: {e}", n.name);
        }
        Ok(())
    }

    /// Whether any network is driven, or given its addresses, by the
    /// managed plugin `name`: it is in use, as dockerd's reference count
    /// has it.
    pub fn networks_use_plugin(&self, name: &str) -> bool {
        let is_it = |driver: &str| {
            self.plugins
                .find(driver)
                .is_ok_and(|e| e.get().name == name)
        };
        self.networks.all().iter().any(|n| {
            (n.is_remote() && is_it(&n.driver))
                || (!n.ipam_driver.is_empty() && is_it(&n.ipam_driver))
        })
    }

    /// An attachment's "ADD" on a plugin's network: the address leased,
    /// the endpoint made and joined, its interface moved into the
    /// container. A CNI-shaped result (`interfaces`, `ips`) with what the
    /// DEL needs under `remote`. Whatever was made is undone on failure.
    pub async fn remote_add(
        &self,
        list: &Value,
        target: &Target<'_>,
        rt: &Value,
    ) -> std::result::Result<Value, String> {
        let Endpoint {
            network_id,
            driver,
            endpoint_id,
            ips,
        } = Endpoint::of(list, rt);
        let addr = self.network_driver(driver).await.map_err(|e| e.message)?;
        self.lease(network_id, &ips, target)?;
        let made = self
            .make_endpoint(&addr, network_id, endpoint_id, &ips, target, rt)
            .await;
        if made.is_err() {
            self.unlease(network_id, &ips, target.container_id);
        }
        made
    }

    async fn make_endpoint(
        &self,
        addr: &Addr,
        network_id: &str,
        endpoint_id: &str,
        ips: &[String],
        target: &Target<'_>,
        rt: &Value,
    ) -> std::result::Result<Value, String> {
        let v4 = ips.iter().find(|a| !a.contains(':')).cloned();
        let v6 = ips.iter().find(|a| a.contains(':')).cloned();
        let options = &rt["options"];
        let ids = json!({"NetworkID": network_id, "EndpointID": endpoint_id});
        // As Go's net.HardwareAddr prints it: lower case, colons.
        let asked_mac = rt["mac"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(|m| m.replace('-', ":").to_lowercase());
        let created = client::call(
            addr,
            "NetworkDriver.CreateEndpoint",
            &json!({
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "Interface": {
                    "Address": v4.clone().unwrap_or_default(),
                    "AddressIPv6": v6.clone().unwrap_or_default(),
                    "MacAddress": asked_mac.clone().unwrap_or_default(),
                },
                "Options": options,
            }),
        )
        .await?;
        // The plugin may fill in what the engine left empty (a MAC, an
        // address), never change what it gave.
        let given = &created["Interface"];
        let mac = asked_mac.or_else(|| {
            given["MacAddress"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_lowercase)
        });
        let v4 = v4.or_else(|| {
            given["Address"]
                .as_str()
                .filter(|a| !a.is_empty())
                .map(String::from)
        });
        let v6 = v6.or_else(|| {
            given["AddressIPv6"]
                .as_str()
                .filter(|a| !a.is_empty())
                .map(String::from)
        });
        let undo_endpoint = || async {
            let _ = client::call(addr, "NetworkDriver.DeleteEndpoint", &ids).await;
        };
        let joined = match client::call(
            addr,
            "NetworkDriver.Join",
            &json!({
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "SandboxKey": target.netns,
                "Options": options,
            }),
        )
        .await
        {
            Ok(j) => j,
            Err(e) => {
                undo_endpoint().await;
                return Err(e);
            }
        };
        let gateway_endpoint = rt["gateway"].as_bool().unwrap_or(false)
            && !joined["DisableGatewayService"].as_bool().unwrap_or(false);
        let src = joined["InterfaceName"]["SrcName"]
            .as_str()
            .unwrap_or_default();
        let prefix = joined["InterfaceName"]["DstPrefix"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or("eth");
        let placed = self
            .place_interface(
                target,
                src,
                prefix,
                mac.as_deref(),
                &v4,
                &v6,
                &joined,
                gateway_endpoint,
            )
            .await;
        let name = match placed {
            Ok(name) => name,
            Err(e) => {
                let _ = client::call(addr, "NetworkDriver.Leave", &ids).await;
                undo_endpoint().await;
                return Err(e);
            }
        };
        if gateway_endpoint {
            let req =
                json!({"NetworkID": network_id, "EndpointID": endpoint_id, "Options": options});
            if let Err(e) =
                client::call(addr, "NetworkDriver.ProgramExternalConnectivity", &req).await
            {
                let _ = sandbox::take_out(target.netns, &name, src).await;
                let _ = client::call(addr, "NetworkDriver.Leave", &ids).await;
                undo_endpoint().await;
                return Err(e);
            }
        }
        let mut interface = json!({"name": name, "sandbox": target.netns});
        if let Some(mac) = &mac {
            interface["mac"] = json!(mac);
        }
        let mut out_ips = Vec::new();
        if let Some(a) = &v4 {
            let mut ip = json!({"address": a, "interface": 0});
            if let Some(g) = joined["Gateway"].as_str().filter(|g| !g.is_empty()) {
                ip["gateway"] = json!(g);
            }
            out_ips.push(ip);
        }
        if let Some(a) = &v6 {
            let mut ip = json!({"address": a, "interface": 0});
            if let Some(g) = joined["GatewayIPv6"].as_str().filter(|g| !g.is_empty()) {
                ip["gateway"] = json!(g);
            }
            out_ips.push(ip);
        }
        Ok(json!({
            "cniVersion": CNI_VERSION,
            "interfaces": [interface],
            "ips": out_ips,
            "remote": {"src": src, "gateway": gateway_endpoint},
        }))
    }

    /// The joined interface in the container under its name there (the
    /// planned one for the prefix `eth`, else the plugin's prefix and the
    /// next free number, as libnetwork names it).
    #[allow(clippy::too_many_arguments)]
    async fn place_interface(
        &self,
        target: &Target<'_>,
        src: &str,
        prefix: &str,
        mac: Option<&str>,
        v4: &Option<String>,
        v6: &Option<String>,
        joined: &Value,
        gateway_endpoint: bool,
    ) -> std::result::Result<String, String> {
        let name = if prefix == "eth" {
            target.ifname.to_string()
        } else {
            sandbox::next_name(prefix, &sandbox::interfaces(target.netns).await?)
        };
        let mut gateways = Vec::new();
        if gateway_endpoint {
            for key in ["Gateway", "GatewayIPv6"] {
                if let Some(g) = joined[key].as_str().filter(|g| !g.is_empty()) {
                    gateways.push(g);
                }
            }
        }
        let routes = joined["StaticRoutes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let dest = r["Destination"].as_str()?.to_string();
                // RouteType 1 is a route on the link, 0 one through NextHop.
                let via = (r["RouteType"].as_u64() != Some(1))
                    .then(|| r["NextHop"].as_str().map(String::from))
                    .flatten()
                    .filter(|h| !h.is_empty());
                Some((dest, via))
            })
            .collect();
        let setup = sandbox::Setup {
            src,
            name: &name,
            mac,
            addresses: v4.iter().chain(v6.iter()).cloned().collect(),
            gateways,
            routes,
        };
        if let Err(e) = sandbox::put_in(target.netns, &setup).await {
            // Handed back for the plugin's DeleteEndpoint, under whichever
            // name the setup stopped at (one that never moved is not found).
            for now in [name.as_str(), src] {
                let _ = sandbox::take_out(target.netns, now, src).await;
            }
            return Err(format!("joining the network's interface {src:?}: {e}"));
        }
        Ok(name)
    }

    /// An attachment's "DEL" on a plugin's network: the interface handed
    /// back (if the namespace still has it), the endpoint left and
    /// deleted, its addresses released. Safe to run again.
    pub async fn remote_del(
        &self,
        list: &Value,
        target: &Target<'_>,
        rt: &Value,
        result: Option<&Value>,
    ) -> std::result::Result<(), String> {
        let Endpoint {
            network_id,
            driver,
            endpoint_id,
            ips,
        } = Endpoint::of(list, rt);
        let ids = json!({"NetworkID": network_id, "EndpointID": endpoint_id});
        let outcome = match self.network_driver(driver).await {
            Ok(addr) => {
                if result.is_some_and(|r| r["remote"]["gateway"] == true) {
                    let req = json!({"NetworkID": network_id, "EndpointID": endpoint_id});
                    if let Err(e) =
                        client::call(&addr, "NetworkDriver.RevokeExternalConnectivity", &req).await
                    {
                        tracing::warn!("revoking external connectivity of {endpoint_id}: {e}");
                    }
                }
                let left = client::call(&addr, "NetworkDriver.Leave", &ids).await;
                if let Some(r) = result {
                    self.remote_take_out(target.netns, r).await;
                }
                let deleted = client::call(&addr, "NetworkDriver.DeleteEndpoint", &ids).await;
                left.and(deleted).map(|_| ())
            }
            Err(e) => Err(e.message),
        };
        self.unlease(network_id, &ips, target.container_id);
        outcome
    }

    /// The interface a plugin's network put into the namespace at `netns`
    /// handed back under its plugin's name (`result`: the attachment's),
    /// for the plugin to delete; before the namespace goes, as libnetwork
    /// hands it back.
    pub async fn remote_take_out(&self, netns: &std::path::Path, result: &Value) {
        let name = result["interfaces"][0]["name"].as_str().unwrap_or_default();
        let src = result["remote"]["src"].as_str().unwrap_or_default();
        if name.is_empty() || src.is_empty() {
            return;
        }
        if let Err(e) = sandbox::take_out(netns, name, src).await {
            tracing::warn!("handing {name} back to its network plugin as {src}: {e}");
        }
    }

    /// The addresses an endpoint is given, written where host-local
    /// writes its leases (one file per address in the network's
    /// directory), so that the engine's pick of the lowest free address
    /// sees them for either kind of network.
    fn lease(
        &self,
        network_id: &str,
        ips: &[String],
        target: &Target<'_>,
    ) -> std::result::Result<(), String> {
        let dir = self.ipam_dir().join(network_id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("leasing an address: {e}"))?;
        let leased = self.lease_each(&dir, ips, target);
        if leased.is_err() {
            self.unlease(network_id, ips, target.container_id);
        }
        leased
    }

    fn lease_each(
        &self,
        dir: &std::path::Path,
        ips: &[String],
        target: &Target<'_>,
    ) -> std::result::Result<(), String> {
        for cidr in ips {
            let ip = lease_name(cidr)?;
            let path = dir.join(&ip);
            let lease = format!("{}\r\n{}", target.container_id, target.ifname);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(lease.as_bytes())
                        .map_err(|e| format!("leasing {ip}: {e}"))?;
                }
                // Its own lease, from an ADD the engine died in.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    if !held.starts_with(target.container_id) {
                        return Err(format!("Address already in use: {ip}"));
                    }
                }
                Err(e) => return Err(format!("leasing {ip}: {e}")),
            }
        }
        Ok(())
    }

    /// The leases of `ips` that container `owner` holds, removed (one
    /// another container holds stays).
    fn unlease(&self, network_id: &str, ips: &[String], owner: &str) {
        let dir = self.ipam_dir().join(network_id);
        for cidr in ips {
            let Ok(ip) = lease_name(cidr) else { continue };
            let path = dir.join(ip);
            let held = std::fs::read_to_string(&path).unwrap_or_default();
            if held.starts_with(owner) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_reach_the_plugin_as_libnetwork_numbers_them() {
        let mut exposed = Map::new();
        exposed.insert("80/tcp".into(), json!({}));
        exposed.insert("53/udp".into(), json!({}));
        let mut bindings = Map::new();
        bindings.insert(
            "80/tcp".into(),
            vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: "8080-8081".into(),
            }],
        );
        let o = ports_for_driver(&exposed, &bindings);
        assert_eq!(
            o["com.docker.network.endpoint.exposedports"],
            json!([{"Proto": 17, "Port": 53}, {"Proto": 6, "Port": 80}])
        );
        assert_eq!(
            o["com.docker.network.portmap"],
            json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "127.0.0.1",
                    "HostPort": 8080, "HostPortEnd": 8081}])
        );
    }

    #[test]
    fn a_plugin_attachment_is_told_by_its_list() {
        let n: Network = serde_json::from_value(json!({
            "id": "n1", "name": "tn", "driver": "tnet",
            "created": {"secs_since_epoch": 0, "nanos_since_epoch": 0},
        }))
        .unwrap_or_else(|e| panic!("a network record: {e}"));
        let list = remote_conflist(&n);
        assert!(is_remote_list(&list));
        assert_eq!(list["plugins"][0]["driver"], "tnet");
        assert!(!is_remote_list(&json!({"plugins": [{"type": "bridge"}]})));
        assert_eq!(new_endpoint_id().len(), 64);
    }

    #[test]
    fn a_lease_is_named_by_the_address_alone() {
        assert_eq!(lease_name("10.0.0.2/24"), Ok("10.0.0.2".to_string()));
        assert_eq!(lease_name("fd00::2/64"), Ok("fd00::2".to_string()));
        assert!(lease_name("../../etc/passwd").is_err());
        assert!(lease_name("").is_err());
    }
}
