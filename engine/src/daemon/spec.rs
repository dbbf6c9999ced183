//! The OCI spec the engine builds for a container: Docker's defaults
//! (specgen), the container's merged Config, and its HostConfig.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use specgen::defaults;

use super::container::Container;
use crate::error::{ApiError, Result};

/// Where the container's network namespace comes from.
pub enum NetNs {
    Host,
    New,
    Path(String),
}

/// A `--device-cgroup-rule` ("c 7:128 rwm", "b *:* m") as an OCI device
/// cgroup rule, checked as dockerd checks it.
pub fn device_rule(rule: &str) -> Result<Value, String> {
    let bad = || format!("invalid device cgroup format '{rule}'");
    let f: Vec<&str> = rule.split_whitespace().collect();
    let [typ, numbers, access] = f.as_slice() else {
        return Err(bad());
    };
    if !matches!(*typ, "a" | "b" | "c") {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| -> Result<Value, String> {
        if n == "*" {
            Ok(Value::Null)
        } else {
            n.parse::<i64>().map(|x| json!(x)).map_err(|_| bad())
        }
    };
    let ok_access = !access.is_empty()
        && access.len() <= 3
        && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if !ok_access {
        return Err(bad());
    }
    let mut r = json!({"allow": true, "type": typ, "access": access});
    for (k, n) in [("major", number(major)?), ("minor", number(minor)?)] {
        if !n.is_null() {
            r[k] = n;
        }
    }
    Ok(r)
}

pub struct Input<'a> {
    pub c: &'a Container,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// OCI mounts for binds, volumes, tmpfs and /etc/{hostname,hosts,resolv.conf}.
    pub mounts: Vec<Value>,
    pub cgroup_parent: &'a str,
    pub netns: NetNs,
    /// Paths of namespaces shared with other containers (`ipc`, `pid`).
    pub ns_paths: Vec<(&'static str, String)>,
    pub init_binary: Option<std::path::PathBuf>,
    /// What legacy links add to the environment (the container's own
    /// variables win over them).
    pub link_env: &'a [String],
    /// The hostname of the container whose network it joins.
    pub hostname: Option<String>,
    /// The host directory bound at /dev/shm: its own when it is shareable,
    /// the donor's when it joins another's IPC.
    pub shm: Option<String>,
    /// The spec a start runs; false for create's provisional one, which
    /// leaves out a device the host does not have (dockerd looks devices
    /// up at start, and a create succeeds without them).
    pub at_start: bool,
}

/// `--security-opt` as parsed.
#[derive(Default)]
pub struct SecurityOpts {
    pub seccomp: Option<Seccomp>,
    pub no_new_privileges: bool,
}

pub enum Seccomp {
    Unconfined,
    Profile(String),
}

pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut s = SecurityOpts::default();
    for o in opts {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "seccomp" if v == "unconfined" => s.seccomp = Some(Seccomp::Unconfined),
            "seccomp" if !v.is_empty() => {
                serde_json::from_str::<Value>(v)
                    .map_err(|e| ApiError::bad_request(format!("invalid seccomp profile: {e}")))?;
                s.seccomp = Some(Seccomp::Profile(v.to_string()));
            }
            "no-new-privileges" => {
                s.no_new_privileges = match v {
                    "" | "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid --security-opt: {o:?}"
                        )));
                    }
                }
            }
            // No AppArmor or SELinux on berth hosts: accepted and ignored, as
            // dockerd does when those are not enabled.
            "apparmor" | "label" => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid --security-opt: {o:?}"
                )));
            }
        }
    }
    Ok(s)
}

fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    if privileged {
        return Ok(defaults::ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let norm = |n: &String| -> Result<String> {
        if n.eq_ignore_ascii_case("ALL") {
            return Ok("ALL".into());
        }
        defaults::normalize_cap(n).ok_or_else(|| {
            // Named as dockerd names it: upper case, with its CAP_ prefix.
            let up = n.to_ascii_uppercase();
            let full = if up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            };
            ApiError::bad_request(format!("unknown capability: {full:?}"))
        })
    };
    let named = |what: &'static str| {
        move |mut e: ApiError| {
            e.message = format!("invalid {what}: {}", e.message);
            e
        }
    };
    let add: Vec<String> = add
        .iter()
        .map(norm)
        .collect::<Result<_>>()
        .map_err(named("CapAdd"))?;
    let drop: Vec<String> = drop
        .iter()
        .map(norm)
        .collect::<Result<_>>()
        .map_err(named("CapDrop"))?;
    let mut caps: BTreeSet<String> = if drop.iter().any(|d| d == "ALL") {
        BTreeSet::new()
    } else {
        defaults::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    for d in &drop {
        caps.remove(d);
    }
    for a in &add {
        if a == "ALL" {
            caps.extend(defaults::ALL_CAPS.iter().map(|s| s.to_string()));
        } else {
            caps.insert(a.clone());
        }
    }
    Ok(caps.into_iter().collect())
}

/// Every character and block device of the host, for `--privileged`.
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                let name = e.file_name();
                if !["pts", "shm", "mqueue", ".lxc", ".udev"]
                    .contains(&name.to_string_lossy().as_ref())
                {
                    stack.push(p);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if p == std::path::Path::new("/dev/console") {
                continue;
            }
            let rdev = m.rdev();
            out.push(json!({
                "path": p, "type": typ,
                "major": libc::major(rdev), "minor": libc::minor(rdev),
                "fileMode": m.mode() & 0o777, "uid": m.uid(), "gid": m.gid()
            }));
        }
    }
    out
}

/// The per-device block I/O limits and weights, by the devices' numbers
/// (looked up at start, as dockerd looks them up; create's provisional
/// spec leaves out a device it cannot find).
fn block_io_devices(
    hc: &crate::types::HostConfig,
    resources: &mut Value,
    at_start: bool,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let numbers = |path: &str| -> Result<Option<(u64, u64)>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some((
                libc::major(m.rdev()) as u64,
                libc::minor(m.rdev()) as u64,
            ))),
            Err(_) if !at_start => Ok(None),
            Err(e) => Err(ApiError::internal(format!(
                "stat {path}: {}",
                crate::error::go_os_error(&e)
            ))),
        }
    };
    let mut block_io = resources["blockIO"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, list) in [
        ("throttleReadBpsDevice", &hc.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &hc.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &hc.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &hc.blkio_device_write_iops),
    ] {
        let mut out = Vec::new();
        for d in list {
            if let Some((major, minor)) = numbers(&d.path)? {
                out.push(json!({"major": major, "minor": minor, "rate": d.rate}));
            }
        }
        if !out.is_empty() {
            block_io.insert(key.into(), json!(out));
        }
    }
    let mut weights = Vec::new();
    for d in &hc.blkio_weight_device {
        if let Some((major, minor)) = numbers(&d.path)? {
            weights.push(json!({"major": major, "minor": minor, "weight": d.weight}));
        }
    }
    if !weights.is_empty() {
        block_io.insert("weightDevice".into(), json!(weights));
    }
    if !block_io.is_empty() {
        resources["blockIO"] = Value::Object(block_io);
    }
    Ok(())
}

/// dockerd's ReplaceOrAppendEnvValues: each `K=V` of `overrides`
/// replaces the default named K where it stands, or comes after the
/// defaults; a bare `K` (docker run -e K with K unset where the client
/// runs) unsets the default K and is not passed on.
pub fn replace_or_append_env(mut defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let at: std::collections::HashMap<String, usize> = defaults
        .iter()
        .enumerate()
        .map(|(i, e)| (key(e), i))
        .collect();
    for o in overrides {
        match (o.contains('='), at.get(&key(o))) {
            (true, Some(&i)) => defaults[i] = o.clone(),
            (true, None) => defaults.push(o.clone()),
            // Emptied here, gone below (a later K=V may fill it again).
            (false, Some(&i)) => defaults[i].clear(),
            (false, None) => {}
        }
    }
    defaults.retain(|e| !e.is_empty());
    defaults
}

/// Which of dockerd's default sysctls this kernel has: read once, not at
/// every start.
static HOST_SYSCTLS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    [
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ]
    .into_iter()
    .filter(|k| {
        std::path::Path::new("/proc/sys")
            .join(k.replace('.', "/"))
            .exists()
    })
    .collect()
});

