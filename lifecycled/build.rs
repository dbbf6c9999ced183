//! Builds berth-pause (pause/pause.rs) with the compiler building us, as a
//! static binary without libc: it runs inside pods' empty root filesystems, where no
//! shared library is, whatever profile lifecycled itself is built with.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "pause/pause.rs";
    println!("cargo::rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let bin = out.join("berth-pause");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static",
        ])
        // Its own entry point, no C runtime.
        .args(["-C", "link-arg=-nostartfiles"])
        .arg("-o")
        .arg(&bin)
        .arg(src)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running rustc for berth-pause");
    assert!(status.success(), "building berth-pause failed");
}
