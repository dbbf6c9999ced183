//! Archives made and read by other tools (Debian's umoci and skopeo), and
//! layer sharing measured on disk. The umoci/skopeo tests are skipped, with
//! a message, where those tools are not installed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use imagestore::{ArchiveFormat, ImportOptions, Mount, Store};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools.iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        eprintln!("skipping: {missing:?} not installed (Debian packages umoci, skopeo)");
        return false;
    }
    true
}

/// A tar of a directory, as `tar -C dir -cf - .` makes it.
fn tar_dir(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Mounts an image's rootfs and returns a guard that unmounts it.
struct Rootfs(std::path::PathBuf);

impl Rootfs {
    fn new(s: &Store, name: &str, key: &str, at: &Path) -> Rootfs {
        let top = s.unpack(NS, name).unwrap();
        let mounts: Vec<Mount> = s.prepare(NS, key, top.as_ref()).unwrap();
        fs::create_dir_all(at).unwrap();
        imagestore::mount_all(&mounts, at).unwrap();
        Rootfs(at.to_path_buf())
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = imagestore::unmount(&self.0);
    }
}

/// An OCI layout made by umoci from a directory with a deletion and a
/// directory replaced in the second layer.
fn umoci_layout(work: &Path) -> std::path::PathBuf {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let image = |tag: &str| format!("{}:{tag}", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image("base")]));
    run(Command::new("umoci")
        .args(["unpack", "--image", &image("base")])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("etc/conf.d")).unwrap();
    fs::write(rootfs.join("etc/hello"), "hello\n").unwrap();
    fs::write(rootfs.join("etc/doomed"), "bye\n").unwrap();
    fs::write(rootfs.join("etc/conf.d/a"), "a\n").unwrap();
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::write(rootfs.join("bin/tool"), noise(200_000, 5)).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image("v1")])
        .arg(&bundle));
    // The second layer: from an unpack of v1, so it holds only the changes.
    let bundle2 = work.join("bundle2");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image("v1")])
        .arg(&bundle2));
    let rootfs = bundle2.join("rootfs");
    fs::remove_file(rootfs.join("etc/doomed")).unwrap();
    fs::remove_dir_all(rootfs.join("etc/conf.d")).unwrap();
    fs::write(rootfs.join("etc/conf.d"), "now a file\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image("v2")])
        .arg(&bundle2));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image("v2"),
        "--config.cmd",
        "/bin/tool",
    ]));
    layout
}

#[test]
fn an_oci_layout_made_by_umoci_imports_and_unpacks_to_the_right_tree() {
    if !tools_present(&["umoci"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_layout(work.path());
    let (d, s) = store();
    let opts = ImportOptions {
        base_name: Some("example.com/umoci/app".into()),
        ..Default::default()
    };
    let recs = s.import(NS, &tar_dir(&layout)[..], &opts).unwrap();
    let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "example.com/umoci/app:base",
            "example.com/umoci/app:v1",
            "example.com/umoci/app:v2"
        ]
    );
    let r = s.resolve_image(NS, "example.com/umoci/app:v2").unwrap();
    assert_eq!(r.layers.len(), 2);
    let cmd = r.config.config().as_ref().unwrap().cmd().clone().unwrap();
    assert_eq!(cmd, vec!["/bin/tool".to_string()]);

    let at = d.path().join("rootfs");
    let _m = Rootfs::new(&s, "example.com/umoci/app:v2", "c", &at);
    assert_eq!(fs::read_to_string(at.join("etc/hello")).unwrap(), "hello\n");
    assert!(
        !at.join("etc/doomed").exists(),
        "deleted in the upper layer"
    );
    assert_eq!(
        fs::read_to_string(at.join("etc/conf.d")).unwrap(),
        "now a file\n"
    );
    assert_eq!(fs::read(at.join("bin/tool")).unwrap(), noise(200_000, 5));
}

#[test]
fn a_docker_archive_made_by_skopeo_imports_like_the_oci_layout_it_came_from() {
    if !tools_present(&["umoci", "skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_layout(work.path());
    let archive = work.path().join("docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:v2", layout.display()),
        &format!(
            "docker-archive:{}:example.com/skopeo/app:v2",
            archive.display()
        ),
    ]));
    let (d, s) = store();
    let recs = s
        .import(
            NS,
            fs::File::open(&archive).unwrap(),
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].name, "example.com/skopeo/app:v2");
    let from_docker = s.resolve_image(NS, "example.com/skopeo/app:v2").unwrap();

    let (_d2, s2) = store();
    let opts = ImportOptions {
        base_name: Some("example.com/umoci/app".into()),
        ..Default::default()
    };
    s2.import(NS, &tar_dir(&layout)[..], &opts).unwrap();
    let from_oci = s2.resolve_image(NS, "example.com/umoci/app:v2").unwrap();
    assert_eq!(from_docker.diff_ids, from_oci.diff_ids);
    assert_eq!(from_docker.chain_ids, from_oci.chain_ids);

    let at = d.path().join("rootfs");
    let _m = Rootfs::new(&s, "example.com/skopeo/app:v2", "c", &at);
    assert!(!at.join("etc/doomed").exists());
    assert_eq!(
        fs::read_to_string(at.join("etc/conf.d")).unwrap(),
        "now a file\n"
    );
}

