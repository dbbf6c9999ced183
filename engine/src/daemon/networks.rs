//! Docker's networks over CNI: the records (`<data-root>/network/<id>.json`),
//! the built-in `bridge`, `host` and `none`, subnet allocation from the
//! address pools, and the CNI configuration list each bridge network
//! becomes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::network::cni::CNI_VERSION;
use crate::network::parent;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// bridge, macvlan, ipvlan, host or null; else a network plugin's
    /// name as the create gave it (see [`Network::is_remote`]).
    pub driver: String,
    /// A network plugin's scope, as its `GetCapabilities` told it at
    /// create (inspect's `Scope`); empty for berth's own drivers (local).
    #[serde(default)]
    pub scope: String,
    /// An IPAM plugin's name (`--ipam-driver`), and the pools it gave;
    /// empty for Docker's default IPAM, berth's own.
    #[serde(default)]
    pub ipam_driver: String,
    #[serde(default)]
    pub pool_id: String,
    #[serde(default)]
    pub pool_id6: String,
    pub created: SystemTime,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub ip_range: String,
    /// The IPv6 subnet of a dual-stack network (`--ipv6`), and its gateway.
    #[serde(default)]
    pub subnet6: String,
    #[serde(default)]
    pub gateway6: String,
    #[serde(default)]
    pub ip_range6: String,
    /// EnableIPv6: containers get an address of `subnet6` (dockerd keeps
    /// an IPv6 pool given without it, and gives no IPv6 address).
    #[serde(default)]
    pub ipv6: bool,
    /// IPAM options and auxiliary addresses, as created (shown back).
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    #[serde(default)]
    pub aux_addresses6: BTreeMap<String, String>,
    /// Whether its IPv4 subnet was given at create (not picked from the
    /// pool): only then may a container ask for an address of it, as
    /// dockerd has it. Records from before this was kept say yes.
    #[serde(default = "given")]
    pub subnet_given: bool,
    /// Which gateways inspect shows: dockerd leaves out one it picked in
    /// a subnet the user gave (and shows those of subnets it picked).
    /// Records from before this was kept show theirs.
    #[serde(default = "given")]
    pub gateway_shown: bool,
    #[serde(default = "given")]
    pub gateway6_shown: bool,
    /// The Linux bridge's name (bridge driver).
    #[serde(default)]
    pub bridge: String,
    /// The host interface containers' links hang from (macvlan and
    /// ipvlan drivers), and whether berth made it for this network (a
    /// dummy or a VLAN sub-interface, removed with it).
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub made_parent: bool,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// Where containers' IPv4 addresses come from when the network has an
    /// ip-range or auxiliary addresses (None: the whole subnet): spans of
    /// first..=last, as dockerd's allocator takes them — from the range's
    /// first address (its own network address too, unless it is the
    /// subnet's) to its last below the subnet's broadcast, skipping each
    /// auxiliary address.
    fn pool4(&self) -> Option<Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>> {
        if self.ip_range.is_empty() && self.aux_addresses.is_empty() {
            return None;
        }
        let subnet: Ipv4Net = self.subnet.parse().ok()?;
        let bounds = |net: Ipv4Net| (u32::from(net.network()), u32::from(net.broadcast()));
        let (lo, hi) = bounds(subnet);
        let (mut first, mut last) = (lo + 1, hi.saturating_sub(1));
        if let Ok(r) = self.ip_range.parse::<Ipv4Net>() {
            let (rlo, rhi) = bounds(r);
            first = first.max(rlo);
            last = last.min(rhi);
        }
        let mut skip: Vec<u32> = self
            .aux_addresses
            .values()
            .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|a| (first..=last).contains(a))
            .collect();
        skip.sort_unstable();
        let mut out = Vec::new();
        let mut from = first;
        for a in skip {
            if a > from {
                out.push((from, a - 1));
            }
            from = a + 1;
        }
        if from <= last {
            out.push((from, last));
        }
        Some(out.into_iter().map(|(a, b)| (a.into(), b.into())).collect())
    }

    /// The address dockerd's allocator gives a container that asked for
    /// none: the lowest of the pool (see [`Network::pool4`]; the whole
    /// subnet without its network and broadcast addresses when it has no
    /// range) that is not the gateway and not `taken`. So the first
    /// container on a new network is .2, and an address comes back to the
    /// next container once its holder is gone, where host-local would go
    /// on round the range.
    pub fn lowest_free4(
        &self,
        taken: impl Fn(std::net::Ipv4Addr) -> bool,
    ) -> Option<std::net::Ipv4Addr> {
        let subnet: Ipv4Net = self.subnet.parse().ok()?;
        let spans = self.pool4().unwrap_or_else(|| {
            let (lo, hi) = (u32::from(subnet.network()), u32::from(subnet.broadcast()));
            vec![((lo + 1).into(), hi.saturating_sub(1).into())]
        });
        let gateway = self.gateway.parse::<std::net::Ipv4Addr>().ok();
        spans
            .into_iter()
            .flat_map(|(a, b)| u32::from(a)..=u32::from(b))
            .map(std::net::Ipv4Addr::from)
            .find(|ip| Some(*ip) != gateway && !taken(*ip))
    }

    /// [`Network::lowest_free4`] for the IPv6 subnet: from its ip-range
    /// (or the subnet's first address after the network's own), without
    /// the gateway and the auxiliary addresses. None on an IPv4-only
    /// network.
    pub fn lowest_free6(
        &self,
        taken: impl Fn(std::net::Ipv6Addr) -> bool,
    ) -> Option<std::net::Ipv6Addr> {
        if !self.ipv6 {
            return None;
        }
        let subnet: Ipv6Net = self.subnet6.parse().ok()?;
        let (mut first, mut last) = (
            u128::from(subnet.network()).saturating_add(1),
            u128::from(subnet.broadcast()),
        );
        if let Ok(r) = self.ip_range6.parse::<Ipv6Net>() {
            first = first.max(u128::from(r.network()));
            last = last.min(u128::from(r.broadcast()));
        }
        let not_given: Vec<std::net::Ipv6Addr> = std::iter::once(&self.gateway6)
            .chain(self.aux_addresses6.values())
            .filter_map(|a| a.parse().ok())
            .collect();
        (first..=last)
            .map(std::net::Ipv6Addr::from)
            .find(|ip| !not_given.contains(ip) && !taken(*ip))
    }

    /// The default bridge gives no names (as Docker's); user networks do.
    pub fn resolves_names(&self) -> bool {
        (self.driver == "bridge" && self.name != "bridge") || self.is_parented() || self.is_remote()
    }

    /// Where the DNS server answers the network's containers besides
    /// 127.0.0.11: its gateway on the host's bridge; none for a network
    /// whose gateway is not the host's.
    pub fn dns_gateway(&self) -> &str {
        if self.is_parented() || self.is_remote() {
            ""
        } else {
            &self.gateway
        }
    }

    /// Whether containers hang from a host interface (macvlan, ipvlan)
    /// rather than a bridge of berth's.
    pub fn is_parented(&self) -> bool {
        parent::is_parented(&self.driver)
    }

    /// Whether a network plugin drives it (libnetwork's remote driver):
    /// the plugin makes the interfaces, berth gives the addresses.
    pub fn is_remote(&self) -> bool {
        !is_builtin_driver(&self.driver)
    }

    /// The CNI list a container joins this network through.
    pub fn conflist(
        &self,
        ipam_dir: &Path,
        ip: Option<&str>,
        ip6: Option<&str>,
        mac: Option<&str>,
        ports: bool,
    ) -> Value {
        let range = json!({"subnet": self.subnet, "gateway": self.gateway});
        // A fixed address may be anywhere in the subnet; others come from
        // the ip-range, without the auxiliary addresses.
        let set: Vec<Value> = match self.pool4() {
            Some(pieces) if ip.is_none() => pieces
                .into_iter()
                .map(|(first, last)| {
                    let mut r = range.clone();
                    r["rangeStart"] = json!(first.to_string());
                    r["rangeEnd"] = json!(last.to_string());
                    r
                })
                .collect(),
            _ => vec![range],
        };
        let mut ranges = vec![json!(set)];
        let mut routes = if self.internal {
            json!([])
        } else {
            json!([{"dst": "0.0.0.0/0"}])
        };
        if self.ipv6 && !self.subnet6.is_empty() {
            let mut r6 = json!({"subnet": self.subnet6, "gateway": self.gateway6});
            if let Ok(r) = self.ip_range6.parse::<Ipv6Net>()
                && ip6.is_none()
            {
                let first = u128::from(r.network()).max(1);
                let last = u128::from(r.broadcast());
                r6["rangeStart"] = json!(std::net::Ipv6Addr::from(first).to_string());
                r6["rangeEnd"] = json!(std::net::Ipv6Addr::from(last).to_string());
            }
            ranges.push(json!([r6]));
            if !self.internal
                && let Some(r) = routes.as_array_mut()
            {
                r.push(json!({"dst": "::/0"}));
            }
        }
        let ipam = json!({
            "type": "host-local",
            "dataDir": ipam_dir,
            "ranges": ranges,
            "routes": routes,
        });
        let mut first = if self.is_parented() {
            let mut p = parent::plugin(&self.driver, &self.parent, &self.options);
            p["ipam"] = ipam;
            p
        } else {
            json!({
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                // Outbound NAT is one rule per network (network::firewall).
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": ipam,
            })
        };
        // On a link-local IPv6 subnet the gateway's address overlaps the
        // one the kernel gave the bridge: the plugin replaces that one
        // rather than refuse.
        if self.ipv6
            && !self.is_parented()
            && self
                .subnet6
                .parse::<Ipv6Net>()
                .is_ok_and(|s| s.addr().is_unicast_link_local())
        {
            first["forceAddress"] = json!(true);
        }
        if let Some(mtu) = self.mtu() {
            first["mtu"] = json!(mtu);
        }
        // The bridge plugin sets the interface's address and MAC itself
        // when the runtime gives them.
        if ip.is_some() || ip6.is_some() {
            first["capabilities"]["ips"] = json!(true);
        }
        if mac.is_some() {
            first["capabilities"]["mac"] = json!(true);
        }
        let mut plugins = vec![first];
        // Ports are published on a bridge only, as dockerd's other
        // drivers ignore them.
        if ports && !self.internal && !self.is_parented() {
            plugins.push(
                json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
            );
        }
        json!({"cniVersion": CNI_VERSION, "name": self.id, "plugins": plugins})
    }

    /// The MTU `com.docker.network.driver.mtu` asks for.
    pub fn mtu(&self) -> Option<u32> {
        self.options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
    }

    /// The Docker API's view (GET /networks/{id}, without containers).
    pub fn to_api(&self) -> Value {
        let mut config = if self.subnet.is_empty() {
            json!([])
        } else {
            let mut c = json!({"Subnet": self.subnet});
            if self.gateway_shown {
                c["Gateway"] = json!(self.gateway);
            }
            if !self.ip_range.is_empty() {
                c["IPRange"] = json!(self.ip_range);
            }
            json!([c])
        };
        if !self.aux_addresses.is_empty()
            && let Some(c) = config.get_mut(0)
        {
            c["AuxiliaryAddresses"] = json!(self.aux_addresses);
        }
        if !self.subnet6.is_empty()
            && let Some(c) = config.as_array_mut()
        {
            let mut v6 = json!({"Subnet": self.subnet6});
            if self.gateway6_shown {
                v6["Gateway"] = json!(self.gateway6);
            }
            if !self.ip_range6.is_empty() {
                v6["IPRange"] = json!(self.ip_range6);
            }
            if !self.aux_addresses6.is_empty() {
                v6["AuxiliaryAddresses"] = json!(self.aux_addresses6);
            }
            c.push(v6);
        }
        // A user's network shows the options it was created with (compose
        // compares them with its file); the default bridge shows what
        // dockerd's shows for docker0.
        let mut options = self.options.clone();
        let builtin = self.driver == "bridge" && self.name == "bridge";
        if builtin {
            for (k, v) in [
                ("com.docker.network.bridge.default_bridge", "true"),
                ("com.docker.network.bridge.enable_icc", "true"),
                ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                ("com.docker.network.bridge.name", self.bridge.as_str()),
                ("com.docker.network.driver.mtu", "1500"),
            ] {
                options.entry(k.into()).or_insert_with(|| v.to_string());
            }
        }
        json!({
            "Name": self.name,
            "Id": self.id,
            "Created": humantime::format_rfc3339_nanos(self.created).to_string(),
            "Scope": if self.scope.is_empty() { "local" } else { self.scope.as_str() },
            "Driver": self.driver,
            "EnableIPv6": self.ipv6,
            "IPAM": {
                "Driver": if self.ipam_driver.is_empty() { "default" } else { self.ipam_driver.as_str() },
                // As given at create: null when the caller sent none.
                "Options": self.ipam_options,
                "Config": config,
            },
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": {},
            "Options": options,
            "Labels": self.labels,
        })
    }
}

