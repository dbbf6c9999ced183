//! berth: a Docker-compatible command line for berthd. Commands, flags,
//! output formats and exit statuses follow the Docker CLI so that scripts
//! written for `docker` work with `berth`.

mod attach;
pub mod build;
mod client;
mod config;
mod containers;
mod exec;
pub mod format;
mod images;
mod logs;
mod network;
mod opts;
mod plugin;
mod stats;
mod system;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::Value;

use client::{Client, Error};
use config::Config;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible client for the berth container engine",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    /// Name of the context to use (overrides BERTH_HOST and the current context)
    #[arg(short = 'c', long = "context")]
    context: Option<String>,
    /// Location of client config files
    #[arg(long = "config")]
    config: Option<PathBuf>,
    /// Print each HTTP request and response to stderr
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// Set the logging level (accepted for Docker compatibility)
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Use TLS and verify the daemon (tcp:// hosts; also BERTH_TLS_VERIFY or DOCKER_TLS_VERIFY)
    #[arg(long)]
    tlsverify: bool,
    /// Trust certs signed only by this CA (default: ca.pem in the cert path)
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default: cert.pem in the cert path)
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file (default: key.pem in the cert path)
    #[arg(long)]
    tlskey: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Container(containers::Common),
    /// List containers
    Ps(containers::PsArgs),
    /// Return low-level information on containers, images or volumes
    Inspect(system::InspectArgs),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// List images
    Images(images::ImagesArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    #[command(flatten)]
    Image(images::Common),
    /// Manage containers
    #[command(name = "container", subcommand)]
    ContainerGroup(containers::Group),
    /// Manage images
    #[command(name = "image", subcommand)]
    ImageGroup(images::Group),
    /// Manage volumes
    #[command(subcommand)]
    Volume(system::VolumeCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage plugins
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Manage berth
    #[command(subcommand)]
    System(system::SystemCmd),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Show the berth version information
    Version(system::FormatArg),
    /// Display system-wide information
    Info(system::FormatArg),
    /// Search Docker Hub (or the registry the term names) for images
    Search(images::SearchArgs),
    /// Log in to a registry
    Login(system::LoginArgs),
    /// Log out from a registry
    Logout(system::LogoutArgs),
    /// Manage contexts
    #[command(subcommand)]
    Context(system::ContextCmd),
    /// Print the shell completion script (bash, zsh or fish)
    Completion(CompletionArgs),
}

#[derive(clap::Args)]
struct CompletionArgs {
    /// The shell: bash, zsh or fish
    shell: clap_complete::Shell,
}

#[derive(Subcommand)]
enum BuilderCmd {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(clap::Args)]
struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

async fn builder_prune(ctx: &Ctx, a: BuilderPruneArgs) -> anyhow::Result<i32> {
    if !a.force
        && !system::confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue? [y/N] ",
        )?
    {
        return Ok(0);
    }
    let mut path = format!("/build/prune?all={}", a.all);
    if !a.filter.is_empty() {
        path.push_str(&format!(
            "&filters={}",
            client::q(&filters_json(&a.filter)?)
        ));
    }
    let v = ctx.client.post(&path, None).await?;
    print_pruned(&v, "CachesDeleted", "Deleted build cache objects:");
    Ok(0)
}

/// A prune's answer as Docker prints it: what went, then the space.
pub fn print_pruned(v: &Value, list: &str, heading: &str) {
    let deleted = v[list].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("{heading}");
        for d in &deleted {
            println!("{}", d.as_str().unwrap_or(""));
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size4(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
}

/// What every command needs: the daemon client and the CLI's config.
pub struct Ctx {
    pub client: Client,
    pub cfg: Config,
}

impl Ctx {
    /// The detach keys a command uses: its flag, else config.json's
    /// `detachKeys`, else Docker's ctrl-p,ctrl-q.
    pub fn detach_keys(&self, flag: &str) -> String {
        if !flag.is_empty() {
            return flag.to_string();
        }
        match self.cfg.file["detachKeys"].as_str() {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => "ctrl-p,ctrl-q".to_string(),
        }
    }
}

/// A failure that ends the command with a chosen exit status and message
/// (an empty message prints nothing, e.g. `run` passing on the container's
/// exit status).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub fn exit_with(code: i32, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code,
        message: message.into(),
    })
}

