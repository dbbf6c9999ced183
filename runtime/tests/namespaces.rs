//! Namespace combinations the runtime spec allows where runc itself fails
//! (so these are not differential): every one must either work or make
//! `create` fail, never report success for an init that is already dead.

mod common;

use common::{Bundle, Runtime};
use serde_json::json;

/// A bundle that shares every namespace with the host (as runtime-tools'
/// linux_ns_itype test has it): no `linux.namespaces`, so no mounts of its
/// own, no masked paths, no hostname.
fn host_namespaces(script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.spec["linux"]
        .as_object_mut()
        .expect("linux")
        .remove("namespaces");
    b.spec["mounts"] = json!([]);
    b.spec["linux"]["maskedPaths"] = json!([]);
    b.spec["linux"]["readonlyPaths"] = json!([]);
    b.spec.as_object_mut().expect("spec").remove("hostname");
    b.spec["root"]["readonly"] = json!(false);
    b
}

#[test]
fn a_container_in_the_hosts_namespaces_runs_in_its_root() {
    let rt = Runtime::berth();
    // The host's pid namespace (not pid 1), the bundle's root (chroot),
    // and no /proc there: the exec fifo must not need one.
    let b = host_namespaces(
        "[ $$ != 1 ] && echo hostpid; [ -x /bin/busybox ] && echo inroot; ls /proc | wc -l",
    );
    let o = rt.run_bundle(&b, &rt.id("hostns"));
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "hostpid\ninroot\n0\n"),
        "{o:?}"
    );

    // create leaves a live init waiting; start releases it.
    let b = host_namespaces("echo started > /started");
    let id = rt.id("hostnscreate");
    let c = rt.create(&b, &id);
    assert_eq!(c.code, 0, "{c:?}");
    let st = rt.state(&id).expect("state");
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(rt.run(&["start", &id]).code, 0);
    assert!(rt.wait_status(&id, "stopped"));
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("started"))
            .ok()
            .as_deref(),
        Some("started\n")
    );
}

#[test]
fn a_mount_namespace_without_proc_fails_at_create() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["true"]);
    let mounts: Vec<serde_json::Value> = b.spec["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["type"] != "proc")
        .cloned()
        .collect();
    b.spec["mounts"] = json!(mounts);
    // Masking needs /proc paths; without /proc there is nothing to mask.
    b.spec["linux"]["maskedPaths"] = json!([]);
    b.spec["linux"]["readonlyPaths"] = json!([]);
    let id = rt.id("noproc");
    let c = rt.create(&b, &id);
    assert_ne!(c.code, 0, "create said it worked: {c:?}");
    assert!(c.stderr.contains("/proc"), "{c:?}");
    assert_eq!(rt.status(&id), "gone", "a failed create leaves nothing");
}
