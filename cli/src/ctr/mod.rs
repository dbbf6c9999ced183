//! berth-ctr: the direct tool for berth-lifecycled, like containerd's ctr.

mod attach;
mod client;
mod containers;
mod events;
mod images;
mod run;
mod tasks;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::Ctx;

#[derive(Parser)]
#[command(
    name = "berth-ctr",
    version,
    about = "Drive berth-lifecycled directly over gRPC: images, containers, tasks, events"
)]
pub struct Cli {
    /// lifecycled's socket
    #[arg(
        long,
        global = true,
        env = "BERTH_LIFECYCLED",
        default_value = "/run/berth/lifecycled.sock"
    )]
    pub address: PathBuf,
    /// Namespace of everything the command touches
    #[arg(
        short,
        long,
        global = true,
        env = "BERTH_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Versions of berth-ctr and lifecycled, and lifecycled's runtimes
    Version,
    /// Container records
    #[command(subcommand, visible_alias = "c")]
    Containers(containers::Cmd),
    /// Running containers (tasks) and their processes
    #[command(subcommand, visible_alias = "t")]
    Tasks(tasks::Cmd),
    /// Images: pull, push, import, export, tag, remove, inspect
    #[command(subcommand, visible_alias = "i")]
    Images(images::ImagesCmd),
    /// Unpacked layers and containers' writable snapshots
    #[command(subcommand)]
    Snapshots(images::SnapshotsCmd),
    /// Blobs by digest, and garbage collection
    #[command(subcommand)]
    Content(images::ContentCmd),
    /// Create a container from an image, a rootfs or a bundle, start it and attach
    Run(run::Args),
    /// Print events as they happen
    Events(events::Args),
}

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-ctr: starting: {e}");
            return 1;
        }
    };
    match rt.block_on(run_cli(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-ctr: {e:#}");
            1
        }
    }
}

async fn run_cli(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx::connect(&cli.address, &cli.namespace).await?;
    match cli.command {
        Command::Version => {
            let v = ctx.version().await?;
            println!("berth-ctr:        {}", env!("CARGO_PKG_VERSION"));
            println!("berth-lifecycled: {}", v.version);
            println!(
                "runtimes:         {} (default {})",
                v.runtimes.join(", "),
                v.default_runtime
            );
            Ok(0)
        }
        Command::Containers(c) => containers::run(&ctx, c).await,
        Command::Tasks(t) => tasks::run(&ctx, t).await,
        Command::Images(c) => images::run_images(&ctx, c).await,
        Command::Snapshots(c) => images::run_snapshots(&ctx, c).await,
        Command::Content(c) => images::run_content(&ctx, c).await,
        Command::Run(a) => run::run(&ctx, a).await,
        Command::Events(a) => events::run(&ctx, a).await,
    }
}
