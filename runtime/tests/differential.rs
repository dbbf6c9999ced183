//! The same bundles through berth-runtime and Debian's runc: every test expects
//! both to show the same observable result, and checks that result.

mod common;

use std::fmt::Debug;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bundle, Outcome, Runtime, cgroup_dir, detached_output};
use serde_json::json;

/// Runs `f` with each runtime and insists on one answer.
fn both<T: PartialEq + Debug>(f: impl Fn(&Runtime) -> T) -> T {
    let [berth, runc] = Runtime::both();
    let a = f(&berth);
    let b = f(&runc);
    assert_eq!(a, b, "berth-runtime (left) and runc (right) differ");
    a
}

fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

/// A user namespace of its own, root mapped to host uid/gid 100000.
fn in_user_namespace(b: &mut Bundle) {
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    for map in ["uidMappings", "gidMappings"] {
        b.spec["linux"][map] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }
}

fn out(o: Outcome) -> (i32, String) {
    (o.code, o.stdout)
}

#[test]
fn run_passes_output_stderr_and_exit_status() {
    let r = both(|rt| {
        let o = rt.run_bundle(&sh("echo out; echo err >&2; exit 7"), &rt.id("out"));
        (o.code, o.stdout, o.stderr)
    });
    assert_eq!(r, (7, "out\n".into(), "err\n".into()));
}

#[test]
fn exit_by_signal_is_128_plus_signal() {
    let r = both(|rt| {
        let b = sh("sleep 30");
        let id = rt.id("sig");
        b.write(&id);
        let mut c = rt.cmd();
        c.args(["run", "--bundle"]).arg(b.path()).arg(&id);
        let mut child = c.stdin(Stdio::null()).spawn().unwrap();
        assert!(rt.wait_status(&id, "running"), "{}", rt.name);
        assert_eq!(rt.run(&["kill", &id, "KILL"]).code, 0);
        child.wait().unwrap().code()
    });
    assert_eq!(r, Some(137));
}

#[test]
fn create_start_kill_delete_lifecycle() {
    let r = both(|rt| {
        let b = sh("sleep 60");
        let id = rt.id("life");
        let pidfile = b.path().join("pid");
        b.write(&id);
        let mut c = rt.cmd();
        c.args(["create", "--bundle"])
            .arg(b.path())
            .arg("--pid-file")
            .arg(&pidfile)
            .arg(&id);
        assert_eq!(detached_output(c).code, 0);
        let mut seen = vec![rt.status(&id)];
        let st = rt.state(&id).unwrap();
        let pid = fs::read_to_string(&pidfile).unwrap();
        assert_eq!(
            st["pid"].as_i64().unwrap().to_string(),
            pid.trim(),
            "{}",
            rt.name
        );
        assert_eq!(st["bundle"].as_str().unwrap(), b.path().to_str().unwrap());
        assert_eq!(st["id"].as_str().unwrap(), id);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        seen.push(rt.status(&id));
        seen.push(format!(
            "start again: {}",
            rt.run(&["start", &id]).code != 0
        ));
        seen.push(format!(
            "delete running: {}",
            rt.run(&["delete", &id]).code != 0
        ));
        assert_eq!(rt.run(&["kill", &id, "KILL"]).code, 0);
        assert!(rt.wait_status(&id, "stopped"), "{}", rt.name);
        seen.push(rt.status(&id));
        assert_eq!(rt.run(&["delete", &id]).code, 0);
        seen.push(rt.status(&id));
        seen
    });
    assert_eq!(
        r,
        [
            "created",
            "running",
            "start again: true",
            "delete running: true",
            "stopped",
            "gone"
        ]
    );
}

#[test]
fn pid_and_uts_namespaces() {
    let r = both(|rt| {
        let mut b = sh("echo $$; hostname");
        b.spec["hostname"] = json!("box");
        out(rt.run_bundle(&b, &rt.id("ns")))
    });
    assert_eq!(r, (0, "1\nbox\n".into()));
    // runc 1.1 ignores domainname; the runtime spec asks for it.
    let rt = Runtime::berth();
    let mut b = sh("cat /proc/sys/kernel/domainname");
    b.spec["domainname"] = json!("example.org");
    assert_eq!(
        out(rt.run_bundle(&b, &rt.id("dom"))),
        (0, "example.org\n".into())
    );
}

#[test]
fn new_network_namespace_has_only_loopback_and_it_is_up() {
    let script = "ls /sys/class/net; cat /sys/class/net/lo/flags";
    let r = both(|rt| out(rt.run_bundle(&sh(script), &rt.id("net"))));
    // IFF_UP | IFF_LOOPBACK
    assert_eq!(r, (0, "lo\n0x9\n".into()));
}

#[test]
fn joins_a_network_namespace_by_path() {
    // A process of our own holds a network namespace, as an engine's would.
    let mut holder = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .unwrap();
    let path = format!("/proc/{}/ns/net", holder.id());
    // Until unshare(2) has run (a fixed pause lost that race under load),
    // the holder is still in our namespace.
    let ours = fs::read_link("/proc/self/ns/net").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fs::read_link(&path).is_ok_and(|l| l == ours) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let want = fs::read_link(&path).unwrap().to_string_lossy().into_owned();
    assert_ne!(
        Path::new(&want),
        ours,
        "unshare --net never left our namespace"
    );
    let r = both(|rt| {
        let mut b = sh("readlink /proc/self/ns/net");
        for ns in b.spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(path);
            }
        }
        out(rt.run_bundle(&b, &rt.id("netpath")))
    });
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(r, (0, format!("{want}\n")));
}

#[test]
fn user_namespace_maps_ids() {
    let r = both(|rt| {
        let mut b = sh("cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; id -u");
        in_user_namespace(&mut b);
        out(rt.run_bundle(&b, &rt.id("userns")))
    });
    assert_eq!(r, (0, " 0 100000 65536\n 0 100000 65536\n0\n".into()));
}

/// Bind sources the container's root (host uid 100000) cannot reach: the
/// runtime opens them before the container enters its user namespace, so
/// they mount all the same, for the init and for an exec.
#[test]
fn user_namespace_binds_sources_its_root_cannot_read() {
    let r = both(|rt| {
        let mut b = sh("stat -c %n /m1/foo.txt /m2/foo.txt; sleep 30");
        in_user_namespace(&mut b);
        let rootfs = b.rootfs();
        let mounts = b.spec["mounts"].as_array_mut().unwrap();
        for n in ["1", "2"] {
            let src = b.dir.path().join(format!("closed-{n}"));
            fs::create_dir_all(src.join("dir")).unwrap();
            fs::write(src.join("dir/foo.txt"), "x").unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
            fs::create_dir(rootfs.join(format!("m{n}"))).unwrap();
            mounts.push(json!({"source": src.join("dir"), "destination": format!("/m{n}"), "options": ["bind"]}));
        }
        let id = rt.id("usernsbind");
        let pidfile = b.path().join("pid");
        b.write(&id);
        let mut c = rt.cmd();
        c.args(["run", "-d", "--pid-file"])
            .arg(&pidfile)
            .arg("--bundle")
            .arg(b.path())
            .arg(&id);
        let o = detached_output(c);
        let exec = rt.run(&[
            "exec",
            &id,
            "stat",
            "-c",
            "%n",
            "/m1/foo.txt",
            "/m2/foo.txt",
        ]);
        rt.run(&["delete", "--force", &id]);
        (o.code, o.stderr, exec.code, exec.stdout)
    });
    assert_eq!(
        r,
        (0, String::new(), 0, "/m1/foo.txt\n/m2/foo.txt\n".into())
    );
}