/// `berth ps | head`: when the reader of stdout goes away, end quietly as
/// the Docker CLI does (Go dies of SIGPIPE on fds 1 and 2 only) instead of
/// panicking. SIGPIPE stays ignored so that a daemon closing the API socket
/// is an error we report, not a silent death.
fn quiet_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            use nix::sys::signal::{SigHandler, Signal, raise, signal};
            // SAFETY: restoring the default action of a signal is
            // async-signal-safe and no handler of ours is replaced.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let _ = raise(Signal::SIGPIPE);
            std::process::exit(141);
        }
        default(info);
    }));
}

pub fn main() -> ! {
    quiet_on_broken_stdout();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                // Docker exits 125 when it cannot even parse its flags.
                _ => 125,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => report(&e),
        }
    });
    let _ = std::io::stdout().flush();
    // Do not wait for a blocked stdin reader thread.
    std::process::exit(code);
}

fn report(e: &anyhow::Error) -> i32 {
    if let Some(x) = e.downcast_ref::<Exit>() {
        if !x.message.is_empty() {
            eprintln!("{}", x.message);
        }
        return x.code;
    }
    if let Some(c) = e.downcast_ref::<Error>() {
        eprintln!("{c}");
        return 1;
    }
    eprintln!("{e:#}");
    1
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let dir = cli.config.clone().unwrap_or_else(config::default_dir);
    let cfg = Config::load(&dir)?;
    let debug = cli.debug || std::env::var("BERTH_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0");
    // Contexts and completions are local; they never need the daemon.
    let command = match cli.command {
        Cmd::Context(c) => return system::context(&cfg, c).await,
        Cmd::Completion(a) => {
            // Generated from the same clap definition that parses the
            // command line, so the two never disagree.
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "berth", &mut script);
            return match std::io::stdout().write_all(&script) {
                // A reader that stopped early (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(0),
            };
        }
        other => other,
    };
    let (host, context) = config::resolve(&cfg, cli.host.as_deref(), cli.context.as_deref())?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    // As Docker's CLI: a context's own TLS files when it has them, else the
    // cert path (BERTH_CERT_PATH / DOCKER_CERT_PATH, else the config dir);
    // --tls* flags name files in it or elsewhere.
    let context_tls = context
        .map(|c| cfg.tls_dir(&c))
        .filter(|d| d.join("ca.pem").exists());
    let cert_dir = context_tls
        .clone()
        .or_else(|| env("BERTH_CERT_PATH").map(PathBuf::from))
        .or_else(|| env("DOCKER_CERT_PATH").map(PathBuf::from))
        .unwrap_or_else(|| dir.clone());
    let tls = client::TlsOptions {
        verify: cli.tlsverify
            || context_tls.is_some()
            || env("BERTH_TLS_VERIFY").is_some()
            || env("DOCKER_TLS_VERIFY").is_some(),
        ca: cli
            .tlscacert
            .clone()
            .unwrap_or_else(|| cert_dir.join("ca.pem")),
        cert: cli
            .tlscert
            .clone()
            .unwrap_or_else(|| cert_dir.join("cert.pem")),
        key: cli
            .tlskey
            .clone()
            .unwrap_or_else(|| cert_dir.join("key.pem")),
    };
    let client = Client::new(&host, debug, Some(&tls))?;
    let ctx = Ctx { client, cfg };
    match command {
        Cmd::Container(c) => containers::common(&ctx, c).await,
        Cmd::ContainerGroup(g) => containers::group(&ctx, g).await,
        Cmd::Ps(a) => containers::ps(&ctx, a).await,
        Cmd::Inspect(a) => system::inspect(&ctx, a, None).await,
        Cmd::Build(a) => build::build(&ctx, *a).await,
        Cmd::Builder(BuilderCmd::Prune(a)) => builder_prune(&ctx, a).await,
        Cmd::Images(a) => images::images(&ctx, a).await,
        Cmd::Rmi(a) => images::rmi(&ctx, a).await,
        Cmd::Image(c) => images::common(&ctx, c).await,
        Cmd::ImageGroup(g) => images::group(&ctx, g).await,
        Cmd::Volume(v) => system::volume(&ctx, v).await,
        Cmd::Network(n) => network::network(&ctx, n).await,
        Cmd::Plugin(p) => plugin::plugin(&ctx, p).await,
        Cmd::Port(a) => network::port(&ctx, a).await,
        Cmd::System(s) => system::system(&ctx, s).await,
        Cmd::Events(a) => system::events(&ctx, a).await,
        Cmd::Version(a) => system::version(&ctx, a).await,
        Cmd::Info(a) => system::info(&ctx, a).await,
        Cmd::Search(a) => images::search(&ctx, a).await,
        Cmd::Login(a) => system::login(&ctx, a).await,
        Cmd::Logout(a) => system::logout(&ctx, a).await,
        Cmd::Context(_) | Cmd::Completion(_) => unreachable!("handled above"),
    }
}

