//! Hides the cgroup migration latency of a container start.
//!
//! A runtime's `create` moves the container's first process into its cgroups.
//! The kernel serializes migrations with a per-cpu rwsem; the first writer after
//! a quiet period waits for an RCU grace period while the rwsem switches to
//! writer mode (15–20 ms on this kind of machine, most of a `create`), and
//! writers within the following grace period do not wait. Moving our own
//! process into the cgroup it is already in changes nothing but pays that wait,
//! so doing it in the background when a task is being created overlaps it with
//! starting the shim and mounting the rootfs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static IN_FLIGHT: AtomicBool = AtomicBool::new(false);

/// Starts a no-op migration of this process in the background, unless one is
/// already under way. Failures only mean no head start.
pub fn warm_up() {
    if IN_FLIGHT.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::task::spawn_blocking(|| {
        if let Some(procs) = own_procs_file()
            && let Err(e) = std::fs::write(&procs, std::process::id().to_string())
        {
            tracing::debug!("cgroup warm-up through {}: {e}", procs.display());
        }
        IN_FLIGHT.store(false, Ordering::Release);
    });
}

/// The cgroup.procs of the cgroup this process is in, in the first hierarchy
/// mounted here with its root visible (v2, or any v1 controller).
fn own_procs_file() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroups.lines().find_map(|l| procs_file_for(l, &mounts))
}

/// For one `/proc/self/cgroup` line (`id:controllers:path`): the cgroup.procs
/// under the mount of that hierarchy.
fn procs_file_for(line: &str, mountinfo: &str) -> Option<PathBuf> {
    let mut f = line.splitn(3, ':');
    let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
    let mount = mountinfo.lines().find_map(|m| {
        // id parent major:minor root mountpoint options… - fstype source superoptions
        let (pre, post) = m.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (root, point, fstype, sopts) = (pre.get(3)?, pre.get(4)?, post.first()?, post.get(2)?);
        if *root != "/" {
            return None;
        }
        let matches = if controllers.is_empty() {
            *fstype == "cgroup2"
        } else {
            *fstype == "cgroup"
                && controllers
                    .split(',')
                    .all(|c| sopts.split(',').any(|o| o == c))
        };
        matches.then(|| PathBuf::from(point))
    })?;
    Some(
        mount
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
26 30 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
27 30 0:24 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

    #[test]
    fn hierarchies_map_to_their_mounts() {
        assert_eq!(
            procs_file_for("0::/user.slice", MOUNTINFO),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/cgroup.procs"
            ))
        );
        assert_eq!(
            procs_file_for("4:cpu,cpuacct:/", MOUNTINFO),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"))
        );
        // A hierarchy mounted from below its root: our path is not under it.
        assert_eq!(procs_file_for("3:pids:/", MOUNTINFO), None);
        assert_eq!(procs_file_for("5:memory:/", MOUNTINFO), None);
    }
}
