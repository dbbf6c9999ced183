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

/// The encoded FileDescriptorSet of all three packages (for server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berth_descriptor");

/// The request header that carries the namespace.
pub const NAMESPACE_HEADER: &str = "berth-namespace";
/// The namespace of requests that name none.
pub const DEFAULT_NAMESPACE: &str = "default";
