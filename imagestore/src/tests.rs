//! Store-level tests: content, leases and gc, snapshots on real overlay
//! mounts, archives. They need root (device nodes, trusted xattrs, mounts).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};

use crate::digest::sha256_of;
use crate::layer::tests::TarBuilder;
use crate::resolve::media_types;
use crate::*;

const NS: &str = "test";

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("root")).unwrap();
    (dir, s)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Stores layers (gzipped), a config and a manifest, and records the image.
fn put_test_image(s: &Store, name: &str, layers: &[Vec<u8>]) -> ImageRecord {
    put_test_image_with(s, name, layers, None)
}

fn put_test_image_with(
    s: &Store,
    name: &str,
    layers: &[Vec<u8>],
    diff_ids: Option<Vec<String>>,
) -> ImageRecord {
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for tar in layers {
        diffs.push(sha256_of(tar).to_string());
        let mut d = s.write_blob(None, &gzip(tar)[..], None).unwrap();
        d.set_media_type(MediaType::ImageLayerGzip);
        descs.push(d);
    }
    let host = PlatformSpec::host();
    let config = serde_json::json!({
        "architecture": host.architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.unwrap_or(diffs)},
    });
    let mut c = s
        .write_blob(None, &serde_json::to_vec(&config).unwrap()[..], None)
        .unwrap();
    c.set_media_type(MediaType::ImageConfig);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": c,
        "layers": descs,
    });
    let mut m = s
        .write_blob(None, &serde_json::to_vec(&manifest).unwrap()[..], None)
        .unwrap();
    m.set_media_type(MediaType::ImageManifest);
    s.put_image(NS, ImageRecord::new(name, m)).unwrap()
}

fn blob_set(s: &Store) -> BTreeSet<String> {
    s.list()
        .unwrap()
        .into_iter()
        .map(|i| i.digest.to_string())
        .collect()
}

/// Unmounts in Drop, also when the test panics.
struct Mounted(PathBuf);

impl Mounted {
    fn new(mounts: &[Mount], at: &Path) -> Mounted {
        fs::create_dir_all(at).unwrap();
        mount_all(mounts, at).unwrap();
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.0);
    }
}

#[test]
fn blobs_are_verified_while_they_stream_and_bad_ones_leave_nothing() {
    let (_d, s) = store();
    let data = b"hello blob".to_vec();
    let good = Descriptor::new(MediaType::ImageConfig, data.len() as u64, sha256_of(&data));

    let wrong_digest = Descriptor::new(MediaType::ImageConfig, data.len() as u64, sha256_of(b"x"));
    let e = s
        .write_blob(Some(&wrong_digest), &data[..], None)
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let short = Descriptor::new(MediaType::ImageConfig, 3, sha256_of(&data));
    let e = s.write_blob(Some(&short), &data[..], None).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    let long = Descriptor::new(MediaType::ImageConfig, 100, sha256_of(&data));
    let e = s.write_blob(Some(&long), &data[..], None).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    assert!(s.list().unwrap().is_empty());
    assert!(s.ingests().unwrap().is_empty(), "{:?}", s.ingests());

    let d = s.write_blob(Some(&good), &data[..], None).unwrap();
    assert_eq!(d.digest(), good.digest());
    assert_eq!(s.info(good.digest()).unwrap().size, data.len() as u64);
    // Already there: the reader is not even read.
    let d2 = s.write_blob(Some(&good), std::io::empty(), None).unwrap();
    assert_eq!(d2.digest(), good.digest());
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut s.open_blob(good.digest()).unwrap(), &mut back).unwrap();
    assert_eq!(back, data);
    let path = s
        .root()
        .join("content/blobs/sha256")
        .join(&good.digest().as_ref()[7..]);
    assert!(path.is_file());
}

