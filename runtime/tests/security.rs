//! Regression tests for the runtime's own attack surface.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::{Bundle, Runtime, detached_output};

/// CVE-2019-5736: a process in the container opens the runtime binary through
/// /proc/<pid>/exe while the runtime runs inside the container, waits for it to
/// exit, then writes through that descriptor. The runtime runs from a private
/// read-only overlayfs view of itself, so the write must fail and the binary on
/// the host must stay as it was. The test attacks a copy, never the build.
#[test]
fn container_cannot_overwrite_the_runtime_binary() {
    let dir = tempfile::tempdir().unwrap();
    let copy: PathBuf = dir.path().join("berth-runtime");
    fs::copy(env!("CARGO_BIN_EXE_berth-runtime"), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let before = fs::read(&copy).unwrap();

    let mut rt = Runtime::berth();
    rt.bin = copy.clone();
    let mut b = Bundle::new(&["sleep", "60"]);
    let out = tempfile::tempdir().unwrap();
    b.spec["mounts"].as_array_mut().unwrap().push(
        serde_json::json!({"destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind"]}),
    );
    // The attacker brings what the runtime binary needs to run in there.
    for lib in ["/lib", "/lib64", "/usr/lib"] {
        b.spec["mounts"].as_array_mut().unwrap().push(
            serde_json::json!({"destination": lib, "type": "bind", "source": lib, "options": ["rbind", "ro"]}),
        );
    }

    // A fifo on which the runtime, made to run inside the container, will block.
    let trap = b.rootfs().join("trap");
    fs::create_dir_all(&trap).unwrap();
    nix::unistd::mkfifo(
        &trap.join("config.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let id = rt.id("cve5736");
    assert_eq!(rt.create(&b, &id).code, 0);
    assert_eq!(rt.run(&["start", &id]).code, 0);

    // The victim: the runtime itself, executed through /proc/self/exe by an exec.
    let mut victim = rt.cmd();
    victim.args([
        "exec",
        "-d",
        &id,
        "/proc/self/exe",
        "--root",
        "/tmp/r",
        "run",
        "--bundle",
        "/trap",
        "x",
    ]);
    let v = detached_output(victim);
    assert_eq!(v.code, 0, "{}", v.stderr);
    std::thread::sleep(Duration::from_millis(200));

    // The attacker: hold the binary, let the victim finish, wait until no
    // runtime process runs any more (not even the exec that started us), then
    // write through the descriptor. It reports into a host directory.
    let attack = rt.run(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do \
           case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in '/proc/self/exe '*) pid=${p#/proc/};; esac; \
         done; [ -n \"$pid\" ] || { echo no victim > /out/result; exit 2; }; \
         exec 3< /proc/$pid/exe || exit 3; \
         echo '{' > /trap/config.json; \
         while [ -e /proc/$pid ]; do sleep 0.05; done; sleep 1; \
         echo PWNED 2>/out/err > /proc/self/fd/3; echo write=$? > /out/result",
    ]);
    assert_eq!(attack.code, 0, "{attack:?}");
    let result = out.path().join("result");
    for _ in 0..100 {
        if fs::read_to_string(&result)
            .unwrap_or_default()
            .ends_with('\n')
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.run(&["delete", "--force", &id]);
    let verdict = fs::read_to_string(&result).unwrap_or_default();
    let err = fs::read_to_string(out.path().join("err")).unwrap_or_default();
    assert_eq!(verdict, "write=1\n", "the write was not refused ({err})");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        fs::read(&copy).unwrap(),
        before,
        "the runtime binary was changed"
    );
}

/// The runtime never needs a writable view of itself, and never leaves the
/// overlay it runs from mounted anywhere.
#[test]
fn sealing_leaves_no_mount_behind() {
    let rt = Runtime::berth();
    let id = rt.id("seal");
    let o = rt.run_bundle(&Bundle::new(&["true"]), &id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(rt.root.path().to_str().unwrap()),
        "{mounts}"
    );
}

/// The cgroup2 device filter (an eBPF program: cgroup v2 has no devices
/// controller) lets a process in the cgroup open the devices every
/// container gets and refuses every other device with EPERM, even one it
/// was allowed to mknod. Proven on a cgroup2 hierarchy of its own (pure v2,
/// or the unified part of a hybrid host), with a host shell that no v1
/// devices cgroup restricts; the same shell outside the cgroup opens it.
#[test]
fn the_cgroup2_device_filter_refuses_devices_outside_the_rules() {
    let v2_root = testsupport::cgroup2_root()
        .expect("a cgroup2 hierarchy (pure v2, or the unified part of a hybrid host)");
    let cg = v2_root.join(format!("berth-test-{}", common::unique("devfilter")));
    fs::create_dir(&cg).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(cg.clone());
    // Deny everything; the filter adds what every container gets.
    let rules = Some(vec![
        serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"})).unwrap(),
    ]);
    berth_runtime::cgroups::attach_device_filter(&cg, &rules).expect("attaching the filter");
    let nodes = tempfile::tempdir().unwrap();
    // 1:3 is /dev/null, every container's; 240:0 is in the range kept
    // for local use, which no driver takes: outside the filter opening it
    // fails with ENXIO, never EPERM.
    let script = format!(
        "cd {dir} && rm -f null mem && mknod null c 1 3 && mknod mem c 240 0 && \
         {{ if [ \"$1\" = in ]; then echo $$ > {cg}/cgroup.procs || echo join-failed; fi; }} && \
         head -c0 null && echo null-opens; head -c1 mem >/dev/null 2>err; cat err",
        dir = nodes.path().display(),
        cg = cg.display()
    );
    let run = |place: &str| {
        let o = std::process::Command::new("/bin/sh")
            .args(["-c", &script, "sh", place])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let inside = run("in");
    assert!(inside.starts_with("null-opens\n"), "{inside}");
    assert!(inside.contains("Operation not permitted"), "{inside}");
    let outside = run("out");
    assert!(outside.starts_with("null-opens\n"), "{outside}");
    assert!(!outside.contains("Operation not permitted"), "{outside}");
}

/// Through the runtime: a container's cgroup2 cgroup carries the device
/// filter (on pure v2 it is the only device control; on a hybrid host it
/// backs the v1 devices controller), one program, replaced on update.
#[test]
fn a_containers_cgroup2_cgroup_carries_the_device_filter() {
    use std::os::fd::AsRawFd;
    let Some(v2_root) = testsupport::cgroup2_root() else {
        eprintln!("no cgroup2 hierarchy here: nothing to check");
        return;
    };
    let rt = Runtime::berth();
    let id = rt.id("devfilter");
    let b = Bundle::new(&["sleep", "30"]);
    assert_eq!(rt.create(&b, &id).code, 0);
    let dir = v2_root.join(format!("berth-test-{id}"));
    let filters = || {
        let cg = fs::File::open(&dir).expect("the container's cgroup2 directory");
        let attached = libcgroups::v2::devices::bpf::prog::query(cg.as_raw_fd()).expect("query");
        for p in &attached {
            // SAFETY: query opened each descriptor for us.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(p.fd) });
        }
        attached.len()
    };
    assert_eq!(filters(), 1, "one device filter on {}", dir.display());
    assert_eq!(rt.run(&["update", "--pids-limit", "50", &id]).code, 0);
    assert_eq!(filters(), 1, "the update replaced the filter");
    rt.run(&["delete", "--force", &id]);
}