/// The plugins a network is created with: a network plugin's scope, an
/// IPAM plugin's pools.
#[derive(Default, Clone, Copy)]
pub struct ByPlugins<'a> {
    pub network_scope: Option<&'a str>,
    pub ipam: Option<&'a IpamPools>,
}

/// What an IPAM plugin gave a network being created (its subnets and
/// gateways are in the request), and what the caller asked itself.
#[derive(Debug, Default, Clone)]
pub struct IpamPools {
    pub driver: String,
    pub pool_id: String,
    pub pool_id6: String,
    pub subnet_given: bool,
    pub gateway_given: bool,
    pub gateway6_given: bool,
    /// `(pool id, address)` of the gateways and auxiliary addresses.
    pub reserved: Vec<(String, String)>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    #[serde(deserialize_with = "crate::types::null_default")]
    pub name: String,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub driver: String,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub internal: bool,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub attachable: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub check_duplicate: Option<bool>,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub ingress: bool,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub scope: String,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub config_only: bool,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub config_from: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    #[serde(deserialize_with = "crate::types::null_default")]
    pub driver: String,
    pub config: Option<Vec<IpamConfig>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(deserialize_with = "crate::types::null_default")]
    pub subnet: String,
    #[serde(rename = "IPRange")]
    #[serde(deserialize_with = "crate::types::null_default")]
    pub ip_range: String,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub gateway: String,
    #[serde(deserialize_with = "crate::types::null_default")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// Docker's pools when daemon.json names none.
