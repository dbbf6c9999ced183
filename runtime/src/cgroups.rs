//! The container's cgroup, through libcgroups: created and limited before the
//! container process runs, joined by exec'd processes, frozen for pause, removed
//! on delete. Works on cgroup v1, v2 and the hybrid layout (v1 controllers with a
//! controller-less cgroup2 at /sys/fs/cgroup/unified), where the v1 controllers
//! do the limiting. Device rules on cgroup v2 are an eBPF program attached to
//! the cgroup (libcgroups' `cgroupsv2_devices`, as runc's devicefilter).

use std::fs;
use std::path::{Path, PathBuf};

use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, CgroupSetup, ControllerOpt, FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";

pub struct Cgroup {
    path: PathBuf,
    /// Built at first use: on v1 libcgroups reads /proc/self/mountinfo
    /// and /proc/self/cgroup once per controller to build it (~3 ms of a
    /// 6 ms exec), and exec, kill, ps and delete do without it there.
    manager: std::cell::OnceCell<AnyCgroupManager>,
}

/// The cgroups path a container gets: the spec's, or `/<id>` as runc does.
pub fn path_for(spec: &Spec, id: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(format!("/{id}")))
}

fn wrap(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Cgroup {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

impl Cgroup {
    pub fn open(path: &Path) -> Result<Self> {
        if path.to_string_lossy().contains(':') {
            return Err(Error::Invalid(format!(
                "cgroups path {} is in systemd's slice:prefix:name form, which needs --systemd-cgroup; berth-runtime manages cgroupfs paths only",
                path.display()
            )));
        }
        Ok(Cgroup {
            path: path.to_path_buf(),
            manager: std::cell::OnceCell::new(),
        })
    }

    /// Builds the manager now: for a process about to fork, so that its
    /// child only writes files.
    pub fn prepare(&self) -> Result<()> {
        self.manager().map(|_| ())
    }

    fn manager(&self) -> Result<&AnyCgroupManager> {
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let m = libcgroups::common::create_cgroup_manager(CgroupConfig {
            cgroup_path: self.path.clone(),
            systemd_cgroup: false,
            container_name: String::new(),
        })
        .map_err(|e| wrap(&self.path, e))?;
        Ok(self.manager.get_or_init(|| m))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn add_task(&self, pid: Pid) -> Result<()> {
        self.manager()?
            .add_task(pid)
            .map_err(|e| wrap(&self.path, e))?;
        self.add_to_unified(pid);
        Ok(())
    }

    /// On a hybrid host, puts `pid` in the container's unified cgroup too,
    /// as runc does, so that tools that walk cgroup2 (and a cgroup
    /// namespace) see it and its device filter applies.
    pub fn add_to_unified(&self, pid: Pid) {
        if layout() == Some(Layout::Hybrid) {
            let dir = Path::new(ROOT).join("unified").join(rel(&self.path));
            if fs::create_dir_all(&dir).is_ok() {
                let _ = fs::write(dir.join("cgroup.procs"), pid.as_raw().to_string());
            }
        }
    }

    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.order_cfs_writes(resources);
        let rules = resources
            .devices()
            .as_deref()
            .map(crate::devices::normalized);
        // On v1 the device rules are written here, as the difference from
        // what the cgroup has (libcgroups would write them all again,
        // starting with "deny everything", at every update); libcgroups
        // gets none (it still allows its defaults, which every target
        // allows too). On v2 its eBPF program takes them whole.
        let mut for_libcgroups = resources.clone();
        for_libcgroups.set_devices(if layout() == Some(Layout::V2) {
            rules.clone()
        } else {
            None
        });
        let resources = &for_libcgroups;
        let opt = ControllerOpt {
            resources,
            disable_oom_killer: resources
                .memory()
                .as_ref()
                .and_then(|m| m.disable_oom_killer())
                .unwrap_or(false),
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager()?
            .apply(&opt)
            .map_err(|e| wrap(&self.path, e))?;
        if layout() != Some(Layout::V2) {
            self.write_v1_device_rules(rules.as_deref().unwrap_or_default())?;
        }
        if layout() == Some(Layout::Hybrid) {
            // cgroup v2 has no devices controller: its device rules are an
            // eBPF program on the cgroup (libcgroups' builds and attaches it
            // on pure v2). On a hybrid host the v1 devices controller
            // enforces the rules; the program on the container's unified
            // cgroup enforces them again, for whatever goes by cgroup2.
            let dir = Path::new(ROOT).join("unified").join(rel(&self.path));
            if dir.is_dir()
                && let Err(e) = attach_device_filter(&dir, &rules)
            {
                tracing::warn!("device filter on {}: {e}", dir.display());
            }
        }
        Ok(())
    }

    /// Brings the v1 devices controller from what its `devices.list` shows
    /// to `rules` followed by the devices every container gets, with the
    /// fewest writes (see `devices`).
    fn write_v1_device_rules(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        let Some((_, dir)) = hierarchy_dirs(&self.path)
            .into_iter()
            .find(|(name, _)| name == "devices")
        else {
            return Ok(());
        };
        let list = dir.join("devices.list");
        let current = fs::read_to_string(&list).map_err(|e| Error::io("reading", &list, e))?;
        let target = crate::devices::Rules::allow_all()
            .with(rules)
            .and_then(|t| t.with(&default_device_rules()))
            .map_err(Error::Invalid)?;
        for w in crate::devices::Rules::from_list(&current).transition(&target) {
            let file = dir.join(w.file());
            fs::write(&file, &w.line).map_err(|e| {
                let e = std::io::Error::new(e.kind(), format!("{:?}: {e}", w.line));
                Error::io("writing a device rule to", &file, e)
            })?;
        }
        Ok(())
    }

    /// A new CFS period and quota must be written in the order the kernel
    /// takes them: a period smaller than the current one is refused
    /// (EINVAL) while the old quota over it would exceed the parent's limit
    /// (a pod cgroup's). As runc does, the quota goes first then. libcgroups
    /// writes the period first, so on v1 the pair is written here before
    /// it, and its own writes of the same values then hold.
    fn order_cfs_writes(&self, resources: &LinuxResources) {
        let Some(cpu) = resources.cpu() else { return };
        let (Some(period), Some(quota)) = (cpu.period(), cpu.quota()) else {
            return;
        };
        if period == 0 || quota == 0 || layout() == Some(Layout::V2) {
            return;
        }
        let dir = Path::new(ROOT).join("cpu").join(rel(&self.path));
        let write = |file: &str, v: String| fs::write(dir.join(file), v);
        if write("cpu.cfs_period_us", period.to_string()).is_err() {
            let _ = write("cpu.cfs_quota_us", quota.to_string());
            let _ = write("cpu.cfs_period_us", period.to_string());
        }
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager()?
            .freeze(state)
            .map_err(|e| wrap(&self.path, e))
    }

    /// Every process in the cgroup and its sub-cgroups. On v1 read from
    /// the devices hierarchy, as libcgroups does.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        if layout() == Some(Layout::V2) {
            return self
                .manager()?
                .get_all_pids()
                .map_err(|e| wrap(&self.path, e));
        }
        let dir = hierarchy_dirs(&self.path)
            .into_iter()
            .find(|(name, _)| name == "devices")
            .map(|(_, dir)| dir)
            .unwrap_or_else(|| Path::new(ROOT).join("devices").join(rel(&self.path)));
        let mut pids = Vec::new();
        procs_below(&dir, &mut pids)?;
        Ok(pids)
    }

    /// Removes the cgroup directories (killing what is left in them),
    /// sub-cgroups the container made included, deepest first, as runc does.
    pub fn remove(&self) -> Result<()> {
        for (_, dir) in hierarchy_dirs(&self.path) {
            remove_children(&dir);
        }
        if layout() == Some(Layout::V2) {
            self.manager()?.remove().map_err(|e| wrap(&self.path, e))?;
        } else {
            // The container's own directory in every hierarchy, as
            // libcgroups' v1 remove (which would build its manager).
            for (_, dir) in hierarchy_dirs(&self.path) {
                if !remove_killing(&dir) {
                    return Err(Error::io(
                        "removing cgroup",
                        &dir,
                        std::io::Error::other("still busy after its processes were killed"),
                    ));
                }
            }
        }
        if layout() == Some(Layout::Hybrid) {
            let dir = Path::new(ROOT).join("unified").join(rel(&self.path));
            if dir.exists() {
                let _ = fs::remove_dir(&dir);
            }
        }
        Ok(())
    }
}

/// The v1 controllers libcgroups manages, by their mount names.
const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// How a container's process gets into its cgroup without the kernel's
/// global migration lock. Writing a pid to `cgroup.procs` takes that lock
/// for writing, which first waits for an RCU grace period unless another
/// migration ended moments before: 5 to 20 ms on this machine, most of a
/// whole `run` after an idle moment, paid by runc and crun alike. Two
/// moves skip it: a single-threaded process writing "0" (itself) to a v1
/// hierarchy's `tasks` file, and a child born into a cgroup2 directory
/// (clone3's CLONE_INTO_CGROUP). The container's init is single-threaded
/// and, without a user namespace, may write the host's cgroup files.
pub struct SelfJoin {
    /// The container's directory in each v1 hierarchy (the init joins them).
    pub v1: Vec<PathBuf>,
    /// Its cgroup2 directory on a hybrid host, opened for the clone.
    pub unified: Option<fs::File>,
    /// The cpuset hierarchy's root, whose directories need cpus and mems.
    cpuset: Option<PathBuf>,
}

impl SelfJoin {
    /// The plan for a container at `path`, or None where it does not apply
    /// (pure v2, which libcgroups manages whole, or a container with a user
    /// namespace, whose root may not write the host's cgroup files).
    pub fn plan(path: &Path, userns: bool) -> Option<SelfJoin> {
        let layout = layout()?;
        if userns || layout == Layout::V2 {
            return None;
        }
        let mut v1 = Vec::new();
        let mut cpuset = None;
        for c in V1_CONTROLLERS {
            let mount = Path::new(ROOT).join(c);
            // Co-mounted controllers (cpu,cpuacct) are one hierarchy.
            let Ok(real) = fs::canonicalize(&mount) else {
                continue;
            };
            let dir = real.join(rel(path));
            if c == "cpuset" {
                cpuset = Some(real);
            }
            if !v1.contains(&dir) {
                v1.push(dir);
            }
        }
        let unified = if layout == Layout::Hybrid {
            let dir = Path::new(ROOT).join("unified").join(rel(path));
            fs::create_dir_all(&dir)
                .and_then(|_| fs::File::open(&dir))
                .map_err(|e| tracing::debug!("unified cgroup {}: {e}", dir.display()))
                .ok()
        } else {
            None
        };
        Some(SelfJoin {
            v1,
            unified,
            cpuset,
        })
    }

    /// Makes the v1 directories (a cpuset's cpus and mems copied down from
    /// its parents, which a task needs to join it), as libcgroups' add_task
    /// would without moving anyone.
    pub fn make_dirs(&self) -> Result<()> {
        for dir in &self.v1 {
            let Some(root) = self.cpuset.as_ref().filter(|r| dir.starts_with(r)) else {
                fs::create_dir_all(dir).map_err(|e| Error::io("creating cgroup", dir, e))?;
                continue;
            };
            // Down from the hierarchy's root, filling each level in.
            let mut cur = root.clone();
            for part in dir.strip_prefix(root).unwrap_or(Path::new("")).components() {
                let parent = cur.clone();
                cur.push(part);
                if !cur.is_dir() {
                    fs::create_dir(&cur).map_err(|e| Error::io("creating cgroup", &cur, e))?;
                }
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let now = fs::read_to_string(cur.join(f)).unwrap_or_default();
                    if now.trim().is_empty() {
                        let from = fs::read_to_string(parent.join(f))
                            .map_err(|e| Error::io("reading", parent.join(f), e))?;
                        fs::write(cur.join(f), from.trim())
                            .map_err(|e| Error::io("writing", cur.join(f), e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Moves the calling (single-threaded) process into each v1 directory by
/// writing "0" to its `tasks` file: see `SelfJoin`.
pub fn join_self(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        let tasks = dir.join("tasks");
        fs::write(&tasks, "0").map_err(|e| Error::io("joining cgroup", &tasks, e))?;
    }
    Ok(())
}

/// What every container may use whatever its rules say (runc's and
/// libcgroups' defaults): /dev/null, zero, full, random, urandom, tty,
/// console, ptmx, the pts, /dev/net/tun, and mknod of any node.
fn default_device_rules() -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    let rule = |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
        serde_json::from_value(serde_json::json!({
            "allow": true, "type": typ, "major": major, "minor": minor, "access": access,
        }))
        .expect("a valid device rule")
    };
    vec![
        rule("c", Some(1), Some(3), "rwm"),
        rule("c", Some(1), Some(5), "rwm"),
        rule("c", Some(1), Some(7), "rwm"),
        rule("c", Some(1), Some(8), "rwm"),
        rule("c", Some(1), Some(9), "rwm"),
        rule("c", Some(5), Some(0), "rwm"),
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(5), Some(1), "rwm"),
        rule("c", Some(136), None, "rwm"),
        rule("c", Some(5), Some(2), "rwm"),
        rule("c", Some(10), Some(200), "rwm"),
    ]
}

/// Builds the eBPF device filter of `rules` (after them, the devices
/// every container gets) and attaches it to the cgroup2 directory `dir`,
/// replacing the filter attached before. Everything else is denied:
/// opening it fails with EPERM. libcgroups' pieces (rule emulator, program
/// builder, bpf calls) are used; its own attach insists on raising
/// RLIMIT_MEMLOCK, which needs CAP_SYS_RESOURCE and which kernels since
/// 5.11 do not charge programs to, so here that raise is best effort.
pub fn attach_device_filter(
    dir: &Path,
    rules: &Option<Vec<oci_spec::runtime::LinuxDeviceCgroup>>,
) -> Result<()> {
    use libcgroups::v2::devices::{bpf::prog, emulator::Emulator, program::Program};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut emulator = Emulator::with_default_allow(false);
    for r in rules.iter().flatten() {
        emulator.add_rule(r);
    }
    for r in default_device_rules() {
        emulator.add_rule(&r);
    }
    let program =
        Program::from_rules(&emulator.rules, emulator.default_allow).map_err(|e| wrap(dir, e))?;
    let _ = prog::bump_memlock_rlimit();
    // NUL-terminated here: libcgroups hands the kernel the str's pointer.
    let raw = prog::load("Apache\0", program.bytecodes()).map_err(|e| wrap(dir, e))?;
    // SAFETY: load returned a fresh program descriptor that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let cgroup = fs::File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
    let old = prog::query(cgroup.as_raw_fd()).map_err(|e| wrap(dir, e))?;
    prog::attach(prog_fd.as_raw_fd(), cgroup.as_raw_fd()).map_err(|e| wrap(dir, e))?;
    for o in old {
        // SAFETY: query opened each descriptor for us; we own it now.
        let fd = unsafe { OwnedFd::from_raw_fd(o.fd) };
        prog::detach2(fd.as_raw_fd(), cgroup.as_raw_fd()).map_err(|e| wrap(dir, e))?;
    }
    Ok(())
}

/// Removes every cgroup below `dir`, deepest first, killing what runs in
/// them (a cgroup with processes cannot be removed).
fn remove_children(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let child = e.path();
        remove_children(&child);
        remove_killing(&child);
    }
}

/// Removes an empty cgroup directory, SIGKILLing what is still in it
/// until it goes (for a second at most); whether it is gone.
fn remove_killing(dir: &Path) -> bool {
    for _ in 0..100 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            // Busy while its killed processes are still going away.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    false
}

/// The pids in `dir`'s cgroup.procs and in those of the cgroups below it.
fn procs_below(dir: &Path, out: &mut Vec<Pid>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let text = fs::read_to_string(&procs).map_err(|e| Error::io("reading", &procs, e))?;
    out.extend(
        text.lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .map(Pid::from_raw),
    );
    let entries = fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            procs_below(&e.path(), out)?;
        }
    }
    Ok(())
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// The host's cgroup layout, detected once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1,
    V2,
    /// v1 controllers plus a controller-less cgroup2 at /sys/fs/cgroup/unified.
    Hybrid,
}

pub fn layout() -> Option<Layout> {
    static LAYOUT: std::sync::OnceLock<Option<Layout>> = std::sync::OnceLock::new();
    *LAYOUT.get_or_init(|| match libcgroups::common::get_cgroup_setup().ok()? {
        CgroupSetup::Legacy => Some(Layout::V1),
        CgroupSetup::Unified => Some(Layout::V2),
        CgroupSetup::Hybrid => Some(Layout::Hybrid),
    })
}

/// The directories of `exec --cgroup [<controller>:]<sub>` under the
/// container's cgroup at `path`: the sub-cgroup in that controller's
/// hierarchy (all of them without a controller). It must exist, and stay
/// below the container's cgroup.
pub fn sub_cgroup_dirs(path: &Path, specs: &[String]) -> Result<Vec<PathBuf>> {
    let hierarchies = hierarchy_dirs(path);
    let mut out = Vec::new();
    for spec in specs {
        let (controller, sub) = match spec.split_once(':') {
            Some((c, s)) => (Some(c), s),
            None => (None, spec.as_str()),
        };
        let sub = Path::new(sub);
        let below = sub
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if sub.as_os_str().is_empty() || !below {
            return Err(Error::Invalid(format!(
                "--cgroup {spec}: the sub-cgroup must be a relative path below the container's cgroup"
            )));
        }
        let chosen: Vec<&PathBuf> = hierarchies
            .iter()
            .filter(|(name, _)| {
                controller.is_none_or(|c| name.as_str() == c || name.split(',').any(|n| n == c))
            })
            .map(|(_, dir)| dir)
            .collect();
        if chosen.is_empty() {
            return Err(Error::Invalid(format!(
                "--cgroup {spec}: no cgroup controller {} for this container",
                controller.unwrap_or("")
            )));
        }
        for dir in chosen {
            let target = dir.join(sub);
            if !target.is_dir() {
                return Err(Error::Invalid(format!(
                    "--cgroup {spec}: {} does not exist",
                    target.display()
                )));
            }
            out.push(target);
        }
    }
    Ok(out)
}

/// How many processes the cgroup at `path` holds already (the most any of
/// its hierarchies shows), without creating it.
pub fn processes_in(path: &Path) -> usize {
    hierarchy_dirs(path)
        .iter()
        .map(|(_, dir)| {
            fs::read_to_string(dir.join("cgroup.procs"))
                .map(|p| p.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

/// Whether the container's cgroup is frozen, read without building a manager so
/// that `state` and `list` stay cheap.
pub fn is_frozen(path: &Path) -> bool {
    match layout() {
        Some(Layout::V2) => {
            fs::read_to_string(Path::new(ROOT).join(rel(path)).join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false)
        }
        Some(_) => fs::read_to_string(
            Path::new(ROOT)
                .join("freezer")
                .join(rel(path))
                .join("freezer.state"),
        )
        .map(|s| s.trim() == "FROZEN")
        .unwrap_or(false),
        None => false,
    }
}

/// The host directory of each mounted hierarchy for this cgroup path, keyed by
/// the hierarchy's directory name under /sys/fs/cgroup (`memory`, `unified`, …).
/// Used to build the container's /sys/fs/cgroup without a cgroup namespace.
pub fn hierarchy_dirs(path: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if layout() == Some(Layout::V2) {
        out.push((String::new(), Path::new(ROOT).join(rel(path))));
        return out;
    }
    if let Ok(entries) = fs::read_dir(ROOT) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                // co-mounted controllers appear as symlinks (cpu -> cpu,cpuacct)
                continue;
            }
            let dir = e.path().join(rel(path));
            if dir.is_dir() {
                out.push((name, dir));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_sub_cgroups_stay_below_the_container() {
        let path = Path::new("/berth-no-such-container");
        for bad in ["../escape", "/abs", "memory:../x", "a/../../b", ""] {
            let e = sub_cgroup_dirs(path, &[bad.to_string()]).unwrap_err();
            assert!(e.to_string().contains("relative path"), "{bad}: {e}");
        }
        // A fine path in a container without cgroups is still an error.
        assert!(sub_cgroup_dirs(path, &["memory:sub".to_string()]).is_err());
        assert!(sub_cgroup_dirs(path, &[]).unwrap().is_empty());
    }
}
