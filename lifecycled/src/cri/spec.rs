//! OCI specs for pods: the sandbox (berth-pause holding the namespaces)
//! and a container (its image's config with the CRI's config over it,
//! joining the sandbox's namespaces), on Docker's defaults as containerd's
//! CRI builds them on its own (the same 14 capabilities, masked and
//! read-only paths, device rules).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_proto::cri::v1 as cri;
use serde_json::{Value, json};
use tonic::Status;

use super::SandboxMeta;

/// NamespaceMode values.
pub const POD: i32 = 0;
pub const CONTAINER: i32 = 1;
pub const NODE: i32 = 2;
pub const TARGET: i32 = 3;

/// The files a pod's containers share, in its state directory.
pub struct PodFiles<'a> {
    pub dir: &'a Path,
}

impl PodFiles<'_> {
    pub fn shm(&self) -> std::path::PathBuf {
        self.dir.join("shm")
    }
}

/// Where a cgroup goes under the pod's parent: a path for cgroupfs, the
/// systemd form (`slice:prefix:name`) when the parent is a slice.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    if parent.is_empty() {
        String::new()
    } else if parent.ends_with(".slice") {
        format!("{parent}:berth:{id}")
    } else {
        format!("{}/{id}", parent.trim_end_matches('/'))
    }
}

fn namespaces(entries: &[(&str, Option<String>)]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(t, path)| match path {
                Some(p) => json!({"type": t, "path": p}),
                None => json!({"type": t}),
            })
            .collect(),
    )
}

/// The pod's own /dev/shm in place of the default one, so that IPC through
/// shared memory works across its containers.
fn share_shm(spec: &mut Value, shm: &Path) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != "/dev/shm");
        mounts.push(json!({"destination": "/dev/shm", "type": "bind",
            "source": shm, "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]}));
    }
}

/// The sandbox: berth-pause in its read-only root, in new namespaces (the
/// network one made and wired before, at `netns`).
/// The score containerd gives sandboxes: the kubelet's guaranteed pods get
/// -997, so the pause goes last.
const SANDBOX_OOM_SCORE_ADJ: i64 = -998;
/// linux/capability.h
const CAP_SYS_RESOURCE: u32 = 24;

/// `want`, or the lowest this process may set: lowering a score below
/// one's own takes CAP_SYS_RESOURCE, which a lifecycled in a container or
/// a restricted VM may not have. containerd fails there unless told to
/// restrict (`restrict_oom_score_adj`); berth restricts by itself.
pub fn oom_score_adj(want: i64) -> i64 {
    static FLOOR: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let floor = FLOOR.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if eff & (1 << CAP_SYS_RESOURCE) != 0 {
            return None;
        }
        std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    floor.map_or(want, |f| want.max(f))
}

/// The pod sandbox a CRI container's spec names in its annotations (as
/// containerd's CRI writes them, and these specs do below); None for a
/// sandbox's own spec and for anything not made by the CRI.
pub fn sandbox_of(spec: &Value) -> Option<&str> {
    let a = &spec["annotations"];
    if a["io.kubernetes.cri.container-type"].as_str() != Some("container") {
        return None;
    }
    a["io.kubernetes.cri.sandbox-id"].as_str()
}

pub fn sandbox(
    meta: &SandboxMeta,
    config: &cri::PodSandboxConfig,
    pause_root: &Path,
    files: &PodFiles<'_>,
    id: &str,
) -> Value {
    let mut s = specgen::defaults::spec(&["/pause".to_string()], false);
    s["root"] = json!({"path": pause_root, "readonly": true});
    s["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": []});
    s["process"]["noNewPrivileges"] = json!(true);
    s["process"]["env"] = json!([]);
    // The sandbox outlives its containers under memory pressure, as
    // containerd's CRI keeps it.
    s["process"]["oomScoreAdj"] = json!(oom_score_adj(SANDBOX_OOM_SCORE_ADJ));
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    if let Some(u) = &sc.run_as_user {
        s["process"]["user"]["uid"] = json!(u.value);
    }
    if let Some(g) = &sc.run_as_group {
        s["process"]["user"]["gid"] = json!(g.value);
    }
    let host_net = meta.network_mode == NODE;
    let mut ns = vec![("mount", None)];
    if !host_net {
        ns.push((
            "network",
            meta.netns.as_ref().map(|p| p.display().to_string()),
        ));
        ns.push(("uts", None));
        s["hostname"] = json!(meta.hostname);
    }
    if meta.pid_mode != NODE {
        ns.push(("pid", None));
    }
    if meta.ipc_mode != NODE {
        ns.push(("ipc", None));
        share_shm(&mut s, &files.shm());
    }
    s["linux"]["namespaces"] = namespaces(&ns);
    if !linux.sysctls.is_empty() {
        s["linux"]["sysctl"] = json!(linux.sysctls.iter().collect::<BTreeMap<_, _>>());
    }
    let cg = cgroups_path(&meta.cgroup_parent, id);
    if !cg.is_empty() {
        s["linux"]["cgroupsPath"] = json!(cg);
    }
    s["annotations"] = json!({
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": id,
        "io.kubernetes.cri.sandbox-name": meta.name,
        "io.kubernetes.cri.sandbox-namespace": meta.namespace,
        "io.kubernetes.cri.sandbox-uid": meta.uid,
    });
    s
}

