//! `berth-shim start`: detach a server process and wait until it serves.
//!
//! The server runs in a new session with /dev/null for stdin and stdout and a
//! log file for stderr, and is not our child for long: we exit as soon as it is
//! ready, so it is re-parented to init (or the host's subreaper), never to
//! lifecycled, and lives on whatever happens to lifecycled.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::Options;

pub fn start(opts: &Options) -> Result<()> {
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("creating {}", opts.state_dir.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.state_dir.join("shim.log"))
        .context("opening shim.log")?;
    // The server reports readiness (or its error) on this pipe.
    let (mut ready_r, ready_w) = std::io::pipe().context("creating readiness pipe")?;
    let mut cmd = Command::new(std::env::current_exe().context("finding our own binary")?);
    cmd.arg("serve")
        .args(["--id", &opts.id, "--namespace", &opts.namespace])
        .arg("--state-dir")
        .arg(&opts.state_dir)
        .arg("--socket")
        .arg(&opts.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::from(ready_w))
        .stderr(Stdio::from(log))
        .env("BERTH_SHIM_READY_FD", "1");
    if opts.debug {
        cmd.arg("--debug");
    }
    // SAFETY: setsid in the child between fork and exec touches no shared state.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the shim server")?;
    drop(cmd);
    let mut msg = String::new();
    ready_r
        .read_to_string(&mut msg)
        .context("waiting for the shim server")?;
    let _ = child; // not waited for: it outlives us on purpose
    match msg.strip_prefix("ok ") {
        Some(addr) => {
            println!("{}", addr.trim());
            Ok(())
        }
        None => bail!("shim server failed: {}", msg.trim()),
    }
}

/// Tells `start` that we serve (or why we cannot), then points stdout at
/// /dev/null so nothing holds the pipe open.
pub fn report_ready(result: std::result::Result<&str, String>) {
    let text = match result {
        Ok(addr) => format!("ok {addr}\n"),
        Err(e) => format!("error {e}\n"),
    };
    let _ = nix::unistd::write(std::io::stdout(), text.as_bytes());
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
}
