//! What must hold of a stack whatever died and when (issue: crash
//! consistency): every container's state as the engine tells it matches the
//! kernel, and nothing exists that no container owns. Checked against the
//! kernel and the daemons' own files, not against what the engine says
//! about itself.

use std::collections::BTreeSet;
use std::path::Path;

use crate::stack::Stack;

/// A container as the engine reports it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    /// running, paused, restarting, created, exited, dead, removing
    pub status: String,
    pub pid: i64,
}

pub fn containers(s: &Stack) -> Result<Vec<Seen>, String> {
    let (code, body) = s.api("GET", "/containers/json?all=1", None);
    if code != 200 {
        return Err(format!("listing containers: {code} {body}"));
    }
    let list: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("listing containers: {e}: {body}"))?;
    let mut out = Vec::new();
    for c in list.as_array().into_iter().flatten() {
        let id = c["Id"].as_str().unwrap_or_default().to_string();
        let (code, body) = s.api("GET", &format!("/containers/{id}/json"), None);
        if code == 404 {
            continue; // removed meanwhile
        }
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("inspecting {id}: {code} {e}: {body}"))?;
        out.push(Seen {
            id,
            status: v["State"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pid: v["State"]["Pid"].as_i64().unwrap_or(0),
        });
    }
    Ok(out)
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Live processes whose command line mentions `needle`, as (pid, argv).
fn processes_mentioning(needle: &str) -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.iter().any(|a| a.contains(needle)) {
            out.push((pid, argv));
        }
    }
    out
}

/// The shims serving this stack's lifecycled: (pid, container id).
pub fn shim_processes(s: &Stack) -> Vec<(i32, String)> {
    let state = s.lc().state.to_string_lossy().into_owned();
    processes_mentioning(&state)
        .into_iter()
        .filter(|(_, argv)| argv.first().is_some_and(|a| a.ends_with("berth-shim")))
        .filter_map(|(pid, argv)| {
            let i = argv.iter().position(|a| a == "--id")?;
            Some((pid, argv.get(i + 1)?.clone()))
        })
        .collect()
}

/// The last `n` lines of a daemon's log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Whether the container's cgroup is frozen, as the kernel says: the v1
/// freezer where there is one (on a hybrid host the unified tree's
/// `cgroup.freeze` is not what pauses it), else cgroup v2's.
fn frozen(s: &Stack, id: &str) -> Option<bool> {
    let dirs: Vec<_> = testsupport::cgroup_dirs(&s.cgroup_parent)
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy() == id))
        .collect();
    let read = |f: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .map(|v| v.trim().to_string())
    };
    match read("freezer.state") {
        Some(v) => Some(v != "THAWED"),
        None => read("cgroup.freeze").map(|v| v == "1"),
    }
}

/// Every violation found; empty when the stack is consistent. `ever` holds
/// the ids of every container the test made (firewall rules are looked up
/// by them: other tests' rules share the host's tables).
pub fn check(s: &Stack, ever: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    let seen = match containers(s) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let all: BTreeSet<String> = seen.iter().map(|c| c.id.clone()).collect();
    let live: BTreeSet<String> = seen
        .iter()
        .filter(|c| matches!(c.status.as_str(), "running" | "paused"))
        .map(|c| c.id.clone())
        .collect();
    for c in &seen {
        match c.status.as_str() {
            "running" | "paused" => {
                let cg =
                    std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap_or_default();
                if c.pid <= 0 || !cg.contains(&c.id) {
                    bad.push(format!(
                        "{} is {} with pid {}, which is not alive in its cgroup",
                        c.id, c.status, c.pid
                    ));
                }
                let frozen = frozen(s, &c.id);
                if frozen.is_some_and(|f| f != (c.status == "paused")) {
                    bad.push(format!(
                        "{} is {} but its cgroup is {}",
                        c.id,
                        c.status,
                        if frozen == Some(true) {
                            "frozen"
                        } else {
                            "thawed"
                        }
                    ));
                }
            }
            "created" | "exited" | "dead" => {
                for dir in testsupport::cgroup_dirs(&s.cgroup_parent) {
                    if dir.to_string_lossy().contains(&c.id) {
                        let procs =
                            std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                        if !procs.trim().is_empty() {
                            bad.push(format!(
                                "{} is {} but {} holds processes {}",
                                c.id,
                                c.status,
                                dir.display(),
                                procs.trim().replace('\n', ",")
                            ));
                        }
                    }
                }
            }
            other => bad.push(format!("{} is left in state {other}", c.id)),
        }
    }
    let shims: BTreeSet<String> = shim_processes(s).into_iter().map(|(_, id)| id).collect();
    for id in &shims {
        if !live.contains(id) {
            bad.push(format!("a shim runs for {id}, which is not running"));
        }
    }
    for id in &live {
        if !shims.contains(id) {
            bad.push(format!("{id} runs without a shim"));
        }
    }
    for id in dir_names(&s.exec_root.join("netns")) {
        if !live.contains(&id) {
            bad.push(format!("a network namespace is left for {id}"));
        }
    }
    for net in std::fs::read_dir(s.exec_root.join("ipam"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in dir_names(&net.path()) {
            if f.parse::<std::net::IpAddr>().is_err() {
                continue;
            }
            let owner = std::fs::read_to_string(net.path().join(&f)).unwrap_or_default();
            let owner = owner.lines().next().unwrap_or("").trim().to_string();
            if !live.contains(&owner) {
                bad.push(format!(
                    "address {f} is leased to {owner}, which is not running"
                ));
            }
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let roots = [
        s.lc().state.to_string_lossy().into_owned(),
        s.exec_root.to_string_lossy().into_owned(),
    ];
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        if roots.iter().any(|r| point.starts_with(r.as_str()))
            && !live.iter().any(|id| point.contains(id.as_str()))
        {
            bad.push(format!(
                "{point} is mounted, and no running container owns it"
            ));
        }
    }
    let ctr = s.command(
        crate::bin("berth-ctr").to_str().unwrap_or("berth-ctr"),
        &[
            "--address",
            s.lc().address.to_str().unwrap_or_default(),
            "-n",
            "berth",
            "containers",
            "ls",
            "-q",
        ],
    );
    let lc_containers: BTreeSet<String> = ctr.stdout.split_whitespace().map(String::from).collect();
    if ctr.code != 0 {
        bad.push(format!("berth-ctr containers ls: {}", ctr.stderr));
    }
    for id in lc_containers.difference(&all) {
        bad.push(format!(
            "lifecycled keeps container {id}, which the engine does not know"
        ));
    }
    for id in all.difference(&lc_containers) {
        bad.push(format!(
            "the engine lists {id}, which lifecycled does not have"
        ));
    }
    for dir in testsupport::cgroup_dirs(&s.cgroup_parent) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_id(&name) && !live.contains(&name) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                bad.push(format!(
                    "cgroup {} holds processes of a stopped container",
                    dir.display()
                ));
            }
        }
    }
    let rules = s.command("iptables-save", &[]).stdout;
    for word in rules.split(|c: char| !c.is_ascii_hexdigit()) {
        if is_id(word) && !live.contains(word) && (all.contains(word) || ever.contains(word)) {
            bad.push(format!(
                "a firewall rule names {word}, which is not running"
            ));
        }
    }
    bad
}
