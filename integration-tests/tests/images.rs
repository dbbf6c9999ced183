//! Images in berth-lifecycled, driven by berth-ctr with no engine running:
//! import, run from an image, push to and pull from a real registry,
//! snapshots and garbage collection.

use std::process::{Command, Output};

use integration_tests::lifecycled::Lifecycled;
use integration_tests::registry::Registry;

struct Ctr<'a> {
    l: &'a Lifecycled,
}

impl Ctr<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(integration_tests::bin("berth-ctr"))
            .arg("--address")
            .arg(&self.l.address)
            .args(args)
            .output()
            .expect("running berth-ctr")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth-ctr {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.l.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn ctr_imports_runs_pushes_and_pulls_images() {
    let l = Lifecycled::start(&[]);
    let ctr = Ctr { l: &l };
    let tmp = tempfile::tempdir().unwrap();
    let tar = integration_tests::busybox_tar(tmp.path());
    assert_eq!(
        ctr.ok(&[
            "images",
            "import",
            "--rootfs",
            "local/bb:1",
            tar.to_str().unwrap()
        ]),
        "local/bb:1"
    );
    assert_eq!(ctr.ok(&["images", "ls", "-q"]), "local/bb:1");

    // A container from the image: its snapshot is its writable rootfs.
    let out = ctr.ok(&[
        "run",
        "--rm",
        "local/bb:1",
        "c1",
        "sh",
        "-c",
        "echo written > /new; cat /new; ls /bin/busybox",
    ]);
    assert_eq!(out, "written\n/bin/busybox");
    // The next container starts from the image again, not from c1's changes.
    let out = ctr.run(&["run", "--rm", "local/bb:1", "c2", "cat", "/new"]);
    assert_eq!(out.status.code(), Some(1));
    let snaps = ctr.ok(&["snapshots", "ls"]);
    assert_eq!(
        snaps.lines().filter(|l| l.contains("committed")).count(),
        1,
        "{snaps}"
    );
    assert!(
        !snaps.contains("active"),
        "the containers' snapshots went with them: {snaps}"
    );

    // Push, remove, pull back: the same manifest digest.
    let reg = Registry::start();
    let remote = format!("{}/berth/bb:1", reg.host);
    let pushed = ctr.ok(&[
        "images",
        "push",
        "--insecure",
        &reg.host,
        "local/bb:1",
        &remote,
    ]);
    let digest = pushed.rsplit(' ').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    let local = ctr.ok(&["images", "inspect", "local/bb:1"]);
    let local: serde_json::Value = serde_json::from_str(&local).unwrap();
    assert_eq!(local["target"]["digest"], digest.as_str());
    ctr.ok(&["images", "rm", "local/bb:1"]);
    let gc = ctr.ok(&["content", "gc"]);
    assert!(gc.starts_with("removed 3 blobs"), "{gc}");
    assert_eq!(
        ctr.ok(&["content", "ls"]).lines().count(),
        1,
        "only the header is left"
    );
    let pulled = ctr.ok(&["images", "pull", "--insecure", &reg.host, &remote]);
    assert!(
        pulled.ends_with(&format!("{remote}: pulled {digest}")),
        "{pulled}"
    );
    assert!(pulled.contains(": complete"), "{pulled}");
    assert_eq!(
        ctr.ok(&["run", "--rm", &remote, "c3", "echo", "pulled"]),
        "pulled"
    );

    // Export and import again, as another store would.
    let archive = tmp.path().join("out.tar");
    ctr.ok(&[
        "images",
        "export",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        &remote,
    ]);
    ctr.ok(&["images", "rm", &remote]);
    assert_eq!(
        ctr.ok(&["images", "import", archive.to_str().unwrap()]),
        remote
    );

    // Bad input: a clear error, and nothing changes.
    let before = ctr.ok(&["images", "ls", "-q"]);
    for bad in [
        "no-registry-host",
        &format!("{}/berth/bb", reg.host),
        &format!("{}/berth/missing:1", reg.host),
    ] {
        let out = ctr.run(&["images", "pull", "--insecure", &reg.host, bad]);
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("berth-ctr: berth-lifecycled:"), "{err}");
    }
    let out = ctr.run(&["images", "import", "/dev/null"]);
    assert!(!out.status.success());
    assert_eq!(ctr.ok(&["images", "ls", "-q"]), before);
}
