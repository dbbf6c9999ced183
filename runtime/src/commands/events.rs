//! `events`: a running container's resource usage as JSON lines, runc's
//! format: `{"type":"stats","id":…,"data":{cpu, cpuset, memory, pids,
//! blkio, hugetlb, …}}` once with `--stats`, otherwise every `--interval`,
//! with `{"type":"oom","id":…}` when the kernel's OOM killer acts in the
//! container, until its cgroup is removed (the container deleted).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::CgroupManager;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{Map, Value, json};

use crate::cgroups::{self, Layout};
use crate::cli::{EventsArgs, GlobalOpts};
use crate::container::{Container, Status};
use crate::error::{Error, Result};

pub fn run(g: &GlobalOpts, a: &EventsArgs) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    if c.status() == Status::Stopped {
        return Err(Error::Invalid(format!(
            "container with id {} is not running",
            a.id
        )));
    }
    let interval = humantime::parse_duration(&a.interval)
        .map_err(|e| Error::Invalid(format!("--interval {}: {e}", a.interval)))?;
    if interval.is_zero() {
        return Err(Error::Invalid("--interval must be greater than 0".into()));
    }
    let path = c.state.cgroup_path.clone();
    let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: path.clone(),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| Error::Invalid(format!("cgroup {}: {e}", path.display())))?;
    let stats_event = || -> Result<String> {
        let s = manager
            .stats()
            .map_err(|e| Error::Invalid(format!("stats of cgroup {}: {e}", path.display())))?;
        Ok(event("stats", &a.id, Some(runc_stats(&s, cpuset(&path)))))
    };
    let mut out = std::io::stdout().lock();
    let mut emit = |v: &str| -> Result<()> {
        writeln!(out, "{v}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io("writing", "stdout", e))
    };
    if a.stats {
        emit(&stats_event()?)?;
        return Ok(0);
    }

    let mut oom = OomWatch::new(&path);
    let alive = || {
        cgroups::hierarchy_dirs(&path)
            .iter()
            .any(|(_, d)| d.is_dir())
    };
    let mut next = Instant::now();
    loop {
        if !alive() {
            return Ok(0);
        }
        let now = Instant::now();
        if now >= next {
            // A container stopped between two looks still has its cgroup:
            // its figures are what runc shows too, until it is deleted.
            match stats_event() {
                Ok(v) => emit(&v)?,
                Err(e) => tracing::error!("{e}"),
            }
            next = now + interval;
            continue;
        }
        if oom.wait(next - now) {
            emit(&event("oom", &a.id, None))?;
        }
    }
}

/// The OOM killer's acts in a cgroup: on v1 the memory controller's
/// eventfd (cgroup.event_control on memory.oom_control), on v2 the
/// `oom_kill` count of memory.events.
enum OomWatch {
    V1 {
        eventfd: OwnedFd,
        _control: fs::File,
        dir: PathBuf,
    },
    V2 {
        events: PathBuf,
        seen: u64,
    },
    None,
}

