//! Compiles the .proto files with protox (pure Rust), so a fresh machine needs
//! no protoc, and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/berth/types/v1/types.proto",
        "proto/berth/shim/v1/shim.proto",
        "proto/berth/lifecycle/v1/lifecycle.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("berth_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    // Kubernetes' CRI (runtime.v1), for lifecycled and its tests only: the
    // shim and the engine need none of it.
    if std::env::var_os("CARGO_FEATURE_CRI").is_some() {
        let cri = "proto/k8s/cri/v1/api.proto";
        println!("cargo:rerun-if-changed={cri}");
        let fds = protox::compile([cri], ["proto"])?;
        std::fs::write(out.join("cri_descriptor.bin"), fds.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