/// The user a container runs as: uid, gid and supplementary groups.
#[derive(Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// What a container's spec is built from beside its CRI config.
pub struct ContainerInput<'a> {
    pub id: &'a str,
    pub config: &'a cri::ContainerConfig,
    /// The image config's `config` object (Env, Cmd, Entrypoint, …).
    pub image: &'a Value,
    pub sandbox_id: &'a str,
    pub sandbox: &'a SandboxMeta,
    pub files: &'a PodFiles<'a>,
    pub user: User,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The process's arguments as Kubernetes composes them: `command` replaces
/// the image's entrypoint (and drops its cmd), `args` replaces its cmd.
pub fn args(config: &cri::ContainerConfig, image: &Value) -> Vec<String> {
    if !config.command.is_empty() {
        return config
            .command
            .iter()
            .chain(config.args.iter())
            .cloned()
            .collect();
    }
    let mut v = strings(&image["Entrypoint"]);
    if config.args.is_empty() {
        v.extend(strings(&image["Cmd"]));
    } else {
        v.extend(config.args.iter().cloned());
    }
    v
}

fn propagation(p: i32) -> &'static str {
    match p {
        1 => "rslave",
        2 => "rshared",
        _ => "rprivate",
    }
}

fn device(d: &cri::Device) -> Result<(Value, Value), Status> {
    let md = std::fs::metadata(&d.host_path)
        .map_err(|e| Status::invalid_argument(format!("device {:?}: {e}", d.host_path)))?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(Status::invalid_argument(format!(
            "device {:?} is not a device",
            d.host_path
        )));
    };
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let path = if d.container_path.is_empty() {
        &d.host_path
    } else {
        &d.container_path
    };
    let access = if d.permissions.is_empty() {
        "rwm"
    } else {
        &d.permissions
    };
    Ok((
        json!({"path": path, "type": kind, "major": major, "minor": minor,
               "fileMode": md.mode() & 0o777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": access}),
    ))
}

/// The seccomp section for a profile, if any (unset and `Unconfined`: none,
/// as containerd's default).
// The deprecated path form is what kubelets before 1.22 send.
#[allow(deprecated)]
fn seccomp(
    sc: &cri::LinuxContainerSecurityContext,
    caps: &[String],
) -> Result<Option<Value>, Status> {
    let (kind, local) = match &sc.seccomp {
        Some(p) => (p.profile_type, p.localhost_ref.clone()),
        None => match sc.seccomp_profile_path.as_str() {
            "runtime/default" | "docker/default" => (0, String::new()),
            p if p.starts_with("localhost/") => (2, p["localhost/".len()..].to_string()),
            _ => (1, String::new()),
        },
    };
    let profile = match kind {
        0 => specgen::seccomp::DOCKER_DEFAULT.to_string(),
        2 => std::fs::read_to_string(&local)
            .map_err(|e| Status::invalid_argument(format!("seccomp profile {local:?}: {e}")))?,
        _ => return Ok(None),
    };
    let target = specgen::seccomp::Target {
        go_arch: specgen::seccomp::Target::native_go_arch(),
        caps,
        kernel: specgen::seccomp::running_kernel(),
    };
    specgen::seccomp::to_oci(&profile, &target)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("seccomp profile: {e}")))
}

fn capabilities(sc: &cri::LinuxContainerSecurityContext) -> Vec<String> {
    if sc.privileged {
        return specgen::defaults::ALL_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
    }
    let mut caps: Vec<String> = specgen::defaults::DEFAULT_CAPS
        .iter()
        .map(|c| c.to_string())
        .collect();
    if let Some(c) = &sc.capabilities {
        let all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
        if all(&c.drop_capabilities) {
            caps.clear();
        }
        if all(&c.add_capabilities) {
            caps = specgen::defaults::ALL_CAPS
                .iter()
                .map(|c| c.to_string())
                .collect();
        }
        for add in c
            .add_capabilities
            .iter()
            .filter_map(|c| specgen::defaults::normalize_cap(c))
        {
            if !caps.contains(&add) {
                caps.push(add);
            }
        }
        let drop: Vec<String> = c
            .drop_capabilities
            .iter()
            .filter_map(|c| specgen::defaults::normalize_cap(c))
            .collect();
        caps.retain(|c| !drop.contains(c));
    }
    caps
}