impl OomWatch {
    fn new(path: &Path) -> Self {
        let dirs = cgroups::hierarchy_dirs(path);
        if cgroups::layout() == Some(Layout::V2) {
            let events = dirs
                .first()
                .map(|(_, d)| d.join("memory.events"))
                .unwrap_or_default();
            let seen = oom_kills(&events);
            return OomWatch::V2 { events, seen };
        }
        let Some((_, dir)) = dirs.into_iter().find(|(n, _)| n == "memory") else {
            return OomWatch::None;
        };
        let register = || -> std::io::Result<OomWatch> {
            let control = fs::File::open(dir.join("memory.oom_control"))?;
            // SAFETY: eventfd takes integers and returns a new descriptor or -1.
            let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor that nothing else owns.
            let eventfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
            fs::write(
                dir.join("cgroup.event_control"),
                format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd()),
            )?;
            Ok(OomWatch::V1 {
                eventfd,
                _control: control,
                dir: dir.clone(),
            })
        };
        register().unwrap_or_else(|e| {
            tracing::warn!("no OOM notifications for {}: {e}", dir.display());
            OomWatch::None
        })
    }

    /// Waits up to `timeout`; true if the OOM killer acted meanwhile.
    fn wait(&mut self, timeout: Duration) -> bool {
        match self {
            OomWatch::V1 { eventfd, dir, .. } => {
                let mut fds = [nix::poll::PollFd::new(
                    eventfd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
                if !matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0) {
                    return false;
                }
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(eventfd.as_raw_fd(), &mut buf);
                // The eventfd also fires when the cgroup is removed: that is
                // no OOM, and the caller then finds the cgroup gone.
                dir.is_dir()
            }
            OomWatch::V2 { events, seen } => {
                // memory.events changes rarely; looking every 100 ms between
                // stats is enough.
                std::thread::sleep(timeout.min(Duration::from_millis(100)));
                let now = oom_kills(events);
                let acted = now > *seen;
                *seen = now;
                acted
            }
            OomWatch::None => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

fn oom_kills(events: &Path) -> u64 {
    fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// cpuset.cpus and cpuset.mems as lists ("0-2,4" is [0,1,2,4]).
fn cpuset(path: &Path) -> Value {
    let dirs = cgroups::hierarchy_dirs(path);
    let dir = dirs
        .iter()
        .find(|(n, _)| n == "cpuset" || n.is_empty())
        .map(|(_, d)| d.clone());
    let Some(dir) = dir else { return json!({}) };
    let read = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| fs::read_to_string(dir.join(n)).ok())
            .map(|s| parse_list(s.trim()))
            .unwrap_or_default()
    };
    let mut v = Map::new();
    let cpus = read(&["cpuset.cpus.effective", "cpuset.cpus"]);
    if !cpus.is_empty() {
        v.insert("cpus".into(), json!(cpus));
    }
    let mems = read(&["cpuset.mems.effective", "cpuset.mems"]);
    if !mems.is_empty() {
        v.insert("mems".into(), json!(mems));
    }
    Value::Object(v)
}

fn parse_list(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

/// One line of output, its fields in runc's order (`{"type":…,"id":…,`
/// is what scripts match on).
fn event(typ: &str, id: &str, data: Option<Data>) -> String {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        r#type: &'a str,
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<Data>,
    }
    // A struct of plain values always serializes.
    serde_json::to_string(&Event {
        r#type: typ,
        id,
        data,
    })
    .unwrap_or_default()
}

#[derive(serde::Serialize)]
struct Data {
    cpu: Value,
    cpuset: Value,
    memory: Value,
    pids: Value,
    blkio: Value,
    hugetlb: Value,
    intel_rdt: Value,
    network_interfaces: Value,
}

/// libcgroups' figures in runc's `events` JSON (runc's types.Stats): the
/// same names, and fields left out where runc leaves out a zero.
fn runc_stats(s: &Stats, cpuset: Value) -> Data {
    let nonzero = |m: &mut Map<String, Value>, k: &str, v: u64| {
        if v != 0 {
            m.insert(k.into(), json!(v));
        }
    };
    let mut usage = Map::new();
    nonzero(&mut usage, "total", s.cpu.usage.usage_total);
    for (k, v) in [
        ("percpu", &s.cpu.usage.per_core_usage_total),
        ("percpu_kernel", &s.cpu.usage.per_core_usage_kernel),
        ("percpu_user", &s.cpu.usage.per_core_usage_user),
    ] {
        if !v.is_empty() {
            usage.insert(k.into(), json!(v));
        }
    }
    usage.insert("kernel".into(), json!(s.cpu.usage.usage_kernel));
    usage.insert("user".into(), json!(s.cpu.usage.usage_user));
    let mut throttling = Map::new();
    nonzero(&mut throttling, "periods", s.cpu.throttling.periods);
    nonzero(
        &mut throttling,
        "throttledPeriods",
        s.cpu.throttling.throttled_periods,
    );
    nonzero(
        &mut throttling,
        "throttledTime",
        s.cpu.throttling.throttled_time,
    );

    let entry = |d: &MemoryData| {
        let mut m = Map::new();
        m.insert("limit".into(), json!(d.limit));
        nonzero(&mut m, "usage", d.usage);
        nonzero(&mut m, "max", d.max_usage);
        m.insert("failcnt".into(), json!(d.fail_count));
        Value::Object(m)
    };
    let mut memory = Map::new();
    nonzero(&mut memory, "cache", s.memory.cache);
    memory.insert("usage".into(), entry(&s.memory.memory));
    memory.insert("swap".into(), entry(&s.memory.memswap));
    memory.insert("kernel".into(), entry(&s.memory.kernel));
    memory.insert("kernelTCP".into(), entry(&s.memory.kernel_tcp));
    if !s.memory.stats.is_empty() {
        let raw: BTreeMap<&String, &u64> = s.memory.stats.iter().collect();
        memory.insert("raw".into(), json!(raw));
    }

    let mut pids = Map::new();
    nonzero(&mut pids, "current", s.pids.current);
    nonzero(&mut pids, "limit", s.pids.limit);

    let blk = |v: &[BlkioDeviceStat]| -> Value {
        v.iter()
            .map(|d| {
                let mut m = Map::new();
                nonzero(&mut m, "major", d.major);
                nonzero(&mut m, "minor", d.minor);
                if let Some(op) = d.op_type.as_ref().filter(|o| !o.is_empty()) {
                    m.insert("op".into(), json!(op));
                }
                nonzero(&mut m, "value", d.value);
                Value::Object(m)
            })
            .collect()
    };
    let mut blkio = Map::new();
    for (k, v) in [
        ("ioServiceBytesRecursive", &s.blkio.service_bytes),
        ("ioServicedRecursive", &s.blkio.serviced),
        ("ioQueueRecursive", &s.blkio.queued),
        ("ioServiceTimeRecursive", &s.blkio.service_time),
        ("ioWaitTimeRecursive", &s.blkio.wait_time),
        ("ioMergedRecursive", &s.blkio.merged),
        ("ioTimeRecursive", &s.blkio.time),
        ("sectorsRecursive", &s.blkio.sectors),
    ] {
        if !v.is_empty() {
            blkio.insert(k.into(), blk(v));
        }
    }

    let hugetlb: BTreeMap<String, Value> = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut m = Map::new();
            nonzero(&mut m, "usage", h.usage);
            nonzero(&mut m, "max", h.max_usage);
            m.insert("failcnt".into(), json!(h.fail_count));
            (size.clone(), Value::Object(m))
        })
        .collect();

    Data {
        cpu: json!({"usage": usage, "throttling": throttling}),
        cpuset,
        memory: Value::Object(memory),
        pids: Value::Object(pids),
        blkio: Value::Object(blkio),
        hugetlb: json!(hugetlb),
        intel_rdt: json!({}),
        network_interfaces: Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand_ranges() {
        assert_eq!(parse_list("0-2,4"), [0, 1, 2, 4]);
        assert_eq!(parse_list("3"), [3]);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn zeros_are_left_out_where_runc_leaves_them_out() {
        let v = serde_json::to_value(runc_stats(&Stats::default(), json!({}))).unwrap();
        assert_eq!(v["cpu"]["throttling"], json!({}));
        assert_eq!(v["cpu"]["usage"], json!({"kernel": 0, "user": 0}));
        assert_eq!(v["memory"]["usage"], json!({"limit": 0, "failcnt": 0}));
        assert_eq!(v["pids"], json!({}));
        assert_eq!(v["blkio"], json!({}));
        assert!(v["network_interfaces"].is_null());
    }

    #[test]
    fn lines_start_with_type_and_id() {
        let line = event("oom", "c1", None);
        assert_eq!(line, r#"{"type":"oom","id":"c1"}"#);
        let line = event(
            "stats",
            "c1",
            Some(runc_stats(&Stats::default(), json!({}))),
        )
        .to_string();
        assert!(
            line.starts_with(r#"{"type":"stats","id":"c1","data":{"cpu":"#),
            "{line}"
        );
    }
}
