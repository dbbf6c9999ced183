//! berth-shim: one process per container, or per pod (a pod's containers
//! are served by their sandbox's shim: `Host`). It runs the OCI runtime, is
//! the subreaper of the containers' processes, records each exit the moment
//! it happens, holds their stdio (writing the container's log and feeding
//! attached clients, whose slow reading holds the output back as Docker's
//! does), and serves berth.shim.v1 for each task on a unix socket of the
//! task's own, with Attach's raw form on a second one.

pub use berth_cgstats as cgstats;
pub mod crilog;
pub mod io;
pub mod journal;
pub mod launch;
pub mod logfile;
pub mod mount;
pub mod pluginlog;
pub mod process;
pub mod rawattach;
pub mod reaper;
pub mod runtime;
pub mod server;
pub mod service;
pub mod task;

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct Options {
    pub id: String,
    pub namespace: String,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub debug: bool,
}

/// The detached server: becomes a subreaper, serves until its tasks are
/// deleted and shut down.
pub fn serve(opts: Options) -> Result<()> {
    let level = if opts.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        launch::report_ready(Err(format!("becoming a subreaper: {e}")));
        return Err(e).context("becoming a subreaper");
    }
    // One thread: the shim waits most of its life, and a single thread keeps
    // it small. Runtime commands are awaited through the reaper (which takes
    // every child's exit), so one task's command never holds up another's
    // output.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server::run(opts))
}

/// Seconds and nanoseconds since the epoch as a protobuf timestamp.
pub fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
