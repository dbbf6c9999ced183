//! What the runtime says about the cgroup it is given, where Debian's
//! runc (1.1) says nothing (runc 1.2 warns the same way), so not
//! differential.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::{Bundle, Runtime, cgroup_dir};

#[test]
fn a_cgroup_that_already_holds_processes_is_warned_about() {
    let rt = Runtime::berth();
    let id = rt.id("nonempty");
    let dir = cgroup_dir("pids", &id);
    fs::create_dir_all(&dir).unwrap();
    let mut stranger = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    fs::write(dir.join("cgroup.procs"), stranger.id().to_string()).unwrap();
    let o = rt.create(&Bundle::new(&["true"]), &id);
    let _ = stranger.kill();
    let _ = stranger.wait();
    rt.run(&["delete", "--force", &id]);
    let _ = fs::remove_dir(&dir);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("container's cgroup is not empty: 1 process(es) found"),
        "{o:?}"
    );
}