/// When the container's process fails while it builds the container, the
/// error said is its own (the mount that failed), never a broken pipe.
#[test]
fn a_failed_setup_says_what_failed() {
    let r = both(|rt| {
        let mut b = sh("true");
        b.spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
        let o = rt.run_bundle(&b, &rt.id("badfs"));
        let err = o.stderr.to_lowercase();
        (
            o.code != 0,
            err.contains("no such device") && err.contains("/x"),
            err.contains("pipe"),
        )
    });
    assert_eq!(r, (true, true, false));
}

/// A failure in the last steps before the program (here a soft rlimit
/// above its hard one) is said, not lost to the container's end.
#[test]
fn a_failed_last_step_says_what_failed() {
    let r = both(|rt| {
        let mut b = sh("true");
        b.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}]);
        let o = rt.run_bundle(&b, &rt.id("badrlimit"));
        (o.code != 0, o.stderr.to_lowercase().contains("rlimit"))
    });
    assert_eq!(r, (true, true));
}

/// A read-only /dev: devices and mount points are made in it first, then it
/// turns read-only, as runc does.
#[test]
fn dev_can_be_mounted_read_only() {
    let r = both(|rt| {
        let mut b = sh(
            "grep '^tmpfs /dev ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; ls /dev/null /dev/pts/ptmx; touch /dev/x",
        );
        for m in b.spec["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
        let o = rt.run_bundle(&b, &rt.id("rodev"));
        (o.code, o.stdout, o.stderr.contains("Read-only file system"))
    });
    assert_eq!(r, (1, "ro\n/dev/null\n/dev/pts/ptmx\n".into(), true));
}

#[test]
fn dev_has_the_default_devices_and_links() {
    let r = both(|rt| {
        let b = sh(
            "ls /dev; stat -c '%n %F %a %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
             for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; \
             echo x > /dev/null && head -c 3 /dev/zero | od -An -tx1",
        );
        out(rt.run_bundle(&b, &rt.id("dev")))
    });
    assert_eq!(r.0, 0);
    for want in [
        "/dev/null character special file 666 1:3",
        "/dev/tty character special file 666 5:0",
        "/proc/self/fd\n",
        "pts/ptmx\n",
        " 00 00 00",
    ] {
        assert!(r.1.contains(want), "missing {want:?} in {}", r.1);
    }
}

#[test]
fn devices_from_the_spec_are_created_with_their_mode_and_owner() {
    let r = both(|rt| {
        let mut b = sh("stat -c '%n %F %a %u:%g %t:%T' /dev/mydev");
        b.spec["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3,
            "fileMode": 0o620, "uid": 1000, "gid": 100}]);
        b.spec["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        out(rt.run_bundle(&b, &rt.id("devs")))
    });
    assert_eq!(
        r,
        (
            0,
            "/dev/mydev character special file 620 1000:100 1:3\n".into()
        )
    );
}

#[test]
fn masked_readonly_paths_and_readonly_root() {
    let r = both(|rt| {
        let b = sh(
            "wc -c < /proc/timer_list; wc -c < /proc/keys; ls /sys/firmware | wc -l; \
             (echo 1 > /proc/sys/vm/overcommit_memory) 2>/dev/null; echo sys=$?; \
             touch /newfile 2>/dev/null; echo root=$?; \
             touch /tmp/ok; echo tmp=$?",
        );
        out(rt.run_bundle(&b, &rt.id("mask")))
    });
    assert_eq!(r, (0, "0\n0\n0\nsys=1\nroot=1\ntmp=0\n".into()));
}

#[test]
fn bind_mounts_with_options() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("file"), "from host\n").unwrap();
    let r = both(|rt| {
        let mut b = sh(
            "cat /data/file; touch /data/x 2>/dev/null; echo ro=$?; cat /single; grep ' /data ' /proc/mounts | cut -d' ' -f4 | tr ',' '\\n' | grep -E '^(ro|nosuid|nodev|noexec)$'",
        );
        let mounts = b.spec["mounts"].as_array_mut().unwrap();
        mounts.push(
            json!({"destination": "/data", "type": "bind", "source": host.path(),
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
        );
        mounts.push(
            json!({"destination": "/single", "type": "bind", "source": host.path().join("file"),
            "options": ["bind", "ro"]}),
        );
        out(rt.run_bundle(&b, &rt.id("bind")))
    });
    assert_eq!(
        r,
        (
            0,
            "from host\nro=1\nfrom host\nro\nnosuid\nnodev\nnoexec\n".into()
        )
    );
}

#[test]
fn user_groups_and_umask() {
    let r = both(|rt| {
        let mut b = sh("id; umask; touch /tmp/f; stat -c %a /tmp/f");
        b.spec["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [100], "umask": 63});
        out(rt.run_bundle(&b, &rt.id("user")))
    });
    assert_eq!(
        r,
        (
            0,
            "uid=1000(user) gid=1000(user) groups=100(users)\n0077\n600\n".into()
        )
    );
}

#[test]
fn capability_sets_as_the_spec_says() {
    let r = both(|rt| {
        let mut b = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status");
        let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        b.spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps,
            "permitted": caps, "inheritable": caps, "ambient": ["CAP_KILL"]});
        out(rt.run_bundle(&b, &rt.id("caps")))
    });
    assert_eq!(
        r,
        (
            0,
            "CapInh:\t0000000000000421\nCapPrm:\t0000000000000421\nCapEff:\t0000000000000421\nCapBnd:\t0000000000000421\nCapAmb:\t0000000000000020\n".into()
        )
    );
}

#[test]
fn non_root_user_gets_only_its_capabilities() {
    let r = both(|rt| {
        let mut b = sh("grep -E '^Cap' /proc/self/status; true");
        b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        out(rt.run_bundle(&b, &rt.id("capu")))
    });
    // Like Docker's users know it: without ambient capabilities, a non-root
    // program keeps only the bounding set.
    assert_eq!(
        r,
        (
            0,
            "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000020000420\nCapAmb:\t0000000000000000\n".into()
        )
    );
}

