//! The generated code for berth's two gRPC contracts. The `.proto` files in
//! `proto/` are the contract; nothing else crosses these process boundaries.

/// Types shared by the lifecycle and shim APIs.
#[allow(clippy::large_enum_variant)]
pub mod types {
    pub mod v1 {
        tonic::include_proto!("berth.types.v1");
    }
}

/// engine (or berth-ctr, grpcurl) ↔ berth-lifecycled.
#[allow(clippy::large_enum_variant)]
pub mod lifecycle {
    pub mod v1 {
        tonic::include_proto!("berth.lifecycle.v1");
    }
}

/// berth-lifecycled ↔ berth-shim.
#[allow(clippy::large_enum_variant)]
pub mod shim {
    pub mod v1 {
        tonic::include_proto!("berth.shim.v1");
    }
}

/// Kubernetes' Container Runtime Interface, as the kubelet and crictl speak
/// it (`proto/k8s/cri/v1/api.proto`, vendored from k8s.io/cri-api).
#[cfg(feature = "cri")]
#[allow(
    clippy::large_enum_variant,
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items
)]
pub mod cri {
    pub mod v1 {
        tonic::include_proto!("runtime.v1");
    }
    /// The encoded FileDescriptorSet of runtime.v1 (for server reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cri_descriptor");
}

/// The encoded FileDescriptorSet of all three packages (for server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berth_descriptor");

/// HTTP/2 flow-control windows of every berth gRPC connection, both sides.
/// h2's default of 64 KiB costs a round trip per 64 KiB of a container's
/// stdio (attach, exec, cp, export); the credit is only used while a peer
/// lags, so idle connections cost nothing for it.
pub const STREAM_WINDOW: u32 = 4 << 20;
pub const CONNECTION_WINDOW: u32 = 8 << 20;
/// Larger HTTP/2 frames: fewer headers and wakeups per chunk of stdio.
pub const MAX_FRAME: u32 = 1 << 20;

/// The most a process's stdio is read in one go, on every hop from the
/// client to the container and back: each chunk costs a message, a wakeup
/// and a frame per hop, so bulk streams want few, large ones.
pub const STDIO_CHUNK: usize = 128 << 10;

/// The request header that carries the namespace.
pub const NAMESPACE_HEADER: &str = "berth-namespace";
/// The namespace of requests that name none.
pub const DEFAULT_NAMESPACE: &str = "default";
