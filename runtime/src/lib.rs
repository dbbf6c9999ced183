//! berth-runtime: an OCI runtime with runc's command line.
//!
//! `berth-runtime create` clones the container's first process straight into
//! its new namespaces, builds its root there and leaves it waiting on the exec
//! fifo; `start` releases it. State lives under `--root`, one directory per
//! container, and the status is always read from the live system.

pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod console;
pub mod container;
pub mod devices;
pub mod error;
pub mod fsutil;
pub mod hooks;
pub mod json_path;
pub mod logging;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seal;
pub mod signals;
pub mod spec;
pub mod sync;

use cli::{Cli, Command};
use error::Result;

/// Runs one command; the result is the process's exit status.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Create(a) | Command::Run(cli::RunArgs { create: a, .. })
            if matches!(cli.command, Command::Create(_) | Command::Run(_)) =>
        {
            seal::ensure(&container::seal_empty_dir())?;
            container::clear_legacy(&g.root);
            match &cli.command {
                Command::Run(r) => commands::run::run(g, r),
                _ => commands::create::run(g, a),
            }
        }
        Command::Exec(a) => {
            seal::ensure(&container::seal_empty_dir())?;
            commands::exec::run(g, a)
        }
        Command::Create(_) | Command::Run(_) => unreachable!("matched above"),
        Command::Start(a) => commands::start::run(g, a),
        Command::State(a) => commands::state::run(g, a),
        Command::Kill(a) => commands::kill::run(g, a),
        Command::Delete(a) => commands::delete::run(g, a),
        Command::Ps(a) => commands::ps::run(g, a),
        Command::Events(a) => commands::events::run(g, a),
        Command::List(a) => commands::list::run(g, a),
        Command::Features => commands::features::run(),
        Command::Spec(a) => commands::spec::run(a),
        Command::Pause(a) => commands::pause::pause(g, a),
        Command::Resume(a) => commands::pause::resume(g, a),
        Command::Update(a) => commands::update::run(g, a),
    }
}