#[test]
fn an_interrupted_write_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let desc = Descriptor::new(MediaType::ImageLayer, data.len() as u64, sha256_of(&data));
    {
        let s = Store::open(&root).unwrap();
        let mut w = s.writer(Some(&desc)).unwrap().unwrap();
        w.write_all(&data[..70_000]).unwrap();
        drop(w); // the process "dies" here
        let ing = s.ingests().unwrap();
        assert_eq!(ing.len(), 1);
        assert_eq!(ing[0].offset, 70_000);
        assert_eq!(ing[0].expected.as_ref(), Some(desc.digest()));
        assert!(
            s.info(desc.digest()).is_err(),
            "a partial blob is not visible"
        );
    }
    let s = Store::open(&root).unwrap();
    let mut w = s.writer(Some(&desc)).unwrap().unwrap();
    assert_eq!(w.offset(), 70_000);
    w.write_all(&data[70_000..]).unwrap();
    w.commit(None).unwrap();
    assert_eq!(s.info(desc.digest()).unwrap().size, data.len() as u64);
    assert!(s.ingests().unwrap().is_empty());

    // write_blob from the start of a stream skips what an ingest holds.
    let other: Vec<u8> = data.iter().rev().cloned().collect();
    let odesc = Descriptor::new(MediaType::ImageLayer, other.len() as u64, sha256_of(&other));
    let mut w = s.writer(Some(&odesc)).unwrap().unwrap();
    w.write_all(&other[..1000]).unwrap();
    drop(w);
    s.write_blob(Some(&odesc), &other[..], None).unwrap();
    assert!(s.info(odesc.digest()).is_ok());
}

#[test]
fn concurrent_writers_of_one_digest_store_it_once() {
    let (_d, s) = store();
    let data = vec![42u8; 1 << 20];
    let desc = Descriptor::new(MediaType::ImageLayer, data.len() as u64, sha256_of(&data));
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| s.write_blob(Some(&desc), &data[..], None).unwrap());
        }
    });
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(s.ingests().unwrap().is_empty());
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let (_d, s) = store();
    let e = Store::open(s.root()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
}

#[test]
fn leftovers_of_a_crash_are_cleared_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    drop(Store::open(&root).unwrap());
    fs::create_dir_all(root.join("snapshots/7.tmp/fs")).unwrap();
    fs::create_dir_all(root.join("content/ingest/tmp-1-2-3")).unwrap();
    fs::write(root.join("content/ingest/tmp-1-2-3/data"), b"x").unwrap();
    let s = Store::open(&root).unwrap();
    assert!(!root.join("snapshots/7.tmp").exists());
    assert!(s.ingests().unwrap().is_empty());
}

#[test]
fn leases_protect_blobs_from_gc_until_dropped() {
    let (_d, s) = store();
    let lease = s.lease();
    let kept = s.write_blob(None, &b"leased"[..], Some(&lease)).unwrap();
    let loose = s.write_blob(None, &b"loose"[..], None).unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.blobs_removed, vec![loose.digest().clone()]);
    assert!(s.info(kept.digest()).is_ok());
    let e = s.delete(kept.digest()).unwrap_err();
    assert!(matches!(e, Error::BlobInUse { .. }), "{e}");
    drop(lease);
    let r = s.gc().unwrap();
    assert_eq!(r.blobs_removed, vec![kept.digest().clone()]);
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn images_keep_their_blobs_and_gc_frees_them_after_delete() {
    let (_d, s) = store();
    let l = TarBuilder::new().file("f", b"data").finish();
    let rec = put_test_image(&s, "example.com/a/b:1", &[l]);
    let before = blob_set(&s);
    assert_eq!(before.len(), 3);
    assert!(s.gc().unwrap().blobs_removed.is_empty());
    let e = s.delete(rec.target.digest()).unwrap_err();
    assert!(e.to_string().contains("example.com/a/b:1"), "{e}");

    let t = s.tag(NS, "example.com/a/b:1", "example.com/a/b:2").unwrap();
    assert_eq!(t.target, rec.target);
    assert_eq!(s.list_images(NS).unwrap().len(), 2);
    s.delete_image(NS, "example.com/a/b:1").unwrap();
    assert!(
        s.gc().unwrap().blobs_removed.is_empty(),
        "the tag still needs them"
    );
    s.delete_image(NS, "example.com/a/b:2").unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.blobs_removed.len(), 3);
    assert!(r.bytes_freed > 0);
}

