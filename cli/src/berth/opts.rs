//! `run` and `create` flags, turned into the body of POST /containers/create.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args, Clone, Default)]
pub struct ContainerOpts {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight), DEVICE:WEIGHT
    #[arg(long = "blkio-weight-device")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device, DEVICE:RATE (e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device, DEVICE:RATE
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device, DEVICE:RATE
    #[arg(long = "device-read-iops")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device, DEVICE:RATE
    #[arg(long = "device-write-iops")]
    pub device_write_iops: Vec<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s) (NAME[:ro|rw])
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add link to another container (name or id, optionally :alias)
    #[arg(long)]
    pub link: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj")]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long)]
    pub annotation: Vec<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Image
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `DEVICE:VALUE` of the block I/O options; the device a path under /dev.
fn device_value<'a>(spec: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    let (path, value) = spec
        .rsplit_once(':')
        .with_context(|| format!("bad format: {spec}"))?;
    if !path.starts_with("/dev/") {
        bail!("bad format for device path: {path}");
    }
    if value.is_empty() {
        bail!("invalid {what} for device: {spec}");
    }
    Ok((path, value))
}

/// Docker's byte units: 512k, 64m, 1g (also kb, mb, gb, b).
pub fn bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| x.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size: '{s}'"))?;
    Ok((n * mult as f64) as i64)
}

