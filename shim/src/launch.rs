//! `berth-shim start`: detach a server process and wait until it serves.
//!
//! The server runs in a new session with /dev/null for stdin and stdout and a
//! log file for stderr, and is not our child for long: we exit as soon as it is
//! ready, so it is re-parented to init (or the host's subreaper), never to
//! lifecycled, and lives on whatever happens to lifecycled.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;

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
    let null = File::open("/dev/null").context("opening /dev/null")?;
    // The server reports readiness (or its error) on this pipe.
    let (mut ready_r, ready_w) = std::io::pipe().context("creating readiness pipe")?;
    // A fork, not a second exec: we are single-threaded here, and the child
    // simply goes on as the server.
    // SAFETY: no threads exist yet; the child only calls async-signal-safe
    // functions until it sets up its own runtime in `serve`.
    match unsafe { nix::unistd::fork() }.context("forking the shim server")? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            let ok = nix::unistd::setsid().is_ok()
                && nix::unistd::dup2(null.as_raw_fd(), 0).is_ok()
                && nix::unistd::dup2(ready_w.as_raw_fd(), 1).is_ok()
                && nix::unistd::dup2(log.as_raw_fd(), 2).is_ok();
            drop((null, log, ready_w));
            if !ok {
                std::process::exit(1);
            }
            let code = match crate::serve(opts.clone()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth-shim: {e:#}");
                    1
                }
            };
            std::process::exit(code);
        }
        nix::unistd::ForkResult::Parent { .. } => {}
    }
    drop(ready_w);
    let mut msg = String::new();
    ready_r
        .read_to_string(&mut msg)
        .context("waiting for the shim server")?;
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
