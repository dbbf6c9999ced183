//! berth's command lines. `berth-ctr` talks gRPC straight to berth-lifecycled
//! (like containerd's ctr); `berth` speaks the Docker Engine API to berthd.

pub mod berth;
pub mod ctr;
pub mod table;
pub mod term;