#[test]
fn two_images_sharing_a_layer_unpack_it_once_and_gc_keeps_it_while_needed() {
    let (_d, s) = store();
    let base = TarBuilder::new()
        .dir("bin/")
        .file("bin/tool", &vec![1u8; 300_000])
        .finish();
    let top_a = TarBuilder::new().file("a", b"a").finish();
    let top_b = TarBuilder::new().file("b", b"b").finish();
    put_test_image(&s, "example.com/x:a", &[base.clone(), top_a]);
    put_test_image(&s, "example.com/x:b", &[base, top_b]);
    let ca = s.unpack(NS, "example.com/x:a").unwrap().unwrap();
    let cb = s.unpack(NS, "example.com/x:b").unwrap().unwrap();
    assert_ne!(ca, cb);
    let committed: Vec<_> = s
        .list_snapshots()
        .into_iter()
        .filter(|i| i.kind == SnapshotKind::Committed)
        .collect();
    assert_eq!(committed.len(), 3, "base once, and one top each");
    // Each unpacked layer knows what its files hold (counted at unpack,
    // kept in the snapshot's record).
    assert_eq!(s.layer_content_size(&ca), Some(1));
    let base_chain = committed.iter().find(|i| i.parent.is_none()).unwrap();
    let base_chain = crate::digest::parse_digest(&base_chain.key).unwrap();
    assert_eq!(s.layer_content_size(&base_chain), Some(300_000));
    assert_eq!(
        s.layer_content_size(&crate::digest::sha256_of(b"none")),
        None
    );
    // A layer an older store unpacked has no count in its record: its
    // files are walked for it.
    let snaps = &s.inner.snapshots;
    snaps
        .lock()
        .committed
        .get_mut(&base_chain)
        .unwrap()
        .content_size = None;
    assert_eq!(s.layer_content_size(&base_chain), Some(300_000));
    // Unpacking again is a no-op.
    assert_eq!(s.unpack(NS, "example.com/x:a").unwrap().unwrap(), ca);
    assert_eq!(s.list_snapshots().len(), 3);

    s.delete_image(NS, "example.com/x:a").unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.snapshots_removed, vec![ca]);
    assert_eq!(s.list_snapshots().len(), 2);
    assert!(s.layer_usage(&cb).is_ok());
}

#[test]
fn concurrent_unpacks_of_one_image_unpack_each_layer_once() {
    let (_d, s) = store();
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            TarBuilder::new()
                .file(&format!("f{i}"), &vec![i as u8; 100_000])
                .finish()
        })
        .collect();
    put_test_image(&s, "example.com/c:1", &layers);
    let tops: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| sc.spawn(|| s.unpack(NS, "example.com/c:1").unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tops.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(s.list_snapshots().len(), 4);
    let dirs = fs::read_dir(s.root().join("snapshots")).unwrap().count();
    assert_eq!(dirs, 4, "no leftovers of the losing unpacks");
}

#[test]
fn whiteouts_and_a_replaced_directory_give_the_right_tree_through_overlayfs() {
    let (d, s) = store();
    let lower = TarBuilder::new()
        .file("deleted", b"old")
        .file("kept", b"kept")
        .dir("dir/")
        .file("dir/old1", b"1")
        .file("dir/old2", b"2")
        .dir("todir/")
        .file("todir/x", b"x")
        .dir("opaque/")
        .file("opaque/gone", b"g")
        .finish();
    let upper = TarBuilder::new()
        .file(".wh.deleted", b"")
        // a directory replaced by a file
        .file(".wh.dir", b"")
        .file("dir", b"now a file")
        // a file replaced by a directory
        .file(".wh.kept", b"")
        .dir("kept/")
        .file("kept/inside", b"in")
        // a directory emptied and refilled
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"n")
        .finish();
    put_test_image(&s, "example.com/w:1", &[lower, upper]);
    let top = s.unpack(NS, "example.com/w:1").unwrap();
    let mounts = s.prepare(NS, "c1", top.as_ref()).unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].r#type, "overlay");
    let at = d.path().join("rootfs");
    let _m = Mounted::new(&mounts, &at);
    assert!(!at.join("deleted").exists());
    assert_eq!(fs::read(at.join("dir")).unwrap(), b"now a file");
    assert_eq!(fs::read(at.join("kept/inside")).unwrap(), b"in");
    assert_eq!(fs::read(at.join("todir/x")).unwrap(), b"x");
    let names: Vec<_> = fs::read_dir(at.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["new"]);
    // The rootfs is writable, and writes land in the snapshot only.
    fs::write(at.join("written"), b"w").unwrap();
    let e = s.remove(NS, "c1").unwrap_err();
    assert!(matches!(e, Error::SnapshotInUse { .. }), "{e}");
}

