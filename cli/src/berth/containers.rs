//! Container commands: run, create, start, stop, kill, restart, pause,
//! unpause, wait, rm, ps, logs, rename, update, top, diff, export, attach,
//! cp, prune.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};

use super::client::{Error, empty, q};
use super::opts::ContainerOpts;
use super::{Ctx, exit_with, for_each, format, human_duration, human_size, now_unix, short_id};
use crate::berth::attach::{self, Ended};

#[derive(Subcommand)]
pub enum Common {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Pause all processes within one or more containers
    Pause(Names),
    /// Unpause all processes within one or more containers
    Unpause(Names),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Names),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(OneName),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    Exec(super::exec::ExecArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(super::stats::StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
}

#[derive(Subcommand)]
pub enum Group {
    #[command(flatten)]
    Common(Common),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Display detailed information on one or more containers
    Inspect(super::system::InspectArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    rm: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "", hide_default_value = true)]
    detach_keys: String,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    opts: ContainerOpts,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    opts: ContainerOpts,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "", hide_default_value = true)]
    detach_keys: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct Names {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct OneName {
    container: String,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    link: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    container: String,
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct TopArgs {
    container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    container: String,
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "", hide_default_value = true)]
    detach_keys: String,
    container: String,
}

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or - (a tar archive on stdin)
    src: String,
    /// DEST_PATH, CONTAINER:DEST_PATH or - (a tar archive on stdout)
    dst: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub async fn common(ctx: &Ctx, c: Common) -> Result<i32> {
    match c {
        Common::Run(a) => run(ctx, *a).await,

        Common::Create(a) => {
            let body = a
                .opts
                .body()
                .map_err(|e| exit_with(125, format!("berth: {e:#}\nSee 'berth create --help'.")))?;
            let id = create(ctx, &a.opts, body, "create").await?;
            println!("{id}");
            Ok(0)
        }
        Common::Start(a) => start(ctx, a).await,
        Common::Stop(a) => {
            let mut query = Vec::new();
            if let Some(t) = a.time {
                query.push(format!("t={t}"));
            }
            if let Some(s) = &a.signal {
                query.push(format!("signal={}", q(s)));
            }
            let query = query.join("&");
            for_each(&a.containers, false, |n| {
                let query = query.clone();
                async move {
                    ctx.client
                        .post(&format!("/containers/{}/stop?{query}", q(&n)), None)
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Common::Restart(a) => {
            let query = a.time.map(|t| format!("t={t}")).unwrap_or_default();
            for_each(&a.containers, false, |n| {
                let query = query.clone();
                async move {
                    ctx.client
                        .post(&format!("/containers/{}/restart?{query}", q(&n)), None)
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Common::Kill(a) => {
            for_each(&a.containers, false, |n| {
                let sig = a.signal.clone();
                async move {
                    ctx.client
                        .post(
                            &format!("/containers/{}/kill?signal={}", q(&n), q(&sig)),
                            None,
                        )
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Common::Pause(a) => simple(ctx, &a.containers, "pause").await,
        Common::Unpause(a) => simple(ctx, &a.containers, "unpause").await,
        Common::Wait(a) => {
            for_each(&a.containers, true, |n| async move {
                let v = ctx
                    .client
                    .post(&format!("/containers/{}/wait", q(&n)), None)
                    .await?;
                println!("{}", v["StatusCode"].as_i64().unwrap_or(-1));
                Ok(())
            })
            .await
        }
        Common::Rm(a) => {
            let query = format!("force={}&v={}&link={}", a.force, a.volumes, a.link);
            for_each(&a.containers, false, |n| {
                let query = query.clone();
                async move {
                    ctx.client
                        .json(
                            Method::DELETE,
                            &format!("/containers/{}?{query}", q(&n)),
                            None,
                        )
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Common::Logs(a) => logs(ctx, a).await,
        Common::Rename(a) => {
            ctx.client
                .post(
                    &format!(
                        "/containers/{}/rename?name={}",
                        q(&a.container),
                        q(&a.new_name)
                    ),
                    None,
                )
                .await?;
            Ok(0)
        }
        Common::Update(a) => update(ctx, a).await,
        Common::Top(a) => top(ctx, a).await,
        Common::Diff(a) => {
            let v = ctx
                .client
                .get(&format!("/containers/{}/changes", q(&a.container)))
                .await?;
            for c in v.as_array().into_iter().flatten() {
                let kind = match c["Kind"].as_i64() {
                    Some(1) => "A",
                    Some(2) => "D",
                    _ => "C",
                };
                println!("{kind} {}", c["Path"].as_str().unwrap_or(""));
            }
            Ok(0)
        }
        Common::Export(a) => {
            let resp = ctx
                .client
                .request(
                    Method::GET,
                    &format!("/containers/{}/export", q(&a.container)),
                    empty(),
                    &[],
                )
                .await?;
            super::images::body_to_output(resp.into_body(), a.output.as_deref()).await?;
            Ok(0)
        }
        Common::Attach(a) => attach_cmd(ctx, a).await,
        Common::Exec(a) => super::exec::exec(ctx, a).await,
        Common::Stats(a) => super::stats::stats(ctx, a).await,
        Common::Cp(a) => cp(ctx, a).await,
    }
}

pub async fn group(ctx: &Ctx, g: Group) -> Result<i32> {
    match g {
        Group::Common(c) => common(ctx, c).await,
        Group::Ls(a) => ps(ctx, a).await,

        Group::Inspect(a) => super::system::inspect(ctx, a, Some("container")).await,
        Group::Prune(a) => {
            if !a.force
                && !super::system::confirm(
                    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ",
                )?
            {
                return Ok(0);
            }
            let f = super::filters_json(&a.filter)?;
            let v = ctx
                .client
                .post(&format!("/containers/prune?filters={}", q(&f)), None)
                .await?;
            super::print_pruned(&v, "ContainersDeleted", "Deleted Containers:");
            Ok(0)
        }
    }
}

async fn simple(ctx: &Ctx, names: &[String], op: &str) -> Result<i32> {
    for_each(names, false, |n| async move {
        ctx.client
            .post(&format!("/containers/{}/{op}", q(&n)), None)
            .await?;
        Ok(())
    })
    .await
}

/// `name[:tag]` as Docker's CLI prints it in "Unable to find image".
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Creates the container, pulling the image first when it is missing (or
/// always, with --pull=always). Returns the container's ID.
async fn create(ctx: &Ctx, opts: &ContainerOpts, body: Value, cmd: &str) -> Result<String> {
    let fail = |e: anyhow::Error| -> anyhow::Error {
        if e.downcast_ref::<super::Exit>().is_some() {
            return e;
        }
        exit_with(
            125,
            format!("berth: {e:#}\n\nRun 'berth {cmd} --help' for more information"),
        )
    };
    if !["always", "missing", "never"].contains(&opts.pull.as_str()) {
        return Err(fail(anyhow::anyhow!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            opts.pull
        )));
    }
    if let Some(path) = &opts.cidfile
        && std::path::Path::new(path).exists()
    {
        return Err(fail(anyhow::anyhow!(
            "container ID file found, make sure the other container isn't running or delete {path}"
        )));
    }
    let mut path = "/containers/create".to_string();
    if let Some(n) = &opts.name {
        path.push_str(&format!("?name={}", q(n)));
    }
    if opts.pull == "always" {
        super::images::pull(ctx, &opts.image, opts.quiet, true)
            .await
            .map_err(fail)?;
    }
    let v = match ctx.client.post(&path, Some(&body)).await {
        Ok(v) => v,
        Err(Error::Daemon {
            status: 404,
            message,
        }) if message.contains("No such image") && opts.pull == "missing" => {
            eprintln!("Unable to find image '{}' locally", with_tag(&opts.image));
            super::images::pull(ctx, &opts.image, opts.quiet, true)
                .await
                .map_err(fail)?;
            ctx.client
                .post(&path, Some(&body))
                .await
                .map_err(|e| fail(e.into()))?
        }
        Err(e) => return Err(fail(e.into())),
    };
    for w in v["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = v["Id"]
        .as_str()
        .context("the daemon's answer has no Id")?
        .to_string();
    if let Some(path) = &opts.cidfile {
        std::fs::write(path, &id)
            .with_context(|| format!("writing the container ID file {path}"))?;
    }
    Ok(id)
}

/// Docker's exit statuses for a container that could not start: 127 when
/// the command does not exist, 126 when it cannot be executed, else 125.
fn start_failure(e: Error, cmd: &str) -> anyhow::Error {
    let msg = e.to_string();
    let code =
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            125
        };
    exit_with(
        code,
        format!("berth: {msg}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

/// The wait request, made before the container starts so that no exit can
/// be missed; resolves to the exit status.
async fn register_wait(
    ctx: &Ctx,
    id: &str,
    condition: &str,
) -> Result<tokio::task::JoinHandle<i32>> {
    let resp = ctx
        .client
        .request(
            Method::POST,
            &format!("/containers/{}/wait?condition={condition}", q(id)),
            empty(),
            &[],
        )
        .await?;
    Ok(tokio::spawn(async move {
        let Ok(body) = resp.into_body().collect().await else {
            return 125;
        };
        let v: Value = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
        if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
            eprintln!("berth: {m}");
        }
        v["StatusCode"].as_i64().map(|c| c as i32).unwrap_or(125)
    }))
}

async fn run(ctx: &Ctx, mut a: RunArgs) -> Result<i32> {
    a.detach_keys = ctx.detach_keys(&a.detach_keys);
    let usage = |e: anyhow::Error| exit_with(125, format!("berth: {e:#}\nSee 'berth run --help'."));
    let mut body = a.opts.body().map_err(usage)?;
    if a.detach && !a.opts.attach.is_empty() {
        return Err(usage(anyhow::anyhow!("Conflicting options: -a and -d")));
    }
    if a.rm {
        body["HostConfig"]["AutoRemove"] = json!(true);
    }
    if a.detach {
        body["AttachStdin"] = json!(false);
        body["AttachStdout"] = json!(false);
        body["AttachStderr"] = json!(false);
        body["StdinOnce"] = json!(false);
    }
    if !a.detach {
        check_tty(body["AttachStdin"].as_bool().unwrap_or(false), a.opts.tty)?;
    }
    let id = create(ctx, &a.opts, body.clone(), "run").await?;
    if a.detach {
        ctx.client
            .post(&format!("/containers/{id}/start"), None)
            .await
            .map_err(|e| start_failure(e, "run"))?;
        println!("{id}");
        return Ok(0);
    }
    let tty = a.opts.tty;
    let stdin = body["AttachStdin"].as_bool().unwrap_or(false);
    let attach_path = format!(
        "/containers/{id}/attach?stream=1&stdin={}&stdout={}&stderr={}{}",
        stdin as u8,
        body["AttachStdout"].as_bool().unwrap_or(true) as u8,
        body["AttachStderr"].as_bool().unwrap_or(true) as u8,
        detach_keys_param(&a.detach_keys),
    );
    let conn = ctx.client.hijack(&attach_path, None).await?;
    let waiter = register_wait(ctx, &id, if a.rm { "removed" } else { "next-exit" }).await?;
    let _signals = (!tty && a.sig_proxy).then(|| attach::proxy_signals(ctx, id.clone()));
    ctx.client
        .post(&format!("/containers/{id}/start"), None)
        .await
        .map_err(|e| start_failure(e, "run"))?;
    let _resize = tty.then(|| attach::follow_resize(ctx, format!("/containers/{id}")));
    if attach::session(conn, tty, stdin, &a.detach_keys).await? == Ended::Detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    Ok(waiter.await.unwrap_or(125))
}

/// A terminal for the container needs one on our side when we feed it.
fn check_tty(stdin: bool, tty: bool) -> Result<()> {
    if stdin && tty && !crate::term::is_tty(0) {
        bail!("the input device is not a TTY");
    }
    Ok(())
}

/// The user's detach keys go to the daemon too, so that it leaves the
/// container's stdin open when we detach.
fn detach_keys_param(keys: &str) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!("&detachKeys={}", q(keys))
    }
}

async fn start(ctx: &Ctx, mut a: StartArgs) -> Result<i32> {
    a.detach_keys = ctx.detach_keys(&a.detach_keys);
    if !a.attach && !a.interactive {
        return for_each(&a.containers, false, |n| async move {
            ctx.client
                .post(&format!("/containers/{}/start", q(&n)), None)
                .await?;
            Ok(())
        })
        .await;
    }
    if a.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let name = &a.containers[0];
    let info = ctx
        .client
        .get(&format!("/containers/{}/json", q(name)))
        .await?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    check_tty(stdin, tty)?;
    let conn = ctx
        .client
        .hijack(
            &format!(
                "/containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1{}",
                stdin as u8,
                detach_keys_param(&a.detach_keys),
            ),
            None,
        )
        .await?;
    let auto_remove = info["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false);
    let waiter = register_wait(ctx, &id, if auto_remove { "removed" } else { "next-exit" }).await?;
    let _signals = (!tty).then(|| attach::proxy_signals(ctx, id.clone()));
    ctx.client
        .post(&format!("/containers/{id}/start"), None)
        .await
        .map_err(|e| start_failure(e, "start"))?;
    let _resize = tty.then(|| attach::follow_resize(ctx, format!("/containers/{id}")));
    if attach::session(conn, tty, stdin, &a.detach_keys).await? == Ended::Detached {
        return Ok(0);
    }
    Ok(waiter.await.unwrap_or(125))
}

async fn attach_cmd(ctx: &Ctx, mut a: AttachArgs) -> Result<i32> {
    a.detach_keys = ctx.detach_keys(&a.detach_keys);
    let info = ctx
        .client
        .get(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    check_tty(stdin, tty)?;
    let conn = ctx
        .client
        .hijack(
            &format!(
                "/containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1{}",
                stdin as u8,
                detach_keys_param(&a.detach_keys),
            ),
            None,
        )
        .await?;
    let _resize = tty.then(|| attach::follow_resize(ctx, format!("/containers/{id}")));
    let _signals = (!tty && a.sig_proxy).then(|| attach::proxy_signals(ctx, id.clone()));
    if attach::session(conn, tty, stdin, &a.detach_keys).await? == Ended::Detached {
        return Ok(0);
    }
    // As Docker does: the exit status of the container we watched end.
    let v = ctx
        .client
        .post(&format!("/containers/{id}/wait"), None)
        .await;
    Ok(v.ok().and_then(|v| v["StatusCode"].as_i64()).unwrap_or(0) as i32)
}

/// Docker's --since/--until: a duration back from now, a unix time, or an
/// RFC 3339 date, sent as unix seconds.
pub fn timestamp(s: &str) -> Result<String> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    // Seconds and nanoseconds, as the docker CLI sends them: `--until 0s`
    // is now, not the start of this second.
    let unix = |t: std::time::SystemTime| {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    if let Ok(d) = humantime::parse_duration(s) {
        let now = std::time::SystemTime::now();
        return Ok(unix(now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH)));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(unix(t));
    }
    bail!("invalid value for \"since\": \"{s}\" is not a duration, a unix time or an RFC 3339 date")
}

async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<i32> {
    let info = ctx
        .client
        .get(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    if a.follow && !tty {
        let ask = super::logs::Ask {
            query: format!(
                "stdout=1&stderr=1&follow=1&details={}{}",
                a.details as u8,
                match &a.until {
                    Some(u) => format!("&until={}", timestamp(u)?),
                    None => String::new(),
                }
            ),
            tail: a.tail.clone(),
            since: a.since.as_deref().map(timestamp).transpose()?,
            timestamps: a.timestamps,
        };
        let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
        return super::logs::follow(ctx, &id, &ask).await;
    }
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}&details={}&tail={}",
        q(&a.container),
        a.follow as u8,
        a.timestamps as u8,
        a.details as u8,
        q(&a.tail)
    );
    if let Some(s) = &a.since {
        path.push_str(&format!("&since={}", timestamp(s)?));
    }
    if let Some(s) = &a.until {
        path.push_str(&format!("&until={}", timestamp(s)?));
    }
    let resp = ctx.client.request(Method::GET, &path, empty(), &[]).await?;
    let reader = BodyReader::new(resp.into_body());
    if tty {
        attach::raw(reader).await?;
    } else {
        attach::demux(reader).await?;
    }
    Ok(0)
}

async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<i32> {
    use super::opts::bytes;
    let mut body = json!({});
    if let Some(m) = &a.memory {
        body["Memory"] = json!(bytes(m)?);
    }
    if let Some(m) = &a.memory_swap {
        body["MemorySwap"] = json!(if m == "-1" { -1 } else { bytes(m)? });
    }
    if let Some(m) = &a.memory_reservation {
        body["MemoryReservation"] = json!(bytes(m)?);
    }
    if let Some(c) = a.cpus {
        body["NanoCpus"] = json!((c * 1e9) as i64);
    }
    if let Some(c) = a.cpu_shares {
        body["CpuShares"] = json!(c);
    }
    if let Some(c) = &a.cpuset_cpus {
        body["CpusetCpus"] = json!(c);
    }
    if let Some(p) = a.pids_limit {
        body["PidsLimit"] = json!(p);
    }
    if let Some(r) = &a.restart {
        let (name, count) = r.split_once(':').unwrap_or((r, "0"));
        let count: i64 = count
            .parse()
            .context("maximum retry count must be an integer")?;
        body["RestartPolicy"] = json!({"Name": name, "MaximumRetryCount": count});
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        bail!("you must provide one or more flags when using this command");
    }
    let body = &body;
    for_each(&a.containers, false, |n| async move {
        let v = ctx
            .client
            .post(&format!("/containers/{}/update", q(&n)), Some(body))
            .await?;
        for w in v["Warnings"].as_array().into_iter().flatten() {
            eprintln!("WARNING: {}", w.as_str().unwrap_or(""));
        }
        Ok(())
    })
    .await
}

async fn top(ctx: &Ctx, a: TopArgs) -> Result<i32> {
    let mut path = format!("/containers/{}/top", q(&a.container));
    if !a.ps_args.is_empty() {
        path.push_str(&format!("?ps_args={}", q(&a.ps_args.join(" "))));
    }
    let v = ctx.client.get(&path).await?;
    let mut lines = Vec::new();
    let titles: Vec<String> = v["Titles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.as_str().unwrap_or("").to_string())
        .collect();
    lines.push(titles.join("\t"));
    for p in v["Processes"].as_array().into_iter().flatten() {
        let row: Vec<String> = p
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect();
        lines.push(row.join("\t"));
    }
    // `docker top` writes its table with cells at least 20 wide.
    print!("{}", format::align_to(&lines, 20));
    Ok(0)
}

/// A row of `ps` with the fields Docker's templates know.
/// The fields of `GET /containers/json` that `ps` shows.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct PsEntry {
    id: String,
    names: Vec<String>,
    image: String,
    command: String,
    created: i64,
    ports: Vec<PsPort>,
    labels: Option<BTreeMap<String, String>>,
    state: String,
    status: String,
    size_rw: Option<f64>,
    size_root_fs: Option<f64>,
    mounts: Vec<PsMount>,
    network_settings: PsNetworks,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PsPort {
    #[serde(rename = "IP")]
    ip: Option<String>,
    #[serde(rename = "PrivatePort")]
    private_port: i64,
    #[serde(rename = "PublicPort")]
    public_port: Option<i64>,
    #[serde(rename = "Type")]
    typ: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PsMount {
    name: Option<String>,
    source: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PsNetworks {
    networks: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

/// The row `ps` renders for one container; only the fields `want`s, since
/// some cost more than the rest of `ps -a` over a thousand containers.
fn ps_row(c: &PsEntry, no_trunc: bool, want: &dyn Fn(&str) -> bool) -> Value {
    let mut row = serde_json::Map::new();
    let mut put = |k: &str, v: &dyn Fn() -> Value| {
        if want(k) {
            row.insert(k.to_string(), v());
        }
    };
    put("ID", &|| {
        if no_trunc {
            c.id.clone().into()
        } else {
            short_id(&c.id).into()
        }
    });
    put("Image", &|| {
        if !no_trunc && c.image.starts_with("sha256:") {
            short_id(&c.image).into()
        } else {
            c.image.clone().into()
        }
    });
    put("Command", &|| {
        let mut command = c.command.clone();
        if !no_trunc && command.chars().count() > 20 {
            command = command.chars().take(19).collect::<String>() + "…";
        }
        format!("\"{command}\"").into()
    });
    put("CreatedAt", &|| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.created.max(0) as u64),
        )
        .to_string()
        .replace('T', " ")
        .replace('Z', " +0000 UTC")
        .into()
    });
    put("RunningFor", &|| {
        format!("{} ago", human_duration(now_unix() - c.created)).into()
    });
    put("Ports", &|| {
        c.ports
            .iter()
            .map(|p| {
                let proto = p.typ.as_deref().unwrap_or("tcp");
                let private = p.private_port;
                match p.public_port {
                    Some(public) => format!(
                        "{}->{private}/{proto}",
                        super::join_host_port(p.ip.as_deref().unwrap_or("0.0.0.0"), public)
                    ),
                    None => format!("{private}/{proto}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
            .into()
    });
    put("State", &|| c.state.clone().into());
    put("Status", &|| c.status.clone().into());
    put("Size", &|| {
        match (c.size_rw, c.size_root_fs) {
            (Some(rw), Some(root)) => {
                format!("{} (virtual {})", human_size(rw), human_size(root))
            }
            (Some(rw), None) => human_size(rw),
            _ => String::new(),
        }
        .into()
    });
    put("Names", &|| {
        c.names
            .iter()
            .map(|n| n.trim_start_matches('/'))
            .collect::<Vec<_>>()
            .join(",")
            .into()
    });
    put("Labels", &|| {
        c.labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
            .into()
    });
    put("Mounts", &|| {
        c.mounts
            .iter()
            .map(|m| {
                m.name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&m.source)
            })
            .collect::<Vec<_>>()
            .join(",")
            .into()
    });
    put("Networks", &|| {
        c.network_settings
            .networks
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
            .into()
    });
    Value::Object(row)
}

pub async fn ps(ctx: &Ctx, a: PsArgs) -> Result<i32> {
    let mut path = format!(
        "/containers/json?all={}&size={}",
        (a.all || a.latest || a.last > 0) as u8,
        a.size as u8
    );
    let limit = if a.latest { 1 } else { a.last };
    if limit > 0 {
        path.push_str(&format!("&limit={limit}"));
    }
    if !a.filter.is_empty() {
        path.push_str(&format!("&filters={}", q(&super::filters_json(&a.filter)?)));
    }
    let list: Vec<PsEntry> = ctx.client.get_as(&path).await?;
    if a.quiet {
        for c in &list {
            let id = c.id.as_str();
            println!(
                "{}",
                if a.no_trunc {
                    id.to_string()
                } else {
                    short_id(id)
                }
            );
        }
        return Ok(0);
    }

    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let fmt = format::template(a.format.as_deref(), default);
    let f = format::parse(&fmt, &format::header)?;
    let want = |k: &str| f.uses(k);
    let rows: Vec<Value> = list.iter().map(|c| ps_row(c, a.no_trunc, &want)).collect();
    f.print(&rows)?;
    Ok(0)
}

/// An HTTP body as an AsyncRead, for the frame readers.
pub struct BodyReader {
    body: hyper::body::Incoming,
    buf: bytes::Bytes,
}

impl BodyReader {
    pub fn new(body: hyper::body::Incoming) -> Self {
        BodyReader {
            body,
            buf: bytes::Bytes::new(),
        }
    }
}

impl tokio::io::AsyncRead for BodyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use hyper::body::Body;
        use std::task::Poll;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.remaining());
                let chunk = self.buf.split_to(n);
                out.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf = d;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Where one side of `cp` is.
enum CpPath {
    Local(String),
    Container(String, String),
}

fn cp_path(s: &str) -> CpPath {
    // As Docker: a path that starts like a path is local even with a colon.
    if s.starts_with('/') || s.starts_with('.') || s == "-" {
        return CpPath::Local(s.to_string());
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => CpPath::Container(c.to_string(), p.to_string()),
        _ => CpPath::Local(s.to_string()),
    }
}

/// The stat Docker's archive endpoint returns in a header.
fn path_stat(resp: &hyper::Response<hyper::body::Incoming>) -> Value {
    use base64::Engine;
    resp.headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Go's os.ModeDir, as the stat header carries modes.
const GO_MODE_DIR: u64 = 1 << 31;

async fn cp(ctx: &Ctx, a: CpArgs) -> Result<i32> {
    match (cp_path(&a.src), cp_path(&a.dst)) {
        (CpPath::Container(..), CpPath::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (CpPath::Local(_), CpPath::Local(_)) => bail!("must specify at least one container source"),
        (CpPath::Container(c, p), CpPath::Local(dst)) => {
            let path = format!("/containers/{}/archive?path={}", q(&c), q(&p));
            let resp = ctx.client.request(Method::GET, &path, empty(), &[]).await?;
            if dst == "-" {
                super::images::body_to_output(resp.into_body(), None).await?;
                return Ok(0);
            }
            let stat = path_stat(&resp);
            let root = stat["name"].as_str().unwrap_or("").to_string();
            let src_is_dir = stat["mode"].as_u64().unwrap_or(0) & GO_MODE_DIR != 0;
            let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
            let archive = a.archive;
            let extract = tokio::task::spawn_blocking(move || {
                extract_copy(
                    ChannelReader {
                        rx,
                        cur: bytes::Bytes::new(),
                    },
                    &root,
                    src_is_dir,
                    &dst,
                    archive,
                )
                .map(|n| (n, dst))
            });
            let mut body = resp.into_body();
            while let Some(f) = body.frame().await {
                let f = f.context("reading the archive from the daemon")?;
                if let Ok(d) = f.into_data()
                    && tx.send(d).is_err()
                {
                    break;
                }
            }
            drop(tx);
            let (n, dst) = extract.await.context("extracting the archive")??;
            if !a.quiet {
                eprintln!("Successfully copied {} to {dst}", human_size(n as f64));
            }
            Ok(0)
        }
        (CpPath::Local(src), CpPath::Container(c, p)) => {
            // The archive streams to the daemon as it is made (stdin's as
            // it is read): nothing of it is held in memory.
            let (body, made, put_at) = if src == "-" {
                let (body, made) = stream_from(|w| {
                    std::io::copy(&mut std::io::stdin().lock(), w)?;
                    Ok(())
                });
                (body, made, p.clone())
            } else {
                let meta = if a.follow_link {
                    std::fs::metadata(&src)
                } else {
                    std::fs::symlink_metadata(&src)
                }
                .map_err(|e| anyhow::anyhow!("lstat {src}: {}", super::system::io_reason(&e)))?;
                let head = ctx
                    .client
                    .request(
                        Method::HEAD,
                        &format!("/containers/{}/archive?path={}", q(&c), q(&p)),
                        empty(),
                        &[],
                    )
                    .await;
                let dst_stat = match head {
                    Ok(r) => Some(path_stat(&r)),
                    Err(Error::Daemon { status: 404, .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                let dst_is_dir = dst_stat
                    .as_ref()
                    .is_some_and(|s| s["mode"].as_u64().unwrap_or(0) & GO_MODE_DIR != 0);
                let base = |x: &str| {
                    std::path::Path::new(x.trim_end_matches('/'))
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| ".".into())
                };
                let (name, at) = if dst_is_dir {
                    (base(&src), p.clone())
                } else {
                    if dst_stat.is_some() && meta.is_dir() {
                        bail!("cannot copy a directory to a file");
                    }
                    if dst_stat.is_none() && p.ends_with('/') && !meta.is_dir() {
                        bail!("destination directory \"{p}\" does not exist");
                    }
                    let parent = std::path::Path::new(p.trim_end_matches('/'))
                        .parent()
                        .map(|x| x.to_string_lossy().into_owned())
                        .filter(|x| !x.is_empty())
                        .unwrap_or_else(|| "/".into());
                    (base(&p), parent)
                };
                let src2 = src.clone();
                let follow = a.follow_link;
                let (body, made) = stream_from(move |w| write_tar(w, &src2, &name, follow));
                (body, made, at)
            };
            let query = format!(
                "/containers/{}/archive?path={}&noOverwriteDirNonDir=true&copyUIDGID={}",
                q(&c),
                q(&put_at),
                a.archive
            );
            let sent = ctx
                .client
                .request(
                    Method::PUT,
                    &query,
                    body,
                    &[("Content-Type", "application/x-tar".into())],
                )
                .await;
            // The archive's own failure (an unreadable file) says more than
            // the cut-off request it caused.
            let size = made.await.context("building the archive")??;
            sent?;
            if !a.quiet && src != "-" {
                eprintln!(
                    "Successfully copied {} to {}:{}",
                    human_size(size as f64),
                    c,
                    p
                );
            }
            Ok(0)
        }
    }
}

/// Bytes from the async side, read synchronously by the tar extractor.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = self.cur.len().min(out.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Extracts what `docker cp CONTAINER:SRC DST` received: into DST when it
/// is a directory, else as DST itself (the archive's root renamed).
fn extract_copy<R: std::io::Read>(
    r: R,
    root: &str,
    src_is_dir: bool,
    dst: &str,
    archive: bool,
) -> Result<u64> {
    use std::path::{Component, Path, PathBuf};
    let dst_path = Path::new(dst);
    let meta = std::fs::metadata(dst_path).ok();
    let (dir, rename): (PathBuf, Option<String>) = match meta {
        Some(m) if m.is_dir() => (dst_path.to_path_buf(), None),
        Some(_) if src_is_dir => bail!("cannot copy a directory to a file"),
        _ => {
            if dst.ends_with('/') {
                bail!("destination directory \"{dst}\" does not exist");
            }
            let parent = dst_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!(
                    "destination directory \"{}\" does not exist",
                    parent.display()
                );
            }
            let name = dst_path
                .file_name()
                .context("invalid destination path")?
                .to_string_lossy()
                .into_owned();
            (parent.to_path_buf(), Some(name))
        }
    };
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(archive);
    ar.set_overwrite(true);
    let mut total = 0u64;
    let mut dirs = Vec::new();
    // A copy of "dir/." is named "." by the daemon: every entry is under
    // the destination's name (the docker CLI renames "./…" so).
    let dot_root = root == ".";
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut comps = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir));
        let mut rel = PathBuf::new();
        if dot_root {
            if let Some(n) = &rename {
                rel.push(n);
            }
        } else if let Some(first) = comps.next() {
            match (&rename, first) {
                (Some(n), Component::Normal(f)) if f.to_string_lossy() == root => rel.push(n),
                (_, Component::Normal(f)) => rel.push(f),
                _ => bail!("the archive holds an unsafe path: {}", path.display()),
            }
        }
        for c in comps {
            match c {
                Component::Normal(f) => rel.push(f),
                _ => bail!("the archive holds an unsafe path: {}", path.display()),
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        total += entry.size();
        let target = dir.join(&rel);
        entry
            .unpack(&target)
            .with_context(|| format!("extracting {}", target.display()))?;
        if entry.header().entry_type().is_dir()
            && let Ok(mtime) = entry.header().mtime()
        {
            dirs.push((target, mtime));
        }
    }
    // A directory's time is its entry's once what it holds is written,
    // deepest first, as tar does.
    for (d, mtime) in dirs.into_iter().rev() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.set_times(std::fs::FileTimes::new().set_modified(t));
        }
    }
    Ok(total)
}

/// A tar of SRC with its root entry named `name`.
fn write_tar(w: &mut dyn std::io::Write, src: &str, name: &str, follow: bool) -> Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(follow);
    let meta = if follow {
        std::fs::metadata(src)?
    } else {
        std::fs::symlink_metadata(src)?
    };
    if meta.is_dir() {
        b.append_dir_all(name, src)
            .with_context(|| format!("archiving {src}"))?;
    } else {
        b.append_path_with_name(src, name)
            .with_context(|| format!("archiving {src}"))?;
    }
    b.finish()?;
    Ok(())
}

/// A request body written by `fill` on a blocking thread as it is sent;
/// the task answers how many bytes went. A failure of `fill` cuts the
/// body short (the daemon then refuses the archive) and is the task's.
fn stream_from(
    fill: impl FnOnce(&mut dyn std::io::Write) -> Result<()> + Send + 'static,
) -> (super::client::Body, tokio::task::JoinHandle<Result<u64>>) {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let made = tokio::task::spawn_blocking(move || {
        let mut w = ChunkSender {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
        };
        let filled = fill(&mut w).and_then(|()| Ok(std::io::Write::flush(&mut w)?));
        if let Err(e) = &filled {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        filled.map(|()| w.sent)
    });
    let frames =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r.map(hyper::body::Frame::data));
    (
        BodyExt::boxed(http_body_util::StreamBody::new(frames)),
        made,
    )
}

const CHUNK: usize = 256 * 1024;

/// Bytes written on a blocking thread, sent on in chunks.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    sent: u64,
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(bytes::Bytes::from(chunk)))
            .map_err(|_| std::io::Error::other("the daemon stopped reading the archive"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_carry_nanoseconds_as_the_docker_clis() {
        assert_eq!(timestamp("1700000000.5").unwrap(), "1700000000.5");
        assert_eq!(
            timestamp("2023-11-14T22:13:20.25Z").unwrap(),
            "1700000000.250000000"
        );
        let now: f64 = timestamp("0s").unwrap().parse().unwrap();
        let then: f64 = timestamp("10m").unwrap().parse().unwrap();
        assert!((now - then - 600.0).abs() < 5.0, "{now} {then}");
        let nanos = timestamp("0s").unwrap();
        assert_eq!(
            nanos.split_once('.').map(|(_, n)| n.len()),
            Some(9),
            "{nanos}"
        );
        assert!(timestamp("bogus").is_err());
    }

    #[test]
    fn cp_paths_split_like_dockers() {
        assert!(
            matches!(cp_path("web:/etc/hosts"), CpPath::Container(c, p) if c == "web" && p == "/etc/hosts")
        );
        assert!(matches!(cp_path("./a:b"), CpPath::Local(_)));
        assert!(matches!(cp_path("/tmp/x"), CpPath::Local(_)));
        assert!(matches!(cp_path("-"), CpPath::Local(_)));
    }

    #[test]
    fn image_names_get_their_default_tag() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(
            with_tag("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(with_tag("busybox:1"), "busybox:1");
        assert_eq!(with_tag("busybox@sha256:ab"), "busybox@sha256:ab");
    }

    #[test]
    fn extract_copy_renames_the_root_and_refuses_escapes() {
        let tmp = std::env::temp_dir().join(format!("berth-cp-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("src/sub")).unwrap();
        std::fs::write(tmp.join("src/sub/f"), b"hello").unwrap();
        let mut tar = Vec::new();
        write_tar(&mut tar, tmp.join("src").to_str().unwrap(), "src", false).unwrap();
        let dst = tmp.join("copy");
        let n = extract_copy(&tar[..], "src", true, dst.to_str().unwrap(), false).unwrap();
        assert_eq!(n, 5);
        assert_eq!(std::fs::read(dst.join("sub/f")).unwrap(), b"hello");
        // Into an existing directory: kept under its own name.
        extract_copy(&tar[..], "src", true, dst.to_str().unwrap(), false).unwrap();
        assert!(dst.join("src/sub/f").exists());
        // A copy of "dir/." (named ".", its entries "./…") is the
        // destination itself, whatever the entries start with.
        let mut dotted = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("./", None),
            ("./sub/", None),
            ("./sub/f", Some(&b"dot"[..])),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                }
            }
            h.set_mtime(0);
            let field = &mut h.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            dotted.append(&h, data.unwrap_or_default()).unwrap();
        }
        let dotted = dotted.into_inner().unwrap();
        let dot_dst = tmp.join("dotcopy");
        extract_copy(&dotted[..], ".", true, dot_dst.to_str().unwrap(), false).unwrap();
        assert_eq!(std::fs::read(dot_dst.join("sub/f")).unwrap(), b"dot");
        assert!(!tmp.join("sub").exists());
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // tar refuses to set a path with '..', so write the raw name.
        h.as_old_mut().name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        assert!(extract_copy(&evil[..], "x", false, dst.to_str().unwrap(), false).is_err());
        assert!(!tmp.join("evil").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
