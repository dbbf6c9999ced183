//! The command line of the daemon, in the library so that its man page
//! can be made from the same definition (berth-docs).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// berth's lifecycle daemon: images (content, snapshots, pull and push),
/// containers and their tasks through one shim each,
/// served as gRPC (berth.lifecycle.v1) on a unix socket. Containers keep
/// running when it stops or dies; on start it finds their shims again.
#[derive(Parser)]
#[command(name = "berth-lifecycled", version)]
pub struct Args {
    /// Configuration file (TOML: runtime table, default runtime)
    #[arg(long, default_value = "/etc/berth/lifecycled.toml")]
    pub config: PathBuf,
    /// Unix socket to serve on
    #[arg(long, default_value = "/run/berth/lifecycled.sock")]
    pub address: PathBuf,
    /// Directory for state that survives reboots (blobs, images, unpacked
    /// layers, container snapshots and records)
    #[arg(long, default_value = "/var/lib/berth/lifecycled")]
    pub root: PathBuf,
    /// Directory for run-time state (task directories, shim sockets)
    #[arg(long, default_value = "/run/berth/lifecycled")]
    pub state: PathBuf,
    /// Log level: error, warn, info, debug, trace
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format: text, or json (one object per line, for journald and
    /// log collectors)
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