#[test]
fn an_image_without_layers_gets_a_writable_bind() {
    let (d, s) = store();
    let mounts = s.prepare(NS, "empty", None).unwrap();
    assert_eq!(mounts[0].r#type, "bind");
    assert!(mounts[0].options.contains(&"rw".to_string()));
    let at = d.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &at);
        fs::write(at.join("f"), b"x").unwrap();
    }
    assert!(s.usage(NS, "empty").unwrap().size > 0);
    assert!(matches!(
        s.prepare(NS, "empty", None),
        Err(Error::SnapshotExists { .. })
    ));
    s.remove(NS, "empty").unwrap();
    assert!(s.mounts(NS, "empty").is_err());
}

#[test]
fn commit_turns_changes_into_a_layer_with_oci_whiteouts() {
    let (d, s) = store();
    let base = TarBuilder::new()
        .file("gone", b"g")
        .dir("etc/")
        .file("etc/conf", b"c")
        .finish();
    put_test_image(&s, "example.com/c:1", &[base]);
    let top = s.unpack(NS, "example.com/c:1").unwrap();
    let mounts = s.prepare(NS, "ctr", top.as_ref()).unwrap();
    let at = d.path().join("rootfs");
    {
        let _m = Mounted::new(&mounts, &at);
        fs::remove_file(at.join("gone")).unwrap();
        fs::write(at.join("etc/new"), b"new").unwrap();
    }
    let lease = s.lease();
    let c = s
        .commit(NS, "ctr", Compression::Gzip, Some(&lease))
        .unwrap();
    assert_eq!(
        c.layer.media_type().to_string(),
        media_types::OCI_LAYER_GZIP
    );
    let blob = s.open_blob(c.layer.digest()).unwrap();
    let (_, plain) = crate::layer::decompress(blob).unwrap();
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(plain);
    for e in ar.entries().unwrap() {
        names.push(String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned());
    }
    assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
    assert!(names.contains(&"etc/new".to_string()), "{names:?}");
    assert!(
        !names.contains(&"etc/conf".to_string()),
        "unchanged files are not in the diff"
    );
    // The blob survives gc while the lease holds it.
    s.gc().unwrap();
    assert!(s.info(c.layer.digest()).is_ok());
    // Checked against its diff id by unpacking as a new image layer.
    let dir = d.path().join("check");
    fs::create_dir(&dir).unwrap();
    let applied = crate::layer::apply(s.open_blob(c.layer.digest()).unwrap(), &dir, "c").unwrap();
    assert_eq!(applied.diff_id, c.diff_id);
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused_and_nothing_stays() {
    let (_d, s) = store();
    let l = TarBuilder::new().file("f", b"x").finish();
    put_test_image_with(
        &s,
        "example.com/bad:1",
        &[l],
        Some(vec![sha256_of(b"other").to_string()]),
    );
    let e = s.unpack(NS, "example.com/bad:1").unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("diff id"), "{e}");
    assert!(s.list_snapshots().is_empty());
    assert_eq!(fs::read_dir(s.root().join("snapshots")).unwrap().count(), 0);
}

#[test]
fn a_layer_with_dotdot_paths_is_refused_and_nothing_stays() {
    let (_d, s) = store();
    let good = TarBuilder::new().file("ok", b"x").finish();
    let evil = TarBuilder::new().file("../../escaped", b"x").finish();
    put_test_image(&s, "example.com/evil:1", &[good, evil]);
    let e = s.unpack(NS, "example.com/evil:1").unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
    assert!(
        s.list_snapshots().is_empty(),
        "the good layer is rolled back too"
    );
    assert!(!s.root().join("escaped").exists());
    assert!(!s.root().join("snapshots/escaped").exists());
}

#[test]
fn many_layers_fit_the_mount_option_page_thanks_to_numeric_ids() {
    let (_d, s) = store();
    let layers: Vec<Vec<u8>> = (0..60)
        .map(|i| TarBuilder::new().file(&format!("f{i}"), b"x").finish())
        .collect();
    put_test_image(&s, "example.com/many:1", &layers);
    let top = s.unpack(NS, "example.com/many:1").unwrap();
    let mounts = s.prepare(NS, "many", top.as_ref()).unwrap();
    let len = mounts[0].options.join(",").len();
    assert!(len < 4096, "{len}");

    let more: Vec<Vec<u8>> = (0..200)
        .map(|i| TarBuilder::new().file(&format!("g{i}"), b"y").finish())
        .collect();
    put_test_image(&s, "example.com/many:2", &more);
    let top = s.unpack(NS, "example.com/many:2").unwrap();
    let e = s.prepare(NS, "toomany", top.as_ref()).unwrap_err();
    assert!(matches!(e, Error::MountOptionsTooLong { .. }), "{e}");
    assert!(
        s.mounts(NS, "toomany").is_err(),
        "a refused prepare leaves nothing"
    );
}

