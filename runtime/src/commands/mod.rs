//! One file per verb, as runc names them.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes a pid file as runc does (no newline), through a temporary file so a
/// reader never sees it empty.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    let mut f = fs::File::create(&tmp).map_err(|e| Error::io("writing pid file", &tmp, e))?;
    f.write_all(pid.to_string().as_bytes())
        .map_err(|e| Error::io("writing pid file", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("writing pid file", path, e))
}
