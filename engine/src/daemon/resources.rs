//! A container's resources as the API takes them (HostConfig at create,
//! the body of `update`): each value checked against the range Docker
//! allows before anything is created or changed, so a bad value is a 400
//! that names the field, never a kernel error at start; and the OCI
//! `linux.resources` made from them with checked arithmetic.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::types::{HostConfig, RestartPolicy, Ulimit};

/// The smallest memory limit and reservation, as Docker's.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The kernel's PID_MAX_LIMIT: no pids.max can usefully be larger.
const MAX_PIDS: i64 = 4 * 1024 * 1024;
/// CFS periods and quotas are microseconds between 1 ms and 1 s.
const CFS_MIN: i64 = 1_000;
const CFS_MAX: i64 = 1_000_000;
/// The CFS period `NanoCpus` is expressed in.
const NANO_PERIOD: i64 = 100_000;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

/// The v1 cpu controller's real-time files, where the kernel has them
/// (CONFIG_RT_GROUP_SCHED; cgroup v2 has none).
const CPU_RT_RUNTIME: &str = "/sys/fs/cgroup/cpu/cpu.rt_runtime_us";
const CPU_RT_PERIOD: &str = "/sys/fs/cgroup/cpu/cpu.rt_period_us";

/// CPU real-time runtime and period, as dockerd checks them.
fn realtime(hc: &HostConfig) -> Result<()> {
    let (runtime, period) = (hc.cpu_realtime_runtime, hc.cpu_realtime_period);
    if runtime < 0 || period < 0 {
        return Err(bad("cpu real-time runtime and period cannot be negative"));
    }
    if period > 0 && !std::path::Path::new(CPU_RT_PERIOD).exists() {
        return Err(bad(
            "Your kernel does not support cgroup cpu real-time period",
        ));
    }
    if runtime > 0 && !std::path::Path::new(CPU_RT_RUNTIME).exists() {
        return Err(bad(
            "Your kernel does not support cgroup cpu real-time runtime",
        ));
    }
    if runtime > 0 && period > 0 && runtime > period {
        return Err(bad(
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    Ok(())
}

/// Every resource of a host config, as dockerd's verifyPlatformContainerResources
/// (plus what would wrap or reach the kernel unchecked). `update` relaxes
/// what only makes sense at create.
pub fn validate(hc: &HostConfig, update: bool) -> Result<()> {
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(bad("Minimum memory limit allowed is 6MB"));
    }
    if hc.memory_swap < -1 {
        return Err(bad(format!(
            "invalid MemorySwap {}: -1 (unlimited), 0 (twice Memory) or at least Memory",
            hc.memory_swap
        )));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(bad(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if !update && hc.memory == 0 && hc.memory_swap > 0 {
        return Err(bad(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    swap_limit(hc)?;
    if let Some(s) = hc.memory_swappiness
        && s != -1
        && !(0..=100).contains(&s)
    {
        return Err(bad(format!(
            "Invalid value: {s}, valid memory swappiness range is 0-100"
        )));
    }
    if hc.memory_reservation != 0 && hc.memory_reservation < MIN_MEMORY {
        return Err(bad("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_reservation > 0 && hc.memory < hc.memory_reservation {
        return Err(bad(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    realtime(hc)?;
    if hc.cpu_shares < 0 {
        return Err(bad(format!(
            "invalid CpuShares {}: must be a positive integer (2 to 262144)",
            hc.cpu_shares
        )));
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(bad(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(bad(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    let cpus = online_cpus();
    // Below 0.01 CPU the quota would be under the kernel's 1 ms minimum.
    if hc.nano_cpus < 0
        || (hc.nano_cpus > 0 && hc.nano_cpus < 10_000_000)
        || hc.nano_cpus > cpus.saturating_mul(1_000_000_000)
    {
        return Err(bad(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    if hc.cpu_period != 0 && !(CFS_MIN..=CFS_MAX).contains(&hc.cpu_period) {
        return Err(bad(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_quota < -1 || (hc.cpu_quota > 0 && hc.cpu_quota < CFS_MIN) {
        return Err(bad("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    check_set("cpus", "CPUs", &hc.cpuset_cpus, &available("cpus"))?;
    check_set("mems", "memory nodes", &hc.cpuset_mems, &available("mems"))?;
    // A weight this kernel cannot apply is discarded with a warning before
    // its range matters, as dockerd orders them.
    if hc.blkio_weight > 0 && blkio_weight_supported() && !(10..=1000).contains(&hc.blkio_weight) {
        return Err(bad("Range of blkio weight is from 10 to 1000"));
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(bad(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    if let Some(p) = hc.pids_limit
        && p > MAX_PIDS
    {
        return Err(bad(format!(
            "invalid PidsLimit {p}: at most {MAX_PIDS}; 0 or -1 for no limit"
        )));
    }
    if hc.shm_size < 0 {
        return Err(bad("SHM size can not be less than 0"));
    }
    for u in &hc.ulimits {
        check_ulimit(u)?;
    }
    Ok(())
}

/// The swap limit the kernel gets: Docker's default is as much again as
/// the memory limit.
fn swap_limit(hc: &HostConfig) -> Result<Option<i64>> {
    if hc.memory <= 0 {
        return Ok((hc.memory_swap != 0).then_some(hc.memory_swap));
    }
    match hc.memory_swap {
        0 => hc.memory.checked_mul(2).map(Some).ok_or_else(|| {
            bad(format!(
                "invalid Memory {}: too large for the default swap limit (twice Memory); set MemorySwap",
                hc.memory
            ))
        }),
        s => Ok(Some(s)),
    }
}

/// The CPUs this machine has online.
fn online_cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// The CPUs or memory nodes a container may be given, as the kernel lists
/// them ("0-1"); the root cpuset where there is one.
fn available(what: &str) -> String {
    let candidates = match what {
        "cpus" => [
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpuset.cpus.effective",
            "/sys/devices/system/cpu/online",
        ],
        _ => [
            "/sys/fs/cgroup/cpuset/cpuset.mems",
            "/sys/fs/cgroup/cpuset.mems.effective",
            "/sys/devices/system/node/online",
        ],
    };
    candidates
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "0".into())
}

/// A cpuset list ("0-3,5") as ranges, or None when it is not one.
fn parse_set(s: &str) -> Option<Vec<(u32, u32)>> {
    s.split(',')
        .map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi): (u32, u32) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

fn check_set(key: &str, what: &str, requested: &str, available: &str) -> Result<()> {
    if requested.is_empty() {
        return Ok(());
    }
    let Some(want) = parse_set(requested) else {
        return Err(bad(format!(
            "Invalid value {requested} for cpuset {key}: invalid format: {requested}"
        )));
    };
    let have = parse_set(available).unwrap_or_default();
    let inside = |(lo, hi): (u32, u32)| have.iter().any(|&(a, b)| a <= lo && hi <= b);
    if !want.into_iter().all(inside) {
        return Err(bad(format!(
            "Requested {what} are not available - requested {requested}, available: {available}"
        )));
    }
    Ok(())
}

/// The rlimits a process may be given: -1 is unlimited, as Docker takes it.
fn check_ulimit(u: &Ulimit) -> Result<()> {
    if rlimit_name(&u.name).is_none() {
        return Err(bad(format!("invalid ulimit type: {}", u.name)));
    }
    if u.soft < -1 || u.hard < -1 {
        return Err(bad(format!(
            "invalid ulimit {}: {}:{}: values are -1 (unlimited) or at least 0",
            u.name, u.soft, u.hard
        )));
    }
    if rlimit_value(u.soft) > rlimit_value(u.hard) {
        return Err(bad(format!(
            "ulimit soft limit must be less than or equal to hard limit: {} > {}",
            u.soft, u.hard
        )));
    }
    Ok(())
}

/// -1 is RLIM_INFINITY.
pub fn rlimit_value(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

pub fn rlimit_name(n: &str) -> Option<&'static str> {
    Some(match n {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        _ => return None,
    })
}

/// Sysctls a container may set, as runc allows them: the IPC namespace's
/// `kernel.*` keys and `fs.mqueue.*` (not with the host's IPC), the network
/// namespace's `net.*` (not with the host's network), and kernel.domainname
/// (not with the host's UTS). The key must exist on this kernel; it is a
/// path under /proc/sys, so it is also checked to be nothing else.
pub fn validate_sysctls(hc: &HostConfig) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    for (k, v) in &hc.sysctls {
        let well_formed = !k.is_empty()
            && k.split(['.', '/'])
                .all(|p| !p.is_empty() && p != ".." && p != ".")
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'));
        if !well_formed || v.contains(['\n', '\0']) {
            return Err(bad(format!("invalid sysctl {k:?}={v:?}")));
        }
        let key = k.replace('/', ".");
        let host = |mode: &str| mode == "host";
        let (allowed, ns) = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            (!host(&hc.ipc_mode), "ipc")
        } else if key.starts_with("net.") {
            (
                !host(&hc.network_mode) && !hc.network_mode.starts_with("container:"),
                "network",
            )
        } else if key == "kernel.domainname" {
            (!host(&hc.uts_mode), "uts")
        } else {
            return Err(bad(format!(
                "sysctl '{k}' is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, kernel.domainname) can be set in a container"
            )));
        };
        if !allowed {
            return Err(bad(format!(
                "sysctl '{k}' is not allowed in the host {ns} namespace"
            )));
        }
        if !sysctl_exists(&key) {
            return Err(bad(format!("sysctl '{k}' is not known to this kernel")));
        }
    }
    Ok(())
}

/// Whether the kernel has this key; `net.*.conf.<interface>.*` keys name
/// interfaces the container has and the host may not, so they are checked
/// as `conf.all`.
fn sysctl_exists(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let mut path = std::path::PathBuf::from("/proc/sys");
    for (i, p) in parts.iter().enumerate() {
        let iface = i >= 2 && parts.get(i - 1) == Some(&"conf") && parts[0] == "net";
        path.push(if iface { "all" } else { p });
    }
    path.is_file()
}

/// `CgroupParent`: a path under the cgroup hierarchy, never out of it.
pub fn validate_cgroup_parent(parent: &str) -> Result<()> {
    if parent
        .split('/')
        .any(|p| p == ".." || p == "." || p.contains('\0'))
        || parent.contains('\n')
    {
        return Err(bad(format!(
            "invalid CgroupParent {parent:?}: a cgroup path may not contain '.' or '..' components"
        )));
    }
    Ok(())
}

/// The OCI `linux.resources` of a host config (memory, cpu, pids, block
/// I/O), for the spec at start and for `update` while it runs.
/// What `update` gives a running container: [`oci`] less the real-time
/// CPU values, which dockerd records for the next start and leaves off the
/// running cgroup (its parent's real-time budget would have to come first).
pub fn oci_update(hc: &HostConfig) -> Result<Value> {
    let mut r = oci(hc)?;
    if let Some(o) = r.as_object_mut() {
        if let Some(cpu) = o.get_mut("cpu").and_then(Value::as_object_mut) {
            cpu.remove("realtimeRuntime");
            cpu.remove("realtimePeriod");
        }
        if o.get("cpu")
            .and_then(Value::as_object)
            .is_some_and(|c| c.is_empty())
        {
            o.remove("cpu");
        }
    }
    Ok(r)
}

pub fn oci(hc: &HostConfig) -> Result<Value> {
    let mut r = json!({});
    if hc.memory > 0
        || hc.memory_reservation > 0
        || hc.memory_swap != 0
        || hc.oom_kill_disable.is_some()
        || hc.memory_swappiness.is_some_and(|s| s >= 0)
    {
        let mut mem = json!({});
        if hc.memory > 0 {
            mem["limit"] = json!(hc.memory);
        }
        if let Some(s) = swap_limit(hc)? {
            mem["swap"] = json!(s);
        }
        if hc.memory_reservation > 0 {
            mem["reservation"] = json!(hc.memory_reservation);
        }
        if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
            mem["swappiness"] = json!(s);
        }
        if let Some(d) = hc.oom_kill_disable {
            mem["disableOOMKiller"] = json!(d);
        }
        r["memory"] = mem;
    }
    let mut cpu = json!({});
    if hc.cpu_shares > 0 {
        cpu["shares"] = json!(hc.cpu_shares.clamp(2, 262_144));
    }
    if hc.nano_cpus > 0 {
        // At most online CPUs × 1e9 (validated): no overflow.
        cpu["period"] = json!(NANO_PERIOD);
        cpu["quota"] = json!(hc.nano_cpus / (1_000_000_000 / NANO_PERIOD));
    } else {
        if hc.cpu_period > 0 {
            cpu["period"] = json!(hc.cpu_period);
        }
        if hc.cpu_quota != 0 {
            cpu["quota"] = json!(hc.cpu_quota);
        }
    }
    if hc.cpu_realtime_runtime > 0 {
        cpu["realtimeRuntime"] = json!(hc.cpu_realtime_runtime);
    }
    if hc.cpu_realtime_period > 0 {
        cpu["realtimePeriod"] = json!(hc.cpu_realtime_period);
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu["cpus"] = json!(hc.cpuset_cpus);
    }
    if !hc.cpuset_mems.is_empty() {
        cpu["mems"] = json!(hc.cpuset_mems);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        r["cpu"] = cpu;
    }
    match hc.pids_limit {
        Some(p) if p > 0 => r["pids"] = json!({"limit": p}),
        // Lifted by an update: a running container's cgroup goes to "max".
        Some(_) => r["pids"] = json!({"limit": -1}),
        None => {}
    }
    if hc.blkio_weight > 0 {
        r["blockIO"] = json!({"weight": hc.blkio_weight});
    }
    Ok(r)
}

/// What dockerd says when it drops a block I/O weight the kernel cannot
/// apply.
pub const BLKIO_WEIGHT_DISCARDED: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

/// Whether the kernel weighs a cgroup's block I/O: `blkio.weight` (CFQ)
/// or `blkio.bfq.weight` (BFQ) on v1 and hybrid hosts, where containers'
/// blkio lives; the io controller on a v2-only host. Neither exists
/// without a weighing I/O scheduler.
pub fn blkio_weight_supported() -> bool {
    let v1 = std::path::Path::new("/sys/fs/cgroup/blkio");
    if v1.is_dir() {
        return v1.join("blkio.weight").exists() || v1.join("blkio.bfq.weight").exists();
    }
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
}

/// Drops from `hc` what this kernel cannot apply, with dockerd's warning
/// (at create and update, as dockerd does: the request still succeeds).
/// As dockerd records a memory limit made without a swap limit: twice as
/// much swap (what the kernel is given; inspect shows it and an update
/// checks a new memory limit against it).
pub fn default_swap(hc: &mut HostConfig) {
    hc.memory_swap = effective_swap(hc);
}

/// The swap limit a container has: the one it was given, or twice its
/// memory limit (a record made before the default was written there).
fn effective_swap(hc: &HostConfig) -> i64 {
    if hc.memory > 0 && hc.memory_swap == 0 {
        hc.memory.checked_mul(2).unwrap_or(0)
    } else {
        hc.memory_swap
    }
}

pub fn discard_unsupported(hc: &mut HostConfig, warnings: &mut Vec<String>) {
    if hc.blkio_weight > 0 && !blkio_weight_supported() {
        hc.blkio_weight = 0;
        warnings.push(BLKIO_WEIGHT_DISCARDED.into());
    }
    if !hc.blkio_weight_device.is_empty() && !blkio_weight_supported() {
        hc.blkio_weight_device.vec_mut().clear();
        warnings.push(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."
                .into(),
        );
    }
}

/// `POST /containers/{id}/update`: Docker's UpdateConfig (the resources
/// and the restart policy). A field left out, null or 0 is unchanged;
/// a value of the wrong type is a 400, as dockerd's decoder makes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    #[serde(alias = "CPURealtimeRuntime")]
    pub cpu_realtime_runtime: Option<i64>,
    #[serde(alias = "CPURealtimePeriod")]
    pub cpu_realtime_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart_policy: Option<RestartPolicy>,
    /// Deprecated: warned about, not applied (dockerd since API 1.42).
    pub kernel_memory: Option<i64>,
}

impl UpdateRequest {
    pub fn parse(body: &[u8]) -> Result<UpdateRequest> {
        crate::api::body::json(body, "JSON body")
    }

    /// The new host config (unchanged where nothing was asked), checked as
    /// at create.
    pub fn apply(&self, old: &HostConfig) -> Result<HostConfig> {
        // What was asked is checked alone first, as dockerd checks it (a
        // memory limit under the minimum says so before any conflict).
        validate(&self.merged(&HostConfig::default()), true)?;
        // What an update cannot change over what the container has, in
        // dockerd's words (a 409; the caller names the container).
        let asked = |v: Option<i64>| v.is_some_and(|v| v > 0);
        for (update, set_before, message) in [
            (
                asked(self.nano_cpus),
                old.cpu_period > 0,
                "Nano CPUs cannot be updated as CPU Period has already been set",
            ),
            (
                asked(self.nano_cpus),
                old.cpu_quota > 0,
                "Nano CPUs cannot be updated as CPU Quota has already been set",
            ),
            (
                asked(self.cpu_period),
                old.nano_cpus > 0,
                "CPU Period cannot be updated as NanoCPUs has already been set",
            ),
            (
                asked(self.cpu_quota),
                old.nano_cpus > 0,
                "CPU Quota cannot be updated as NanoCPUs has already been set",
            ),
        ] {
            if update && set_before {
                return Err(ApiError::conflict(format!(
                    "Conflicting options: {message}"
                )));
            }
        }
        // A memory limit above the swap limit the container has (none, for
        // one made without a memory limit) needs the swap limit with it:
        // dockerd refuses it alone.
        if let Some(m) = self.memory.filter(|m| *m != 0)
            && m > effective_swap(old)
            && self.memory_swap.is_none_or(|s| s == 0)
        {
            return Err(ApiError::conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        let mut hc = self.merged(old);
        if let Some(rp) = self
            .restart_policy
            .as_ref()
            .filter(|rp| !rp.name.is_empty())
        {
            if hc.auto_remove && rp.name != "no" {
                return Err(ApiError::conflict(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            hc.restart_policy = rp.clone();
        }
        super::create::validate_restart_policy(&hc)?;
        validate(&hc, true)?;
        Ok(hc)
    }

    /// `old` with the resources asked set over it (0 and empty: unchanged).
    fn merged(&self, old: &HostConfig) -> HostConfig {
        let mut hc = old.clone();
        let set = |v: Option<i64>, field: &mut i64| {
            if let Some(v) = v.filter(|v| *v != 0) {
                *field = v;
            }
        };
        set(self.memory, &mut hc.memory);
        set(self.memory_swap, &mut hc.memory_swap);
        set(self.memory_reservation, &mut hc.memory_reservation);
        set(self.cpu_shares, &mut hc.cpu_shares);
        set(self.nano_cpus, &mut hc.nano_cpus);
        set(self.cpu_quota, &mut hc.cpu_quota);
        set(self.cpu_period, &mut hc.cpu_period);
        set(self.cpu_realtime_runtime, &mut hc.cpu_realtime_runtime);
        set(self.cpu_realtime_period, &mut hc.cpu_realtime_period);
        if let Some(v) = self.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
            hc.cpuset_cpus = v.clone();
        }
        if let Some(v) = self.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
            hc.cpuset_mems = v.clone();
        }
        // 0 and every negative value lift the limit (dockerd's update: the
        // record says 0, the cgroup "max").
        if let Some(v) = self.pids_limit {
            hc.pids_limit = Some(v.max(0));
        }
        if let Some(v) = self.blkio_weight.filter(|v| *v != 0) {
            hc.blkio_weight = v;
        }
        hc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(hc: HostConfig) -> String {
        validate(&hc, false).unwrap_err().message
    }

    #[test]
    fn values_docker_refuses_are_400s_naming_the_field() {
        let hc = HostConfig::default;
        assert!(validate(&hc(), false).is_ok());
        // A weight out of range: refused where the kernel weighs block
        // I/O; elsewhere discarded (with a warning) before it matters.
        let heavy = HostConfig {
            blkio_weight: 5000,
            ..hc()
        };
        assert_eq!(validate(&heavy, false).is_err(), blkio_weight_supported());
        let cases: Vec<(HostConfig, &str)> = vec![
            (
                HostConfig {
                    memory_swap: -2,
                    ..hc()
                },
                "MemorySwap",
            ),
            (
                HostConfig {
                    cpuset_cpus: "abc".into(),
                    ..hc()
                },
                "cpuset cpus",
            ),
            (
                HostConfig {
                    cpuset_cpus: "0-99999".into(),
                    ..hc()
                },
                "Requested CPUs",
            ),
            (
                HostConfig {
                    cpuset_mems: "99".into(),
                    ..hc()
                },
                "memory nodes",
            ),
            (
                HostConfig {
                    oom_score_adj: 99999,
                    ..hc()
                },
                "oom score adj",
            ),
            (
                HostConfig {
                    cpu_shares: -5,
                    ..hc()
                },
                "CpuShares",
            ),
            (
                HostConfig {
                    cpu_period: -5,
                    ..hc()
                },
                "cfs period",
            ),
            (
                HostConfig {
                    cpu_period: 1,
                    ..hc()
                },
                "cfs period",
            ),
            (
                HostConfig {
                    pids_limit: Some(i64::MAX),
                    ..hc()
                },
                "PidsLimit",
            ),
            (
                HostConfig {
                    memory_reservation: -5,
                    ..hc()
                },
                "memory reservation",
            ),
            (
                HostConfig {
                    nano_cpus: -1,
                    ..hc()
                },
                "Range of CPUs",
            ),
            (
                HostConfig {
                    nano_cpus: -9223372036854775807,
                    ..hc()
                },
                "Range of CPUs",
            ),
            (
                HostConfig {
                    memory: i64::MAX,
                    ..hc()
                },
                "default swap",
            ),
            (
                HostConfig {
                    shm_size: -1,
                    ..hc()
                },
                "SHM",
            ),
            (
                HostConfig {
                    ulimits: vec![Ulimit {
                        name: "nofile".into(),
                        soft: -5,
                        hard: 10,
                    }]
                    .into(),
                    ..hc()
                },
                "ulimit nofile",
            ),
            (
                HostConfig {
                    ulimits: vec![Ulimit {
                        name: "nofile".into(),
                        soft: 20,
                        hard: 10,
                    }]
                    .into(),
                    ..hc()
                },
                "soft limit",
            ),
        ];
        for (c, want) in cases {
            let m = refused(c);
            assert!(m.contains(want), "{want}: {m}");
        }
        let sys = |k: &str, net: &str| HostConfig {
            sysctls: [(k.to_string(), "1".to_string())].into(),
            network_mode: net.into(),
            ..hc()
        };
        assert!(validate_sysctls(&sys("net.ipv4.ip_forward", "bridge")).is_ok());
        assert!(validate_sysctls(&sys("net.ipv4.conf.eth0.rp_filter", "bridge")).is_ok());
        assert!(validate_sysctls(&sys("net.ipv4.ip_forward", "host")).is_err());
        assert!(validate_sysctls(&sys("net.no.such.key", "bridge")).is_err());
        assert!(validate_sysctls(&sys("vm.swappiness", "bridge")).is_err());
        assert!(validate_sysctls(&sys("net/../../../etc/passwd", "bridge")).is_err());
        assert!(validate_cgroup_parent("../../../etc").is_err());
        assert!(validate_cgroup_parent("/berth/ci").is_ok());
    }

    #[test]
    fn resources_are_made_with_checked_arithmetic() {
        let r = oci(&HostConfig {
            memory: 64 << 20,
            nano_cpus: 1_500_000_000,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r["memory"]["swap"], json!(128 << 20));
        assert_eq!(r["cpu"]["quota"], json!(150_000));
        assert!(
            oci(&HostConfig {
                memory: i64::MAX,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn update_bodies_are_typed() {
        assert!(
            UpdateRequest::parse(br#"{"Memory": "abc"}"#)
                .unwrap_err()
                .message
                .contains("field Memory")
        );
        assert!(UpdateRequest::parse(b"[1, 2]").is_err());
        let old = HostConfig::default();
        let u = UpdateRequest::parse(br#"{"NanoCpus": -9223372036854775807}"#).unwrap();
        assert!(u.apply(&old).is_err());
        let u = UpdateRequest::parse(
            br#"{"Memory": 67108864, "MemorySwap": 134217728, "CpuShares": 512}"#,
        )
        .unwrap();
        let hc = u.apply(&old).unwrap();
        assert_eq!((hc.memory, hc.cpu_shares), (64 << 20, 512));
    }

    #[test]
    fn updates_that_conflict_with_what_the_container_has_are_refused_as_dockerd() {
        let status = |old: &HostConfig, body: &[u8]| {
            UpdateRequest::parse(body)
                .unwrap()
                .apply(old)
                .map(|_| ())
                .map_err(|e| e.status)
        };
        let conflict = Err(axum::http::StatusCode::CONFLICT);
        // No swap limit set (a container made without a memory limit):
        // memory alone is refused, with the swap limit it goes.
        let bare = HostConfig::default();
        assert_eq!(status(&bare, br#"{"Memory": 67108864}"#), conflict);
        assert_eq!(
            status(&bare, br#"{"Memory": 67108864, "MemorySwap": -1}"#),
            Ok(())
        );
        // Made with 64m (swap 128m, or 0 in a record from before the
        // default was written): up to the swap limit alone.
        for swap in [128 << 20, 0] {
            let limited = HostConfig {
                memory: 64 << 20,
                memory_swap: swap,
                ..Default::default()
            };
            assert_eq!(status(&limited, br#"{"Memory": 100663296}"#), Ok(()));
            assert_eq!(status(&limited, br#"{"Memory": 268435456}"#), conflict);
        }
        let nano = HostConfig {
            nano_cpus: 500_000_000,
            ..Default::default()
        };
        assert_eq!(status(&nano, br#"{"CpuPeriod": 100000}"#), conflict);
        assert_eq!(status(&nano, br#"{"NanoCpus": 1000000000}"#), Ok(()));
    }
}