/// Runs `f` for each name, printing the name on success and the error on
/// failure, as Docker's multi-target commands (stop, rm, …) do; exit 1 if
/// any failed.
pub async fn for_each<F, Fut>(names: &[String], quiet: bool, mut f: F) -> anyhow::Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => {
                if !quiet {
                    println!("{n}");
                }
            }
            Err(e) => {
                failed = true;
                report(&e);
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Docker's (go-units) HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = (s as f64 / 3600.0).round() as i64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Docker's HumanSizeWithPrecision(size, 3): decimal units, three
/// significant digits, trailing zeros dropped.
/// An address and a port as Go's net.JoinHostPort writes them: an IPv6
/// address in brackets (`[::]:8080`), as the docker CLI shows ports.
pub fn join_host_port(ip: &str, port: impl std::fmt::Display) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A size as the docker CLI writes it in its lists (go-units' decimal
/// units, 3 significant digits: `1.98MB`).
pub fn human_size(size: f64) -> String {
    human_size_with(size, 3)
}

/// A size as the docker CLI writes totals (`system df`, prune's reclaimed
/// space): 4 significant digits (`1.984MB`).
pub fn human_size4(size: f64) -> String {
    human_size_with(size, 4)
}

fn human_size_with(size: f64, precision: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    // A sum of nothing is -0.0, which must not print as "-0B".
    let mut v = if size > 0.0 { size } else { 0.0 };
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let whole = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let digits = precision.saturating_sub(whole);
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// JSON indented as `docker inspect` prints it.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Docker's short IDs: 12 hex digits without the algorithm.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// `--filter k=v` flags into the API's `filters` JSON.
pub fn filters_json(filters: &[String]) -> anyhow::Result<String> {
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> =
        std::collections::BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("bad format of filter (expected name=value)");
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(serde_json::to_string(&m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(70), "About a minute");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(4_261_000.0), "4.26MB");
        assert_eq!(human_size(1_000.0), "1kB");
        assert_eq!(human_size(123_456_789.0), "123MB");
        assert_eq!(human_size(12_500.0), "12.5kB");
        assert_eq!(human_size4(1_984_172.0), "1.984MB");
        assert_eq!(human_size4(2_130_000.0), "2.13MB");
        assert_eq!(human_size4(123_456_789.0), "123.5MB");
        assert_eq!(human_size4(-0.0), "0B");
    }

    #[test]
    fn filters_become_the_apis_json() {
        let j = filters_json(&["label=a=b".into(), "status=exited".into()]).unwrap();
        assert_eq!(j, r#"{"label":{"a=b":true},"status":{"exited":true}}"#);
        assert!(filters_json(&["nonsense".into()]).is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
