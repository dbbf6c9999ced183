//! What berth's tests share. Nothing binary is committed: root filesystems are
//! built at test time from Debian's busybox-static.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A root filesystem with Debian's static busybox and its applets, /etc/passwd
/// and /etc/group with root, user (1000) and nobody, and a 1777 /tmp.
pub fn make_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("creating rootfs/bin");
    for d in [
        "etc",
        "tmp",
        "proc",
        "sys",
        "dev",
        "root",
        "home/user",
        "var",
        "usr/bin",
    ] {
        fs::create_dir_all(dir.join(d)).expect("creating rootfs dirs");
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "tests need Debian's busybox-static at /bin/busybox (scripts/deps installs it)"
    );
    fs::copy(busybox, bin.join("busybox")).expect("copying busybox");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", bin.join(applet));
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("writing passwd");
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .expect("writing group");
}

/// Every cgroup directory named `name` at the top of any hierarchy (v1
/// controllers, cgroup2), deepest first, for cleanup.
/// The cgroup2 hierarchy: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified
/// on a hybrid host; None on a v1-only host.
pub fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
}

pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut roots: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for r in roots {
        let top = r.join(name);
        if top.is_dir() {
            walk(&top, &mut out);
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&e.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}

/// Kills whatever is left in the cgroups named `name` and removes them.
pub fn remove_cgroups(name: &str) {
    for _ in 0..50 {
        let dirs = cgroup_dirs(name);
        if dirs.is_empty() {
            return;
        }
        for d in &dirs {
            for pid in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // Only processes inside our own test cgroups.
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
            let _ = fs::remove_dir(d);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
