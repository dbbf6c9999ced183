//! berth-lifecycled: images (content, records, snapshots, pull and push),
//! container records, tasks through shims, events, served
//! as berth.lifecycle.v1 on a unix socket (with gRPC health and reflection).
//! Like containerd, it is complete on its own: berth-ctr or any gRPC client
//! can run containers with no engine.

pub mod args;
pub mod cgroup_warmup;
pub mod config;
pub mod cri;
pub mod events;
pub mod images;
pub mod namespace;
pub mod oom;
pub mod rootfs;
pub mod server;
pub mod service;
pub mod shimclient;
pub mod store;
pub mod tasks;

pub fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