#[test]
fn skopeo_reads_both_archive_formats_berth_exports() {
    if !tools_present(&["skopeo"]) {
        return;
    }
    let (_d, s) = store();
    let img = image(
        &[layer(&[("a", b"1")]), layer(&[("b", &noise(10_000, 1))])],
        &host_arch(),
    );
    let name = "example.com/export/app:1";
    s.import(
        NS,
        &oci_archive(&[(name, &img)])[..],
        &ImportOptions::default(),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    for (format, transport) in [
        (ArchiveFormat::Oci, "oci-archive"),
        (ArchiveFormat::Docker, "docker-archive"),
    ] {
        let path = work.path().join(format!("{transport}.tar"));
        let f = fs::File::create(&path).unwrap();
        s.export(NS, &[name.to_string()], f, format).unwrap();
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("{transport}:{}", path.display()),
        ]));
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            m["layers"].as_array().unwrap().len(),
            2,
            "{transport}: {raw}"
        );
        if format == ArchiveFormat::Oci {
            assert_eq!(
                sha256(raw.trim_end().as_bytes()),
                img.digest(),
                "byte for byte"
            );
        }
        // And a full copy out of it succeeds (every blob verified).
        let out = work.path().join(format!("{transport}-copy"));
        run(Command::new("skopeo").args([
            "copy",
            &format!("{transport}:{}", path.display()),
            &format!("oci:{}:x", out.display()),
        ]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_sees_what_berth_pushed_with_the_same_digest() {
    if !tools_present(&["skopeo"]) {
        return;
    }
    let reg = Registry::start(Mode::Plain);
    let (_d, s) = store();
    let img = image(&[layer(&[("x", b"pushed")])], &host_arch());
    let name = reg.reference("skopeo/check:1");
    s.import(
        NS,
        &oci_archive(&[(&name, &img)])[..],
        &ImportOptions::default(),
    )
    .unwrap();
    let (tx, _rx) = progress();
    s.push(NS, &name, &name, None, &reg.options(), tx)
        .await
        .unwrap();
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{name}"),
    ]));
    assert_eq!(out.trim(), img.digest());
}

#[test]
fn two_images_sharing_layers_store_them_once_on_disk() {
    let (_d, s) = store();
    let base = layer(&[("usr/lib/big", &noise(4 << 20, 11))]);
    let mid = layer(&[("usr/share/mid", &noise(1 << 20, 12))]);
    let a = image(
        &[base.clone(), mid.clone(), layer(&[("a", b"a")])],
        &host_arch(),
    );
    let b = image(&[base, mid, layer(&[("b", b"b")])], &host_arch());
    let archive = oci_archive(&[("example.com/share:a", &a), ("example.com/share:b", &b)]);
    s.import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    s.unpack(NS, "example.com/share:a").unwrap();
    s.unpack(NS, "example.com/share:b").unwrap();

    let blobs_du = du(&s.root().join("content/blobs"));
    let snaps_du = du(&s.root().join("snapshots"));
    let payload = (5u64 << 20) as f64;
    // Stored twice would be over 10 MiB each.
    assert!(
        (blobs_du as f64) < payload * 1.3,
        "blobs use {blobs_du} bytes"
    );
    assert!(
        (snaps_du as f64) < payload * 1.3,
        "snapshots use {snaps_du} bytes"
    );
    let committed = s.list_snapshots().len();
    assert_eq!(committed, 4, "base, mid, and one top each");
}

/// Adds to an OCI layout an index `multi` listing the manifest of `tag`
/// for this machine's platform.
fn add_index(layout: &Path, tag: &str) {
    let mut idx: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let sub = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
            "platform": {"os": "linux", "architecture": host_arch()},
        }],
    }))
    .unwrap();
    let d = sha256(&sub);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), &sub).unwrap();
    idx["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "size": sub.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    fs::write(layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_manifests_and_manifest_lists_pushed_by_skopeo_pull_and_push_back() {
    if !tools_present(&["umoci", "skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_layout(work.path());
    add_index(&layout, "v2");
    let reg = Registry::start(Mode::Plain);
    let single = reg.reference("docker/app:v2s2");
    let list = reg.reference("docker/app:list");
    for (src, dest, all) in [("v2", &single, false), ("multi", &list, true)] {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false", "--format", "v2s2"]);
        if all {
            cmd.arg("--all");
        }
        run(cmd
            .arg(format!("oci:{}:{src}", layout.display()))
            .arg(format!("docker://{dest}")));
    }
    let (d, s) = store();
    for (name, mt) in [
        (&single, imagestore::media_types::DOCKER_MANIFEST),
        (&list, imagestore::media_types::DOCKER_MANIFEST_LIST),
    ] {
        let (tx, _rx) = progress();
        let rec = s.pull(NS, name, None, &reg.options(), tx).await.unwrap();
        assert_eq!(rec.target.media_type().to_string(), mt);
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ]));
        assert_eq!(
            rec.target.digest().to_string(),
            sha256(raw.trim_end().as_bytes())
        );
        let r = s.resolve_image(NS, name).unwrap();
        assert_eq!(
            r.layers[0].media_type().to_string(),
            imagestore::media_types::DOCKER_LAYER_GZIP
        );
    }
    let at = d.path().join("rootfs");
    {
        let _m = Rootfs::new(&s, &list, "c", &at);
        assert_eq!(
            fs::read_to_string(at.join("etc/conf.d")).unwrap(),
            "now a file\n"
        );
    }
    // Pushed back elsewhere, the list keeps its digest.
    let again = reg.reference("docker/again:list");
    let (tx, _rx) = progress();
    let pushed = s
        .push(NS, &list, &again, None, &reg.options(), tx)
        .await
        .unwrap();
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{again}"),
    ]));
    assert_eq!(
        pushed.digest().to_string(),
        sha256(raw.trim_end().as_bytes())
    );
}
