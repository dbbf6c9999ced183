//! berthd: the Docker Engine API (v1.43) over berth-lifecycled.
//!
//! Requests are parsed and answered in `api`, the work is done in `daemon`,
//! and everything that runs or stores a container goes through lifecycled's
//! gRPC contract (`daemon::lifecycle`).

#![recursion_limit = "256"]

pub mod api;
pub mod args;
pub mod authz;
pub mod build;
pub mod config;
pub mod daemon;
pub mod error;
pub mod hosts;
pub mod network;
pub mod server;
pub mod tls;
pub mod types;
