//! A pod's network: the first CNI config of `cni_conf_dir` (by file name,
//! as libcni orders them and containerd takes one), run against the pod's
//! network namespace with its port mappings, and the loopback interface.
//! What ADD was given and returned is kept with the sandbox, so DEL after
//! a restart (or after the config changed) undoes exactly that.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use berth_cni::{CNI_VERSION, Cni, Target};

/// One CNI ADD as it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub conflist: Value,
    pub runtime_config: Value,
    pub args: String,
    pub result: Value,
}

const IFNAME: &str = "eth0";

/// The network config the pods get: the first `.conflist`, `.conf` or
/// `.json` file (by name) that parses; a `.conf` of one plugin becomes a
/// list of one. The error says why there is none, for Status.
pub fn load(dir: &Path) -> Result<Value, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("no network config found in {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            )
        })
        .collect();
    files.sort();
    for f in &files {
        let parsed = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|d| serde_json::from_slice::<Value>(&d).map_err(|e| e.to_string()));
        let v = match parsed {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("CNI config {}: {e}", f.display());
                continue;
            }
        };
        if v["plugins"].is_array() {
            return Ok(v);
        }
        if v["type"].is_string() {
            let mut plugin = v.clone();
            if let Some(o) = plugin.as_object_mut() {
                o.remove("cniVersion");
                o.remove("name");
            }
            return Ok(json!({
                "cniVersion": v["cniVersion"].as_str().unwrap_or(CNI_VERSION),
                "name": v["name"],
                "plugins": [plugin],
            }));
        }
        tracing::warn!("CNI config {}: neither a list nor a plugin", f.display());
    }
    Err(format!("no network config found in {}", dir.display()))
}

/// The runtime config containerd's CRI gives: port mappings for portmap,
/// DNS for plugins that take it.
pub fn runtime_config(ports: &[berth_proto::cri::v1::PortMapping]) -> Value {
    let mappings: Vec<Value> = ports
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let protocol = match p.protocol {
                1 => "udp",
                2 => "sctp",
                _ => "tcp",
            };
            json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": protocol,
                "hostIP": p.host_ip,
            })
        })
        .collect();
    json!({ "portMappings": mappings })
}

fn lo_list() -> Value {
    json!({"cniVersion": CNI_VERSION, "name": "cni-loopback",
           "plugins": [{"type": "loopback"}]})
}

/// What ADD will be given, recorded before it runs so that DEL can undo
/// it even if lifecycled dies in between.
pub fn prepare(conflist: Value, runtime_config: Value, args: String) -> Attachment {
    Attachment {
        conflist,
        runtime_config,
        args,
        result: Value::Null,
    }
}

/// CNI ADD of the loopback and of the pod's network, at once (they touch
/// different interfaces); the result goes into `a`. A loopback that fails
/// after the pod's network came up takes that down again.
pub async fn add(cni: &Cni, a: &mut Attachment, id: &str, netns: &Path) -> Result<(), String> {
    let lo = Target {
        container_id: id,
        netns,
        ifname: "lo",
        args: &a.args,
    };
    let target = Target {
        ifname: IFNAME,
        ..lo.clone()
    };
    let lo_list = lo_list();
    let empty = json!({});
    let (lo_r, pod_r) = tokio::join!(
        cni.add(&lo_list, &lo, &empty),
        cni.add(&a.conflist, &target, &a.runtime_config)
    );
    let result = pod_r.map_err(|e| format!("plugin type={:?}: {e}", first_type(&a.conflist)))?;
    if let Err(e) = lo_r {
        let _ = cni
            .del(&a.conflist, &target, &a.runtime_config, Some(&result))
            .await;
        return Err(format!("loopback: {e}"));
    }
    a.result = result;
    Ok(())
}

fn first_type(list: &Value) -> String {
    list["plugins"][0]["type"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Undoes [`add`]; every plugin is asked even if one fails.
pub async fn del(cni: &Cni, a: &Attachment, id: &str, netns: &Path) -> Result<(), String> {
    let target = Target {
        container_id: id,
        netns,
        ifname: IFNAME,
        args: &a.args,
    };
    let lo = Target {
        ifname: "lo",
        ..target.clone()
    };
    let (lo_list, empty) = (lo_list(), json!({}));
    let (pod, _) = tokio::join!(
        cni.del(
            &a.conflist,
            &target,
            &a.runtime_config,
            Some(&a.result).filter(|r| !r.is_null()),
        ),
        cni.del(&lo_list, &lo, &empty, None)
    );
    pod.map_err(|e| e.to_string())
}

/// The pod's addresses from an ADD result: the first is its IP, the rest
/// additional (IPv4 first, as the kubelet expects the primary family).
pub fn addresses(result: &Value) -> Vec<String> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    if let Some(ips) = result["ips"].as_array() {
        for ip in ips {
            let Some(a) = ip["address"].as_str() else {
                continue;
            };
            let addr = a.split('/').next().unwrap_or(a).to_string();
            if addr.contains(':') {
                v6.push(addr);
            } else {
                v4.push(addr);
            }
        }
    }
    v4.into_iter().chain(v6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_valid_config_by_name_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("05-broken.conflist"), "{").unwrap();
        std::fs::write(
            dir.path().join("10-pods.conf"),
            r#"{"cniVersion":"0.4.0","name":"pods","type":"bridge","bridge":"cni0"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("20-other.conflist"),
            r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("00-notes.txt"), "not a config").unwrap();
        let list = load(dir.path()).unwrap();
        assert_eq!(list["name"], "pods");
        assert_eq!(list["cniVersion"], "0.4.0");
        assert_eq!(list["plugins"][0]["type"], "bridge");
        assert_eq!(list["plugins"][0]["bridge"], "cni0");
        assert!(list["plugins"][0].get("name").is_none());

        let empty = tempfile::tempdir().unwrap();
        assert!(
            load(empty.path())
                .unwrap_err()
                .contains("no network config")
        );
    }

    #[test]
    fn host_ports_become_port_mappings_and_addresses_put_ipv4_first() {
        use berth_proto::cri::v1::PortMapping;
        let rc = runtime_config(&[
            PortMapping {
                protocol: 0,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            },
            PortMapping {
                protocol: 1,
                container_port: 53,
                host_port: 0,
                host_ip: String::new(),
            },
        ]);
        assert_eq!(
            rc["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}])
        );
        let r = json!({"ips": [{"address": "fd00::2/64"}, {"address": "10.88.0.2/16"}]});
        assert_eq!(addresses(&r), vec!["10.88.0.2", "fd00::2"]);
    }
}
