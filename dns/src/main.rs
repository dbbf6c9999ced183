//! berth-dns: the names of containers on berthd's user-defined networks,
//! served on each network's gateway as Docker's embedded DNS serves them.
//! berthd writes one file per network into the config directory and sends
//! SIGHUP; the server runs on its own, so that names keep resolving while
//! berthd restarts or is upgraded.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use berth_dns::args::Args;
use berth_dns::serve;

/// The pid file in the config directory (not a 64-hex-digit name, so
/// never a network's file).
const PID_FILE: &str = "server.pid";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(
            args.log_level
                .parse::<tracing::Level>()
                .with_context(|| format!("--log-level {}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if !args.config.is_dir() {
        anyhow::bail!("--config {}: not a directory", args.config.display());
    }
    if args.foreground {
        return run(args, None);
    }
    // Forked before the runtime makes threads; the parent returns once
    // the child listens (or says it could not), as a daemon's start does.
    let (r, w) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: no other thread exists yet.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut ready = [0u8; 1];
            let got = std::fs::File::from(r).read(&mut ready).unwrap_or(0);
            if got == 1 {
                return Ok(());
            }
            let _ = nix::sys::wait::waitpid(child, None);
            anyhow::bail!("the server did not start");
        }
        nix::unistd::ForkResult::Child => {
            drop(r);
            // Its own session: berthd's end (or a terminal's) is not its.
            nix::unistd::setsid().context("setsid")?;
            run(args, Some(w))
        }
    }
}

fn run(args: Args, ready: Option<OwnedFd>) -> anyhow::Result<()> {
    // Holds no directory busy (test roots are unmounted under it).
    std::env::set_current_dir("/").context("chdir /")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let dir = args.config.clone();
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        // Before anyone may signal it: SIGHUP's default would end it.
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let server = serve::Server::new(serve::Config {
            dir: args.config,
            port: args.port,
            resolv_conf: args.resolv_conf,
            upstreams: args.upstreams,
            netns_dir: args.netns_dir,
        });
        server
            .reload()
            .with_context(|| format!("reading {}", dir.display()))?;
        write_pid(&dir)?;
        if let Some(w) = ready {
            std::fs::File::from(w)
                .write_all(b"1")
                .context("telling the start it listens")?;
        }
        // An address another process held is tried again, and listeners
        // of addresses gone are let go, on each tick.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Err(e) = server.reload() {
                        tracing::warn!("reloading {}: {e}", dir.display());
                    }
                }
                _ = tick.tick() => server.listen(),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        remove_pid(&dir);
        Ok(())
    })
}

fn write_pid(dir: &Path) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{PID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|_| std::fs::rename(&tmp, dir.join(PID_FILE)))
        .with_context(|| format!("writing {}", dir.join(PID_FILE).display()))
}

/// The pid file goes with the server, unless another server wrote it.
fn remove_pid(dir: &Path) {
    let file = dir.join(PID_FILE);
    let ours = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(file);
    }
}
