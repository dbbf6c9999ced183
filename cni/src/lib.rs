//! Runs a CNI network configuration list against a network namespace as
//! libcni does: plugins in order for ADD, each given the previous one's
//! result, in reverse for DEL; `runtimeConfig` only for the capabilities a
//! plugin declares. What was added is kept by the caller (the conflist,
//! the runtime config and the result), so DEL works after a restart with
//! exactly what ADD used.

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin}: {message}")]
    Plugin { plugin: String, message: String },
    #[error("CNI plugin {0} not found in {1}")]
    MissingPlugin(String, String),
    #[error("network namespace {path}: {source}")]
    Netns {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub const CNI_VERSION: &str = "1.0.0";

/// Where Debian's containernetworking-plugins and upstream installs put
/// the plugins.
const PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

#[derive(Clone, Debug)]
pub struct Cni {
    dirs: Vec<PathBuf>,
}

impl Default for Cni {
    fn default() -> Self {
        Cni {
            dirs: PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// One container's interface in one network namespace.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// CNI_ARGS (`K=V;K=V`), e.g. the pod's name for Kubernetes-aware
    /// plugins; empty for none.
    pub args: &'a str,
}

impl Cni {
    /// Plugins looked up in `dirs`, in order (the default: Debian's and
    /// upstream's install directories).
    pub fn with_dirs(dirs: Vec<PathBuf>) -> Cni {
        Cni { dirs }
    }

    pub fn available(&self) -> bool {
        self.find("bridge").is_ok()
    }

    fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.exists())
            .ok_or_else(|| {
                CniError::MissingPlugin(
                    plugin.to_string(),
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            })
    }

    /// ADD through the whole list; on a failure midway, what was added is
    /// deleted again, so nothing is left half set up.
    pub async fn add(
        &self,
        list: &Value,
        target: &Target<'_>,
        runtime_config: &Value,
    ) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(list) {
            let conf = plugin_conf(list, plugin, prev.as_ref(), runtime_config);
            match self.exec("ADD", &conf, target).await {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    let _ = self.del(list, target, runtime_config, prev.as_ref()).await;
                    return Err(e);
                }
            }
        }
        Ok(prev.unwrap_or_else(|| json!({"cniVersion": CNI_VERSION})))
    }

    /// DEL through the list in reverse. Every plugin is asked even when
    /// one fails (the first failure is returned): a half-removed network
    /// is worse than a reported one.
    pub async fn del(
        &self,
        list: &Value,
        target: &Target<'_>,
        runtime_config: &Value,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first = None;
        for plugin in plugins(list).iter().rev() {
            let conf = plugin_conf(list, plugin, prev, runtime_config);
            if let Err(e) = self.exec("DEL", &conf, target).await {
                tracing::warn!("CNI DEL for {}: {e}", target.container_id);
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn exec(
        &self,
        command: &str,
        conf: &Value,
        target: &Target<'_>,
    ) -> Result<Value, CniError> {
        let kind = conf["type"].as_str().unwrap_or_default().to_string();
        let bin = self.find(&kind)?;
        let started = std::time::Instant::now();
        let path = std::env::join_paths(&self.dirs).unwrap_or_default();
        let mut child = tokio::process::Command::new(&bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", target.container_id)
            .env("CNI_NETNS", target.netns)
            .env("CNI_IFNAME", target.ifname)
            .env("CNI_ARGS", target.args)
            .env("CNI_PATH", path)
            // iptables and ip from the host, for the plugins that run them.
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(conf.to_string().as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        tracing::debug!(
            "CNI {command} {kind} {} {}: {:?} in {:?}",
            target.container_id,
            target.ifname,
            out.status,
            started.elapsed()
        );
        let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            let msg = stdout["msg"].as_str().unwrap_or_default();
            let details = stdout["details"].as_str().unwrap_or_default();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = [msg, details, stderr.trim()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(": ");
            return Err(CniError::Plugin {
                plugin: kind,
                message: if message.is_empty() {
                    format!("{command} failed ({})", out.status)
                } else {
                    message
                },
            });
        }
        Ok(stdout)
    }
}

fn plugins(list: &Value) -> Vec<&Value> {
    list["plugins"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// A plugin's stdin: its own keys, the list's name and version, the
/// previous result, and the runtime config it has the capabilities for.
fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>, runtime: &Value) -> Value {
    let mut conf = plugin.clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    if let (Some(caps), Some(rt)) = (plugin["capabilities"].as_object(), runtime.as_object()) {
        let granted: serde_json::Map<String, Value> = rt
            .iter()
            .filter(|(k, _)| caps.get(*k).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !granted.is_empty() {
            conf["runtimeConfig"] = Value::Object(granted);
        }
    }
    if let Some(o) = conf.as_object_mut() {
        o.remove("capabilities");
    }
    conf
}

/// The first IPv4 address of a result: (address, prefix length, gateway),
/// and the MAC of the container's interface.
pub fn ipv4_of(result: &Value, ifname: &str) -> Option<(String, u8, String, String)> {
    let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let index = ifaces.iter().position(|i| i["name"] == ifname);
    let mac = index
        .and_then(|i| ifaces[i]["mac"].as_str())
        .unwrap_or_default()
        .to_string();
    result["ips"].as_array()?.iter().find_map(|ip| {
        let cidr: ipnet::IpNet = ip["address"].as_str()?.parse().ok()?;
        let ipnet::IpNet::V4(v4) = cidr else {
            return None;
        };
        if let (Some(i), Some(at)) = (index, ip["interface"].as_u64())
            && i as u64 != at
        {
            return None;
        }
        Some((
            v4.addr().to_string(),
            v4.prefix_len(),
            ip["gateway"].as_str().unwrap_or_default().to_string(),
            mac.clone(),
        ))
    })
}

/// The IPv6 address, prefix and gateway a result gave `ifname`.
pub fn ipv6_of(result: &Value, ifname: &str) -> Option<(String, u8, String)> {
    let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let index = ifaces.iter().position(|i| i["name"] == ifname);
    result["ips"].as_array()?.iter().find_map(|ip| {
        let cidr: ipnet::IpNet = ip["address"].as_str()?.parse().ok()?;
        let ipnet::IpNet::V6(v6) = cidr else {
            return None;
        };
        if let (Some(i), Some(at)) = (index, ip["interface"].as_u64())
            && i as u64 != at
        {
            return None;
        }
        Some((
            v6.addr().to_string(),
            v6.prefix_len(),
            ip["gateway"].as_str().unwrap_or_default().to_string(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_goes_only_to_plugins_that_ask() {
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "bridge"},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]});
        let rt = json!({"portMappings": [{"hostPort": 8080}], "mac": "x"});
        let p = plugins(&list);
        let bridge = plugin_conf(&list, p[0], None, &rt);
        assert!(bridge.get("runtimeConfig").is_none());
        assert_eq!(bridge["name"], "n");
        let prev = json!({"ips": []});
        let portmap = plugin_conf(&list, p[1], Some(&prev), &rt);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080}]})
        );
        assert_eq!(portmap["prevResult"], prev);
        assert!(portmap.get("capabilities").is_none());
    }

    #[test]
    fn the_container_address_is_read_from_a_result() {
        let r = json!({"interfaces": [
            {"name": "br0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
            {"name": "eth0", "mac": "02:42:ac:11:00:02", "sandbox": "/x"}],
            "ips": [{"interface": 2, "address": "10.4.0.2/24", "gateway": "10.4.0.1"}]});
        assert_eq!(
            ipv4_of(&r, "eth0"),
            Some((
                "10.4.0.2".into(),
                24,
                "10.4.0.1".into(),
                "02:42:ac:11:00:02".into()
            ))
        );
    }
}
