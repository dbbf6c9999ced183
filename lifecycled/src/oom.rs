//! Whether the kernel's OOM killer ended a process of a container, read
//! from its cgroup when its init exits (before the runtime's delete removes
//! the cgroup): the engine's `State.OOMKilled` and an `oom` event, the
//! CRI's `OOMKilled` reason.

use std::path::Path;

use serde_json::Value;

/// Whether the kernel's OOM killer ended a process of the container's
/// cgroup (read before the runtime removes the cgroup): `oom_kill` in
/// memory.events (v2) or memory.oom_control (v1).
pub fn killed(spec: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(spec) else {
        return false;
    };
    let Some(path) = v["linux"]["cgroupsPath"].as_str() else {
        return false;
    };
    // A systemd slice, or a path that would climb out of the cgroup
    // mounts (a spec is a gRPC client's): nothing to read.
    if path.contains(':') || path.split('/').any(|c| c == "..") {
        return false;
    }
    let rel = path.trim_start_matches('/');
    let candidates = [
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
        Path::new("/sys/fs/cgroup/unified")
            .join(rel)
            .join("memory.events"),
    ];
    candidates.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_spec_without_a_cgroup_that_exists_says_no() {
        assert!(!super::killed("not json"));
        assert!(!super::killed(r#"{"linux": {}}"#));
        assert!(!super::killed(
            r#"{"linux": {"cgroupsPath": "system.slice:berth:x"}}"#
        ));
        assert!(!super::killed(
            r#"{"linux": {"cgroupsPath": "/berth-oom-test-no-such-cgroup/x"}}"#
        ));
        assert!(!super::killed(
            r#"{"linux": {"cgroupsPath": "/../../proc/self"}}"#
        ));
    }
}