/// The container's sysctls: in a network namespace of its own, dockerd's
/// defaults first (ping sockets for every group, ports below 1024 for
/// every user: capabilities a container has anyway, without them), where
/// the kernel has them; the request's over them.
fn sysctls(
    hc: &crate::types::HostConfig,
    exists: impl Fn(&str) -> bool,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let own_netns = !(hc.network_mode == "host" || hc.network_mode.starts_with("container:"));
    if own_netns {
        for (k, v) in [
            ("net.ipv4.ping_group_range", "0 2147483647"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ] {
            if exists(k) {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out.extend(hc.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

pub fn build(i: &Input<'_>) -> Result<Value> {
    let c = i.c;
    let hc = &c.host_config;
    let cfg = &c.config;
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    if let Some(init) = &i.init_binary {
        let _ = init;
        args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
    }
    let mut spec = defaults::spec(&args, cfg.tty);
    let sec = parse_security_opts(&hc.security_opt)?;

    // process
    let hostname = i.hostname.clone().unwrap_or_else(|| c.hostname());
    let mut env = vec![format!("PATH={}", defaults::DEFAULT_PATH)];
    if hc.uts_mode != "host" {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if cfg.tty {
        env.push("TERM=xterm".into());
    }
    env.extend(i.link_env.iter().cloned());
    let env = replace_or_append_env(env, &cfg.env);
    let p = &mut spec["process"];
    p["env"] = json!(env);
    p["cwd"] = json!(if cfg.working_dir.is_empty() {
        "/"
    } else {
        &cfg.working_dir
    });
    p["user"] = json!({"uid": i.uid, "gid": i.gid, "additionalGids": i.groups});
    let caps = capabilities(hc.privileged, &hc.cap_add, &hc.cap_drop)?;
    p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    p["noNewPrivileges"] = json!(sec.no_new_privileges);
    if hc.oom_score_adj != 0 {
        p["oomScoreAdj"] = json!(hc.oom_score_adj);
    }
    let mut rlimits = Vec::new();
    for u in &hc.ulimits {
        let name = super::resources::rlimit_name(&u.name)
            .ok_or_else(|| ApiError::bad_request(format!("invalid ulimit type: {}", u.name)))?;
        let (soft, hard) = (
            super::resources::rlimit_value(u.soft),
            super::resources::rlimit_value(u.hard),
        );
        rlimits.push(json!({"type": name, "soft": soft, "hard": hard}));
    }
    if !rlimits.is_empty() {
        p["rlimits"] = json!(rlimits);
    }
    if let Some(cs) = hc.console_size.get(0..2)
        && cs[0] > 0
        && cs[1] > 0
    {
        p["consoleSize"] = json!({"height": cs[0], "width": cs[1]});
    }

    if hc.uts_mode != "host" {
        spec["hostname"] = json!(hostname);
        if !cfg.domainname.is_empty() {
            spec["domainname"] = json!(cfg.domainname);
        }
    }
    spec["root"] = json!({"path": "rootfs", "readonly": hc.readonly_rootfs});
    if !hc.annotations.is_empty() {
        spec["annotations"] = json!(hc.annotations);
    }

    // mounts: Docker's defaults, /dev/shm sized, then the container's own.
    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    if hc.shm_size > 0 {
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/shm" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "nodev",
                    "mode=1777",
                    format!("size={}", hc.shm_size)
                ]);
            }
        }
    }
    match (hc.ipc_mode.as_str(), &i.shm) {
        ("host", _) => {
            mounts.retain(|m| m["destination"] != "/dev/shm" && m["destination"] != "/dev/mqueue");
            mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "nosuid", "noexec", "nodev"]}));
        }
        ("none", _) => mounts.retain(|m| m["destination"] != "/dev/shm"),
        (_, Some(shared)) => {
            mounts.retain(|m| m["destination"] != "/dev/shm");
            mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": shared, "options": ["rbind", "nosuid", "noexec", "nodev"]}));
        }
        _ => {}
    }
    if hc.privileged {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                let opts: Vec<Value> = m["options"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o != "ro")
                    .collect();
                m["options"] = json!(opts);
            }
        }
    }
    // A user mount replaces a default one at the same place.
    let user_dests: BTreeSet<String> = i
        .mounts
        .iter()
        .filter_map(|m| m["destination"].as_str().map(String::from))
        .collect();
    mounts.retain(|m| {
        !m["destination"]
            .as_str()
            .is_some_and(|d| user_dests.contains(d))
    });
    mounts.extend(i.mounts.iter().cloned());
    if let Some(init) = &i.init_binary {
        mounts.push(json!({"destination": "/sbin/docker-init", "type": "bind", "source": init, "options": ["bind", "ro"]}));
    }
    // Parents before children, as dockerd orders them.
    mounts.sort_by_key(|m| {
        m["destination"]
            .as_str()
            .map(|d| d.trim_end_matches('/').matches('/').count())
            .unwrap_or(0)
    });
    spec["mounts"] = json!(mounts);

    // linux
    let linux = &mut spec["linux"];
    let mut namespaces: Vec<Value> = Vec::new();
    match &i.netns {
        NetNs::Host => {}
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
    }
    namespaces.push(json!({"type": "mount"}));
    if hc.uts_mode != "host" {
        namespaces.push(json!({"type": "uts"}));
    }
    let shared = |kind: &str| {
        i.ns_paths
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.clone())
    };
    match (hc.pid_mode.as_str(), shared("pid")) {
        ("host", _) => {}
        (_, Some(p)) => namespaces.push(json!({"type": "pid", "path": p})),
        _ => namespaces.push(json!({"type": "pid"})),
    }
    match (hc.ipc_mode.as_str(), shared("ipc")) {
        ("host", _) => {}
        (_, Some(p)) => namespaces.push(json!({"type": "ipc", "path": p})),
        _ => namespaces.push(json!({"type": "ipc"})),
    }
    if hc.cgroupns_mode == "private" {
        namespaces.push(json!({"type": "cgroup"}));
    }
    linux["namespaces"] = json!(namespaces);
    let parent = if hc.cgroup_parent.is_empty() {
        i.cgroup_parent
    } else {
        &hc.cgroup_parent
    };
    linux["cgroupsPath"] = json!(format!("/{}/{}", parent.trim_matches('/'), c.id));
    let sysctls = sysctls(hc, |k| HOST_SYSCTLS.contains(&k));
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }
    if hc.privileged {
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
        linux["devices"] = json!(host_devices());
        linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        // A record without them (made before create wrote them) keeps
        // the defaults of the base spec.
        if let Some(p) = &hc.masked_paths {
            linux["maskedPaths"] = json!(p);
        }
        if let Some(p) = &hc.readonly_paths {
            linux["readonlyPaths"] = json!(p);
        }
        let mut devices = Vec::new();
        for d in &hc.devices {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let m = match std::fs::metadata(&d.path_on_host) {
                Ok(m) => m,
                Err(_) if !i.at_start => continue,
                // A 500, as dockerd's.
                Err(e) => {
                    return Err(ApiError::internal(format!(
                        "error gathering device information while adding custom device {:?}: {}",
                        d.path_on_host,
                        crate::error::go_os_error(&e)
                    )));
                }
            };
            let typ = if m.file_type().is_block_device() {
                "b"
            } else if m.file_type().is_char_device() {
                "c"
            } else {
                return Err(ApiError::bad_request(format!(
                    "{:?} is not a device",
                    d.path_on_host
                )));
            };
            let dest = if d.path_in_container.is_empty() {
                &d.path_on_host
            } else {
                &d.path_in_container
            };
            let perms = if d.cgroup_permissions.is_empty() {
                "rwm"
            } else {
                &d.cgroup_permissions
            };
            devices.push(json!({"path": dest, "type": typ, "major": libc::major(m.rdev()), "minor": libc::minor(m.rdev()), "fileMode": m.mode() & 0o777, "uid": 0, "gid": 0}));
            if let Some(rules) = linux["resources"]["devices"].as_array_mut() {
                rules.push(json!({"allow": true, "type": typ, "major": libc::major(m.rdev()), "minor": libc::minor(m.rdev()), "access": perms}));
            }
        }
        if !devices.is_empty() {
            linux["devices"] = json!(devices);
        }
        for rule in &hc.device_cgroup_rules {
            let r = device_rule(rule).map_err(ApiError::bad_request)?;
            if let Some(rules) = linux["resources"]["devices"].as_array_mut() {
                rules.push(r);
            }
        }
    }

    // resources
    let resources = super::resources::oci(hc)?;
    if let (Some(r), Some(add)) = (linux["resources"].as_object_mut(), resources.as_object()) {
        r.extend(add.clone());
    } else if linux["resources"].is_null() {
        linux["resources"] = resources;
    }
    block_io_devices(hc, &mut linux["resources"], i.at_start)?;

    // seccomp
    let seccomp = match (hc.privileged, sec.seccomp) {
        (true, _) | (_, Some(Seccomp::Unconfined)) => None,
        (false, Some(Seccomp::Profile(p))) => Some(p),
        (false, None) => Some(specgen::seccomp::DOCKER_DEFAULT.to_string()),
    };
    if let Some(profile) = seccomp {
        let target = specgen::seccomp::Target {
            go_arch: specgen::seccomp::Target::native_go_arch(),
            caps: &caps,
            kernel: specgen::seccomp::running_kernel(),
        };
        spec["linux"]["seccomp"] = specgen::seccomp::to_oci(&profile, &target)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_with_its_own_network_gets_dockerds_default_sysctls() {
        let hc = |mode: &str, own: &[(&str, &str)]| crate::types::HostConfig {
            network_mode: mode.into(),
            sysctls: own
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let all = |_: &str| true;
        let s = sysctls(&hc("bridge", &[]), all);
        assert_eq!(s["net.ipv4.ping_group_range"], "0 2147483647");
        assert_eq!(s["net.ipv4.ip_unprivileged_port_start"], "0");
        let s = sysctls(
            &hc("none", &[("net.ipv4.ip_unprivileged_port_start", "1024")]),
            all,
        );
        assert_eq!(s["net.ipv4.ip_unprivileged_port_start"], "1024");
        for shared in ["host", "container:abc"] {
            assert!(sysctls(&hc(shared, &[]), all).is_empty(), "{shared}");
        }
        let s = sysctls(&hc("bridge", &[]), |k: &str| k.contains("ping"));
        assert_eq!(s.len(), 1);
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_overrides_replace_in_place_append_and_unset_as_dockerd() {
        let defaults = strings(&["PATH=/bin", "HOSTNAME=h", "A=1"]);
        // Replaced where it stands, new ones after, duplicates kept.
        assert_eq!(
            replace_or_append_env(
                defaults.clone(),
                &strings(&["A=2", "PATH=/x", "B=3", "B=4"])
            ),
            ["PATH=/x", "HOSTNAME=h", "A=2", "B=3", "B=4"]
        );
        // A bare name unsets the default and is not passed on.
        assert_eq!(
            replace_or_append_env(defaults.clone(), &strings(&["PATH", "C", "D=1"])),
            ["HOSTNAME=h", "A=1", "D=1"]
        );
        // A later K=V fills an unset default again; an empty value is kept.
        assert_eq!(
            replace_or_append_env(defaults, &strings(&["A", "A=5", "E="])),
            ["PATH=/bin", "HOSTNAME=h", "A=5", "E="]
        );
    }

    #[test]
    fn capabilities_follow_add_and_drop() {
        let caps = capabilities(false, &["net_admin".into()], &["CAP_CHOWN".into()]).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(capabilities(false, &[], &["ALL".into()]).unwrap().len(), 0);
        assert!(capabilities(false, &["NOPE".into()], &[]).is_err());
        assert_eq!(
            capabilities(true, &[], &[]).unwrap().len(),
            defaults::ALL_CAPS.len()
        );
    }

    #[test]
    fn security_opts() {
        assert!(
            parse_security_opts(&["seccomp=unconfined".into()])
                .unwrap()
                .seccomp
                .is_some()
        );
        assert!(
            parse_security_opts(&["no-new-privileges".into()])
                .unwrap()
                .no_new_privileges
        );
        assert!(parse_security_opts(&["bogus".into()]).is_err());
        assert!(parse_security_opts(&["seccomp={not json".into()]).is_err());
    }
}
