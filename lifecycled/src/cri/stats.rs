//! Resource usage of pods and their containers, as the kubelet's CRI stats
//! provider asks for it every few seconds: CPU (with the rate between two
//! samples, as containerd computes it), memory with the working set the
//! kubelet evicts by, the writable layer's disk use, and per pod its cgroup,
//! its network interfaces and its process count.

use std::path::PathBuf;
use std::time::SystemTime;

use berth_proto::cri::v1 as cri;
use berth_proto::types::v1 as pb;
use tonic::Status;

use super::{ContainerMeta, Cri, NAMESPACE, SandboxMeta, container_meta, nanos, sandbox_meta};
use crate::store::Record;

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// A cgroup's memory as the kubelet reads it: the working set is what
/// cannot be dropped under pressure (usage less inactive file pages).
pub fn memory_usage(s: &pb::Stats, at: i64) -> cri::MemoryUsage {
    let stat = |v1: &str, v2: &str| {
        s.memory_stats
            .get(v1)
            .or_else(|| s.memory_stats.get(v2))
            .copied()
            .unwrap_or(0)
    };
    let inactive = stat("total_inactive_file", "inactive_file");
    let working_set = s.memory_usage.saturating_sub(inactive);
    // No limit reads as 0 (v2's "max") or as a page-rounded i64::MAX (v1).
    let limited = s.memory_limit > 0 && s.memory_limit < (1 << 62);
    cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: value(working_set),
        available_bytes: limited.then(|| cri::UInt64Value {
            value: s.memory_limit.saturating_sub(working_set),
        }),
        usage_bytes: value(s.memory_usage),
        rss_bytes: value(stat("total_rss", "anon")),
        page_faults: value(stat("total_pgfault", "pgfault")),
        major_page_faults: value(stat("total_pgmajfault", "pgmajfault")),
    }
}

/// Interface counters of a network namespace, read through a process in it
/// (`/proc/<pid>/net/dev`); the loopback left out, as the kubelet wants.
pub fn interfaces(net_dev: &str) -> Vec<cri::NetworkInterfaceUsage> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (name, counters) = l.split_once(':')?;
            let name = name.trim();
            let f: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (name != "lo" && f.len() >= 16).then(|| cri::NetworkInterfaceUsage {
                name: name.to_string(),
                rx_bytes: value(f[0]),
                rx_errors: value(f[2]),
                tx_bytes: value(f[8]),
                tx_errors: value(f[10]),
            })
        })
        .collect()
}

/// The cgroup directory (relative to a hierarchy's root) of a pod's cgroup
/// parent: a path for cgroupfs, or a systemd slice name, which nests in
/// each of its dash-separated prefixes (`a-b.slice` is `a.slice/a-b.slice`).
pub fn parent_dir(parent: &str) -> PathBuf {
    let Some(stem) = parent.strip_suffix(".slice") else {
        return PathBuf::from(parent);
    };
    let mut dir = PathBuf::from("/");
    let mut prefix = String::new();
    for part in stem.split('-').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        dir.push(format!("{prefix}.slice"));
    }
    dir
}

impl Cri {
    /// The CPU use of `id` and its rate since the previous sample.
    fn cpu_usage(&self, id: &str, usage: u64, at: i64) -> cri::CpuUsage {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let rate = samples.get(id).and_then(|&(t, u)| {
            let dt = at.checked_sub(t).filter(|d| *d > 0)? as u128;
            let du = usage.checked_sub(u)? as u128;
            Some((du * 1_000_000_000 / dt) as u64)
        });
        samples.insert(id.to_string(), (at, usage));
        cri::CpuUsage {
            timestamp: at,
            usage_core_nano_seconds: value(usage),
            usage_nano_cores: rate.map(|value| cri::UInt64Value { value }),
        }
    }

