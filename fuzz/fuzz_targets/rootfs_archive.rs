//! `import` of a root filesystem tarball: entries that escape the root are
//! refused, and nothing appears outside the store.
#![no_main]

use imagestore::{RootfsOptions, Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("store");
    let Ok(store) = Store::open(&root) else {
        return;
    };
    let _ = store.import_rootfs("fuzz", data, "fuzz:latest", &RootfsOptions::default());
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("store")],
        "written outside the store"
    );
});
