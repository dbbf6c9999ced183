//! Fixtures that start berth's daemons as real processes, each in a temporary
//! root with its own sockets, state directories and cgroup parent, and tear
//! everything down in Drop, also when a test panics: processes killed by pid,
//! mounts unmounted, cgroups removed.

pub mod cri;
pub mod fileserver;
pub mod invariants;
pub mod lifecycled;
pub mod netblock;
pub mod plugin;
pub mod registry;
pub mod stack;
pub mod tmux;

use std::path::PathBuf;

/// A binary of the workspace, from the same target directory as the test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// Debian's runc, which every behaviour is also checked against.
/// A command for `bin` run in the network and mount namespaces given
/// (through nsenter, which execs it: its pid is the program's).
pub fn command_in(
    bin: &std::path::Path,
    netns: Option<&std::path::Path>,
    mount_ns: Option<&std::path::Path>,
) -> std::process::Command {
    if netns.is_none() && mount_ns.is_none() {
        return std::process::Command::new(bin);
    }
    let mut c = std::process::Command::new("nsenter");
    if let Some(ns) = netns {
        c.arg(format!("--net={}", ns.display()));
    }
    if let Some(ns) = mount_ns {
        c.arg(format!("--mount={}", ns.display()));
    }
    c.arg("--").arg(bin);
    c
}

/// `dir/busybox.tar`: a busybox root filesystem (testsupport's) as a
/// tarball, made once.
pub fn busybox_tar(dir: &std::path::Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    if tar.exists() {
        return tar;
    }
    let rootfs = dir.join("busybox-rootfs");
    testsupport::make_rootfs(&rootfs);
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("running tar");
    assert!(st.success(), "tar failed");
    tar
}

pub fn runc() -> PathBuf {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("the tests need Debian's runc (scripts/deps installs it)")
}

/// Waits for a daemon we started to exit by itself; whether it did within
/// `timeout`. A child that exited is reaped and forgotten.
pub fn wait_child_exit(
    child: &mut Option<std::process::Child>,
    timeout: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match child.as_mut().map(|c| c.try_wait()) {
            None => return true,
            Some(Ok(Some(_))) => {
                *child = None;
                return true;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

/// Polls `f` until it is true or `secs` pass; whether it became true.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// A network namespace of a test's own (`ip netns add`), with loopback up;
/// deleted in Drop, and with it every bridge, veth and firewall rule made
/// in it.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = testsupport::unique("berth-it-ns");
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        let ns = NetNs { name };
        let _ = std::process::Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .status();
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> args…`'s output.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for NetNs {
    fn default() -> Self {
        NetNs::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Whether this kernel weighs block I/O per cgroup (CFQ or BFQ on v1, the
/// io controller on a pure v2 host): where it does not, dockerd drops a
/// BlkioWeight with a warning, and so does berthd.
pub fn kernel_weighs_block_io() -> bool {
    let v1 = std::path::Path::new("/sys/fs/cgroup/blkio");
    if v1.is_dir() {
        v1.join("blkio.weight").exists() || v1.join("blkio.bfq.weight").exists()
    } else {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
    }
}