#[test]
fn an_index_for_another_platform_only_names_what_it_has() {
    let (_d, s) = store();
    let l = TarBuilder::new().file("f", b"x").finish();
    let rec = put_test_image(&s, "example.com/p:1", &[l]);
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [{
            "mediaType": media_types::OCI_MANIFEST,
            "digest": rec.target.digest(),
            "size": rec.target.size(),
            "platform": {"os": "linux", "architecture": "riscv64"},
        }],
    });
    let mut d = s
        .write_blob(None, &serde_json::to_vec(&idx).unwrap()[..], None)
        .unwrap();
    d.set_media_type(MediaType::ImageIndex);
    s.put_image(NS, ImageRecord::new("example.com/p:multi", d))
        .unwrap();
    let e = s.resolve_image(NS, "example.com/p:multi").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no manifest for {} in example.com/p:multi; available: linux/riscv64",
            PlatformSpec::host()
        )
    );
    let riscv = PlatformSpec::parse("linux/riscv64").unwrap();
    let r = s
        .resolve_for(
            &s.get_image(NS, "example.com/p:multi").unwrap().target,
            &riscv,
        )
        .unwrap();
    assert_eq!(r.manifest_digest, *rec.target.digest());
}

fn two_images(s: &Store) {
    let base = TarBuilder::new()
        .dir("usr/")
        .file("usr/lib", &[9u8; 50_000])
        .finish();
    let a = TarBuilder::new().file("a", b"a").finish();
    let b = TarBuilder::new().file("b", b"b").finish();
    put_test_image(s, "example.com/two:a", &[base.clone(), a]);
    put_test_image(s, "example.com/two:b", &[base, b]);
}

#[test]
fn oci_export_and_import_round_trip_several_images_with_their_digests() {
    let (_d, s) = store();
    two_images(&s);
    let names = vec![
        "example.com/two:a".to_string(),
        "example.com/two:b".to_string(),
    ];
    let mut out = Vec::new();
    s.export(NS, &names, &mut out, ArchiveFormat::Oci).unwrap();

    let (_d2, s2) = store();
    let recs = s2.import(NS, &out[..], &ImportOptions::default()).unwrap();
    assert_eq!(recs.len(), 2);
    for n in &names {
        assert_eq!(
            s2.get_image(NS, n).unwrap().target.digest(),
            s.get_image(NS, n).unwrap().target.digest()
        );
        s2.unpack(NS, n).unwrap();
    }
    assert_eq!(blob_set(&s), blob_set(&s2));
}

#[test]
fn docker_export_and_import_round_trip_and_gzip_archives_import_too() {
    let (_d, s) = store();
    two_images(&s);
    let names = vec![
        "example.com/two:a".to_string(),
        "example.com/two:b".to_string(),
    ];
    let mut out = Vec::new();
    s.export(NS, &names, &mut out, ArchiveFormat::Docker)
        .unwrap();
    // Check the Docker side of it: manifest.json with RepoTags and layers.
    let mut ar = tar::Archive::new(&out[..]);
    let mut manifest = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            manifest = Some(serde_json::from_slice::<serde_json::Value>(&v).unwrap());
        }
    }
    let manifest = manifest.unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["RepoTags"][0], "example.com/two:a");
    assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 2);

    let (_d2, s2) = store();
    let recs = s2
        .import(NS, &gzip(&out)[..], &ImportOptions::default())
        .unwrap();
    assert_eq!(recs.len(), 2);
    s2.unpack(NS, "example.com/two:b").unwrap();
}

