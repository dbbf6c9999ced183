//! `docker load` / OCI layout archives, unpacked: manifests, configs, and
//! layers with `..`, absolute and escaping symlinks, hard links out of the
//! tree, device nodes and huge headers. Nothing may appear outside the
//! store's root, and a failed import leaves the store as it was.
#![no_main]

use imagestore::{ImportOptions, Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("store");
    let Ok(store) = Store::open(&root) else {
        return;
    };
    let opts = ImportOptions {
        unpack: true,
        ..Default::default()
    };
    let _ = store.import("fuzz", data, &opts);
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("store")],
        "written outside the store"
    );
});
