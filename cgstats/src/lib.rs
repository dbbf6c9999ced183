//! Resource usage straight from the cgroup's files, on v1, v2 and the hybrid
//! layout. Read directly (a handful of small files) rather than through a
//! cgroup manager, so `stats` for many containers stays cheap.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_proto::types::v1::{BlkioEntry, Stats};

const ROOT: &str = "/sys/fs/cgroup";
/// USER_HZ: the unit of cpuacct.stat and /proc/stat.
const NS_PER_TICK: u64 = 10_000_000;

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

fn num(p: &Path) -> Option<u64> {
    let s = read(p)?;
    let s = s.trim();
    if s == "max" {
        return Some(0);
    }
    s.parse().ok()
}

fn keyed(p: &Path) -> HashMap<String, u64> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn rel(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Host CPU time in nanoseconds and the number of online CPUs, from /proc/stat.
fn system_cpu() -> (u64, u32) {
    let text = read(Path::new("/proc/stat")).unwrap_or_default();
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * NS_PER_TICK;
        } else if line.starts_with("cpu") {
            cpus += 1;
        }
    }
    (total, cpus)
}

pub fn read_stats(cgroup: &Path) -> Stats {
    let (system, cpus) = system_cpu();
    let mut s = Stats {
        read_at: Some(timestamp(SystemTime::now())),
        system_cpu_usage: system,
        online_cpus: cpus,
        ..Default::default()
    };
    if is_v2() {
        fill_v2(&mut s, &Path::new(ROOT).join(rel(cgroup)));
    } else {
        fill_v1(&mut s, cgroup);
    }
    s
}

fn v1(controller: &str, cgroup: &Path) -> PathBuf {
    Path::new(ROOT).join(controller).join(rel(cgroup))
}

fn fill_v1(s: &mut Stats, cg: &Path) {
    let acct = v1("cpuacct", cg);
    s.cpu_usage_total = num(&acct.join("cpuacct.usage")).unwrap_or(0);
    s.cpu_usage_per_cpu = read(&acct.join("cpuacct.usage_percpu"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let stat = keyed(&acct.join("cpuacct.stat"));
    s.cpu_usage_user = stat.get("user").copied().unwrap_or(0) * NS_PER_TICK;
    s.cpu_usage_kernel = stat.get("system").copied().unwrap_or(0) * NS_PER_TICK;
    let cpu = keyed(&v1("cpu", cg).join("cpu.stat"));
    s.cpu_periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu_throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu_throttled_time = cpu.get("throttled_time").copied().unwrap_or(0);

    let mem = v1("memory", cg);
    s.memory_usage = num(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
    s.memory_max_usage = num(&mem.join("memory.max_usage_in_bytes")).unwrap_or(0);
    s.memory_limit = num(&mem.join("memory.limit_in_bytes")).unwrap_or(0);
    s.memory_stats = keyed(&mem.join("memory.stat"));
    s.memory_cache = s.memory_stats.get("cache").copied().unwrap_or(0);

    let pids = v1("pids", cg);
    s.pids_current = num(&pids.join("pids.current")).unwrap_or(0);
    s.pids_limit = num(&pids.join("pids.max")).unwrap_or(0);

    let blkio = v1("blkio", cg);
    s.blkio_io_service_bytes = blkio_v1(&blkio.join("blkio.throttle.io_service_bytes"));
    s.blkio_io_serviced = blkio_v1(&blkio.join("blkio.throttle.io_serviced"));
}

fn blkio_v1(p: &Path) -> Vec<BlkioEntry> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            let op = f.next()?;
            let value = f.next()?.parse().ok()?;
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

fn fill_v2(s: &mut Stats, dir: &Path) {
    let cpu = keyed(&dir.join("cpu.stat"));
    s.cpu_usage_total = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
    s.cpu_usage_user = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
    s.cpu_usage_kernel = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
    s.cpu_periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu_throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu_throttled_time = cpu.get("throttled_usec").copied().unwrap_or(0) * 1000;
    s.memory_usage = num(&dir.join("memory.current")).unwrap_or(0);
    s.memory_max_usage = num(&dir.join("memory.peak")).unwrap_or(0);
    s.memory_limit = num(&dir.join("memory.max")).unwrap_or(0);
    s.memory_stats = keyed(&dir.join("memory.stat"));
    s.memory_cache = s.memory_stats.get("file").copied().unwrap_or(0);
    s.pids_current = num(&dir.join("pids.current")).unwrap_or(0);
    s.pids_limit = num(&dir.join("pids.max")).unwrap_or(0);
    for line in read(&dir.join("io.stat")).unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio_io_service_bytes, "read"),
                "wbytes" => (&mut s.blkio_io_service_bytes, "write"),
                "rios" => (&mut s.blkio_io_serviced, "read"),
                "wios" => (&mut s.blkio_io_serviced, "write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_cpu_time_is_read() {
        let (total, cpus) = super::system_cpu();
        assert!(total > 0);
        assert!(cpus >= 1);
    }
}