fn given() -> bool {
    true
}

fn default_pools() -> Vec<(Ipv4Net, u8)> {
    let mut v: Vec<(Ipv4Net, u8)> = (17..=31)
        .filter_map(|b| format!("172.{b}.0.0/16").parse().ok().map(|n| (n, 16)))
        .collect();
    if let Ok(n) = "192.168.0.0/16".parse() {
        v.push((n, 20));
    }
    v
}

/// The IPv4 destinations the host already routes (its own networks).
fn host_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None;
            }
            let addr = std::net::Ipv4Addr::from(u32::from_be(dst));
            Ipv4Net::new(addr, u32::from_be(mask).count_ones() as u8).ok()
        })
        .collect()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub struct Networks {
    dir: PathBuf,
    map: RwLock<BTreeMap<String, Network>>,
    pools: Vec<(Ipv4Net, u8)>,
    /// The default bridge, held for this engine while it runs.
    claim: Option<crate::network::claim::Claim>,
    /// Networks being removed: a container joining one of them gives up
    /// (see [`Networks::leaving`]).
    leaving: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A network marked as being removed while it lives (see
/// [`Networks::leaving`]).
pub struct Leaving<'a> {
    networks: &'a Networks,
    id: String,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.networks
            .leaving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Networks {
    /// Loads the records; makes `bridge`, `host` and `none` when missing.
    /// `bridge_name` and `bip` are the operator's, if given.
    pub fn open(
        data_root: &Path,
        bridge_name: Option<&str>,
        bip: Option<&str>,
        pools: &[Value],
    ) -> anyhow::Result<Networks> {
        let dir = data_root.join("network");
        std::fs::create_dir_all(&dir)?;
        let mut map = BTreeMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| serde_json::from_slice::<Network>(&b).map_err(Into::into))
                {
                    Ok(n) => {
                        map.insert(n.id.clone(), n);
                    }
                    Err(err) => tracing::error!("skipping network record {}: {err}", p.display()),
                }
            }
        }
        let mut parsed_pools = Vec::new();
        for p in pools {
            let base: Ipv4Net = p["base"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("default-address-pools: invalid base in {p}"))?;
            let size = p["size"].as_u64().unwrap_or(24) as u8;
            if size < base.prefix_len() || size > 30 {
                anyhow::bail!("default-address-pools: size {size} does not fit base {base}");
            }
            parsed_pools.push((base, size));
        }
        let mut n = Networks {
            dir,
            map: RwLock::new(map),
            pools: if parsed_pools.is_empty() {
                default_pools()
            } else {
                parsed_pools
            },
            claim: None,
            leaving: Default::default(),
        };
        let claim = n.claim_bridge(bridge_name)?;
        n.ensure_builtin(&claim.bridge, bip)?;
        n.claim = Some(claim);
        Ok(n)
    }

    /// The default bridge this engine owns: the one it is told to use, or
    /// had, or `berth0`; when another running engine holds that one and
    /// none was named, the next free `berthN`.
    fn claim_bridge(&self, named: Option<&str>) -> anyhow::Result<crate::network::claim::Claim> {
        use crate::network::claim::claim;
        let had = self
            .get("bridge")
            .ok()
            .map(|n| n.bridge)
            .filter(|b| !b.is_empty());
        // A bridge it is told to use or had: the engine that held it before
        // (this one's last run, just stopped or killed) may not have let go
        // yet, its last process still ending. berth0 by default is taken
        // or not.
        let patience = if named.is_some() || had.is_some() {
            std::time::Duration::from_secs(2)
        } else {
            std::time::Duration::ZERO
        };
        let wanted = named
            .map(str::to_string)
            .or(had)
            .unwrap_or_else(|| "berth0".into());
        if let Some(c) = crate::network::claim::claim_patiently(&wanted, patience)? {
            return Ok(c);
        }
        if named.is_some() {
            let by: Vec<String> = crate::network::claim::holders(&wanted)
                .iter()
                .map(|(pid, comm)| format!("{comm} (pid {pid})"))
                .collect();
            let by = if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            };
            anyhow::bail!(
                "the bridge {wanted} belongs to another berthd running on this host{by}: give this engine a bridge of its own with \"bridge\" and \"bip\" in daemon.json"
            );
        }
        for i in 0..256 {
            let name = format!("berth{i}");
            if let Some(c) = claim(&name)? {
                tracing::info!(
                    "the bridge {wanted} belongs to another running berthd: this engine's default bridge is {name}"
                );
                return Ok(c);
            }
        }
        anyhow::bail!("no free berthN bridge name on this host")
    }

    /// This engine's default bridge interface.
    pub fn default_bridge(&self) -> &str {
        self.claim.as_ref().map_or("", |c| c.bridge.as_str())
    }

    /// Makes the default bridge with its address when it is missing, as
    /// dockerd makes docker0 at start: another engine starting after this
    /// one then sees the subnet taken.
    pub fn make_default_bridge(&self) -> anyhow::Result<()> {
        let name = self.default_bridge();
        if name.is_empty() || crate::network::claim::ipv4_of(name).is_some() {
            return Ok(());
        }
        let n = self.get("bridge").map_err(|e| anyhow::anyhow!(e.message))?;
        let prefix = n.subnet.rsplit_once('/').map_or("16", |(_, p)| p);
        let ip = |args: &[&str]| -> anyhow::Result<()> {
            let out = std::process::Command::new("ip").args(args).output()?;
            if !out.status.success() {
                anyhow::bail!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        };
        if !link_exists(name) {
            ip(&["link", "add", "name", name, "type", "bridge"])?;
        }
        ip(&[
            "addr",
            "add",
            &format!("{}/{prefix}", n.gateway),
            "dev",
            name,
        ])?;
        ip(&["link", "set", name, "up"])
    }

    fn ensure_builtin(&self, bridge_name: &str, bip: Option<&str>) -> anyhow::Result<()> {
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if self.get(name).is_err() {
                self.insert(Network {
                    id: new_id(),
                    name: name.into(),
                    driver: driver.into(),
                    scope: String::new(),
                    ipam_driver: String::new(),
                    pool_id: String::new(),
                    pool_id6: String::new(),
                    created: SystemTime::now(),
                    internal: false,
                    attachable: false,
                    subnet: String::new(),
                    gateway: String::new(),
                    ip_range: String::new(),
                    subnet6: String::new(),
                    gateway6: String::new(),
                    ip_range6: String::new(),
                    ipv6: false,
                    ipam_options: None,
                    aux_addresses: BTreeMap::new(),
                    aux_addresses6: BTreeMap::new(),
                    subnet_given: false,
                    gateway_shown: true,
                    gateway6_shown: true,
                    bridge: String::new(),
                    parent: String::new(),
                    made_parent: false,
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                })?;
            }
        }
        let existing = self.get("bridge").ok();
        // As dockerd with docker0: a bridge that is already there keeps the
        // address it has, unless the operator names another.
        let (subnet, gateway) = match (bip, crate::network::claim::ipv4_of(bridge_name)) {
            (Some(b), _) => {
                let net: ipnet::Ipv4Net =
                    b.parse().map_err(|e| anyhow::anyhow!("bip {b:?}: {e}"))?;
                (net.trunc().to_string(), net.addr().to_string())
            }
            (None, Some(has)) => (has.trunc().to_string(), has.addr().to_string()),
            (None, None) => match existing.as_ref().filter(|n| n.bridge == bridge_name) {
                Some(n) => (n.subnet.clone(), n.gateway.clone()),
                None => {
                    let s = self
                        .allocate_besides(existing.as_ref().map(|n| n.id.as_str()))
                        .map_err(|e| anyhow::anyhow!("the default bridge: {}", e.message))?;
                    (s.to_string(), first_host(&s))
                }
            },
        };
        if let (Some(b), Some(has)) = (bip, crate::network::claim::ipv4_of(bridge_name))
            && has.to_string() != *b
        {
            // The operator's address replaces the one the bridge had (the
            // bridge plugin refuses a bridge with another gateway).
            let _ = std::process::Command::new("ip")
                .args(["addr", "flush", "dev", bridge_name])
                .status();
        }
        let unchanged = existing
            .as_ref()
            .is_some_and(|n| n.subnet == subnet && n.gateway == gateway && n.bridge == bridge_name);
        if !unchanged {
            let id = existing.map(|n| n.id).unwrap_or_else(new_id);
            let mut options = BTreeMap::new();
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            );
            options.insert(
                "com.docker.network.bridge.enable_ip_masquerade".into(),
                "true".into(),
            );
            self.insert(Network {
                id,
                name: "bridge".into(),
                driver: "bridge".into(),
                scope: String::new(),
                ipam_driver: String::new(),
                pool_id: String::new(),
                pool_id6: String::new(),
                created: SystemTime::now(),
                internal: false,
                attachable: false,
                subnet,
                gateway,
                ip_range: String::new(),
                subnet6: String::new(),
                gateway6: String::new(),
                ip_range6: String::new(),
                ipv6: false,
                ipam_options: None,
                aux_addresses: BTreeMap::new(),
                aux_addresses6: BTreeMap::new(),
                subnet_given: false,
                gateway_shown: true,
                gateway6_shown: true,
                bridge: bridge_name.into(),
                parent: String::new(),
                made_parent: false,
                options,
                labels: BTreeMap::new(),
            })?;
        }
        Ok(())
    }

    fn insert(&self, n: Network) -> std::io::Result<()> {
        let path = self.dir.join(format!("{}.json", n.id));
        super::container::write_atomic(&path, &serde_json::to_vec_pretty(&n)?)?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n.id.clone(), n);
        Ok(())
    }

    pub fn all(&self) -> Vec<Network> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// By full id, name, or unique id prefix, as Docker finds networks.
    pub fn get(&self, key: &str) -> Result<Network> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = map.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&Network> = map.values().filter(|n| n.id.starts_with(key)).collect();
        match by_prefix.as_slice() {
            [n] if !key.is_empty() => Ok((*n).clone()),
            [] | [_] => Err(ApiError::not_found(format!("network {key} not found"))),
            _ => Err(ApiError::bad_request(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ))),
        }
    }

    /// The first subnet of the pools that no network and no host route uses.
    fn allocate(&self) -> Result<Ipv4Net> {
        self.allocate_besides(None)
    }

    /// A free subnet from the pools: used by no network of this engine but
    /// `except`, and by no route or interface of the host.
    fn allocate_besides(&self, except: Option<&str>) -> Result<Ipv4Net> {
        let taken: Vec<Ipv4Net> = self
            .all()
            .iter()
            .filter(|n| Some(n.id.as_str()) != except)
            .filter_map(|n| n.subnet.parse().ok())
            .chain(host_routes())
            .chain(crate::network::claim::host_networks())
            .collect();
        for (base, size) in &self.pools {
            if let Ok(subnets) = base.subnets(*size) {
                for s in subnets {
                    if !taken.iter().any(|t| overlaps(t, &s)) {
                        return Ok(s);
                    }
                }
            }
        }
        Err(ApiError::forbidden(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
        ))
    }

    /// A network of berth's own drivers, or of the plugins `by` names
    /// (found by the caller, and asked for its pools): the record only,
    /// the network plugin's `CreateNetwork` is the caller's.
    pub fn create(&self, req: CreateRequest, by: ByPlugins<'_>) -> Result<Network> {
        let plugin = by.network_scope;
        let name = super::names::validate_network_name(&req.name).map_err(ApiError::bad_request)?;
        // CheckDuplicate false lets a second network take the name, as
        // dockerd lets it (lookups by that name then find the first).
        if req.check_duplicate != Some(false) && self.get(&name).is_ok_and(|n| n.name == name) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let driver = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        match driver.as_str() {
            "bridge" | "macvlan" | "ipvlan" => {}
            // Global scope: a swarm's, refused as dockerd outside one
            // refuses it.
            "overlay" => return Err(ApiError::internal(crate::api::swarm::NOT_A_MANAGER)),
            // The host and none networks are made once, by the engine.
            "host" | "null" => {
                return Err(ApiError::forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )));
            }
            _ if plugin.is_some() => {}
            _ => {
                return Err(ApiError::not_found(format!(
                    "plugin \"{driver}\" not found"
                )));
            }
        }
        // Docker's default IPAM is berth's; any other is a plugin's.
        if let Some(ipam) = req.ipam.as_ref()
            && !matches!(ipam.driver.as_str(), "" | "default")
            && by.ipam.is_none()
        {
            return Err(ApiError::not_found(format!(
                "plugin \"{}\" not found",
                ipam.driver
            )));
        }
        // What only a swarm manager makes, refused as a dockerd outside a
        // swarm refuses it.
        if req.ingress {
            return Err(ApiError::forbidden(
                "Ingress network can only be global scope network",
            ));
        }
        match req.scope.as_str() {
            "" | "local" => {}
            "swarm" | "global" => {
                return Err(ApiError::forbidden(
                    "cannot create a swarm scoped network when swarm is not active",
                ));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid scope {other:?}: local, global or swarm"
                )));
            }
        }
        if req.config_only || req.config_from.as_ref().is_some_and(|c| !c.is_null()) {
            return Err(ApiError::bad_request(
                "config-only networks and --config-from are for swarm networks; berth makes local bridges",
            ));
        }
        let configs = req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default();
        let (v6, v4): (Vec<IpamConfig>, Vec<IpamConfig>) =
            configs.into_iter().partition(|c| c.subnet.contains(':'));
        if v4.len() > 1 || v6.len() > 1 {
            return Err(ApiError::bad_request(
                "berth networks take one IPv4 subnet and, with --ipv6, one IPv6 subnet",
            ));
        }
        let ipv6 = req.enable_ipv6 == Some(true);
        let v6 = v6.into_iter().next();
        let (subnet6, gateway6, ip_range6) = match &v6 {
            // Kept without EnableIPv6 too, as dockerd keeps it.
            Some(c) => self.check_subnet6(c)?,
            // dockerd has no default IPv6 pools either.
            None if ipv6 => {
                return Err(ApiError::forbidden(
                    "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network",
                ));
            }
            None => Default::default(),
        };
        let gateway6_shown = match by.ipam {
            Some(p) => p.gateway6_given,
            None => v6.as_ref().is_some_and(|c| !c.gateway.is_empty()),
        };
        let aux_addresses6 = v6.map(|c| c.auxiliary_addresses).unwrap_or_default();
        let cfg = v4.into_iter().next().unwrap_or_default();
        // A plugin's pool is in the request, as asked or as it picked.
        let (subnet_given, gateway_given) = match by.ipam {
            Some(p) => (p.subnet_given, p.gateway_given),
            None => (!cfg.subnet.is_empty(), !cfg.gateway.is_empty()),
        };
        let gateway_shown = !subnet_given || gateway_given;
        let subnet: Ipv4Net = if cfg.subnet.is_empty() {
            if !cfg.ip_range.is_empty() || !cfg.gateway.is_empty() {
                return Err(ApiError::bad_request(
                    "ip-range and gateway need a subnet (--subnet)",
                ));
            }
            self.allocate()?
        } else {
            let s: Ipv4Net = cfg.subnet.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid subnet {0} : invalid CIDR address: {0}",
                    cfg.subnet
                ))
            })?;
            if s.trunc() != s {
                return Err(ApiError::bad_request(format!(
                    "invalid subnet {s}: it should be {}",
                    s.trunc()
                )));
            }
            if s.prefix_len() > 30 {
                return Err(ApiError::bad_request(format!("subnet {s} is too small")));
            }
            check_subnet(&s)?;
            for n in self.all() {
                if let Ok(other) = n.subnet.parse::<Ipv4Net>()
                    && overlaps(&other, &s)
                {
                    return Err(ApiError::forbidden(format!(
                        "Pool overlaps with other one on this address space ({} of network {})",
                        other, n.name
                    )));
                }
            }
            s
        };
        let range: Option<Ipv4Net> = cfg.ip_range.parse().ok();
        let gateway = if cfg.gateway.is_empty() {
            // dockerd takes it from the ip-range when there is one.
            match range.filter(|r| r.network() != subnet.network()) {
                Some(r) => r.network().to_string(),
                None => first_host(&subnet),
            }
        } else {
            let g: std::net::Ipv4Addr = cfg.gateway.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gateway address {}", cfg.gateway))
            })?;
            if !subnet.contains(&g) {
                return Err(ApiError::bad_request(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            g.to_string()
        };
        if !cfg.ip_range.is_empty() {
            let r: Ipv4Net = cfg
                .ip_range
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid ip-range {}", cfg.ip_range)))?;
            if !subnet.contains(&r) {
                return Err(ApiError::bad_request(format!(
                    "no matching subnet for range {r}"
                )));
            }
        }
        let id = new_id();
        let options = req.options.clone().unwrap_or_default();
        let mut internal = req.internal;
        let (bridge, parent, made_parent) = if plugin.is_some() {
            // The plugin makes what its containers hang from, and reads
            // the options (dockerd hands them on unread).
            (String::new(), String::new(), false)
        } else if parent::is_parented(&driver) {
            parent::check_options(&driver, &options).map_err(ApiError::internal)?;
            let given = options.get("parent").filter(|p| !p.is_empty());
            if let Some(p) = given
                && let Some(other) = self
                    .all()
                    .into_iter()
                    .find(|n| n.driver == driver && &n.parent == p)
            {
                return Err(ApiError::internal(format!(
                    "network {} is already using parent interface {p}",
                    parent::dummy_name(&driver, &other.id)
                )));
            }
            // A network without a parent reaches nothing but its own
            // containers: dockerd makes it internal.
            internal |= given.is_none();
            let (p, made) = parent::prepare(&driver, &id, given.map(String::as_str))
                .map_err(ApiError::internal)?;
            (String::new(), p, made)
        } else {
            check_options(&options)?;
            let bridge = options
                .get("com.docker.network.bridge.name")
                .cloned()
                .unwrap_or_else(|| format!("br-{}", &id[..12]));
            check_bridge_name(&bridge)?;
            if self.all().iter().any(|n| n.bridge == bridge) {
                return Err(ApiError::conflict(format!(
                    "bridge {bridge} is used by another network"
                )));
            }
            // berth deletes its bridges and their firewall rules with the
            // network: it must never take over an interface of the host's.
            if link_exists(&bridge) {
                return Err(ApiError::forbidden(format!(
                    "bridge name {bridge} is an existing interface of this host; berth networks make and own their bridge"
                )));
            }
            (bridge, String::new(), false)
        };
        let n = Network {
            id,
            name,
            driver,
            scope: plugin.unwrap_or_default().to_string(),
            ipam_driver: by.ipam.map(|p| p.driver.clone()).unwrap_or_default(),
            pool_id: by.ipam.map(|p| p.pool_id.clone()).unwrap_or_default(),
            pool_id6: by.ipam.map(|p| p.pool_id6.clone()).unwrap_or_default(),
            created: SystemTime::now(),
            internal,
            attachable: req.attachable,
            subnet: subnet.to_string(),
            gateway,
            ip_range: cfg.ip_range,
            subnet6,
            gateway6,
            ip_range6,
            ipv6,
            ipam_options: req.ipam.as_ref().and_then(|i| i.options.clone()),
            aux_addresses: cfg.auxiliary_addresses.clone(),
            aux_addresses6,
            subnet_given,
            gateway_shown,
            gateway6_shown,
            bridge,
            parent,
            made_parent,
            options,
            labels: req.labels.unwrap_or_default(),
        };
        if let Err(e) = self.insert(n.clone()) {
            if n.made_parent {
                parent::remove(&n.parent);
            }
            return Err(ApiError::internal(format!("saving network: {e}")));
        }
        Ok(n)
    }

    /// The default bridge's IPv6 subnet as daemon.json gives it (none:
    /// IPv4 only), its gateway the subnet's first address.
    pub fn set_default_ipv6(&self, subnet6: Option<&str>) -> anyhow::Result<()> {
        let Ok(mut n) = self.get("bridge") else {
            return Ok(());
        };
        let (subnet6, gateway6) = match subnet6 {
            Some(s) => {
                let net: Ipv6Net = s.parse()?;
                (net.to_string(), first_host6(&net))
            }
            None => (String::new(), String::new()),
        };
        if n.subnet6 != subnet6 {
            n.ipv6 = !subnet6.is_empty();
            n.subnet6 = subnet6;
            n.gateway6 = gateway6;
            self.insert(n)?;
        }
        Ok(())
    }

    /// A network's IPv6 subnet and gateway, checked as its IPv4 one is.
    fn check_subnet6(&self, c: &IpamConfig) -> Result<(String, String, String)> {
        let s: Ipv6Net = c.subnet.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid subnet {0} : invalid CIDR address: {0}",
                c.subnet
            ))
        })?;
        // dockerd takes "2001:389::1/64" for its network.
        let s = s.trunc();
        if s.prefix_len() > 126 {
            return Err(ApiError::bad_request(format!("subnet {s} is too small")));
        }
        // Link-local subnets are taken, as dockerd takes them (compose's
        // own tests use fe80::/64); the bridge keeps its own fe80 address.
        let own = s.addr().segments();
        if own[0] & 0xff00 == 0xff00 || s.addr().is_loopback() {
            return Err(ApiError::bad_request(format!(
                "subnet {s} is multicast or loopback"
            )));
        }
        for n in self.all() {
            if let Ok(other) = n.subnet6.parse::<Ipv6Net>()
                && (other.contains(&s.network()) || s.contains(&other.network()))
            {
                return Err(ApiError::forbidden(format!(
                    "Pool overlaps with other one on this address space ({} of network {})",
                    other, n.name
                )));
            }
        }
        let gateway = if c.gateway.is_empty() {
            first_host6(&s)
        } else {
            let g: std::net::Ipv6Addr = c.gateway.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gateway address {}", c.gateway))
            })?;
            if !s.contains(&g) {
                return Err(ApiError::bad_request(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            g.to_string()
        };
        let range = if c.ip_range.is_empty() {
            String::new()
        } else {
            let r: Ipv6Net = c
                .ip_range
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid ip-range {}", c.ip_range)))?;
            if !s.contains(&r) {
                return Err(ApiError::bad_request(format!(
                    "no matching subnet for range {r}"
                )));
            }
            r.trunc().to_string()
        };
        Ok((s.to_string(), gateway, range))
    }

    /// Marks a network as being removed, before its removal looks for
    /// containers on it. A start holds its container while it joins and
    /// asks [`Networks::is_leaving`] once its attachment is recorded, so
    /// either the removal finds the attachment and is refused, or the
    /// start sees the mark and gives up: never a container joined to a
    /// network that is gone.
    pub fn leaving(&self, id: &str) -> Leaving<'_> {
        self.leaving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        Leaving {
            networks: self,
            id: id.to_string(),
        }
    }

    pub fn is_leaving(&self, id: &str) -> bool {
        self.leaving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        match std::fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether the host has a network interface of that name.
/// The drivers berth implements itself; any other is a plugin's.
pub fn is_builtin_driver(driver: &str) -> bool {
    matches!(driver, "bridge" | "macvlan" | "ipvlan" | "host" | "null")
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// An IPv6 subnet's gateway: the first address after its own (::1 of a
/// /64).
fn first_host6(s: &Ipv6Net) -> String {
    std::net::Ipv6Addr::from(u128::from(s.network()) + 1).to_string()
}

/// A bridge's name, as dockerd takes it: an interface name of up to 15
/// characters that no iptables rule would read as a wildcard (`+`).
fn check_bridge_name(b: &str) -> Result<()> {
    if crate::network::is_interface_name(b) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid bridge name {b:?}: up to 15 of [a-zA-Z0-9_.-], starting with a letter or digit"
        )))
    }
}