/// A docker save archive in the pre-25 layout: `<id>/layer.tar`, a
/// `<hex>.json` config, a `repositories` file, and a duplicate layer
/// written as a symlink.
#[test]
fn an_old_style_docker_save_archive_imports() {
    let l1 = TarBuilder::new().file("one", b"1").finish();
    let l2 = TarBuilder::new().file("two", b"2").finish();
    let host = PlatformSpec::host();
    let config = serde_json::json!({
        "architecture": host.architecture, "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_of(&l1), sha256_of(&l2), sha256_of(&l1)]},
    });
    let cbytes = serde_json::to_vec(&config).unwrap();
    let chex = sha256_of(&cbytes).to_string()[7..].to_string();
    let manifest = serde_json::json!([{
        "Config": format!("{chex}.json"),
        "RepoTags": ["busybox:latest"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("aaa/layer.tar", &l1);
    add("bbb/layer.tar", &l2);
    add(&format!("{chex}.json"), &cbytes);
    add("repositories", br#"{"busybox":{"latest":"bbb"}}"#);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let archive = b.into_inner().unwrap();

    let (_d, s) = store();
    let opts = ImportOptions {
        rename: Some(std::sync::Arc::new(|n: &str| {
            format!("docker.io/library/{n}")
        })),
        ..Default::default()
    };
    let recs = s.import(NS, &archive[..], &opts).unwrap();
    assert_eq!(recs[0].name, "docker.io/library/busybox:latest");
    let r = s
        .resolve_image(NS, "docker.io/library/busybox:latest")
        .unwrap();
    assert_eq!(r.layers.len(), 3);
    assert_eq!(
        r.layers[0].media_type().to_string(),
        media_types::DOCKER_LAYER
    );
    assert_eq!(
        r.manifest.media_type().to_string(),
        media_types::DOCKER_MANIFEST
    );
    s.unpack(NS, "docker.io/library/busybox:latest").unwrap();
}

#[test]
fn a_truncated_archive_is_refused_and_the_store_is_unchanged() {
    let (_d, s) = store();
    two_images(&s);
    let mut out = Vec::new();
    s.export(
        NS,
        &["example.com/two:a".to_string()],
        &mut out,
        ArchiveFormat::Oci,
    )
    .unwrap();
    let (_d2, s2) = store();
    let keep = s2.write_blob(None, &b"already here"[..], None).unwrap();
    let before = blob_set(&s2);
    for cut in [out.len() / 3, out.len() / 2, out.len() - 1024 - 512 - 10] {
        let e = s2
            .import(NS, &out[..cut], &ImportOptions::default())
            .unwrap_err();
        let msg = e.chain();
        assert!(
            msg.contains("truncated")
                || msg.contains("not in the archive")
                || msg.contains("neither"),
            "{msg}"
        );
        assert_eq!(blob_set(&s2), before, "cut at {cut}");
        assert!(s2.list_images(NS).unwrap().is_empty());
        assert!(s2.ingests().unwrap().is_empty());
    }
    assert!(s2.info(keep.digest()).is_ok());
}

#[test]
fn a_rootfs_tarball_becomes_a_one_layer_image_with_its_config() {
    let (_d, s) = store();
    let rootfs = TarBuilder::new().dir("bin/").file("bin/sh", b"#!").finish();
    let opts = RootfsOptions {
        cmd: Some(vec!["/bin/sh".into()]),
        env: vec!["A=1".into()],
        working_dir: Some("/work".into()),
        ..Default::default()
    };
    let rec = s
        .import_rootfs(NS, &gzip(&rootfs)[..], "example.com/root:1", &opts)
        .unwrap();
    let r = s.resolve(&rec.target).unwrap();
    assert_eq!(r.layers.len(), 1);
    assert_eq!(
        r.layers[0].media_type().to_string(),
        media_types::OCI_LAYER_GZIP
    );
    assert_eq!(r.diff_ids[0], sha256_of(&rootfs));
    let cfg = r.config.config().as_ref().unwrap();
    assert_eq!(cfg.cmd().as_ref().unwrap(), &vec!["/bin/sh".to_string()]);
    assert_eq!(cfg.env().as_ref().unwrap(), &vec!["A=1".to_string()]);
    assert_eq!(cfg.working_dir().as_deref(), Some("/work"));
    s.unpack(NS, "example.com/root:1").unwrap();
}

#[test]
fn a_rootfs_tarball_with_dotdot_paths_is_refused_and_the_store_is_unchanged() {
    let (_d, s) = store();
    let before = blob_set(&s);
    for (tar, want) in [
        (
            TarBuilder::new()
                .file("ok", b"1")
                .file("../evil", b"x")
                .finish(),
            "'..'",
        ),
        (
            TarBuilder::new().file("/etc/evil", b"x").finish(),
            "absolute",
        ),
        (
            TarBuilder::new()
                .symlink("l", "/etc")
                .file("l/passwd", b"x")
                .finish(),
            "symlink",
        ),
    ] {
        let e = s
            .import_rootfs(
                NS,
                &tar[..],
                "example.com/evil:1",
                &RootfsOptions::default(),
            )
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(blob_set(&s), before);
        assert!(s.list_images(NS).unwrap().is_empty());
        assert!(s.ingests().unwrap().is_empty());
    }
}

#[test]
fn sha512_blobs_are_accepted_and_verified() {
    use sha2::Digest as _;
    let (_d, s) = store();
    let data = b"a sha512 blob".to_vec();
    let d = parse_digest(&format!(
        "sha512:{}",
        hex::encode(sha2::Sha512::digest(&data))
    ))
    .unwrap();
    let desc = Descriptor::new(MediaType::ImageLayer, data.len() as u64, d.clone());
    s.write_blob(Some(&desc), &data[..], None).unwrap();
    assert_eq!(s.info(&d).unwrap().size, data.len() as u64);
    assert!(
        s.root()
            .join("content/blobs/sha512")
            .join(&d.as_ref()[7..])
            .is_file()
    );
    let bad = Descriptor::new(MediaType::ImageLayer, data.len() as u64, d);
    let (_d2, s2) = store();
    let e = s2
        .write_blob(Some(&bad), &b"other bytes!!"[..], None)
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
}

#[test]
fn an_unpacked_layer_diffs_back_to_the_same_uncompressed_layer() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .dir("etc/")
        .file("etc/.wh..wh..opq", b"")
        .file("etc/a", b"a")
        .file(".wh.gone", b"")
        .finish();
    put_test_image(&s, "example.com/diff:1", &[tar]);
    let top = s.unpack(NS, "example.com/diff:1").unwrap().unwrap();
    let c = s.diff_layer(&top, Compression::None, None).unwrap();
    let r = s.resolve_image(NS, "example.com/diff:1").unwrap();
    // Not the same bytes as the original tar (header details differ), but
    // it unpacks to the same tree.
    let dir = tempfile::tempdir().unwrap();
    crate::layer::apply(s.open_blob(c.layer.digest()).unwrap(), dir.path(), "d").unwrap();
    assert!(dir.path().join("etc/a").is_file());
    assert!(
        crate::layer::get_xattr(&dir.path().join("etc"), "trusted.overlay.opaque")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        c.diff_id,
        *c.layer.digest(),
        "uncompressed: digest is the diff id"
    );
    assert_eq!(r.diff_ids.len(), 1);
}

#[test]
fn the_store_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let (_d, s) = store();
    send_sync(&s);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let opts = RegistryOptions::default();
    let pull = s.pull(NS, "example.com/a:b", None, &opts, tx.clone());
    send(&pull);
    let push = s.push(NS, "x", "example.com/a:b", None, &opts, tx);
    send(&push);
}

#[test]
fn a_resolution_is_reused_while_its_blobs_are_stored() {
    let (_d, s) = store();
    let rec = put_test_image(&s, "example.com/cached:1", &[b"layer".to_vec()]);
    let first = s.resolve_with_config(&rec.target).unwrap();
    let again = s.resolve_with_config(&rec.target).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    let stored = s.read_blob(&first.image.config_digest, 1 << 20).unwrap();
    assert_eq!(first.config_bytes, stored);
    assert_eq!(
        first.image.diff_ids,
        s.resolve(&rec.target).unwrap().diff_ids
    );

    // A removal elsewhere in the store: what this image reads is still
    // there, so it is kept.
    let other = put_test_image(&s, "example.com/other:1", &[b"other".to_vec()]);
    s.delete_image(NS, "example.com/other:1").unwrap();
    s.delete(other.target.digest()).unwrap();
    let kept = s.resolve_with_config(&rec.target).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &kept));

    // Its own content gone from under the record (the garbage collector
    // once the record is deleted): it no longer resolves.
    let config = first.image.config_digest.clone();
    s.delete_image(NS, "example.com/cached:1").unwrap();
    s.delete(rec.target.digest()).unwrap();
    s.delete(&config).unwrap();
    assert!(s.resolve_with_config(&rec.target).is_err());
}