    async fn stats_of(&self, r: &Record, m: &ContainerMeta) -> Result<cri::ContainerStats, Status> {
        let s = self.tasks.stats(NAMESPACE, &r.id).await?;
        let at = nanos(SystemTime::now());
        let (images, key) = (self.images.clone(), r.id.clone());
        let layer = tokio::task::spawn_blocking(move || images.usage(NAMESPACE, &key))
            .await
            .ok()
            .and_then(Result::ok);
        let swap = (s.memory_stats.get("swap"))
            .or_else(|| s.memory_stats.get("total_swap"))
            .copied();
        Ok(cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: r.id.clone(),
                metadata: Some(cri::ContainerMetadata {
                    name: m.name.clone(),
                    attempt: m.attempt,
                }),
                labels: m.labels.clone(),
                annotations: m.annotations.clone(),
            }),
            cpu: Some(self.cpu_usage(&r.id, s.cpu_usage_total, at)),
            memory: Some(memory_usage(&s, at)),
            writable_layer: layer.map(|u| cri::FilesystemUsage {
                timestamp: at,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: self.images.snapshots_root().display().to_string(),
                }),
                used_bytes: value(u.size),
                inodes_used: value(u.inodes),
            }),
            swap: swap.map(|used| cri::SwapUsage {
                timestamp: at,
                swap_available_bytes: None,
                swap_usage_bytes: value(used),
            }),
        })
    }

    pub async fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, Status> {
        let r = self.find("container", id)?;
        let m = container_meta(&r).ok_or_else(|| Status::not_found(id.to_string()))?;
        self.stats_of(&r, &m).await.map_err(|e| {
            Status::new(
                e.code(),
                format!("failed to get stats of container {}: {}", r.id, e.message()),
            )
        })
    }

    /// Stats of the containers that run (others have no cgroup to read,
    /// and containerd lists only those with metrics).
    pub async fn list_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Vec<cri::ContainerStats> {
        let f = filter.unwrap_or_default();
        let mut out = Vec::new();
        for r in self.store.list(NAMESPACE) {
            let Some(m) = container_meta(&r) else {
                continue;
            };
            if !(r.id.starts_with(&f.id)
                && m.sandbox_id.starts_with(&f.pod_sandbox_id)
                && super::selected(&m.labels, &f.label_selector)
                && self.tasks.has_task(NAMESPACE, &r.id))
            {
                continue;
            }
            if let Ok(s) = self.stats_of(&r, &m).await {
                out.push(s);
            }
        }
        out
    }

    async fn pod_stats(&self, r: &Record, m: &SandboxMeta) -> cri::PodSandboxStats {
        let at = nanos(SystemTime::now());
        let dir = parent_dir(&m.cgroup_parent);
        let pid = m.pid;
        let (s, net_dev) = tokio::task::spawn_blocking(move || {
            (
                berth_cgstats::read_stats(&dir),
                std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok(),
            )
        })
        .await
        .unwrap_or_default();
        let mut containers = Vec::new();
        for c in self.containers_of(&r.id) {
            if let Some(cm) = container_meta(&c)
                && self.tasks.has_task(NAMESPACE, &c.id)
                && let Ok(s) = self.stats_of(&c, &cm).await
            {
                containers.push(s);
            }
        }
        // A pod on the node's network has no interfaces of its own.
        let network = net_dev
            .filter(|_| m.ready && m.network_mode != super::spec::NODE)
            .map(|d| interfaces(&d))
            .map(|ifs| cri::NetworkUsage {
                timestamp: at,
                default_interface: ifs.iter().find(|i| i.name == "eth0").cloned(),
                interfaces: ifs,
            });
        cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: r.id.clone(),
                metadata: Some(m.metadata()),
                labels: m.labels.clone(),
                annotations: m.annotations.clone(),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: Some(self.cpu_usage(&r.id, s.cpu_usage_total, at)),
                memory: Some(memory_usage(&s, at)),
                network,
                process: Some(cri::ProcessUsage {
                    timestamp: at,
                    process_count: value(s.pids_current),
                }),
                containers,
            }),
            windows: None,
        }
    }

    pub async fn pod_sandbox_stats(&self, id: &str) -> Result<cri::PodSandboxStats, Status> {
        let r = self.find("sandbox", id)?;
        let m = sandbox_meta(&r).ok_or_else(|| Status::not_found(id.to_string()))?;
        if m.cgroup_parent.is_empty() {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} has no cgroup parent to read stats from",
                r.id
            )));
        }
        Ok(self.pod_stats(&r, &m).await)
    }

    /// Stats of the ready pods (a stopped pod's cgroup may be gone).
    pub async fn list_pod_sandbox_stats(
        &self,
        filter: Option<cri::PodSandboxStatsFilter>,
    ) -> Vec<cri::PodSandboxStats> {
        let f = filter.unwrap_or_default();
        let mut out = Vec::new();
        for r in self.store.list(NAMESPACE) {
            let Some(m) = sandbox_meta(&r) else { continue };
            if r.id.starts_with(&f.id)
                && m.ready
                && !m.cgroup_parent.is_empty()
                && super::selected(&m.labels, &f.label_selector)
            {
                out.push(self.pod_stats(&r, &m).await);
            }
        }
        out
    }

    /// Forgets the CPU sample of something removed.
    pub(super) fn forget_sample(&self, id: &str) {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn slices_nest_in_their_prefixes() {
        assert_eq!(
            parent_dir("kubepods-besteffort-pod12.slice"),
            Path::new("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice")
        );
        assert_eq!(parent_dir("/kubepods/podx"), Path::new("/kubepods/podx"));
    }

    #[test]
    fn the_working_set_leaves_out_inactive_files() {
        let s = pb::Stats {
            memory_usage: 100 << 20,
            memory_limit: 128 << 20,
            memory_stats: [
                ("total_inactive_file".to_string(), 30 << 20),
                ("total_rss".to_string(), 60 << 20),
                ("total_pgfault".to_string(), 7),
            ]
            .into(),
            ..Default::default()
        };
        let m = memory_usage(&s, 1);
        assert_eq!(m.working_set_bytes, value(70 << 20));
        assert_eq!(m.available_bytes, value(58 << 20));
        assert_eq!(m.rss_bytes, value(60 << 20));
        assert_eq!(m.page_faults, value(7));
        let unlimited = pb::Stats {
            memory_limit: 0x7FFF_FFFF_FFFF_F000,
            ..s
        };
        assert_eq!(memory_usage(&unlimited, 1).available_bytes, None);
    }

    #[test]
    fn interfaces_come_from_net_dev_without_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    2048      10    3    0    0     0          0         0     4096      20    5    0    0     0       0          0
";
        let ifs = interfaces(dev);
        assert_eq!(ifs.len(), 1);
        assert_eq!(ifs[0].name, "eth0");
        assert_eq!(
            (
                ifs[0].rx_bytes,
                ifs[0].rx_errors,
                ifs[0].tx_bytes,
                ifs[0].tx_errors
            ),
            (value(2048), value(3), value(4096), value(5))
        );
    }
}