fn kv(list: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            if k.is_empty() {
                bail!("invalid {what}: '{s}'");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn duration_ns(s: &str) -> Result<i64> {
    let d = humantime::parse_duration(s).with_context(|| format!("invalid duration: {s}"))?;
    Ok(d.as_nanos() as i64)
}

/// `-p [ip:][hostPort:]containerPort[/proto]` → ExposedPorts and PortBindings.
type Ports = (BTreeMap<String, Value>, BTreeMap<String, Vec<Value>>);

fn ports(publish: &[String], expose: &[String]) -> Result<Ports> {
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        for n in port_range(p).with_context(|| format!("invalid range format for --expose: {e}"))? {
            exposed.insert(format!("{n}/{proto}"), json!({}));
        }
    }
    for p in publish {
        let (rest, proto) = p
            .rsplit_once('/')
            .filter(|(_, pr)| ["tcp", "udp", "sctp"].contains(pr))
            .unwrap_or((p, "tcp"));
        let parts: Vec<&str> = if rest.starts_with('[') {
            // [::1]:8080:80
            let end = rest.find(']').context("invalid IPv6 address")?;
            let ip = &rest[1..end];
            let tail: Vec<&str> = rest[end + 2..].split(':').collect();
            std::iter::once(ip).chain(tail).collect()
        } else {
            rest.split(':').collect()
        };
        let (ip, host, ctr) = match parts.as_slice() {
            [c] => ("", "", *c),
            [h, c] => ("", *h, *c),
            [i, h, c] => (*i, *h, *c),
            _ => bail!("invalid publish opts format (should be name=value but got '{p}')"),
        };
        let ctr_ports = port_range(ctr).with_context(|| format!("invalid containerPort: {ctr}"))?;
        let host_ports: Vec<Option<String>> = if host.is_empty() {
            vec![None; ctr_ports.len()]
        } else if host == "0" && ctr_ports.len() == 1 {
            // Port 0: any free one, the daemon's pick (as Docker's).
            vec![Some(host.to_string())]
        } else {
            let h = port_range(host).with_context(|| format!("invalid hostPort: {host}"))?;
            if ctr_ports.len() == 1 && h.len() > 1 {
                // One container port on any free port of a host range: the
                // daemon picks it, as Docker's.
                vec![Some(host.to_string())]
            } else if h.len() != ctr_ports.len() {
                bail!("invalid ranges specified for container and host Ports: {ctr} and {host}");
            } else {
                h.into_iter().map(|p| Some(p.to_string())).collect()
            }
        };
        for (c, h) in ctr_ports.iter().zip(host_ports) {
            let key = format!("{c}/{proto}");
            exposed.insert(key.clone(), json!({}));
            bindings
                .entry(key)
                .or_default()
                .push(json!({"HostIp": ip, "HostPort": h.unwrap_or_default()}));
        }
    }
    Ok((exposed, bindings))
}

/// `80` or `8000-8010` → the ports.
fn port_range(s: &str) -> Result<Vec<u16>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
    if a == 0 || b < a {
        bail!("invalid port range {s}");
    }
    Ok((a..=b).collect())
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
fn mount(spec: &str) -> Result<Value> {
    let mut m = json!({"Type": "volume"});
    for field in csv_fields(spec) {
        let field = field.as_str();
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        // `volume-opt=o=addr=10.0.0.1` and `volume-label=a=b`: the first `=`
        // after the key splits the option's own key from its value.
        let pair = || {
            v.split_once('=')
                .map(|(a, b)| (a.to_string(), json!(b)))
                .with_context(|| format!("invalid {k} '{v}': want KEY=VALUE"))
        };
        match k.to_ascii_lowercase().as_str() {
            "volume-label" => {
                let (a, b) = pair()?;
                m["VolumeOptions"]["Labels"][a] = b;
            }
            "volume-driver" => m["VolumeOptions"]["DriverConfig"]["Name"] = json!(v),
            "volume-opt" => {
                let (a, b) = pair()?;
                m["VolumeOptions"]["DriverConfig"]["Options"][a] = b;
            }
            "type" => m["Type"] = json!(v),
            "source" | "src" => m["Source"] = json!(v),
            "target" | "destination" | "dst" => m["Target"] = json!(v),
            "readonly" | "ro" => m["ReadOnly"] = json!(v == "true" || v == "1"),
            "bind-propagation" => m["BindOptions"]["Propagation"] = json!(v),
            "volume-nocopy" => m["VolumeOptions"]["NoCopy"] = json!(v == "true" || v == "1"),
            "tmpfs-size" => m["TmpfsOptions"]["SizeBytes"] = json!(bytes(v)?),
            "tmpfs-mode" => {
                m["TmpfsOptions"]["Mode"] = json!(
                    u32::from_str_radix(v, 8).with_context(|| format!("invalid tmpfs-mode {v}"))?
                )
            }
            "consistency" => {}
            other => bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    if m["Target"].is_null() {
        bail!("invalid argument \"{spec}\" for \"--mount\" flag: target is required");
    }
    Ok(m)
}

/// A `--mount` value's fields, split on commas as Docker's CLI reads them
/// (CSV): a field in double quotes may hold commas
/// (`"volume-opt=o=size=1m,uid=1000"`).
fn csv_fields(spec: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

pub fn env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("open {path}: no such file or directory"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            if l.contains('=') {
                l.to_string()
            } else {
                // A name alone takes its value from our environment, as Docker does.
                match std::env::var(l) {
                    Ok(v) => format!("{l}={v}"),
                    Err(_) => l.to_string(),
                }
            }
        })
        .collect())
}

impl ContainerOpts {
    pub fn body(&self) -> Result<Value> {
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(env_file(f)?);
        }
        for e in &self.env {
            env.push(if e.contains('=') {
                e.clone()
            } else {
                match std::env::var(e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => continue,
                }
            });
        }
        let (exposed, bindings) = ports(&self.publish, &self.expose)?;
        let mut restart = json!({"Name": "no", "MaximumRetryCount": 0});
        if !self.restart.is_empty() {
            let (name, count) = self.restart.split_once(':').unwrap_or((&self.restart, "0"));
            let count: i64 = count
                .parse()
                .context("invalid restart policy format: maximum retry count must be an integer")?;
            restart = json!({"Name": name, "MaximumRetryCount": count});
        }
        let mut binds = Vec::new();
        let mut volumes = BTreeMap::new();
        for v in &self.volume {
            // `-v /path` alone is an anonymous volume, declared rather than bound.
            if v.split(':').count() == 1 {
                volumes.insert(v.clone(), json!({}));
            } else {
                binds.push(v.clone());
            }
        }
        let mounts: Vec<Value> = self.mount.iter().map(|m| mount(m)).collect::<Result<_>>()?;
        let tmpfs: BTreeMap<String, String> = self
            .tmpfs
            .iter()
            .map(|t| {
                let (p, o) = t.split_once(':').unwrap_or((t, ""));
                (p.to_string(), o.to_string())
            })
            .collect();
        let ulimits: Vec<Value> = self
            .ulimit
            .iter()
            .map(|u| {
                let (name, lim) = u.split_once('=').with_context(|| format!("invalid ulimit argument: {u}"))?;
                let (soft, hard) = lim.split_once(':').unwrap_or((lim, lim));
                Ok(json!({"Name": name, "Soft": soft.parse::<i64>().with_context(|| format!("invalid ulimit argument: {u}"))?, "Hard": hard.parse::<i64>().with_context(|| format!("invalid ulimit argument: {u}"))?}))
            })
            .collect::<Result<_>>()?;
        let devices: Vec<Value> = self
            .device
            .iter()
            .map(|d| {
                let parts: Vec<&str> = d.split(':').collect();
                let (src, dst, perm) = match parts.as_slice() {
                    [s] => (*s, *s, "rwm"),
                    [s, d] if d.chars().all(|c| "rwm".contains(c)) => (*s, *s, *d),
                    [s, d] => (*s, *d, "rwm"),
                    [s, d, p] => (*s, *d, *p),
                    _ => ("", "", ""),
                };
                json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perm})
            })
            .collect();
        let mut log_config = json!({"Type": self.log_driver.clone().unwrap_or_default(), "Config": kv(&self.log_opt, "log-opt")?});
        if log_config["Type"] == "" {
            log_config["Type"] = json!("");
        }
        let mut health = Value::Null;
        if self.no_healthcheck {
            health = json!({"Test": ["NONE"]});
        } else if self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_start_period.is_some()
            || self.health_retries.is_some()
        {
            let mut h = json!({});
            if let Some(c) = &self.health_cmd {
                h["Test"] = json!(["CMD-SHELL", c]);
            }
            if let Some(i) = &self.health_interval {
                h["Interval"] = json!(duration_ns(i)?);
            }
            if let Some(i) = &self.health_timeout {
                h["Timeout"] = json!(duration_ns(i)?);
            }
            if let Some(i) = &self.health_start_period {
                h["StartPeriod"] = json!(duration_ns(i)?);
            }
            if let Some(r) = self.health_retries {
                h["Retries"] = json!(r);
            }
            health = h;
        }
        // As the docker CLI: `systempaths=unconfined` is no engine option
        // but empty masked and read-only path lists.
        let unconfined = "systempaths=unconfined";
        let (paths, security_opt): (Vec<&String>, Vec<&String>) =
            self.security_opt.iter().partition(|o| *o == unconfined);
        let attach_all = self.attach.is_empty();
        let attached = |s: &str| self.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
        let mut hc = json!({
            "Binds": binds,
            "LogConfig": log_config,
            "NetworkMode": self.network.clone().unwrap_or_else(|| "default".into()),
            "PortBindings": bindings,
            "RestartPolicy": restart,
            "Mounts": mounts,
            "CapAdd": self.cap_add,
            "CapDrop": self.cap_drop,
            "Dns": self.dns,
            "DnsSearch": self.dns_search,
            "DnsOptions": self.dns_option,
            "ExtraHosts": self.add_host,
            "Links": self.link,
            "GroupAdd": self.group_add,
            "Privileged": self.privileged,
            "PublishAllPorts": self.publish_all,
            "ReadonlyRootfs": self.read_only,
            "SecurityOpt": security_opt,
            "Tmpfs": tmpfs,
            "VolumesFrom": self.volumes_from,
            "Sysctls": kv(&self.sysctl, "sysctl")?,
            "Ulimits": ulimits,
            "Devices": devices,
            "DeviceCgroupRules": self.device_cgroup_rule,
            // As the docker CLI: `k` alone is an empty value, and an empty key
            // is the daemon's to refuse.
            "Annotations": self.annotation.iter()
                .map(|a| a.split_once('=').unwrap_or((a, "")))
                .collect::<BTreeMap<_, _>>(),
            "PidMode": self.pid.clone().unwrap_or_default(),
            "IpcMode": self.ipc.clone().unwrap_or_default(),
            "UTSMode": self.uts.clone().unwrap_or_default(),
            "CgroupnsMode": self.cgroupns.clone().unwrap_or_default(),
            "Runtime": self.runtime.clone().unwrap_or_default(),
            "Init": if self.init { json!(true) } else { Value::Null },
            "OomKillDisable": if self.oom_kill_disable { json!(true) } else { Value::Null },
            "OomScoreAdj": self.oom_score_adj.unwrap_or(0),
            "CpuShares": self.cpu_shares.unwrap_or(0),
            "CpusetCpus": self.cpuset_cpus.clone().unwrap_or_default(),
            "NanoCpus": self.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            "PidsLimit": self.pids_limit,
        });
        if !paths.is_empty() {
            hc["MaskedPaths"] = json!([]);
            hc["ReadonlyPaths"] = json!([]);
        }
        if let Some(m) = &self.memory {
            hc["Memory"] = json!(bytes(m)?);
        }
        if let Some(w) = self.blkio_weight {
            hc["BlkioWeight"] = json!(w);
        }
        if !self.blkio_weight_device.is_empty() {
            let mut list = Vec::new();
            for d in &self.blkio_weight_device {
                let (path, w) = device_value(d, "weight")?;
                let weight: u16 = w
                    .parse()
                    .ok()
                    .filter(|w| (10..=1000).contains(w))
                    .with_context(|| format!("invalid weight for device: {d}"))?;
                list.push(json!({"Path": path, "Weight": weight}));
            }
            hc["BlkioWeightDevice"] = json!(list);
        }
        for (key, list, in_bytes) in [
            ("BlkioDeviceReadBps", &self.device_read_bps, true),
            ("BlkioDeviceWriteBps", &self.device_write_bps, true),
            ("BlkioDeviceReadIOps", &self.device_read_iops, false),
            ("BlkioDeviceWriteIOps", &self.device_write_iops, false),
        ] {
            if list.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            for d in list {
                let (path, r) = device_value(d, "rate")?;
                let rate = if in_bytes {
                    u64::try_from(bytes(r)?).ok()
                } else {
                    r.parse::<u64>().ok()
                }
                .with_context(|| format!("invalid rate for device: {d}"))?;
                out.push(json!({"Path": path, "Rate": rate}));
            }
            hc[key] = json!(out);
        }
        if let Some(m) = &self.memory_swap {
            hc["MemorySwap"] = json!(if m == "-1" { -1 } else { bytes(m)? });
        }
        if let Some(m) = &self.memory_reservation {
            hc["MemoryReservation"] = json!(bytes(m)?);
        }
        if let Some(s) = &self.shm_size {
            hc["ShmSize"] = json!(bytes(s)?);
        }
        let entrypoint = match &self.entrypoint {
            Some(e) if e.is_empty() => json!([""]),
            Some(e) => json!([e]),
            None => Value::Null,
        };
        let labels = kv(&self.label, "label")?;
        let mut body = json!({
            "Hostname": self.hostname.clone().unwrap_or_default(),
            "Domainname": self.domainname.clone().unwrap_or_default(),
            "User": self.user.clone().unwrap_or_default(),
            "AttachStdin": self.interactive && (attach_all || attached("stdin")),
            "AttachStdout": attach_all || attached("stdout"),
            "AttachStderr": attach_all || attached("stderr"),
            "ExposedPorts": exposed,
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "StdinOnce": self.interactive,
            "Env": env,
            "Cmd": if self.command.is_empty() { Value::Null } else { json!(self.command) },
            "Image": self.image,
            "Volumes": volumes,
            "WorkingDir": self.workdir.clone().unwrap_or_default(),
            "Entrypoint": entrypoint,
            "Labels": labels,
            "StopSignal": self.stop_signal.clone().unwrap_or_default(),
            "HostConfig": hc,
        });
        if let Some(t) = self.stop_timeout {
            body["StopTimeout"] = json!(t);
        }
        if let Some(m) = &self.mac_address {
            body["MacAddress"] = json!(m);
        }
        if !self.network_alias.is_empty() || self.ip.is_some() || self.ip6.is_some() {
            let net = match self.network.as_deref() {
                None | Some("default") | Some("bridge") => {
                    bail!(
                        "network-scoped aliases and --ip are only supported for user-defined networks"
                    )
                }
                Some(n) => n,
            };
            let mut ep = json!({"Aliases": self.network_alias});
            if self.ip.is_some() || self.ip6.is_some() {
                ep["IPAMConfig"] = json!({
                    "IPv4Address": self.ip.clone().unwrap_or_default(),
                    "IPv6Address": self.ip6.clone().unwrap_or_default(),
                });
            }
            body["NetworkingConfig"] = json!({"EndpointsConfig": {net: ep}});
        }
        if !health.is_null() {
            body["Healthcheck"] = health;
        }
        if let Some(size) = crate::term::size().filter(|_| self.tty) {
            body["HostConfig"]["ConsoleSize"] = json!([size.1, size.0]);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ports_parse_like_dockers() {
        assert_eq!(bytes("64m").unwrap(), 64 << 20);
        assert_eq!(bytes("1g").unwrap(), 1 << 30);
        assert_eq!(bytes("512kb").unwrap(), 512 << 10);
        let (e, b) = ports(&["127.0.0.1:8080:80/tcp".into(), "53/udp".into()], &[]).unwrap();
        assert!(e.contains_key("80/tcp") && e.contains_key("53/udp"));
        assert_eq!(b["80/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(b["80/tcp"][0]["HostPort"], "8080");
        assert!(ports(&["a:b:c:d".into()], &[]).is_err());
        let (_, b) = ports(&["0:80".into()], &[]).unwrap();
        assert_eq!(b["80/tcp"][0]["HostPort"], "0", "any free port");
        assert!(ports(&["0-5:80".into()], &[]).is_err());
    }

    #[test]
    fn mounts_parse() {
        let m = mount("type=bind,source=/a,target=/b,readonly").unwrap();
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["ReadOnly"], true);
        assert!(mount("type=bind,source=/a").is_err());
        let m = mount(
            "type=volume,src=v,dst=/v,volume-label=a=b,\"volume-opt=o=size=1m,mode=700\",volume-opt=type=tmpfs",
        )
        .unwrap();
        assert_eq!(m["VolumeOptions"]["Labels"]["a"], "b");
        assert_eq!(
            m["VolumeOptions"]["DriverConfig"]["Options"],
            json!({"o": "size=1m,mode=700", "type": "tmpfs"})
        );
        assert!(mount("type=volume,dst=/v,volume-opt=novalue").is_err());
    }
}
