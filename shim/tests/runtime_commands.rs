//! The shim's runtime commands run beside each other: one that takes long
//! (a container's create, a slow delete) does not hold up the others, which
//! a shim serving a whole pod needs. A process of its own (this file): the
//! reaper waits for any child.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use berth_shim::reaper::Reaper;
use berth_shim::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

/// A stand-in for the runtime's command line: `state slow` waits until the
/// test releases it (for 10 s at most, then fails), `state ID` answers at
/// once, `kill` fails with the runtime's kind of message on stderr.
const RUNTIME: &str = r#"#!/bin/sh
shift 4 # --log FILE --log-format json
dir=$(dirname "$0")
case $1 in
  state)
    if [ "$2" = slow ]; then
      touch "$dir/slow-started"
      i=0
      while [ ! -e "$dir/release" ]; do
        i=$((i + 1)); [ $i -gt 1000 ] && exit 3
        sleep 0.01
      done
    fi
    echo "{\"id\": \"$2\"}" ;;
  kill) echo "container $2 does not exist" >&2; exit 1 ;;
esac
"#;

#[test]
fn a_runtime_command_that_takes_long_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runtime");
    std::fs::write(&path, RUNTIME).expect("write the runtime");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let reaper = Arc::new(Reaper::default());
        let mut sigchld = signal(SignalKind::child()).expect("SIGCHLD");
        let r = reaper.clone();
        tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                r.reap();
            }
        });
        let runtime = Runtime {
            path,
            args: Vec::new(),
            log: dir.path().join("runtime.json"),
            reaper,
        };
        let slow = runtime.state("slow");
        tokio::pin!(slow);
        // The slow one is under way first; the other is answered while it
        // still waits (a shim that blocked on it would finish it first, by
        // failing after 10 s).
        let started = dir.path().join("slow-started");
        tokio::select! {
            biased;
            r = &mut slow => panic!("the slow command ended first: {r:?}"),
            fast = async {
                while !started.exists() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                runtime.state("fast").await
            } => assert_eq!(fast.expect("fast state")["id"], "fast"),
        }
        std::fs::write(dir.path().join("release"), "").expect("release");
        assert_eq!(slow.await.expect("slow state")["id"], "slow");
        // A command that fails says what the runtime said.
        let e = runtime
            .kill("gone", 9, false)
            .await
            .expect_err("kill fails");
        assert!(
            format!("{e:#}").contains("container gone does not exist"),
            "{e:#}"
        );
    });
}
