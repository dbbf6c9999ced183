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
