//! The command line of the daemon, in the library so that its man page
//! can be made from the same definition (berth-docs).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// berthd: the Docker Engine API (v1.43) for berth. Containers run through
/// berth-lifecycled and outlive berthd: with live-restore (the default) a
/// stop or a crash of berthd leaves them running.
#[derive(Parser)]
#[command(name = "berthd", version)]
pub struct Args {
    /// daemon.json with Docker's keys where they apply
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    pub config_file: PathBuf,
    /// Address to serve the API on (repeatable): unix:///path, tcp://host:port (needs --tlsverify), fd:// (sockets passed by systemd)
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Engine state that outlives reboots (containers, volumes)
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Run-time state
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    /// berth-lifecycled's socket
    #[arg(long)]
    pub lifecycled: Option<PathBuf>,
    /// Keep containers running when berthd stops (true|false)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub live_restore: Option<bool>,
    /// Check the configuration and exit
    #[arg(long)]
    pub validate: bool,
    /// Debug logging
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Log level: debug, info, warn, error, fatal
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    /// Log format: text, or json (one object per line, for journald and
    /// log collectors)
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Group that may use the API socket
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Runtime for containers that name none
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// Authorization plugin that approves every API call (repeatable;
    /// asked in order, each must allow)
    #[arg(long = "authorization-plugin")]
    pub authorization_plugins: Vec<String>,
    /// Use TLS on tcp:// hosts; --tls=false serves them in the clear
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and require client certificates signed by --tlscacert
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
