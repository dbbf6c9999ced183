//! `spec`: a starting config.json, the same container `runc spec` describes.

use std::fs;

use serde_json::{Value, json};

use crate::cli::SpecArgs;
use crate::container::OCI_VERSION;
use crate::error::{Error, Result};

pub fn default_spec(rootless: bool) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if !rootless {
        namespaces.insert(1, json!({"type": "network"}));
    }
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces is an array")
            .push(json!({"type": "user"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        spec["linux"]["resources"] = json!({});
    }
    spec
}

pub fn run(a: &SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        return Err(Error::Invalid(format!(
            "{} exists: remove it first",
            path.display()
        )));
    }
    let text = serde_json::to_string_pretty(&default_spec(a.rootless)).unwrap_or_default();
    fs::write(&path, text + "\n").map_err(|e| Error::io("writing", &path, e))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses_and_validates() {
        let text = super::default_spec(false).to_string();
        let spec = crate::spec::parse(text.as_bytes()).expect("parses");
        crate::spec::validate(&spec, std::path::Path::new("config.json")).expect("valid");
    }
}
