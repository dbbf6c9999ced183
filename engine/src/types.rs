//! The Docker Engine API's JSON shapes (v1.43), as the Docker CLI, docker-py
//! and curl send and read them. Requests ignore unknown fields, as dockerd
//! does; responses carry the fields clients read, with Docker's zero values.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Docker's "strslice": a list of strings that old clients send as one string.
/// None reads as `null`, as dockerd writes an unset `Cmd` or `Entrypoint`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrSlice(pub Vec<String>);

impl Serialize for StrSlice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_none()
        } else {
            self.0.serialize(s)
        }
    }
}

/// A strslice as sent: null, one string, or a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::One(s)) => Some(vec![s]),
        Some(Either::Many(v)) => Some(v),
    })
}

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StrSlice(one_or_many(d)?.unwrap_or_default()))
    }
}

/// `Entrypoint`: unset (null: the image's is inherited), or a list. As
/// dockerd: an explicit `[]` is no entrypoint and reads `[]`; `[""]` (the
/// CLI's `--entrypoint ""`) clears the image's and reads null once merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entrypoint(pub Option<Vec<String>>);

impl Entrypoint {
    pub fn set(v: Vec<String>) -> Entrypoint {
        Entrypoint(Some(v))
    }

    /// What runs before the command (`[""]` is nothing).
    pub fn args(&self) -> impl Iterator<Item = &String> {
        self.0.iter().flatten().filter(|s| !s.is_empty())
    }
}

impl Serialize for Entrypoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Entrypoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Entrypoint(one_or_many(d)?))
    }
}

pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub type Map<V> = BTreeMap<String, V>;

/// An empty map or list as `null`, as Go writes one it never made
/// (dockerd's `Config.Volumes` and `Config.Env` when neither the request
/// nor the image has any: its merge takes the image's nil for an empty one).
fn null_if_empty<S, T>(v: &T, s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize,
    for<'a> &'a T: IntoIterator,
{
    if v.into_iter().next().is_none() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

/// A list that remembers whether the client sent one, as Go's slices do:
/// dockerd echoes a list it was not given as `null` and an empty one as
/// `[]`, and clients tell them apart. Reads as a slice either way.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    /// The list to change, made (empty) if none was given.
    pub fn vec_mut(&mut self) -> &mut Vec<T> {
        self.0.get_or_insert_with(Vec::new)
    }
}

impl<T> std::ops::Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(v: Vec<T>) -> Self {
        List(Some(v))
    }
}

impl<'a, T> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(List(Option::<Vec<T>>::deserialize(d)?))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
/// Zero fields mean "inherit" and are left out, as dockerd leaves them.
pub struct HealthConfig {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `Config`: what runs, independent of the host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: Map<Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    #[serde(deserialize_with = "null_default", serialize_with = "null_if_empty")]
    pub env: Vec<String>,
    pub cmd: StrSlice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    pub image: String,
    #[serde(deserialize_with = "null_default", serialize_with = "null_if_empty")]
    pub volumes: Map<Value>,
    pub working_dir: String,
    pub entrypoint: Entrypoint,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network_disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    pub on_build: List<String>,
    #[serde(deserialize_with = "null_default")]
    pub labels: Map<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(deserialize_with = "null_default")]
    pub config: Map<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    pub propagation: String,
    pub non_recursive: bool,
    pub create_mountpoint: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    pub no_copy: bool,
    #[serde(deserialize_with = "null_default")]
    pub labels: Map<String>,
    /// `volume-driver` / `volume-opt`: the options of a volume the mount
    /// makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<DriverConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: Map<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub mode: u32,
}

