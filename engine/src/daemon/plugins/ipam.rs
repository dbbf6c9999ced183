//! Addresses an IPAM plugin gives (`network create --ipam-driver
//! PLUGIN`), as libnetwork asks a remote IPAM driver: at the network's
//! create `RequestPool` (the subnet asked, or the plugin's pick) and
//! `RequestAddress` for its gateway and auxiliary addresses; for each
//! container that joins it `RequestAddress` (the address asked, or the
//! plugin's pick), given back with `ReleaseAddress` when it leaves; at the
//! network's removal its addresses and `ReleasePool`. The network itself
//! stays the driver's (a bridge of berth's, a network plugin's): the
//! address the plugin gave is the one the CNI plugins are told to set.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::client::{self, Addr};
use crate::daemon::Daemon;
use crate::daemon::networks::{CreateRequest, IpamConfig, IpamPools, Network};
use crate::error::{ApiError, Result};

const GATEWAY: &str = "com.docker.network.gateway";

/// `ip/prefix` without its prefix.
fn bare(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or_default().to_string()
}

impl Daemon {
    /// Where the plugin that gives addresses as `driver` answers: an
    /// enabled managed plugin of that name first, else a legacy one.
    pub async fn ipam_driver(&self, driver: &str) -> std::result::Result<Addr, ApiError> {
        self.plugin_serving(driver, "ipamdriver", "IpamDriver")
            .await
            .map(|(addr, _)| addr)
            .map_err(ApiError::not_found)
    }

