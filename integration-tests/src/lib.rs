//! Fixtures that start berth's daemons as real processes, each in a temporary
//! root with its own sockets, state directories and cgroup parent, and tear
//! everything down in Drop, also when a test panics: processes killed by pid,
//! mounts unmounted, cgroups removed.

pub mod lifecycled;
pub mod netblock;
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
pub fn runc() -> PathBuf {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("the tests need Debian's runc (scripts/deps installs it)")
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