fn resources(r: &cri::LinuxContainerResources) -> Value {
    let mut out = json!({});
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    let mut mem = serde_json::Map::new();
    if r.memory_limit_in_bytes > 0 {
        mem.insert("limit".into(), json!(r.memory_limit_in_bytes));
    }
    if r.memory_swap_limit_in_bytes > 0 {
        mem.insert("swap".into(), json!(r.memory_swap_limit_in_bytes));
    }
    if !mem.is_empty() {
        out["memory"] = Value::Object(mem);
    }
    if !r.hugepage_limits.is_empty() {
        out["hugepageLimits"] = r
            .hugepage_limits
            .iter()
            .map(|h| json!({"pageSize": h.page_size, "limit": h.limit}))
            .collect();
    }
    if !r.unified.is_empty() {
        out["unified"] = json!(r.unified.iter().collect::<BTreeMap<_, _>>());
    }
    out
}

/// The resources of an update, as the runtime's `update -r` reads them.
pub fn update_resources(r: &cri::LinuxContainerResources) -> Value {
    resources(r)
}

/// A container of the pod.
pub fn container(i: &ContainerInput<'_>) -> Result<Value, Status> {
    let c = i.config;
    let args = args(c, i.image);
    if args.is_empty() {
        return Err(Status::invalid_argument("no command specified"));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let mut s = specgen::defaults::spec(&args, c.tty);

    // Environment: the image's, then the config's over it.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    };
    set("PATH", specgen::defaults::DEFAULT_PATH);
    for e in strings(&i.image["Env"]) {
        let (k, v) = e.split_once('=').unwrap_or((&e, ""));
        set(k, v);
    }
    set("HOSTNAME", &i.sandbox.hostname);
    if c.tty {
        set("TERM", "xterm");
    }
    for kv in &c.envs {
        set(&kv.key, &kv.value);
    }
    s["process"]["env"] = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cwd = if !c.working_dir.is_empty() {
        c.working_dir.clone()
    } else {
        i.image["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    };
    s["process"]["cwd"] = json!(cwd);
    s["process"]["user"] = json!({"uid": i.user.uid, "gid": i.user.gid,
        "additionalGids": i.user.groups});
    let caps = capabilities(&sc);
    s["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    s["process"]["noNewPrivileges"] = json!(sc.no_new_privs);
    s["root"]["readonly"] = json!(sc.readonly_rootfs);
    s["hostname"] = json!("");
    if let Some(r) = &linux.resources
        && r.oom_score_adj != 0
    {
        s["process"]["oomScoreAdj"] = json!(oom_score_adj(r.oom_score_adj));
    }

    // Mounts: the defaults, the pod's shared files, then the config's
    // (which win over a default at the same place).
    let asked: Vec<&str> = c.mounts.iter().map(|m| m.container_path.as_str()).collect();
    if i.sandbox.ipc_mode != NODE {
        share_shm(&mut s, &i.files.shm());
    }
    let mut mounts: Vec<Value> = s["mounts"].as_array().cloned().unwrap_or_default();
    for f in ["hostname", "hosts", "resolv.conf"] {
        let dest = format!("/etc/{f}");
        if !asked.contains(&dest.as_str()) {
            let ro = if sc.readonly_rootfs { "ro" } else { "rw" };
            mounts.push(json!({"destination": dest, "type": "bind",
                "source": i.files.dir.join(f), "options": ["rbind", "rprivate", ro]}));
        }
    }
    for m in &c.mounts {
        if m.container_path.is_empty() || !m.container_path.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "mount {:?}: the container path must be absolute",
                m.container_path
            )));
        }
        if std::fs::symlink_metadata(&m.host_path).is_err() {
            return Err(Status::invalid_argument(format!(
                "failed to mount {:?}: host path {:?} does not exist",
                m.container_path, m.host_path
            )));
        }
        mounts.retain(|d| d["destination"] != m.container_path.as_str());
        mounts.push(json!({"destination": m.container_path, "type": "bind",
            "source": m.host_path, "options": ["rbind", propagation(m.propagation),
            if m.readonly { "ro" } else { "rw" }]}));
    }
    if sc.privileged {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
    }
    s["mounts"] = Value::Array(mounts);

    // Namespaces: the pod's, by the pause process's.
    let pause = |kind: &str| Some(format!("/proc/{}/ns/{kind}", i.sandbox.pid));
    let nso = sc.namespace_options.clone().unwrap_or_default();
    let mut ns = vec![("mount", None)];
    if i.sandbox.network_mode != NODE {
        ns.push((
            "network",
            i.sandbox
                .netns
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| pause("net")),
        ));
        ns.push(("uts", pause("uts")));
    }
    if i.sandbox.ipc_mode != NODE {
        ns.push(("ipc", pause("ipc")));
    }
    match nso.pid {
        POD => ns.push(("pid", pause("pid"))),
        NODE => {}
        TARGET => {
            return Err(Status::unimplemented(
                "the TARGET PID namespace mode is not supported by berth yet",
            ));
        }
        _ => ns.push(("pid", None)),
    }
    s["linux"]["namespaces"] = namespaces(&ns);

    if sc.privileged {
        s["linux"]["maskedPaths"] = json!([]);
        s["linux"]["readonlyPaths"] = json!([]);
        s["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        if !sc.masked_paths.is_empty() {
            s["linux"]["maskedPaths"] = json!(sc.masked_paths);
        }
        if !sc.readonly_paths.is_empty() {
            s["linux"]["readonlyPaths"] = json!(sc.readonly_paths);
        }
        if let Some(profile) = seccomp(&sc, &caps)? {
            s["linux"]["seccomp"] = profile;
        }
    }
    let mut devices = Vec::new();
    for d in &c.devices {
        let (node, rule) = device(d)?;
        devices.push(node);
        if let Some(rules) = s["linux"]["resources"]["devices"].as_array_mut() {
            rules.push(rule);
        }
    }
    if !devices.is_empty() {
        s["linux"]["devices"] = Value::Array(devices);
    }
    if let Some(r) = &linux.resources {
        let res = resources(r);
        if let Some(o) = res.as_object() {
            for (k, v) in o {
                s["linux"]["resources"][k] = v.clone();
            }
        }
    }
    let cg = cgroups_path(&i.sandbox.cgroup_parent, i.id);
    if !cg.is_empty() {
        s["linux"]["cgroupsPath"] = json!(cg);
    }
    s["annotations"] = json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
        "io.kubernetes.cri.sandbox-id": i.sandbox_id,
        "io.kubernetes.cri.sandbox-name": i.sandbox.name,
        "io.kubernetes.cri.sandbox-namespace": i.sandbox.namespace,
        "io.kubernetes.cri.sandbox-uid": i.sandbox.uid,
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cri_containers_spec_names_a_sandbox_to_join() {
        let spec = |kind: &str| {
            json!({"annotations": {
                "io.kubernetes.cri.container-type": kind,
                "io.kubernetes.cri.sandbox-id": "pod1",
            }})
        };
        assert_eq!(sandbox_of(&spec("container")), Some("pod1"));
        assert_eq!(sandbox_of(&spec("sandbox")), None);
        assert_eq!(sandbox_of(&json!({"annotations": {}})), None);
    }

    #[test]
    fn command_and_args_compose_as_kubernetes_does() {
        let image = json!({"Entrypoint": ["/entry"], "Cmd": ["default"]});
        let mut c = cri::ContainerConfig::default();
        assert_eq!(args(&c, &image), vec!["/entry", "default"]);
        c.args = vec!["mine".into()];
        assert_eq!(args(&c, &image), vec!["/entry", "mine"]);
        c.command = vec!["/bin/sh".into()];
        assert_eq!(args(&c, &image), vec!["/bin/sh", "mine"]);
        c.args.clear();
        assert_eq!(args(&c, &image), vec!["/bin/sh"]);
    }

    #[test]
    fn cgroup_paths_follow_the_driver_of_the_parent() {
        assert_eq!(cgroups_path("", "x"), "");
        assert_eq!(cgroups_path("/kubepods/pod1/", "x"), "/kubepods/pod1/x");
        assert_eq!(
            cgroups_path("kubepods-pod1.slice", "x"),
            "kubepods-pod1.slice:berth:x"
        );
    }

    #[test]
    fn capabilities_add_and_drop_with_all() {
        let mut sc = cri::LinuxContainerSecurityContext::default();
        assert_eq!(capabilities(&sc).len(), 14);
        sc.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["ALL".into()],
            add_ambient_capabilities: vec![],
        });
        assert_eq!(capabilities(&sc), vec!["CAP_NET_ADMIN"]);
        sc.privileged = true;
        assert_eq!(capabilities(&sc).len(), specgen::defaults::ALL_CAPS.len());
    }
}