    /// For a create naming an IPAM plugin: its pools and gateways (and
    /// the auxiliary addresses reserved), written into the request in
    /// place of what was asked. None for Docker's default IPAM. What was
    /// taken is given back if any step fails.
    pub async fn ipam_request_pools(&self, req: &mut CreateRequest) -> Result<Option<IpamPools>> {
        let Some(ipam) = req.ipam.as_mut() else {
            return Ok(None);
        };
        if matches!(ipam.driver.as_str(), "" | "default") {
            return Ok(None);
        }
        let addr = self.ipam_driver(&ipam.driver).await?;
        let spaces = client::call(&addr, "IpamDriver.GetDefaultAddressSpaces", &json!({}))
            .await
            .map_err(ApiError::internal)?;
        let space = spaces["LocalDefaultAddressSpace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("LocalDefault")
            .to_string();
        let options = ipam.options.clone().unwrap_or_default();
        let (v6, v4): (Vec<IpamConfig>, Vec<IpamConfig>) = ipam
            .config
            .clone()
            .unwrap_or_default()
            .into_iter()
            .partition(|c| c.subnet.contains(':'));
        if v4.len() > 1 || v6.len() > 1 {
            return Err(ApiError::bad_request(
                "berth networks take one IPv4 subnet and, with --ipv6, one IPv6 subnet",
            ));
        }
        let asked4 = v4.into_iter().next().unwrap_or_default();
        let asked6 = v6.into_iter().next();
        let mut pools = IpamPools {
            driver: ipam.driver.clone(),
            subnet_given: !asked4.subnet.is_empty(),
            gateway_given: !asked4.gateway.is_empty(),
            gateway6_given: asked6.as_ref().is_some_and(|c| !c.gateway.is_empty()),
            ..IpamPools::default()
        };
        let mut taken = Taken::default();
        let mut configs = Vec::new();
        let v4 = self
            .ipam_pool(&addr, &space, &options, &asked4, false, &mut taken)
            .await;
        let v4 = match v4 {
            Ok((id, c)) => {
                pools.pool_id = id;
                c
            }
            Err(e) => {
                self.ipam_give_back(&addr, &taken).await;
                return Err(e);
            }
        };
        configs.push(v4);
        // As libnetwork: an IPv6 pool is asked for a network with IPv6 on.
        if req.enable_ipv6 == Some(true) {
            let asked = asked6.clone().unwrap_or_default();
            match self
                .ipam_pool(&addr, &space, &options, &asked, true, &mut taken)
                .await
            {
                Ok((id, c)) => {
                    pools.pool_id6 = id;
                    configs.push(c);
                }
                Err(e) => {
                    self.ipam_give_back(&addr, &taken).await;
                    return Err(e);
                }
            }
        } else if let Some(c) = asked6 {
            configs.push(c);
        }
        if let Some(ipam) = req.ipam.as_mut() {
            ipam.config = Some(configs);
        }
        pools.reserved = taken.addresses;
        Ok(Some(pools))
    }

    /// One pool of the plugin's, its gateway and auxiliary addresses: the
    /// config the network is made with, and the pool's id.
    async fn ipam_pool(
        &self,
        addr: &Addr,
        space: &str,
        options: &BTreeMap<String, String>,
        asked: &IpamConfig,
        v6: bool,
        taken: &mut Taken,
    ) -> Result<(String, IpamConfig)> {
        let pool = client::call(
            addr,
            "IpamDriver.RequestPool",
            &json!({
                "AddressSpace": space,
                "Pool": asked.subnet,
                "SubPool": asked.ip_range,
                "Options": options,
                "V6": v6,
            }),
        )
        .await
        .map_err(ApiError::internal)?;
        let id = pool["PoolID"].as_str().unwrap_or_default().to_string();
        let subnet = pool["Pool"].as_str().unwrap_or_default().to_string();
        if id.is_empty() || subnet.is_empty() {
            return Err(ApiError::internal(format!(
                "the IPAM plugin gave no pool: {pool}"
            )));
        }
        taken.pools.push(id.clone());
        // The plugin may name the gateway with the pool, else it is asked.
        let gateway = match pool["Data"][GATEWAY].as_str().filter(|g| !g.is_empty()) {
            Some(g) => bare(g),
            None => {
                let got = self
                    .ipam_address(
                        addr,
                        &id,
                        &asked.gateway,
                        json!({"RequestAddressType": GATEWAY}),
                    )
                    .await?;
                taken.addresses.push((id.clone(), got.clone()));
                got
            }
        };
        for a in asked.auxiliary_addresses.values() {
            let got = self.ipam_address(addr, &id, a, Value::Null).await?;
            taken.addresses.push((id.clone(), got));
        }
        Ok((
            id,
            IpamConfig {
                subnet,
                ip_range: asked.ip_range.clone(),
                gateway,
                auxiliary_addresses: asked.auxiliary_addresses.clone(),
            },
        ))
    }

    /// `RequestAddress` in pool `pool`: the address, without its prefix.
    async fn ipam_address(
        &self,
        addr: &Addr,
        pool: &str,
        asked: &str,
        options: Value,
    ) -> Result<String> {
        let got = client::call(
            addr,
            "IpamDriver.RequestAddress",
            &json!({"PoolID": pool, "Address": asked, "Options": options}),
        )
        .await
        .map_err(ApiError::internal)?;
        let a = got["Address"].as_str().map(bare).unwrap_or_default();
        if a.parse::<std::net::IpAddr>().is_err() {
            return Err(ApiError::internal(format!(
                "the IPAM plugin gave no address: {got}"
            )));
        }
        Ok(a)
    }

    async fn ipam_give_back(&self, addr: &Addr, taken: &Taken) {
        for (pool, a) in &taken.addresses {
            let req = json!({"PoolID": pool, "Address": a});
            if let Err(e) = client::call(addr, "IpamDriver.ReleaseAddress", &req).await {
                tracing::warn!("releasing {a} of pool {pool}: {e}");
            }
        }
        for pool in &taken.pools {
            if let Err(e) =
                client::call(addr, "IpamDriver.ReleasePool", &json!({"PoolID": pool})).await
            {
                tracing::warn!("releasing pool {pool}: {e}");
            }
        }
    }

    /// What [`Daemon::ipam_request_pools`] took, given back (the create
    /// failed after it).
    pub async fn ipam_undo_pools(&self, pools: &IpamPools) {
        let Ok(addr) = self.ipam_driver(&pools.driver).await else {
            return;
        };
        let taken = Taken {
            addresses: pools.reserved.clone(),
            pools: [&pools.pool_id, &pools.pool_id6]
                .into_iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect(),
        };
        self.ipam_give_back(&addr, &taken).await;
    }

    /// A removed network's gateways, auxiliary addresses and pools given
    /// back to its IPAM plugin (what it answers is only logged, as
    /// libnetwork logs it).
    pub async fn ipam_release_pools(&self, n: &Network) {
        if n.ipam_driver.is_empty() {
            return;
        }
        let addr = match self.ipam_driver(&n.ipam_driver).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("releasing the pools of network {}: {}", n.name, e.message);
                return;
            }
        };
        let mut taken = Taken::default();
        if !n.pool_id.is_empty() {
            taken.addresses.push((n.pool_id.clone(), n.gateway.clone()));
            for a in n.aux_addresses.values() {
                taken.addresses.push((n.pool_id.clone(), a.clone()));
            }
            taken.pools.push(n.pool_id.clone());
        }
        if !n.pool_id6.is_empty() {
            taken
                .addresses
                .push((n.pool_id6.clone(), n.gateway6.clone()));
            taken.pools.push(n.pool_id6.clone());
        }
        self.ipam_give_back(&addr, &taken).await;
    }

    /// A container's address on `n` from its IPAM plugin: `asked`, or the
    /// plugin's pick (IPv6 with `six`).
    pub async fn ipam_request_address(
        &self,
        n: &Network,
        asked: Option<&str>,
        six: bool,
    ) -> Result<String> {
        let addr = self.ipam_driver(&n.ipam_driver).await?;
        let pool = if six { &n.pool_id6 } else { &n.pool_id };
        self.ipam_address(&addr, pool, asked.unwrap_or_default(), Value::Null)
            .await
    }

    /// The addresses (`ip/prefix`) an attachment to the network `id` was
    /// given, back to its IPAM plugin; nothing for Docker's default IPAM.
    pub async fn ipam_release_addresses(&self, network_id: &str, ips: &[String]) {
        let Ok(n) = self.networks.get(network_id) else {
            return;
        };
        if n.ipam_driver.is_empty() || ips.is_empty() {
            return;
        }
        let addr = match self.ipam_driver(&n.ipam_driver).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("releasing addresses on network {}: {}", n.name, e.message);
                return;
            }
        };
        let mut taken = Taken::default();
        for cidr in ips {
            let a = bare(cidr);
            let pool = if a.contains(':') {
                &n.pool_id6
            } else {
                &n.pool_id
            };
            taken.addresses.push((pool.clone(), a));
        }
        self.ipam_give_back(&addr, &taken).await;
    }
}

/// What a create took from the plugin so far: addresses (pool, address)
/// and pools, given back in that order.
#[derive(Default)]
struct Taken {
    addresses: Vec<(String, String)>,
    pools: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_read_without_its_prefix() {
        assert_eq!(bare("10.0.0.2/24"), "10.0.0.2");
        assert_eq!(bare("fd00::2/64"), "fd00::2");
        assert_eq!(bare("10.0.0.2"), "10.0.0.2");
    }
}
