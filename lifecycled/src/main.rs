use anyhow::Context;
use clap::Parser;

use berth_lifecycled::args::Args;

use berth_lifecycled::config::Config;
use berth_lifecycled::server::{Options, serve};

fn main() -> anyhow::Result<()> {
    // One malloc arena, not one per thread that allocates: a daemon that
    // sits idle between bursts kept the freed memory of every worker
    // thread's arena (lifecycled after 33 runs: 5.8 MiB of heap, 3.5 MiB
    // with one arena). On two to a few tokio workers the shared arena's
    // lock costs nothing measurable.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args = Args::parse();
    // A bare level keeps the HTTP/2 and gRPC plumbing quiet; a full filter
    // expression is taken as it is.
    let filter = if args.log_level.contains('=') || args.log_level.contains(',') {
        args.log_level.clone()
    } else {
        format!(
            "{},h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn",
            args.log_level
        )
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .with_context(|| format!("--log-level {}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        berth_lifecycled::args::LogFormat::Json => builder.json().init(),
        berth_lifecycled::args::LogFormat::Text => builder.init(),
    }
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    let config = Config::load(&args.config, explicit)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("signal handler");
            let mut int = signal(SignalKind::interrupt()).expect("signal handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping; containers keep running");
        };
        serve(
            Options {
                address: args.address,
                root: args.root,
                state: args.state,
                config,
                config_path: args.config,
                config_required: explicit,
                debug: args.log_level == "debug" || args.log_level == "trace",
            },
            shutdown,
        )
        .await
    })
}
