//! Test support: busybox bundles built at test time, and the two runtimes under
//! test (berth-runtime and Debian's runc), each with its own --root, cleaned up
//! on drop even when the test panics.

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;

pub use testsupport::{make_rootfs, unique};

pub struct Bundle {
    pub dir: TempDir,
    pub spec: Value,
}

impl Bundle {
    /// A bundle running `args` without a terminal, from berth-runtime's default
    /// spec (the same container `runc spec` describes), with a writable /tmp.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-bundle")
            .tempdir()
            .unwrap();
        make_rootfs(&dir.path().join("rootfs"));
        let mut spec = berth_runtime::commands::spec::default_spec(false);
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}));
        Bundle { dir, spec }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json with a cgroups path unique to this container, named
    /// `berth-test-…` so the CI's leftover check would find it.
    pub fn write(&self, id: &str) {
        let mut spec = self.spec.clone();
        if spec["linux"]["cgroupsPath"].is_null() {
            spec["linux"]["cgroupsPath"] = json!(format!("/berth-test-{id}"));
        }
        fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_string_pretty(&spec).unwrap(),
        )
        .unwrap();
    }
}

pub struct Runtime {
    pub name: &'static str,
    pub bin: PathBuf,
    pub root: TempDir,
    ids: RefCell<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        Outcome {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Runtime {
    pub fn berth() -> Runtime {
        Runtime::new("berth", PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")))
    }

    pub fn runc() -> Runtime {
        let bin = ["/usr/sbin/runc", "/usr/bin/runc"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("the differential tests need Debian's runc (apt-get install runc)");
        Runtime::new("runc", bin)
    }

    fn new(name: &'static str, bin: PathBuf) -> Runtime {
        let root = tempfile::Builder::new()
            .prefix(&format!("berth-rt-root-{name}"))
            .tempdir()
            .unwrap();
        Runtime {
            name,
            bin,
            root,
            ids: RefCell::new(Vec::new()),
        }
    }

    pub fn both() -> [Runtime; 2] {
        [Runtime::berth(), Runtime::runc()]
    }

    /// An id for a container this runtime will clean up when dropped.
    pub fn id(&self, prefix: &str) -> String {
        let id = unique(&format!("{prefix}-{}", self.name));
        self.ids.borrow_mut().push(id.clone());
        id
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    /// `run` of a bundle in the foreground: output and exit status.
    pub fn run_bundle(&self, bundle: &Bundle, id: &str) -> Outcome {
        bundle.write(id);
        self.cmd()
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    pub fn create(&self, bundle: &Bundle, id: &str) -> Outcome {
        bundle.write(id);
        let mut c = self.cmd();
        c.args(["create", "--bundle"]).arg(bundle.path()).arg(id);
        detached_output(c)
    }

    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.run(&["state", id]);
        if o.code != 0 {
            return None;
        }
        serde_json::from_str(&o.stdout).ok()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)
            .and_then(|s| s["status"].as_str().map(str::to_string))
            .unwrap_or_else(|| "gone".into())
    }

    pub fn wait_status(&self, id: &str, want: &str) -> bool {
        for _ in 0..500 {
            if self.status(id) == want {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .cmd()
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Whatever the runtime forgot must not outlive the test.
            for ctrl in fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = fs::remove_dir(ctrl.path().join(format!("berth-test-{id}")));
            }
            let _ = fs::remove_dir(format!("/sys/fs/cgroup/berth-test-{id}"));
        }
    }
}

/// The cgroup directory of a container in one v1 controller (or in the v2 tree).
pub fn cgroup_dir(controller: &str, id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() {
        v1.join(format!("berth-test-{id}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/berth-test-{id}"))
    }
}

/// Runs a command whose children may outlive it (a created container inherits
/// the runtime's stdio): output goes through files, so waiting ends when the
/// command itself exits, not when the last holder of a pipe does.
pub fn detached_output(mut c: Command) -> Outcome {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = c
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: read(out),
        stderr: read(err),
    }
}