/// An entry of HostConfig.Mounts (`--mount`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    pub target: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `--device-read-bps` and its kin: a limit on one block device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// `--blkio-weight-device`: a block device's weight.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// `HostConfig`: how it runs on this host. Fields berth does not use are kept
/// as they came and shown again by inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: List<String>,
    pub container_i_d_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    /// None where the request had none (or null): dockerd's nil map,
    /// shown as `null`, where a `{}` sent is shown as `{}`.
    pub port_bindings: Option<Map<Vec<PortBinding>>>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: List<String>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<MountSpec>,
    #[serde(deserialize_with = "null_default")]
    pub console_size: Vec<u32>,
    pub cap_add: List<String>,
    pub cap_drop: List<String>,
    pub cgroupns_mode: String,
    /// Null unless the client sent a list, as dockerd echoes them.
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: List<String>,
    pub group_add: List<String>,
    pub ipc_mode: String,
    pub cgroup: String,
    #[serde(deserialize_with = "null_default")]
    pub links: Vec<String>,
    pub oom_score_adj: i64,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: List<String>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tmpfs: Map<String>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: i64,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctls: Map<String>,
    pub runtime: String,
    pub isolation: String,
    // Resources
    pub cpu_shares: i64,
    /// Microseconds of real-time scheduling per period (cgroup v1's
    /// cpu.rt_runtime_us / cpu.rt_period_us).
    /// docker-py spells them CPURealtime… (dockerd's decoder ignores case).
    #[serde(alias = "CPURealtimeRuntime")]
    pub cpu_realtime_runtime: i64,
    #[serde(alias = "CPURealtimePeriod")]
    pub cpu_realtime_period: i64,
    pub memory: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub blkio_weight_device: List<WeightDevice>,
    #[serde(rename = "BlkioDeviceReadBps")]
    pub blkio_device_read_bps: List<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteBps")]
    pub blkio_device_write_bps: List<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: List<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: List<ThrottleDevice>,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: List<DeviceMapping>,
    /// `--device-cgroup-rule`: "c 7:128 rwm" (type, major:minor or *,
    /// access).
    pub device_cgroup_rules: List<String>,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
    pub nano_cpus: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// Read to warn about, as dockerd since API 1.42: a kernel memory limit
    /// is deprecated and not applied.
    #[serde(skip_serializing)]
    pub kernel_memory: i64,
    /// `--gpus` and the like: berth has no device driver to give them.
    pub device_requests: List<DeviceRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    pub ulimits: List<Ulimit>,
    /// None: Docker's defaults (written in at create, as dockerd does);
    /// an empty list masks nothing (`--security-opt systempaths=unconfined`).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// OCI annotations (API 1.43): kept with the container and given to the
    /// runtime in its bundle's spec; left out of inspect when there are none.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: Map<String>,
    #[serde(flatten)]
    pub other: Map<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(deserialize_with = "null_default")]
    pub aliases: Vec<String>,
    /// Legacy links on a user network: names this container alone resolves.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub links: Vec<String>,
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<Value>,
    #[serde(flatten)]
    pub other: Map<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    #[serde(deserialize_with = "null_default")]
    pub endpoints_config: Map<EndpointSettings>,
}

/// POST /containers/create
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: Config,
    pub host_config: HostConfig,
    pub networking_config: NetworkingConfig,
    /// docker-py's `create_container(runtime=…)` puts it here, beside
    /// the config, not in HostConfig.
    #[serde(deserialize_with = "null_default")]
    pub runtime: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty", default)]
    pub ip: String,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub typ: String,
}

/// A mount as list and inspect show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

/// A request for devices a driver provides (`--gpus all`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    pub count: i64,
    #[serde(rename = "DeviceIDs", deserialize_with = "null_default")]
    pub device_ids: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub options: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorResponse {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_back_as_sent_null_or_empty() {
        let hc: HostConfig =
            serde_json::from_str(r#"{"CapAdd": [], "CapDrop": null, "Binds": ["/a:/b"]}"#).unwrap();
        let back = serde_json::to_value(&hc).unwrap();
        assert_eq!(back["CapAdd"], serde_json::json!([]));
        assert_eq!(back["CapDrop"], Value::Null);
        assert_eq!(back["Devices"], Value::Null, "not sent at all");
        assert_eq!(back["Binds"], serde_json::json!(["/a:/b"]));
        assert!(hc.cap_drop.is_empty() && hc.binds.len() == 1);
        let mut hc = hc;
        hc.devices.vec_mut().clear();
        assert_eq!(
            serde_json::to_value(&hc).unwrap()["Devices"],
            serde_json::json!([])
        );
    }

    #[test]
    fn an_unset_command_reads_null_and_round_trips() {
        let c = Config {
            cmd: StrSlice(vec!["sh".into()]),
            ..Default::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["Entrypoint"], Value::Null);
        assert_eq!(v["Cmd"], serde_json::json!(["sh"]));
        let back: Config = serde_json::from_value(v).unwrap();
        assert!(back.entrypoint.0.is_none());
        for (given, read) in [
            (serde_json::json!([]), serde_json::json!([])),
            (serde_json::json!(""), serde_json::json!([""])),
            (serde_json::json!(["a", "b"]), serde_json::json!(["a", "b"])),
            (Value::Null, Value::Null),
        ] {
            let c: Config =
                serde_json::from_value(serde_json::json!({"Entrypoint": given})).unwrap();
            assert_eq!(serde_json::to_value(&c).unwrap()["Entrypoint"], read);
        }
        assert_eq!(back.cmd.0, ["sh"]);
    }

    #[test]
    fn a_healthcheck_leaves_out_what_it_inherits() {
        let h = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 1_000_000_000,
            ..Default::default()
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000})
        );
        assert_eq!(serde_json::from_value::<HealthConfig>(v).unwrap(), h);
        assert_eq!(
            serde_json::to_value(HealthConfig::default()).unwrap(),
            serde_json::json!({})
        );
    }
}