/// The bridge driver's options berth knows; the host-interface options of
/// other drivers (macvlan and ipvlan's `parent`) are refused, not ignored.
fn check_options(o: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in o {
        match k.as_str() {
            "parent" => {
                return Err(ApiError::bad_request(
                    "option parent is for the macvlan and ipvlan drivers; berth networks are bridges of their own",
                ));
            }
            "com.docker.network.driver.mtu"
                if !v.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) =>
            {
                return Err(ApiError::bad_request(format!(
                    "invalid MTU {v:?}: 68 to 65535"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Subnets that would take over addresses the host itself needs.
fn check_subnet(s: &Ipv4Net) -> Result<()> {
    let reserved = [
        ("0.0.0.0/8", "this network"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    ];
    if s.prefix_len() < 8 {
        return Err(ApiError::bad_request(format!(
            "subnet {s} is too large: at most a /8"
        )));
    }
    for (r, what) in reserved {
        if let Ok(r) = r.parse::<Ipv4Net>()
            && overlaps(&r, s)
        {
            return Err(ApiError::bad_request(format!(
                "subnet {s} overlaps the {what} range {r}"
            )));
        }
    }
    Ok(())
}

/// Whether a subnet overlaps a network this host routes already (its LAN,
/// a VPN): refused for callers who may not change the host's network.
pub fn overlaps_host_route(subnet: &str) -> Option<String> {
    let s: Ipv4Net = subnet.parse().ok()?;
    host_routes()
        .into_iter()
        .find(|r| overlaps(r, &s))
        .map(|r| r.to_string())
}

fn first_host(net: &Ipv4Net) -> String {
    net.hosts()
        .next()
        .map(|h| h.to_string())
        .unwrap_or_else(|| net.addr().to_string())
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network on 10.231.0.0/24 with ip-range `range` and auxiliary
    /// addresses `aux`.
    fn net(range: &str, aux: Value) -> Network {
        serde_json::from_value(json!({
            "id": "x", "name": "x", "driver": "bridge", "bridge": "x",
            "created": {"secs_since_epoch": 0, "nanos_since_epoch": 0},
            "subnet": "10.231.0.0/24", "gateway": "10.231.0.1",
            "ip_range": range, "aux_addresses": aux,
        }))
        .unwrap()
    }

    #[test]
    fn the_lowest_free_address_is_given_as_dockerd_gives_it() {
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let plain = net("", json!({}));
        assert_eq!(plain.lowest_free4(|_| false), Some(ip("10.231.0.2")));
        // .2 left, .3 still held: .2 again, not .4.
        assert_eq!(
            plain.lowest_free4(|a| a == ip("10.231.0.3")),
            Some(ip("10.231.0.2"))
        );
        assert_eq!(
            plain.lowest_free4(|a| a < ip("10.231.0.9")),
            Some(ip("10.231.0.9"))
        );
        // Never the broadcast address; none when all are held.
        assert_eq!(
            plain.lowest_free4(|a| a < ip("10.231.0.254")),
            Some(ip("10.231.0.254"))
        );
        assert_eq!(plain.lowest_free4(|_| true), None);
        // From the range, past its auxiliary addresses.
        let ranged = net("10.231.0.128/25", json!({"a": "10.231.0.128"}));
        assert_eq!(ranged.lowest_free4(|_| false), Some(ip("10.231.0.129")));
        // A gateway inside the pool is skipped.
        let low = net("", json!({"a": "10.231.0.2"}));
        assert_eq!(low.lowest_free4(|_| false), Some(ip("10.231.0.3")));
        let none: Network = serde_json::from_value(json!({
            "id": "x", "name": "x", "driver": "bridge", "bridge": "x",
            "created": {"secs_since_epoch": 0, "nanos_since_epoch": 0},
        }))
        .unwrap();
        assert_eq!(none.lowest_free4(|_| false), None);
        assert_eq!(none.lowest_free6(|_| false), None);

        let six = |range: &str| -> Network {
            serde_json::from_value(json!({
                "id": "x", "name": "x", "driver": "bridge", "bridge": "x",
                "created": {"secs_since_epoch": 0, "nanos_since_epoch": 0},
                "subnet": "10.231.0.0/24", "gateway": "10.231.0.1", "ipv6": true,
                "subnet6": "fd00:77::/64", "gateway6": "fd00:77::1", "ip_range6": range,
                "aux_addresses6": {"r": "fd00:77::3"},
            }))
            .unwrap()
        };
        let ip6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!(six("").lowest_free6(|_| false), Some(ip6("fd00:77::2")));
        assert_eq!(
            six("").lowest_free6(|a| a == ip6("fd00:77::2")),
            Some(ip6("fd00:77::4"))
        );
        assert_eq!(
            six("fd00:77::100/120").lowest_free6(|_| false),
            Some(ip6("fd00:77::100"))
        );
        let mut v4_only = six("");
        v4_only.ipv6 = false;
        assert_eq!(v4_only.lowest_free6(|_| false), None);
    }

    #[test]
    fn addresses_come_from_the_ip_range_without_the_auxiliary_ones() {
        let spans = |n: &Network| -> Vec<(String, String)> {
            n.pool4()
                .unwrap_or_default()
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert!(net("", json!({})).pool4().is_none());
        // dockerd hands out the range's own network address first.
        assert_eq!(
            spans(&net("10.231.0.128/25", json!({}))),
            [s("10.231.0.128", "10.231.0.254")]
        );
        assert_eq!(
            spans(&net(
                "10.231.0.128/25",
                json!({"a": "10.231.0.129", "b": "10.231.0.200", "out": "10.231.0.5"})
            )),
            [
                s("10.231.0.128", "10.231.0.128"),
                s("10.231.0.130", "10.231.0.199"),
                s("10.231.0.201", "10.231.0.254")
            ]
        );
        assert_eq!(
            spans(&net("", json!({"a": "10.231.0.2"}))),
            [
                s("10.231.0.1", "10.231.0.1"),
                s("10.231.0.3", "10.231.0.254")
            ]
        );
        let list = net("10.231.0.128/25", json!({"a": "10.231.0.129"})).conflist(
            Path::new("/x"),
            None,
            None,
            None,
            false,
        );
        let ranges = &list["plugins"][0]["ipam"]["ranges"][0];
        assert_eq!(ranges.as_array().map(Vec::len), Some(2), "{ranges}");
        assert_eq!(ranges[0]["gateway"], "10.231.0.1");
        let fixed = net("10.231.0.128/25", json!({"a": "10.231.0.129"})).conflist(
            Path::new("/x"),
            Some("10.231.0.9"),
            None,
            None,
            false,
        );
        assert!(
            fixed["plugins"][0]["ipam"]["ranges"][0][0]
                .get("rangeStart")
                .is_none()
        );
    }

    fn nets(dir: &Path) -> Networks {
        let pools = [json!({"base": "10.213.0.0/16", "size": 24})];
        // A bridge name of each test's own: an engine holds its bridge.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("btu{}x{n}", std::process::id() % 100_000);
        Networks::open(dir, Some(&name), Some("10.212.0.1/24"), &pools).unwrap()
    }

    #[test]
    fn a_bridge_held_by_a_running_engine_is_not_taken() {
        let dir = || tempfile::tempdir().unwrap();
        let (a, b, c) = (dir(), dir(), dir());
        let name = format!("btc{}", std::process::id() % 100_000);
        let pools = [json!({"base": "10.213.0.0/16", "size": 24})];
        let first = Networks::open(a.path(), Some(&name), Some("10.212.0.1/24"), &pools).unwrap();
        assert_eq!(first.default_bridge(), name);
        // Named: refused, saying how to give the engine its own.
        let err = Networks::open(b.path(), Some(&name), None, &pools)
            .err()
            .expect("the bridge was taken twice")
            .to_string();
        assert!(
            err.contains("another berthd") && err.contains("\"bridge\""),
            "{err}"
        );
        // Once its engine is gone, it is free again.
        drop(first);
        let again = Networks::open(c.path(), Some(&name), Some("10.212.0.1/24"), &pools).unwrap();
        assert_eq!(again.default_bridge(), name);
    }

    #[test]
    fn builtins_and_allocation_avoid_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let n = nets(dir.path());
        let b = n.get("bridge").unwrap();
        assert_eq!(
            (b.subnet.as_str(), b.gateway.as_str()),
            ("10.212.0.0/24", "10.212.0.1")
        );
        assert!(n.get("host").is_ok() && n.get("none").is_ok());
        let a = n
            .create(
                CreateRequest {
                    name: "a".into(),
                    ..Default::default()
                },
                ByPlugins::default(),
            )
            .unwrap();
        assert!(a.subnet.starts_with("10.213."), "{}", a.subnet);
        assert_eq!(a.bridge, format!("br-{}", &a.id[..12]));
        let dup = n.create(
            CreateRequest {
                name: "a".into(),
                ..Default::default()
            },
            ByPlugins::default(),
        );
        assert_eq!(dup.unwrap_err().status, axum::http::StatusCode::CONFLICT);
        let over = n.create(
            CreateRequest {
                name: "b".into(),
                ipam: Some(IpamRequest {
                    config: Some(vec![IpamConfig {
                        subnet: a.subnet.clone(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ByPlugins::default(),
        );
        assert!(over.unwrap_err().message.contains("overlaps"));
        // Reopened from disk: the same networks.
        let again = nets(dir.path());
        assert_eq!(again.get("a").unwrap().id, a.id);
        assert_eq!(again.get(&a.id[..6]).unwrap().name, "a");
    }

    #[test]
    fn a_gateway_outside_the_subnet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let n = nets(dir.path());
        let r = n.create(
            CreateRequest {
                name: "c".into(),
                ipam: Some(IpamRequest {
                    config: Some(vec![IpamConfig {
                        subnet: "10.214.0.0/24".into(),
                        gateway: "10.215.0.1".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ByPlugins::default(),
        );
        assert!(r.unwrap_err().message.contains("no matching subnet"));
    }
}