#[test]
fn rlimits_and_oom_score_adj() {
    let r = both(|rt| {
        let mut b = sh("ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj");
        b.spec["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]);
        b.spec["process"]["oomScoreAdj"] = json!(100);
        out(rt.run_bundle(&b, &rt.id("rlim")))
    });
    assert_eq!(r, (0, "512\n1000\n100\n".into()));
}

#[test]
fn sysctls_are_written_in_the_container() {
    let r = both(|rt| {
        let mut b = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax");
        b.spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"});
        out(rt.run_bundle(&b, &rt.id("sysctl")))
    });
    assert_eq!(r, (0, "1\n12345\n".into()));
}

#[test]
fn seccomp_rules_with_errno_and_argument_conditions() {
    let r = both(|rt| {
        let mut b = sh(
            "kill -USR1 $$ 2>&1; echo usr1=$?; kill -0 $$; echo zero=$?; mkdir /tmp/d 2>&1; echo mkdir=$?",
        );
        b.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
        out(rt.run_bundle(&b, &rt.id("seccomp")))
    });
    assert_eq!(r.0, 0);
    assert!(
        r.1.contains("Permission denied\nusr1=1\nzero=0\n"),
        "{}",
        r.1
    );
    assert!(r.1.contains("Operation not permitted\nmkdir=1"), "{}", r.1);
}

fn docker_default_seccomp(caps: &[String]) -> serde_json::Value {
    specgen::seccomp::to_oci(
        specgen::seccomp::DOCKER_DEFAULT,
        &specgen::seccomp::Target {
            go_arch: specgen::seccomp::Target::native_go_arch(),
            caps,
            kernel: specgen::seccomp::running_kernel(),
        },
    )
    .unwrap()
}

#[test]
fn dockers_default_seccomp_profile_loads_and_blocks() {
    let r = both(|rt| {
        let mut results = Vec::new();
        for profile in [false, true] {
            let mut b =
                sh("ls / >/dev/null && echo ls ok; unshare -U true 2>/dev/null; echo unshare=$?");
            if profile {
                let caps: Vec<String> = b.spec["process"]["capabilities"]["bounding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                b.spec["linux"]["seccomp"] = docker_default_seccomp(&caps);
            }
            results.push(out(rt.run_bundle(&b, &rt.id("dockerseccomp"))));
        }
        results
    });
    assert_eq!(
        r[0],
        (0, "ls ok\nunshare=0\n".into()),
        "without a profile unshare works"
    );
    assert_eq!(
        r[1],
        (0, "ls ok\nunshare=1\n".into()),
        "Docker's profile refuses unshare"
    );
}

/// A static program that makes raw syscalls and prints what each returned:
/// busybox cannot call a syscall by number.
const SYSCALL_PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void probe(const char *name, long nr, long arg) {
    errno = 0;
    long r = syscall(nr, arg, 0, 0, 0);
    printf("%s=%ld errno=%d\n", name, r, r < 0 ? errno : 0);
}
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    probe("unknown", 1000, 0);
    probe("unshare", SYS_unshare, 0x10000000);
    probe("getpid", SYS_getpid, 0);
    return 0;
}
"#;

fn with_probe(b: &Bundle) {
    let src = b.path().join("probe.c");
    fs::write(&src, SYSCALL_PROBE).unwrap();
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(b.rootfs().join("probe"))
        .arg(&src)
        .output()
        .expect("gcc (build-essential, from scripts/deps)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}

#[test]
fn syscalls_the_profile_does_not_know_fail_with_enosys() {
    // Docker's profile refuses what it does not allow with EPERM; a syscall
    // newer than any it names must get ENOSYS, which is what makes glibc
    // fall back (clone3 to clone, say). An older one it leaves out keeps
    // the profile's errno, and one it allows works.
    let r = both(|rt| {
        let mut b = Bundle::new(&["/probe"]);
        with_probe(&b);
        let caps: Vec<String> = b.spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        b.spec["linux"]["seccomp"] = docker_default_seccomp(&caps);
        let docker = out(rt.run_bundle(&b, &rt.id("enosys")));
        // A KILL default is no different for syscalls it does not know.
        b.spec["linux"]["seccomp"]["defaultAction"] = json!("SCMP_ACT_KILL");
        let kill = out(rt.run_bundle(&b, &rt.id("enosyskill")));
        (docker, kill)
    });
    let lines = |o: &(i32, String)| o.1.lines().map(String::from).collect::<Vec<_>>();
    assert_eq!(r.0.0, 0, "{:?}", r.0);
    assert_eq!(lines(&r.0)[0], "unknown=-1 errno=38");
    assert_eq!(lines(&r.0)[1], "unshare=-1 errno=1");
    assert!(lines(&r.0)[2].ends_with("errno=0"), "{:?}", r.0);
    assert_eq!(r.1.0, 159, "killed by SIGSYS at unshare: {:?}", r.1);
    assert_eq!(lines(&r.1)[..1], ["unknown=-1 errno=38".to_string()]);
}

#[test]
fn the_root_holds_only_containers_and_is_empty_after_they_are_deleted() {
    let r = both(|rt| {
        let mut b = sh("true");
        // With a seccomp profile, which is compiled and cached somewhere.
        b.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        });
        let id = rt.id("emptyroot");
        let created = rt.create(&b, &id);
        let during: Vec<String> = fs::read_dir(rt.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        rt.run(&["delete", "--force", &id]);
        let after = fs::read_dir(rt.root.path()).unwrap().count();
        (created.code, during == [id], after)
    });
    assert_eq!(r, (0, true, 0));
}

#[test]
fn no_new_privileges_is_set_only_when_asked() {
    let r = both(|rt| {
        let mut v = Vec::new();
        for nnp in [false, true] {
            let mut b = sh("grep NoNewPrivs /proc/self/status");
            b.spec["process"]["noNewPrivileges"] = json!(nnp);
            v.push(out(rt.run_bundle(&b, &rt.id("nnp"))).1);
        }
        v
    });
    assert_eq!(r, ["NoNewPrivs:\t0\n", "NoNewPrivs:\t1\n"]);
}

#[test]
fn memory_limit_is_enforced_by_the_oom_killer() {
    let r = both(|rt| {
        let mut b = sh(
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 100000000 /dev/zero | tr '\\0' a 2>/dev/null); echo survived",
        );
        b.spec["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
        let o = rt.run_bundle(&b, &rt.id("oom"));
        (o.code, o.stdout)
    });
    assert_eq!(
        r,
        (137, "33554432\n".into()),
        "the shell holding 100 MB must be OOM-killed"
    );
}

#[test]
fn cpu_and_pids_limits_reach_the_cgroup() {
    let r = both(|rt| {
        let mut b = sh("sleep 30");
        b.spec["linux"]["resources"]["cpu"] =
            json!({"shares": 512, "quota": 50000, "period": 100000});
        b.spec["linux"]["resources"]["pids"] = json!({"limit": 20});
        let id = rt.id("limits");
        assert_eq!(rt.create(&b, &id).code, 0);
        let read = |c: &str, f: &str| {
            fs::read_to_string(cgroup_dir(c, &id).join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let v = vec![
            read("cpu", "cpu.shares"),
            read("cpu", "cpu.cfs_quota_us"),
            read("pids", "pids.max"),
        ];
        rt.run(&["delete", "--force", &id]);
        v
    });
    assert_eq!(r, ["512", "50000", "20"]);
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let r = both(|rt| {
        let mut b = sh("sleep 30");
        b.spec["linux"]["resources"]["pids"] = json!({"limit": 20});
        let id = rt.id("update");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let mut c = rt.cmd();
        c.args(["update", "--resources", "-", &id])
            .stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"pids":{"limit":33},"memory":{"limit":0}}"#)
            .unwrap();
        assert!(child.wait().unwrap().success(), "{}", rt.name);
        let v = fs::read_to_string(cgroup_dir("pids", &id).join("pids.max")).unwrap();
        rt.run(&["delete", "--force", &id]);
        v.trim().to_string()
    });
    assert_eq!(r, "33");
}

/// runc's "minimal transition rules": a device rule written as `rwa` (the
/// `a` is no access letter; runc ignores it) denying /dev/kmsg after
/// "deny everything", and 30 updates while the container reads /dev/kmsg
/// and writes to /dev/null in a loop. An update that wrote the rules again
/// would deny /dev/null for a moment (sh then complains on stderr); kmsg
/// must stay denied throughout, though the container holds CAP_SYSLOG.
#[test]
fn device_rules_hold_through_updates_without_a_gap() {
    let r = both(|rt| {
        let mut b = sh(
            "while true; do head -c 100 /dev/kmsg 2>/dev/null; echo >>/tmp/n; done >/tmp/out 2>/tmp/err",
        );
        b.spec["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
        ]);
        b.spec["linux"]["devices"] =
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        for set in ["bounding", "effective", "permitted"] {
            b.spec["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYSLOG"));
        }
        let id = rt.id("devupd");
        let created = rt.create(&b, &id);
        assert_eq!(created.code, 0, "{}: {}", rt.name, created.stderr);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let updates: Vec<i32> = (0..30)
            .map(|_| rt.run(&["update", "--pids-limit", "30", &id]).code)
            .collect();
        let read = |f: &str| rt.run(&["exec", &id, "cat", f]).stdout;
        let (out, err) = (read("/tmp/out"), read("/tmp/err"));
        let loops = read("/tmp/n").lines().count();
        rt.run(&["delete", "--force", &id]);
        // With kmsg allowed instead, the same container reads it: the
        // capability is there, so the device rule is what stops it above.
        b.spec["process"]["args"] = json!([
            "sh",
            "-c",
            "head -c 1 /dev/kmsg >/dev/null && echo readable"
        ]);
        b.spec["linux"]["resources"]["devices"][1] =
            json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"});
        let allowed = rt.run_bundle(&b, &rt.id("devok")).stdout;
        (
            updates.iter().all(|c| *c == 0),
            out,
            err,
            loops > 0,
            allowed,
        )
    });
    assert_eq!(
        r,
        (
            true,
            String::new(),
            String::new(),
            true,
            "readable\n".into()
        )
    );
}

/// `events --stats`: one line, `{"type":"stats","id":…,"data":…}`, with the
/// container's figures; refused for a container that does not run.
#[test]
fn events_stats_prints_one_line_of_figures() {
    let r = both(|rt| {
        let mut b = sh("sleep 30");
        b.spec["linux"]["resources"]["memory"] = json!({"limit": 33554432});
        b.spec["linux"]["resources"]["pids"] = json!({"limit": 20});
        let id = rt.id("evstats");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let o = rt.run(&["events", "--stats", &id]);
        let lines: Vec<&str> = o.stdout.lines().collect();
        let prefix = format!(r#"{{"type":"stats","id":"{id}","#);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        rt.run(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        let stopped = rt.run(&["events", "--stats", &id]);
        rt.run(&["delete", "--force", &id]);
        (
            o.code,
            lines.len(),
            lines[0].starts_with(&prefix),
            v["data"]["memory"]["usage"]["limit"].clone(),
            v["data"]["pids"]["limit"].clone(),
            v["data"]["pids"]["current"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            v["data"]["cpu"]["usage"]["total"]
                .as_u64()
                .is_some_and(|n| n > 0),
            stopped.code != 0 && stopped.stderr.contains("is not running"),
        )
    });
    assert_eq!(
        r,
        (0, 1, true, json!(33554432), json!(20), true, true, true)
    );
}

/// `events --interval 100ms`: stats lines keep coming while the container
/// lives, an OOM kill in it is an `oom` line, and the command ends by
/// itself (status 0) once the container is deleted.
#[test]
fn events_follow_a_container_until_it_is_deleted() {
    let r = both(|rt| {
        let mut b = sh("sleep 30");
        b.spec["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
        let id = rt.id("evfollow");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let log = b.path().join("events.log");
        let mut c = rt.cmd();
        c.args(["events", "--interval", "100ms", &id])
            .stdout(fs::File::create(&log).unwrap());
        let mut follower = c.spawn().unwrap();
        let lines = || fs::read_to_string(&log).unwrap_or_default();
        let wait_for = |what: &str| {
            (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                lines().contains(what)
            })
        };
        let stats_seen = wait_for(r#""type":"stats""#);
        // A process that wants more than the limit: the OOM killer ends it.
        rt.run(&[
            "exec",
            "-d",
            &id,
            "sh",
            "-c",
            "x=$(head -c 64m /dev/zero | tr '\\0' a)",
        ]);
        let oom_line = format!(r#"{{"type":"oom","id":"{id}"}}"#);
        let oom_seen = wait_for(&oom_line);
        rt.run(&["delete", "--force", &id]);
        let ended = (0..50).find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            follower.try_wait().unwrap()
        });
        if ended.is_none() {
            let _ = follower.kill();
            let _ = follower.wait();
        }
        (stats_seen, oom_seen, ended.map(|s| s.code()))
    });
    assert_eq!(r, (true, true, Some(Some(0))));
}

/// `--debug` names the stages runc's tests and tools look for, on stderr or
/// in the `--log` file (text or JSON), and nothing of it reaches stdout.
#[test]
fn debug_lines_name_the_setup_stages() {
    let stages = [
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
    ];
    let r = both(|rt| {
        let b = sh("echo hello");
        let mut seen = Vec::new();
        let o = {
            let id = rt.id("dbg");
            b.write(&id);
            let mut c = rt.cmd();
            c.args(["--debug", "run", "--bundle"])
                .arg(b.path())
                .arg(&id);
            Outcome::from(c.stdin(Stdio::null()).output().unwrap())
        };
        seen.push((
            o.code,
            o.stdout.clone(),
            o.stderr.contains("level=debug") && stages.iter().all(|s| o.stderr.contains(s)),
        ));
        for (format, level) in [("text", "level=debug"), ("json", r#""level":"debug""#)] {
            let log = b.path().join(format!("{format}.log"));
            let id = rt.id("dbglog");
            b.write(&id);
            let mut c = rt.cmd();
            c.arg("--log")
                .arg(&log)
                .args(["--log-format", format, "--debug", "run", "--bundle"])
                .arg(b.path())
                .arg(&id);
            let o = Outcome::from(c.stdin(Stdio::null()).output().unwrap());
            let text = fs::read_to_string(&log).unwrap_or_default();
            seen.push((
                o.code,
                o.stdout,
                !o.stderr.contains("debug")
                    && text.contains(level)
                    && stages.iter().all(|s| text.contains(s)),
            ));
        }
        seen
    });
    assert_eq!(r, vec![(0, "hello\n".to_string(), true); 3]);
}

/// Help and version in runc's layout, named after the binary as invoked.
#[test]
fn help_and_version_read_as_runc_s() {
    let r = both(|rt| {
        let name = rt.bin.file_name().unwrap().to_str().unwrap().to_string();
        let norm = |s: String| s.replace(&name, "RT");
        let line = |o: &Outcome, i: usize| norm(o.stdout.lines().nth(i).unwrap_or("").to_string());
        let mut v = Vec::new();
        for flag in ["-h", "--help"] {
            let o = rt.run(&[flag]);
            v.push((o.code, line(&o, 0), line(&o, 1).starts_with("   RT - ")));
        }
        for cmd in [
            "delete", "events", "exec", "kill", "list", "pause", "ps", "resume", "run", "spec",
            "start", "state", "update",
        ] {
            let o = rt.run(&[cmd, "-h"]);
            v.push((
                o.code,
                line(&o, 0),
                line(&o, 1).starts_with(&format!("   RT {cmd}")),
            ));
        }
        let unknown = rt.run(&["foo", "-h"]);
        let version = rt.run(&["-v"]);
        let vl: Vec<String> = version
            .stdout
            .lines()
            .map(|l| norm(l.to_string()))
            .collect();
        (
            v,
            unknown.code != 0 && unknown.stderr.contains("No help topic for 'foo'"),
            version.code,
            vl[0].starts_with("RT version ")
                && vl[0][11..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit()),
            vl[1].starts_with("commit:"),
            vl[2].starts_with("spec: 1."),
        )
    });
    assert!(
        r.0.iter()
            .all(|(code, first, ok)| *code == 0 && first == "NAME:" && *ok),
        "{:?}",
        r.0
    );
    assert_eq!((r.1, r.2, r.3, r.4, r.5), (true, 0, true, true, true));
}

/// The container's process is in its cgroup in every hierarchy (the v1
/// controllers and, on a hybrid host, the unified one), with and without a
/// user namespace: berth's init moves itself there (`cgroups::SelfJoin`)
/// where runc writes cgroup.procs, and the result must be the same.
#[test]
fn the_container_is_in_its_cgroup_in_every_hierarchy() {
    let r = both(|rt| {
        let mut seen = Vec::new();
        for userns in [false, true] {
            let mut b = sh("sleep 30");
            if userns {
                in_user_namespace(&mut b);
            }
            let id = rt.id("cgjoin");
            assert_eq!(rt.create(&b, &id).code, 0);
            assert_eq!(rt.run(&["start", &id]).code, 0, "{}", rt.name);
            let own = format!("/berth-test-{id}");
            let membership = |pid: &str| {
                let mut lines: Vec<String> = fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .unwrap()
                    .lines()
                    .filter(|l| !l.contains("name=systemd"))
                    .map(|l| {
                        let (_, rest) = l.split_once(':').unwrap();
                        let (ctrl, path) = rest.split_once(':').unwrap();
                        format!("{ctrl}:{}", path == own)
                    })
                    .collect();
                lines.sort();
                lines
            };
            let init = rt.state(&id).unwrap()["pid"].as_i64().unwrap().to_string();
            seen.push(membership(&init));
            // An exec'd process joins the same way.
            let pidfile = b.path().join("exec.pid");
            let mut c = rt.cmd();
            c.args(["exec", "-d", "--pid-file"])
                .arg(&pidfile)
                .args([&id, "sleep", "30"]);
            let o = detached_output(c);
            assert_eq!(o.code, 0, "{}: {}", rt.name, o.stderr);
            let exec_pid = fs::read_to_string(&pidfile).unwrap();
            seen.push(membership(exec_pid.trim()));
            rt.run(&["delete", "--force", &id]);
        }
        seen
    });
    for lines in &r {
        assert!(lines.iter().all(|l| l.ends_with(":true")), "{lines:?}");
        assert!(lines.len() >= 2, "{lines:?}");
    }
}

#[test]
fn pause_and_resume() {
    let r = both(|rt| {
        let id = rt.id("pause");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let mut v = vec![rt.run(&["pause", &id]).code.to_string(), rt.status(&id)];
        v.push(rt.run(&["resume", &id]).code.to_string());
        v.push(rt.status(&id));
        rt.run(&["delete", "--force", &id]);
        v
    });
    assert_eq!(r, ["0", "paused", "0", "running"]);
}

#[test]
fn exec_runs_in_the_container() {
    let r = both(|rt| {
        let mut b = sh("sleep 30");
        b.spec["hostname"] = json!("execbox");
        let id = rt.id("exec");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let o = rt.run(&[
            "exec",
            "--env",
            "X=1",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "echo $X; pwd; hostname; id -u; exit 3",
        ]);
        let o2 = rt.run(&["exec", "--user", "1000:1000", &id, "id"]);
        let missing = rt.run(&["exec", &id, "nope"]);
        rt.run(&["delete", "--force", &id]);
        (o.code, o.stdout, o2.stdout, missing.code != 0)
    });
    assert_eq!(
        r,
        (
            3,
            "1\n/tmp\nexecbox\n0\n".into(),
            "uid=1000(user) gid=1000(user)\n".into(),
            true
        )
    );
}

#[test]
fn exec_with_process_file_detached_and_pid_file() {
    let r = both(|rt| {
        let id = rt.id("execd");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let proc_file = b.path().join("process.json");
        fs::write(
            &proc_file,
            json!({"args": ["sleep", "20"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}})
            .to_string(),
        )
        .unwrap();
        let pidf = b.path().join("exec.pid");
        let mut c = rt.cmd();
        c.args(["exec", "--detach", "--process"])
            .arg(&proc_file)
            .arg("--pid-file")
            .arg(&pidf)
            .arg(&id);
        let o = detached_output(c);
        let pid: i32 = fs::read_to_string(&pidf).unwrap().trim().parse().unwrap();
        // runc may return (and write the pid) while its init is still
        // about to execve: give the process a moment to become `sleep`.
        let mut cmdline = String::new();
        for _ in 0..100 {
            cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            if !cmdline.is_empty() && !cmdline.contains("init") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ps = rt.run(&["ps", "--format", "json", &id]);
        let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
        rt.run(&["delete", "--force", &id]);
        (o.code == 0, cmdline, pids.contains(&pid))
    });
    assert_eq!(r, (true, "sleep 20 ".into(), true));
}

#[test]
fn exec_with_a_process_file_without_user_runs_as_root() {
    let r = both(|rt| {
        let id = rt.id("execnouser");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let proc_file = b.path().join("process.json");
        fs::write(
            &proc_file,
            json!({"args": ["id"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
        )
        .unwrap();
        let o = rt
            .cmd()
            .args(["exec", "--process"])
            .arg(&proc_file)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        rt.run(&["delete", "--force", &id]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
    });
    assert_eq!(r.0, Some(0), "{r:?}");
    assert!(r.1.starts_with("uid=0(root) gid=0(root)"), "{r:?}");
}

#[test]
fn version_is_printed_in_runcs_layout() {
    let r = both(|rt| {
        let out: Vec<_> = ["-v", "--version"]
            .iter()
            .map(|flag| rt.run(&[flag]))
            .collect();
        assert_eq!(out[0], out[1], "{}: -v and --version differ", rt.name);
        let lines: Vec<String> = out[0].stdout.lines().map(String::from).collect();
        let first = lines.first().cloned().unwrap_or_default();
        let (name, version) = first.split_once(" version ").unwrap_or_default();
        assert!(
            !name.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()),
            "{}: {first:?}",
            rt.name
        );
        assert!(
            lines.get(1).is_some_and(|l| l.starts_with("commit: ")),
            "{lines:?}"
        );
        // The spec version and the libseccomp both use are the same.
        (
            out[0].code,
            lines.get(2).cloned(),
            lines
                .iter()
                .find(|l| l.starts_with("libseccomp: "))
                .cloned(),
        )
    });
    assert_eq!(r.0, 0);
    assert_eq!(r.1.as_deref(), Some("spec: 1.0.2-dev"));
    assert!(r.2.is_some());
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let r = both(|rt| {
        let id = rt.id("execstop");
        let b = sh("true");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        assert!(rt.wait_status(&id, "stopped"));
        rt.run(&["exec", &id, "true"]).code
    });
    assert_eq!(r, 255, "an exec that fails exits 255");
}

#[test]
fn exec_into_a_paused_container_is_refused_unless_asked() {
    let r = both(|rt| {
        let id = rt.id("execpaused");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        assert_eq!(rt.run(&["pause", &id]).code, 0);
        let o = rt.run(&["exec", &id, "true"]);
        rt.run(&["resume", &id]);
        rt.run(&["delete", "--force", &id]);
        (o.code, o.stderr.contains("use --ignore-paused to override"))
    });
    assert_eq!(r, (255, true));
}

#[test]
fn exec_into_a_sub_cgroup() {
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("no cgroup v1 memory controller here");
        return;
    }
    let r = both(|rt| {
        let id = rt.id("execsub");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let sub = cgroup_dir("memory", &id).join("sub");
        fs::create_dir(&sub).unwrap();
        let o = rt.run(&[
            "exec",
            "--cgroup",
            "memory:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        let memory_line = o
            .stdout
            .lines()
            .find(|l| l.contains(":memory:"))
            .map(|l| l.split(':').next_back().unwrap_or("").to_string());
        let missing = rt
            .run(&["exec", "--cgroup", "memory:nope", &id, "true"])
            .code;
        rt.run(&["delete", "--force", &id]);
        let _ = fs::remove_dir(&sub);
        (o.code, memory_line, missing)
    });
    assert_eq!(r.0, 0);
    assert!(r.1.as_deref().is_some_and(|l| l.ends_with("/sub")), "{r:?}");
    assert_eq!(r.2, 255);
}

#[test]
fn exec_failures_exit_255_and_the_process_status_passes_through() {
    let r = both(|rt| {
        let id = rt.id("execfail");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let missing = rt.run(&["exec", &id, "/nonexistent"]).code;
        let bad_cwd = rt.run(&["exec", "--cwd", "/nonexistent", &id, "true"]).code;
        let status = rt.run(&["exec", &id, "sh", "-c", "exit 7"]).code;
        let no_such = rt.run(&["exec", "no-such-container", "true"]).code;
        rt.run(&["delete", "--force", &id]);
        (missing, bad_cwd, status, no_such)
    });
    assert_eq!(r, (255, 255, 7, 255));
}

#[test]
fn kill_takes_names_and_numbers_and_refuses_unknown_signals() {
    let r = both(|rt| {
        let id = rt.id("kill");
        let b = sh("trap 'exit 42' USR1; while true; do sleep 0.1; done");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        std::thread::sleep(Duration::from_millis(200));
        let bad = rt.run(&["kill", &id, "SIGNOPE"]).code != 0;
        let usr1 = rt.run(&["kill", &id, "USR1"]).code;
        let stopped = rt.wait_status(&id, "stopped");
        let after = rt.run(&["kill", &id, "9"]).code != 0;
        (bad, usr1, stopped, after)
    });
    assert_eq!(r, (true, 0, true, true));
}

#[test]
fn kill_all_reaches_every_process() {
    let r = both(|rt| {
        let id = rt.id("killall");
        let mut b = sh("sleep 30 & sleep 30 & wait");
        // Without a pid namespace, only --all reaches the children.
        b.spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        std::thread::sleep(Duration::from_millis(200));
        let before: Vec<i32> =
            serde_json::from_str(&rt.run(&["ps", "--format", "json", &id]).stdout).unwrap();
        assert_eq!(rt.run(&["kill", "--all", &id, "KILL"]).code, 0);
        std::thread::sleep(Duration::from_millis(200));
        let alive = before
            .iter()
            .filter(|p| {
                Path::new(&format!("/proc/{p}")).exists()
                    && !fs::read_to_string(format!("/proc/{p}/stat"))
                        .unwrap_or_default()
                        .contains(") Z")
            })
            .count();
        rt.run(&["delete", "--force", &id]);
        (before.len(), alive)
    });
    assert_eq!(r, (3, 0));
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let log = tempfile::tempdir().unwrap();
    let r = both(|rt| {
        let b = sh("echo ran");
        let logf = log.path().join(format!("{}.log", rt.name));
        let hook = |name: &str| {
            json!({"path": "/bin/sh", "args": ["sh", "-c",
                format!("read -r s; case \"$s\" in *'\"id\"'*) echo {name} ok;; *) echo {name} nostate;; esac >> {}", logf.display())]})
        };
        let mut b = b;
        b.spec["hooks"] = json!({
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
        // startContainer hooks run inside the container: the log is bind-mounted in.
        b.spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/hooklog", "type": "bind",
            "source": log.path(), "options": ["rbind"]}));
        b.spec["hooks"]["startContainer"] = json!([{"path": "/bin/sh", "args": ["sh", "-c",
            format!("read -r s; echo startContainer ok >> /hooklog/{}.log", rt.name)]}]);
        let o = rt.run_bundle(&b, &rt.id("hooks"));
        let log = fs::read_to_string(&logf).unwrap_or_default();
        if rt.name == "berth" {
            // The spec's order: startContainer before the program runs,
            // poststart after (runc 1.1 lets the two race).
            assert_eq!(
                log,
                "createRuntime ok\ncreateContainer ok\nstartContainer ok\npoststart ok\npoststop ok\n"
            );
        }
        let mut lines: Vec<String> = log.lines().map(str::to_string).collect();
        lines.sort();
        (o.code, o.stdout, lines)
    });
    assert_eq!(
        r,
        (
            0,
            "ran\n".into(),
            [
                "createContainer ok",
                "createRuntime ok",
                "poststart ok",
                "poststop ok",
                "startContainer ok"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

/// startContainer hooks run under the container's seccomp filter: one
/// that makes a syscall the filter kills for dies of it, and the container
/// does not run.
#[test]
fn start_container_hooks_run_under_the_seccomp_filter() {
    let r = both(|rt| {
        let mut b = sh("echo ran");
        b.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        });
        b.spec["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/hook"]}
        ]});
        let o = rt.run_bundle(&b, &rt.id("hookseccomp"));
        let err = o.stderr.to_lowercase();
        (
            o.code != 0,
            o.stdout,
            err.contains("error running") && err.contains("hook"),
            err.contains("bad system call"),
        )
    });
    assert_eq!(r, (true, String::new(), true, true));
}

#[test]
fn failing_create_hook_fails_create_and_leaves_nothing() {
    let r = both(|rt| {
        let mut b = sh("true");
        b.spec["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
        let id = rt.id("badhook");
        let o = rt.create(&b, &id);
        (
            o.code != 0,
            rt.status(&id),
            cgroup_dir("memory", &id).exists(),
        )
    });
    assert_eq!(r, (true, "gone".into(), false));
}

#[test]
fn ps_lists_the_container_processes() {
    let r = both(|rt| {
        let id = rt.id("ps");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let st = rt.state(&id).unwrap();
        let pids: Vec<i64> =
            serde_json::from_str(&rt.run(&["ps", "--format", "json", &id]).stdout).unwrap();
        let table = rt.run(&["ps", &id]).stdout;
        rt.run(&["delete", "--force", &id]);
        (
            pids == vec![st["pid"].as_i64().unwrap()],
            table.lines().count(),
            table.contains("sleep 30"),
        )
    });
    assert_eq!(r, (true, 2, true));
}

#[test]
fn ps_and_kill_of_a_stopped_container_answer_as_runc() {
    let r = both(|rt| {
        let id = rt.id("psstopped");
        let b = sh("true");
        b.write(&id);
        let ran = rt
            .cmd()
            .args(["run", "--keep", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let table = rt.run(&["ps", &id]);
        let json = rt.run(&["ps", "--format", "json", &id]);
        // Signal 0 probes; --all succeeds on an empty cgroup, a plain kill
        // of a stopped container is an error.
        let probe_all = rt.run(&["kill", "--all", &id, "0"]).code;
        let probe = rt.run(&["kill", &id, "0"]).code != 0;
        rt.run(&["delete", &id]);
        (
            ran.status.code(),
            table.code,
            table.stdout.lines().count(),
            json.code,
            json.stdout.trim().to_string(),
            probe_all,
            probe,
        )
    });
    assert_eq!(r, (Some(0), 0, 1, 0, "null".into(), 0, true));
}

#[test]
fn a_frozen_cgroup_is_refused_not_joined() {
    let r = both(|rt| {
        let id = rt.id("frozen");
        let b = sh("true");
        b.write(&id);
        let name = format!("berth-test-{id}");
        let (dir, file, frozen, thawed) = if std::path::Path::new("/sys/fs/cgroup/freezer").is_dir()
        {
            (
                std::path::Path::new("/sys/fs/cgroup/freezer").join(&name),
                "freezer.state",
                "FROZEN",
                "THAWED",
            )
        } else {
            (
                std::path::Path::new("/sys/fs/cgroup").join(&name),
                "cgroup.freeze",
                "1",
                "0",
            )
        };
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(file), frozen).unwrap();
        // Bounded: a runtime that joins the frozen cgroup never returns.
        let o = Command::new("timeout")
            .arg("20")
            .arg(&rt.bin)
            .arg("--root")
            .arg(rt.root.path())
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        fs::write(dir.join(file), thawed).unwrap();
        rt.run(&["delete", "--force", &id]);
        let _ = fs::remove_dir(&dir);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).contains("container's cgroup unexpectedly frozen"),
        )
    });
    assert_eq!(r, (Some(1), true));
}

#[test]
fn delete_force_removes_sub_cgroups_too() {
    let r = both(|rt| {
        let id = rt.id("subcg");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        // Sub-cgroups as a container with its cgroup delegated makes them,
        // one with a process of the container in it.
        let subs: Vec<std::path::PathBuf> = ["memory", "pids", "freezer"]
            .iter()
            .map(|c| cgroup_dir(c, &id).join("sub/deeper"))
            .collect();
        for d in &subs {
            fs::create_dir_all(d).unwrap();
        }
        let pid = rt.state(&id).unwrap()["pid"].as_i64().unwrap();
        fs::write(subs[0].join("cgroup.procs"), pid.to_string()).unwrap();
        let deleted = rt.run(&["delete", "--force", &id]).code;
        let left: Vec<bool> = subs
            .iter()
            .map(|d| d.parent().unwrap().parent().unwrap().exists())
            .collect();
        (deleted, rt.status(&id), left)
    });
    assert_eq!(r, (0, "gone".into(), vec![false, false, false]));
}

#[test]
fn unified_resources_are_refused_without_cgroup_v2() {
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("a pure cgroup v2 host: unified resources are allowed here");
        return;
    }
    let r = both(|rt| {
        let mut b = sh("true");
        b.spec["linux"]["resources"]["unified"] = json!({"pids.max": "10"});
        let id = rt.id("unified");
        let o = rt.run_bundle(&b, &id);
        (
            o.code != 0,
            o.stderr.contains("cannot use unified on cgroup v1"),
            cgroup_dir("memory", &id).exists(),
        )
    });
    assert_eq!(r, (true, true, false));
}

#[test]
fn cfs_period_and_quota_change_together_under_a_limited_parent() {
    if !std::path::Path::new("/sys/fs/cgroup/cpu").is_dir() {
        eprintln!("no cgroup v1 cpu controller here");
        return;
    }
    let r = both(|rt| {
        let id = rt.id("cfs");
        let pod = format!("berth-test-pod-{id}");
        // A pod cgroup limited to half a CPU.
        let pod_cpu = std::path::Path::new("/sys/fs/cgroup/cpu").join(&pod);
        fs::create_dir(&pod_cpu).unwrap();
        fs::write(pod_cpu.join("cpu.cfs_quota_us"), "50000").unwrap();
        let mut b = sh("sleep 30");
        b.spec["linux"]["cgroupsPath"] = json!(format!("/{pod}/{id}"));
        b.spec["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
        let created = rt.create(&b, &id).code;
        // Still half a CPU, over a shorter period: the period alone first
        // would be a whole CPU for a moment, which the pod refuses.
        let updated = rt
            .run(&[
                "update",
                "--cpu-period",
                "50000",
                "--cpu-quota",
                "25000",
                &id,
            ])
            .code;
        let ctr = pod_cpu.join(&id);
        let read = |f: &str| {
            fs::read_to_string(ctr.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let now = (read("cpu.cfs_period_us"), read("cpu.cfs_quota_us"));
        rt.run(&["delete", "--force", &id]);
        for c in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = fs::remove_dir(c.path().join(&pod).join(&id));
            let _ = fs::remove_dir(c.path().join(&pod));
        }
        (created, updated, now)
    });
    assert_eq!(r, (0, 0, ("50000".into(), "25000".into())));
}

#[test]
fn list_shows_containers_in_table_and_json() {
    let r = both(|rt| {
        let id = rt.id("list");
        let b = sh("sleep 30");
        assert_eq!(rt.create(&b, &id).code, 0);
        let json: serde_json::Value =
            serde_json::from_str(&rt.run(&["list", "--format", "json"]).stdout).unwrap();
        let table = rt.run(&["list"]).stdout;
        let quiet = rt.run(&["list", "-q"]).stdout;
        rt.run(&["delete", "--force", &id]);
        (
            json[0]["id"] == json!(id) && json[0]["status"] == json!("created"),
            table.starts_with("ID") && table.contains(&id) && table.contains("created"),
            quiet == format!("{id}\n"),
        )
    });
    assert_eq!(r, (true, true, true));
}

#[test]
fn delete_force_of_a_missing_container_succeeds_quietly() {
    let r = both(|rt| {
        let o = rt.run(&["delete", "--force", "never-existed"]);
        let plain = rt.run(&["delete", "never-existed"]);
        (o.code, o.stderr.is_empty(), plain.code != 0)
    });
    assert_eq!(r, (0, true, true));
}

#[test]
fn no_pivot_runs_the_container() {
    let r = both(|rt| {
        let b = sh("cat /proc/self/mountinfo | wc -l >/dev/null; ls /bin/busybox");
        let id = rt.id("nopivot");
        b.write(&id);
        let o: Outcome = rt
            .cmd()
            .args(["run", "--no-pivot", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .output()
            .unwrap()
            .into();
        out(o)
    });
    assert_eq!(r, (0, "/bin/busybox\n".into()));
}

#[test]
fn preserved_fds_reach_the_container() {
    let r = both(|rt| {
        let b = sh("cat <&3");
        let id = rt.id("fds");
        b.write(&id);
        let file = b.path().join("payload");
        fs::write(&file, "through fd 3\n").unwrap();
        let f = fs::File::open(&file).unwrap();
        let raw = f.as_raw_fd();
        let mut c = rt.cmd();
        c.args(["run", "--preserve-fds", "1", "--bundle"])
            .arg(b.path())
            .arg(&id);
        // SAFETY (test): dup2 in the child before exec, on descriptors we own.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(move || {
                if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        out(c.output().unwrap().into())
    });
    assert_eq!(r, (0, "through fd 3\n".into()));
}

#[test]
fn no_host_descriptor_leaks_and_cwd_through_a_leaked_fd_is_refused() {
    // CVE-2024-21626: a directory descriptor of the host, left open by the caller
    // (not close-on-exec), must neither be visible nor usable as the cwd.
    let hostdir = fs::File::open("/etc").unwrap();
    let raw = hostdir.as_raw_fd();
    let run = |rt: &Runtime, b: &Bundle, id: &str| -> Outcome {
        b.write(id);
        let mut c = rt.cmd();
        c.args(["run", "--bundle"]).arg(b.path()).arg(id);
        // SAFETY (test): dup2 in the child before exec, on descriptors we own.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(move || {
                if libc::dup2(raw, 7) < 0 || libc::fcntl(7, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.output().unwrap().into()
    };
    let r = both(|rt| {
        let fds = run(rt, &sh("ls /proc/self/fd"), &rt.id("leak"));
        let mut evil = sh("pwd; ls ../../../ | head -3");
        evil.spec["process"]["cwd"] = json!("/proc/self/fd/7");
        let escaped = run(rt, &evil, &rt.id("cve"));
        (
            fds.stdout,
            escaped.code != 0 || !escaped.stdout.contains("passwd"),
        )
    });
    assert_eq!(r, ("0\n1\n2\n3\n".into(), true));
}

/// A console socket like a shim's: accepts one connection and receives the
/// pty master over SCM_RIGHTS.
fn console_socket(path: &Path) -> std::thread::JoinHandle<OwnedFd> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY (test): the kernel just gave us this descriptor.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no fd received");
    })
}

fn read_until(master: &OwnedFd, want: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    for _ in 0..100 {
        let mut p = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut p, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) > 0 {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        if got.contains(want) {
            break;
        }
    }
    got
}

/// Creates `id` from `b` with a console socket like a shim's and starts
/// it: the terminal's master side.
fn start_with_terminal(rt: &Runtime, b: &Bundle, id: &str) -> OwnedFd {
    b.write(id);
    let sock = b.path().join("console.sock");
    let recv = console_socket(&sock);
    let mut c = rt.cmd();
    c.args(["create", "--bundle"])
        .arg(b.path())
        .arg("--console-socket")
        .arg(&sock)
        .arg(id);
    let o = detached_output(c);
    assert_eq!(o.code, 0, "{}: {}", rt.name, o.stderr);
    let master = recv.join().unwrap();
    assert_eq!(rt.run(&["start", id]).code, 0);
    master
}

#[test]
fn terminal_through_a_console_socket() {
    let r = both(|rt| {
        let mut b = sh("stty size; tty; read line; echo got:$line; sleep 1");
        b.spec["process"]["terminal"] = json!(true);
        b.spec["process"]["consoleSize"] = json!({"height": 33, "width": 77});
        let id = rt.id("tty");
        let master = start_with_terminal(rt, &b, &id);
        let first = read_until(&master, "/dev/pts/0");
        nix::unistd::write(&master, b"hello\n").unwrap();
        let second = read_until(&master, "got:hello");
        rt.run(&["delete", "--force", &id]);
        (
            first.contains("33 77") && first.contains("/dev/pts/0"),
            second.contains("got:hello"),
        )
    });
    assert_eq!(r, (true, true));
}

#[test]
fn the_terminal_and_pipes_belong_to_the_containers_user() {
    let r = both(|rt| {
        let mut b = sh("stat -c tty=%u:%g $(tty); sleep 1");
        b.spec["process"]["terminal"] = json!(true);
        b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let id = rt.id("ttyowner");
        let master = start_with_terminal(rt, &b, &id);
        let tty = read_until(&master, "tty=");
        rt.run(&["delete", "--force", &id]);
        // And without a terminal: the stdout pipe.
        let mut b = sh("stat -L -c pipe=%u /proc/self/fd/1");
        b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let pipe = out(rt.run_bundle(&b, &rt.id("pipeowner")));
        let tty = tty
            .split_whitespace()
            .find(|w| w.starts_with("tty="))
            .unwrap_or_default()
            .to_string();
        (tty, pipe)
    });
    assert_eq!(r.0, "tty=1000:5");
    assert_eq!(r.1, (0, "pipe=1000\n".into()));
}

#[test]
fn bad_input_fails_with_a_message_and_leaves_nothing() {
    let [berth, runc] = Runtime::both();
    let check = |rt: &Runtime, id: &str, o: Outcome, what: &str, strict: Option<&str>| {
        assert_ne!(o.code, 0, "{}: {what} was accepted", rt.name);
        if rt.name == "berth" {
            let msg = o.stderr.trim();
            assert_eq!(
                msg.lines().count(),
                1,
                "{what}: one line expected, got {msg:?}"
            );
            if let Some(s) = strict {
                assert!(msg.contains(s), "{what}: {msg:?} should mention {s:?}");
            }
        }
        assert!(
            !rt.root.path().join(id).exists(),
            "{}: {what} left a state dir",
            rt.name
        );
        assert!(
            !cgroup_dir("memory", id).exists(),
            "{}: {what} left a cgroup",
            rt.name
        );
    };
    for rt in [&berth, &runc] {
        let b = sh("true");
        let id = rt.id("bad");
        let run_create = |b: &Bundle, id: &str| -> Outcome {
            let mut c = rt.cmd();
            c.args(["create", "--bundle"]).arg(b.path()).arg(id);
            detached_output(c)
        };
        // no config.json
        check(
            rt,
            &id,
            run_create(&b, &id),
            "missing config.json",
            Some("config.json"),
        );
        // malformed JSON
        fs::write(b.path().join("config.json"), "{\"ociVersion\": ").unwrap();
        check(
            rt,
            &id,
            run_create(&b, &id),
            "malformed config.json",
            Some("config.json"),
        );
        // a field of the wrong type
        let mut bad = b.spec.clone();
        bad["process"]["user"]["uid"] = json!("root");
        fs::write(b.path().join("config.json"), bad.to_string()).unwrap();
        check(
            rt,
            &id,
            run_create(&b, &id),
            "uid as a string",
            Some("process.user.uid"),
        );
        // a bundle without rootfs
        let empty = Bundle::new(&["true"]);
        fs::remove_dir_all(empty.rootfs()).unwrap();
        empty.write(&id);
        check(
            rt,
            &id,
            run_create(&empty, &id),
            "missing rootfs",
            Some("rootfs"),
        );
        // ids that name paths
        for bad_id in ["a/b", "..", "../escape"] {
            b.write(&id);
            let mut c = rt.cmd();
            c.args(["create", "--bundle"]).arg(b.path()).arg(bad_id);
            let o = detached_output(c);
            assert_ne!(o.code, 0, "{}: id {bad_id} accepted", rt.name);
            if rt.name == "berth" {
                assert!(o.stderr.contains("invalid container id"), "{}", o.stderr);
            }
        }
        // a duplicate id: the first container must survive the second create
        b.write(&id);
        assert_eq!(run_create(&b, &id).code, 0, "{}", rt.name);
        let dup = run_create(&b, &id);
        assert_ne!(dup.code, 0, "{}: duplicate id accepted", rt.name);
        if rt.name == "berth" {
            assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
        }
        assert_eq!(
            rt.status(&id),
            "created",
            "{}: the first container was harmed",
            rt.name
        );
        // a signal that does not exist
        let k = rt.run(&["kill", &id, "SIGNOPE"]);
        assert_ne!(k.code, 0);
        if rt.name == "berth" {
            assert!(k.stderr.contains("unknown signal"), "{}", k.stderr);
        }
        rt.run(&["delete", "--force", &id]);
    }
}

#[test]
fn missing_program_is_reported_at_create_as_runc_words_it() {
    // The Docker CLI maps these texts to exit status 127 / 126.
    let [berth, runc] = Runtime::both();
    for rt in [&berth, &runc] {
        let id = rt.id("noprog");
        let o = rt.create(&Bundle::new(&["no-such-program"]), &id);
        assert_ne!(o.code, 0);
        let id2 = rt.id("noprog2");
        let o2 = rt.create(&Bundle::new(&["/no/such/path"]), &id2);
        assert_ne!(o2.code, 0);
        if rt.name == "berth" {
            assert!(
                o.stderr.contains("executable file not found in $PATH"),
                "{}",
                o.stderr
            );
            assert!(
                o2.stderr.contains("no such file or directory"),
                "{}",
                o2.stderr
            );
        }
    }
}

/// The container's process held at the entry of its execve (ptrace, every
/// thread of it: runc's init is a Go program and execs from any thread);
/// the threads traced, to let go of, or None if it exited first.
fn hold_at_exec(pid: nix::unistd::Pid) -> Option<Vec<nix::unistd::Pid>> {
    use nix::sys::ptrace;
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::Pid;
    let tids: Vec<Pid> = fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .collect();
    for &t in &tids {
        ptrace::seize(t, ptrace::Options::PTRACE_O_TRACESYSGOOD).ok()?;
        ptrace::interrupt(t).ok()?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        for &t in &tids {
            let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
            match waitpid(t, Some(flags)) {
                Ok(WaitStatus::PtraceSyscall(_)) => {
                    let nr = ptrace::getregs(t).ok()?.orig_rax as i64;
                    if nr == libc::SYS_execve || nr == libc::SYS_execveat {
                        return Some(tids);
                    }
                    let _ = ptrace::syscall(t, None);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => {}
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) if t == pid => return None,
                Ok(_) => {
                    let _ = ptrace::syscall(t, None);
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// `start` returns once the container's process has become its program (its
/// end of the exec fifo closes on exec), not when it is let go: a caller
/// that reads the process or its output right after `start` finds the
/// program. Proven by holding the process at its execve: `start` must wait.
/// (berth-runtime alone: runc's start reads the fifo to its end too, but
/// Debian's runc 1.1.5 returned here while its init was held.)
#[test]
fn start_returns_once_the_program_is_executed() {
    let rt = Runtime::berth();
    let (waited_for_exec, code, comm) = {
        let b = Bundle::new(&["sleep", "30"]);
        let id = rt.id("execd");
        assert_eq!(rt.create(&b, &id).code, 0);
        let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let mut start = rt.cmd();
        start.args(["start", &id]).stdin(Stdio::null());
        let mut start = start.spawn().unwrap();
        let held = hold_at_exec(pid).expect("no execve seen");
        std::thread::sleep(Duration::from_millis(300));
        let waited_for_exec = start.try_wait().unwrap().is_none();
        // Let go at its syscall entry, the execve goes on.
        for t in held {
            let _ = nix::sys::ptrace::detach(t, None);
        }
        let status = start.wait().unwrap();
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        (waited_for_exec, status.code(), comm.trim().to_string())
    };
    assert!(
        waited_for_exec,
        "start returned before the program was executed"
    );
    assert_eq!((code, comm.as_str()), (Some(0), "sleep"));
}
