//! gRPC handlers: thin, they check the request and call the layer that owns
//! the logic.

pub mod containers;
pub mod content;
pub mod cri_images;
pub mod cri_runtime;
pub mod events;
pub mod images;
pub mod snapshots;
pub mod tasks;
pub mod version;
