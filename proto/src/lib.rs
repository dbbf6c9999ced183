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

/// The messages that open an attach socket's session
/// (`berth.shim.v1.RawAttach` and its reply): each after its length, four
/// bytes big-endian, as nothing else frames them there.
pub mod names;

pub mod raw {
    use prost::Message;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Longer messages are not an attach's.
    pub const MAX_MESSAGE: usize = 64 << 10;

    /// The header of Docker's multiplexed frame: the stream (1 stdout,
    /// 2 stderr), three zero bytes, the length big-endian.
    pub fn frame_header(stream: u8, len: u32) -> [u8; 8] {
        let mut h = [stream, 0, 0, 0, 0, 0, 0, 0];
        h[4..].copy_from_slice(&len.to_be_bytes());
        h
    }

    pub async fn read_message<R, M>(rd: &mut R) -> std::io::Result<M>
    where
        R: AsyncRead + Unpin,
        M: Message + Default,
    {
        let len = rd.read_u32().await? as usize;
        if len > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a message of {len} bytes is too long"),
            ));
        }
        let mut buf = vec![0u8; len];
        rd.read_exact(&mut buf).await?;
        M::decode(&buf[..]).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub async fn write_message<W, M>(wr: &mut W, m: &M) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin,
        M: Message,
    {
        let body = m.encode_to_vec();
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        wr.write_all(&out).await
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::shim::v1::RawAttachReply;

        #[tokio::test]
        async fn messages_round_trip_and_long_ones_are_refused() {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let m = RawAttachReply {
                error: "no such exec".into(),
            };
            write_message(&mut a, &m).await.unwrap();
            let back: RawAttachReply = read_message(&mut b).await.unwrap();
            assert_eq!(back, m);
            a.write_all(&(MAX_MESSAGE as u32 + 1).to_be_bytes())
                .await
                .unwrap();
            let err = read_message::<_, RawAttachReply>(&mut b).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        }
    }
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
