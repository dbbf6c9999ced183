//! inspect, volumes, system (prune, df), events, version, info, login,
//! logout and contexts.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::client::{Error, JsonLines, empty, q};
use super::config::{self, Config};
use super::{Ctx, exit_with, for_each, format, human_size, human_size4, print_json};

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    size: bool,
    /// Return JSON for specified type (container, image, volume, network, plugin)
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

impl InspectArgs {
    pub fn new(format: Option<String>, names: Vec<String>) -> Self {
        InspectArgs {
            format,
            size: false,
            kind: None,
            names,
        }
    }
}

#[derive(Args)]
pub struct FormatArg {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// The registry (default: docker.io)
    server: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    server: Option<String>,
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(visible_aliases = ["list"])]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes
    #[command(visible_aliases = ["remove"])]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

#[derive(Args)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    name_flag: Option<String>,
    name: Option<String>,
}

#[derive(Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Subcommand)]
pub enum SystemCmd {
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Show berth disk usage
    Df(FormatArg),
    /// Display system-wide information
    Info(FormatArg),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Proxy the stdio stream to the daemon connection (for ssh://)
    #[command(name = "dial-stdio")]
    DialStdio,
}

#[derive(Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Subcommand)]
pub enum ContextCmd {
    /// Create a context
    Create(ContextCreateArgs),
    /// Set the current context
    Use(ContextName),
    /// List contexts
    #[command(visible_aliases = ["list"])]
    Ls(ContextLsArgs),
    /// Remove one or more contexts
    #[command(visible_aliases = ["remove"])]
    Rm(ContextRmArgs),
    /// Display detailed information on one or more contexts
    Inspect(ContextInspectArgs),
    /// Print the name of the current context
    Show,
    /// Update a context
    Update(ContextCreateArgs),
    /// Export a context to a tar archive ("-" for stdout)
    Export(ContextExportArgs),
    /// Import a context from a tar archive ("-" for stdin)
    Import(ContextImportArgs),
}

#[derive(Args)]
pub struct ContextExportArgs {
    name: String,
    /// Where to write (default: NAME.dockercontext)
    file: Option<String>,
}

#[derive(Args)]
pub struct ContextImportArgs {
    name: String,
    file: String,
}

/// Applies `--docker host=…,ca=…,cert=…,key=…` to context `name`: the host,
/// and the TLS files copied in, as Docker does (the context keeps working
/// when the originals move).
fn docker_endpoint(cfg: &Config, name: &str, spec: &str) -> Result<Option<String>> {
    let mut host = None;
    let mut tls_files: Vec<(&str, PathBuf)> = Vec::new();
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("host", h)) => host = Some(config::normalize_host(h)?),
            Some(("ca", p)) => tls_files.push(("ca.pem", p.into())),
            Some(("cert", p)) => tls_files.push(("cert.pem", p.into())),
            Some(("key", p)) => tls_files.push(("key.pem", p.into())),
            Some(("skip-tls-verify", "false")) => {}
            Some(("skip-tls-verify", _)) => {
                bail!("{field}: berth always verifies the daemon's certificate")
            }
            _ => bail!(
                "unable to parse docker endpoint \"{field}\": expected host=…,ca=…,cert=…,key=…"
            ),
        }
    }
    for (file, from) in &tls_files {
        let text = std::fs::read(from).map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
        let dir = cfg.tls_dir(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(file), text)?;
    }
    Ok(host)
}

#[derive(Args)]
pub struct ContextCreateArgs {
    /// Description of the context
    #[arg(long)]
    description: Option<String>,
    /// Set the endpoint (host=unix:///path, tcp://h:p or ssh://u@h; ca=, cert=, key= for TLS)
    #[arg(long)]
    docker: Option<String>,
    name: String,
}

#[derive(Args)]
pub struct ContextName {
    name: String,
}

#[derive(Args)]
pub struct ContextLsArgs {
    /// Only show context names
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct ContextRmArgs {
    /// Force the removal of a context in use
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct ContextInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    names: Vec<String>,
}

/// The reason part of an I/O error, as Go prints it ("no such file or directory").
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Asks a yes/no question on the terminal; "no" when stdin is not one.
pub fn confirm(question: &str) -> Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn render_each(fmt: &str, items: &[Value]) -> Result<()> {
    let f = format::parse(fmt, &|_| String::new())?;
    for v in items {
        println!("{}", f.render(v)?);
    }
    Ok(())
}

/// `inspect`: containers, then images, then volumes, unless --type says.
pub async fn inspect(ctx: &Ctx, a: InspectArgs, only: Option<&str>) -> Result<i32> {
    let kind = only.map(String::from).or(a.kind.clone());
    if let Some(k) = &kind
        && !["container", "image", "volume", "network", "plugin"].contains(&k.as_str())
    {
        bail!("\"{k}\" is not a valid value for --type");
    }

    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        let tries: Vec<(&str, String)> = [
            (
                "container",
                format!("/containers/{}/json?size={}", q(n), a.size),
            ),
            ("image", format!("/images/{n}/json")),
            ("volume", format!("/volumes/{}", q(n))),
            ("network", format!("/networks/{}", q(n))),
            ("plugin", format!("/plugins/{}/json", q(n))),
        ]
        .into_iter()
        .filter(|(k, _)| kind.as_deref().is_none_or(|x| x == *k))
        .collect();
        let mut got = None;
        for (_, path) in tries {
            match ctx.client.get(&path).await {
                Ok(v) => {
                    got = Some(v);
                    break;
                }
                Err(Error::Daemon { status: 404, .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            Some(v) => found.push(v),
            None => missing.push(n.clone()),
        }
    }
    match &a.format {
        Some(f) => render_each(f, &found)?,
        None => print_json(&Value::Array(found))?,
    }
    if !missing.is_empty() {
        let what = kind.as_deref().unwrap_or("object");
        let lines: Vec<String> = missing
            .iter()
            .map(|m| format!("Error: No such {what}: {m}"))
            .collect();
        return Err(exit_with(1, lines.join("\n")));
    }
    Ok(0)
}

pub async fn volume(ctx: &Ctx, v: VolumeCmd) -> Result<i32> {
    match v {
        VolumeCmd::Create(a) => {
            if a.name.is_some() && a.name_flag.is_some() {
                bail!(
                    "conflicting options: either specify --name or provide positional arg, not both"
                );
            }
            let name = a.name.or(a.name_flag).unwrap_or_default();
            let kv = |l: &[String]| -> BTreeMap<String, String> {
                l.iter()
                    .map(|s| {
                        let (k, v) = s.split_once('=').unwrap_or((s, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect()
            };
            let body = json!({"Name": name, "Driver": a.driver, "Labels": kv(&a.label), "DriverOpts": kv(&a.opt)});
            let v = ctx.client.post("/volumes/create", Some(&body)).await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCmd::Ls(a) => {
            let mut path = "/volumes".to_string();
            if !a.filter.is_empty() {
                path.push_str(&format!("?filters={}", q(&super::filters_json(&a.filter)?)));
            }
            let v = ctx.client.get(&path).await?;
            let vols = v["Volumes"].as_array().cloned().unwrap_or_default();
            if a.quiet {
                for v in &vols {
                    println!("{}", v["Name"].as_str().unwrap_or(""));
                }
                return Ok(0);
            }
            let rows: Vec<Value> = vols
                .iter()
                .map(|v| {
                    json!({"Driver": v["Driver"], "Name": v["Name"], "Mountpoint": v["Mountpoint"], "Scope": v["Scope"], "Labels": format::labels(&v["Labels"])})
                })
                .collect();
            let fmt = format::template(a.format.as_deref(), "table {{.Driver}}\t{{.Name}}");
            let header = |f: &str| match f {
                "Name" => "VOLUME NAME".to_string(),
                f => format::header(f),
            };
            format::parse(&fmt, &header)?.print(&rows)?;
            Ok(0)
        }
        VolumeCmd::Inspect(a) => {
            inspect(
                ctx,
                InspectArgs {
                    format: a.format,
                    size: false,
                    kind: None,
                    names: a.names,
                },
                Some("volume"),
            )
            .await
        }
        VolumeCmd::Rm(a) => {
            for_each(&a.names, false, |n| async move {
                ctx.client
                    .json(
                        Method::DELETE,
                        &format!("/volumes/{}?force={}", q(&n), a.force),
                        None,
                    )
                    .await?;
                Ok(())
            })
            .await
        }
        VolumeCmd::Prune(a) => {
            if !a.force
                && !confirm(
                    "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ",
                )?
            {
                return Ok(0);
            }
            let mut filters = a.filter.clone();
            if a.all {
                filters.push("all=true".into());
            }
            let v = ctx
                .client
                .post(
                    &format!(
                        "/volumes/prune?filters={}",
                        q(&super::filters_json(&filters)?)
                    ),
                    None,
                )
                .await?;
            super::print_pruned(&v, "VolumesDeleted", "Deleted Volumes:");
            Ok(0)
        }
    }
}

pub async fn system(ctx: &Ctx, s: SystemCmd) -> Result<i32> {
    match s {
        SystemCmd::Prune(a) => {
            let mut warning =
                String::from("WARNING! This will remove:\n  - all stopped containers\n");
            if a.volumes {
                warning.push_str("  - all anonymous volumes not used by at least one container\n");
            }
            warning.push_str(if a.all {
                "  - all images without at least one container associated to them\n"
            } else {
                "  - all dangling images\n"
            });
            warning.push_str("\nAre you sure you want to continue? [y/N] ");
            if !a.force && !confirm(&warning)? {
                return Ok(0);
            }
            let f = super::filters_json(&a.filter)?;
            let mut reclaimed = 0.0;
            let c = ctx
                .client
                .post(&format!("/containers/prune?filters={}", q(&f)), None)
                .await?;
            reclaimed += c["SpaceReclaimed"].as_f64().unwrap_or(0.0);
            print_list("Deleted Containers:", &c["ContainersDeleted"]);
            if a.volumes {
                let v = ctx
                    .client
                    .post(&format!("/volumes/prune?filters={}", q(&f)), None)
                    .await?;
                reclaimed += v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
                print_list("Deleted Volumes:", &v["VolumesDeleted"]);
            }
            let mut img_filters = a.filter.clone();
            if a.all {
                img_filters.push("dangling=false".into());
            }
            let i = ctx
                .client
                .post(
                    &format!(
                        "/images/prune?filters={}",
                        q(&super::filters_json(&img_filters)?)
                    ),
                    None,
                )
                .await?;
            reclaimed += i["SpaceReclaimed"].as_f64().unwrap_or(0.0);
            let imgs = i["ImagesDeleted"].as_array().cloned().unwrap_or_default();
            if !imgs.is_empty() {
                println!("Deleted Images:");
                for d in &imgs {
                    if let Some(u) = d["Untagged"].as_str() {
                        println!("untagged: {u}");
                    }
                    if let Some(x) = d["Deleted"].as_str() {
                        println!("deleted: {x}");
                    }
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size4(reclaimed));
            Ok(0)
        }
        SystemCmd::Df(a) => {
            let v = ctx.client.get("/system/df").await?;
            let images = v["Images"].as_array().cloned().unwrap_or_default();
            let containers = v["Containers"].as_array().cloned().unwrap_or_default();
            let volumes = v["Volumes"].as_array().cloned().unwrap_or_default();
            // As the docker CLI counts them: the layers once each, and
            // what no container's image holds alone is reclaimable.
            let in_use = |i: &&Value| i["Containers"].as_i64().unwrap_or(0) > 0;
            let img_size = v["LayersSize"].as_f64().unwrap_or(0.0);
            let img_active = images.iter().filter(in_use).count();
            let img_used: f64 = images
                .iter()
                .filter(in_use)
                .filter_map(|i| Some(i["Size"].as_f64()? - i["SharedSize"].as_f64()?.max(0.0)))
                .sum();
            let img_reclaim = (img_size - img_used).max(0.0);
            let cache = v["BuildCache"].as_array().cloned().unwrap_or_default();
            let cache_size = v["BuilderSize"].as_f64().unwrap_or(0.0);
            let cache_active = cache.iter().filter(|b| b["InUse"] == true).count();
            let cache_reclaim: f64 = cache
                .iter()
                .filter(|b| b["InUse"] != true)
                .filter_map(|b| b["Size"].as_f64())
                .sum();
            let c_size: f64 = containers.iter().filter_map(|c| c["SizeRw"].as_f64()).sum();
            let c_active = containers
                .iter()
                .filter(|c| c["State"] == "running")
                .count();
            let c_reclaim: f64 = containers
                .iter()
                .filter(|c| c["State"] != "running")
                .filter_map(|c| c["SizeRw"].as_f64())
                .sum();
            let v_size: f64 = volumes
                .iter()
                .filter_map(|x| x["UsageData"]["Size"].as_f64())
                .sum();
            let v_active = volumes
                .iter()
                .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
                .count();
            let v_reclaim: f64 = volumes
                .iter()
                .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
                .filter_map(|x| x["UsageData"]["Size"].as_f64())
                .sum();
            let pct = |r: f64, t: f64| {
                if t > 0.0 {
                    format!(" ({}%)", (r * 100.0 / t) as i64)
                } else {
                    String::new()
                }
            };
            let rows = vec![
                json!({"Type": "Images", "TotalCount": images.len(), "Active": img_active, "Size": human_size4(img_size), "Reclaimable": format!("{}{}", human_size4(img_reclaim), pct(img_reclaim, img_size))}),
                json!({"Type": "Containers", "TotalCount": containers.len(), "Active": c_active, "Size": human_size4(c_size), "Reclaimable": format!("{}{}", human_size4(c_reclaim), pct(c_reclaim, c_size))}),
                json!({"Type": "Local Volumes", "TotalCount": volumes.len(), "Active": v_active, "Size": human_size4(v_size), "Reclaimable": format!("{}{}", human_size4(v_reclaim), pct(v_reclaim, v_size))}),
                json!({"Type": "Build Cache", "TotalCount": cache.len(), "Active": cache_active, "Size": human_size4(cache_size), "Reclaimable": human_size4(cache_reclaim)}),
            ];
            let fmt = a.format.unwrap_or_else(|| {
                "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into()
            });
            let header = |f: &str| match f {
                "TotalCount" => "TOTAL".to_string(),
                f => format::header(f),
            };
            format::parse(&fmt, &header)?.print(&rows)?;
            Ok(0)
        }
        SystemCmd::Info(a) => info(ctx, a).await,
        SystemCmd::Events(a) => events(ctx, a).await,
        SystemCmd::DialStdio => dial_stdio(ctx).await,
    }
}

fn print_list(title: &str, list: &Value) {
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return;
    }
    println!("{title}");
    for i in items {
        println!("{}", i.as_str().unwrap_or(""));
    }
    println!();
}

pub async fn events(ctx: &Ctx, a: EventsArgs) -> Result<i32> {
    let mut query = Vec::new();
    if let Some(s) = &a.since {
        query.push(format!("since={}", super::containers::timestamp(s)?));
    }
    if let Some(s) = &a.until {
        query.push(format!("until={}", super::containers::timestamp(s)?));
    }
    if !a.filter.is_empty() {
        query.push(format!("filters={}", q(&super::filters_json(&a.filter)?)));
    }
    let resp = ctx
        .client
        .request(
            Method::GET,
            &format!("/events?{}", query.join("&")),
            empty(),
            &[],
        )
        .await?;
    let fmt = match a.format.as_deref() {
        Some("json") => Some(format::parse("{{json .}}", &|_| String::new())?),
        Some(f) => Some(format::parse(f, &|_| String::new())?),
        None => None,
    };
    let mut lines = JsonLines::new(resp.into_body());
    while let Some(ev) = lines.next().await? {
        let line = match &fmt {
            Some(f) => f.render(&ev)?,
            None => event_line(&ev),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(0)
}

/// Docker's default event line:
/// `2024-05-01T10:00:00.123456789Z container start ID (image=busybox, name=web)`.
fn event_line(ev: &Value) -> String {
    let nanos = ev["timeNano"]
        .as_i64()
        .unwrap_or_else(|| ev["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0) as u64);
    let when = humantime::format_rfc3339_nanos(t).to_string();
    let mut attrs: Vec<String> = ev["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    attrs.sort();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", attrs.join(", "))
    };
    format!(
        "{when} {} {} {}{attrs}",
        ev["Type"].as_str().unwrap_or(""),
        ev["Action"].as_str().unwrap_or(""),
        ev["Actor"]["ID"].as_str().unwrap_or("")
    )
}

pub async fn version(ctx: &Ctx, a: FormatArg) -> Result<i32> {
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": super::client::MAX_API,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": config::resolve_context_name(&ctx.cfg),
    });
    let server = ctx.client.get("/version").await;
    let v = json!({"Client": client, "Server": server.as_ref().ok()});
    if let Some(f) = &a.format {
        render_each(f, &[v])?;
        return server.map(|_| 0).map_err(Into::into);
    }
    println!("Client:");
    println!(
        " Version:           {}",
        client["Version"].as_str().unwrap_or("")
    );
    println!(
        " API version:       {}",
        client["ApiVersion"].as_str().unwrap_or("")
    );
    println!(
        " OS/Arch:           {}/{}",
        client["Os"].as_str().unwrap_or(""),
        client["Arch"].as_str().unwrap_or("")
    );
    println!(
        " Context:           {}",
        client["Context"].as_str().unwrap_or("")
    );
    let s = server?;
    println!();
    println!(
        "Server: {}",
        s["Platform"]["Name"].as_str().unwrap_or("berth Engine")
    );
    for c in s["Components"].as_array().into_iter().flatten() {
        println!(" {}:", c["Name"].as_str().unwrap_or(""));
        println!(
            "  Version:          {}",
            c["Version"].as_str().unwrap_or("")
        );
        if let Some(d) = c["Details"].as_object() {
            for (k, v) in d {
                let label = match k.as_str() {
                    "ApiVersion" => "API version",
                    "MinAPIVersion" => "Minimum API version",
                    "GitCommit" => "Git commit",
                    "KernelVersion" => "Kernel version",
                    "Os" => "OS",
                    "Arch" => "Arch",
                    other => other,
                };
                println!(
                    "  {:<18}{}",
                    format!("{label}:"),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                );
            }
        }
    }
    Ok(0)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn info(ctx: &Ctx, a: FormatArg) -> Result<i32> {
    let v = ctx.client.get("/info").await?;
    if let Some(f) = &a.format {
        render_each(f, &[v])?;
        return Ok(0);
    }
    let s = |k: &str| {
        v[k].as_str()
            .map(String::from)
            .unwrap_or_else(|| v[k].to_string())
    };
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    {}", config::resolve_context_name(&ctx.cfg));
    println!();
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Logging Driver: {}", s("LoggingDriver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    let runtimes: Vec<String> = v["Runtimes"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    println!(" Runtimes: {}", runtimes.join(" "));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Live Restore Enabled: {}", s("LiveRestoreEnabled"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        human_size(v["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(" Name: {}", s("Name"));
    println!(" ID: {}", s("ID"));
    println!(" Docker Root Dir: {}", s("DockerRootDir"));
    println!(" Debug Mode: {}", s("Debug"));
    let insecure: Vec<String> = v["RegistryConfig"]["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            v["RegistryConfig"]["IndexConfigs"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
                .filter(|i| i["Secure"] == false)
                .map(|i| &i["Name"]),
        )
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    if !insecure.is_empty() {
        println!(" Insecure Registries:");
        for r in insecure {
            println!("  {r}");
        }
    }
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or(""));
    }
    Ok(0)
}

pub async fn login(ctx: &Ctx, a: LoginArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_else(|| "docker.io".into());
    let username = match a.username {
        Some(u) => u,
        None => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut p = String::new();
        std::io::stdin().lock().read_line(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        bail!("a password is required: pass --password-stdin and write it to stdin");
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let v = ctx
        .client
        .post(
            "/auth",
            Some(&json!({"username": username, "password": password, "serveraddress": server})),
        )
        .await?;
    use base64::Engine;
    let mut cfg = Config::load(&ctx.cfg.dir)?;
    let entry = match v["IdentityToken"].as_str().filter(|t| !t.is_empty()) {
        Some(t) => {
            json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:")), "identitytoken": t})
        }
        None => {
            json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))})
        }
    };
    if !cfg.file["auths"].is_object() {
        cfg.file["auths"] = json!({});
    }
    cfg.file["auths"][&server] = entry;
    cfg.save()?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        cfg.dir.join("config.json").display()
    );
    println!(
        "{}",
        v["Status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("Login Succeeded")
    );
    Ok(0)
}

pub async fn logout(ctx: &Ctx, a: LogoutArgs) -> Result<i32> {
    let server = a.server.unwrap_or_else(|| "docker.io".into());
    let mut cfg = Config::load(&ctx.cfg.dir)?;
    let removed = cfg.file["auths"]
        .as_object_mut()
        .and_then(|o| o.remove(&server))
        .is_some();
    if removed {
        cfg.save()?;
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(0)
}

pub async fn context(cfg: &Config, c: ContextCmd) -> Result<i32> {
    match c {
        ContextCmd::Create(a) => {
            config::validate_context_name(&a.name)?;
            if cfg.context(&a.name).is_ok() {
                bail!("context \"{}\" already exists", a.name);
            }
            let mut host = config::DEFAULT_HOST.to_string();
            if let Some(d) = &a.docker
                && let Some(h) = docker_endpoint(cfg, &a.name, d)?
            {
                host = h;
            }
            let meta = json!({
                "Name": a.name,
                "Metadata": {"Description": a.description.unwrap_or_default()},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
            });
            cfg.save_context(&meta)?;
            println!("{}", a.name);
            eprintln!("Successfully created context \"{}\"", a.name);
            Ok(0)
        }
        ContextCmd::Use(a) => {
            cfg.context(&a.name)?;
            let mut cfg2 = Config::load(&cfg.dir)?;
            cfg2.file["currentContext"] = if a.name == "default" {
                Value::Null
            } else {
                json!(a.name)
            };
            if let Some(o) = cfg2.file.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            cfg2.save()?;
            println!("{}", a.name);
            eprintln!("Current context is now \"{}\"", a.name);
            Ok(0)
        }
        ContextCmd::Ls(a) => {
            let current = config::resolve_context_name(cfg);
            let rows: Vec<Value> = cfg
                .contexts()
                .into_iter()
                .map(|c| {
                    let name = c["Name"].as_str().unwrap_or("").to_string();
                    let is_current = name == current;
                    json!({
                        "Name": if is_current { format!("{name} *") } else { name },
                        "Current": is_current,
                        "Description": c["Metadata"]["Description"],
                        "DockerEndpoint": c["Endpoints"]["docker"]["Host"],
                    })
                })
                .collect();
            if a.quiet {
                for r in &rows {
                    println!(
                        "{}",
                        r["Name"].as_str().unwrap_or("").trim_end_matches(" *")
                    );
                }
                return Ok(0);
            }
            let fmt = format::template(
                a.format.as_deref(),
                "table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}",
            );
            format::parse(&fmt, &format::header)?.print(&rows)?;
            Ok(0)
        }
        ContextCmd::Rm(a) => {
            let current = cfg.current_context();
            let mut failed = false;
            for n in &a.names {
                if *n == current && !a.force {
                    eprintln!("context \"{n}\" is in use, set -f flag to force remove");
                    failed = true;
                    continue;
                }
                match cfg.remove_context(n) {
                    Ok(()) => {
                        if *n == current {
                            let mut cfg2 = Config::load(&cfg.dir)?;
                            if let Some(o) = cfg2.file.as_object_mut() {
                                o.remove("currentContext");
                            }
                            cfg2.save()?;
                        }
                        println!("{n}");
                    }
                    Err(e) => {
                        eprintln!("{e:#}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        ContextCmd::Inspect(a) => {
            let names = if a.names.is_empty() {
                vec![config::resolve_context_name(cfg)]
            } else {
                a.names
            };
            let items = names
                .iter()
                .map(|n| cfg.context(n))
                .collect::<Result<Vec<_>>>()?;
            match &a.format {
                Some(f) => render_each(f, &items)?,
                None => print_json(&Value::Array(items))?,
            }
            Ok(0)
        }
        ContextCmd::Show => {
            println!("{}", config::resolve_context_name(cfg));
            Ok(0)
        }
        ContextCmd::Update(a) => {
            if a.name == "default" {
                bail!("context \"default\" cannot be updated");
            }
            let mut meta = cfg.context(&a.name)?;
            if let Some(d) = &a.description {
                meta["Metadata"]["Description"] = json!(d);
            }
            if let Some(d) = &a.docker
                && let Some(h) = docker_endpoint(cfg, &a.name, d)?
            {
                meta["Endpoints"]["docker"]["Host"] = json!(h);
            }
            cfg.save_context(&meta)?;
            println!("{}", a.name);
            eprintln!("Successfully updated context \"{}\"", a.name);
            Ok(0)
        }
        ContextCmd::Export(a) => {
            let meta = cfg.context(&a.name)?;
            let mut b = tar::Builder::new(Vec::new());
            let mut add = |path: &str, data: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o600);
                h.set_cksum();
                b.append_data(&mut h, path, data)?;
                Ok(())
            };
            add("meta.json", serde_json::to_string(&meta)?.as_bytes())?;
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                if let Ok(data) = std::fs::read(cfg.tls_dir(&a.name).join(f)) {
                    add(&format!("tls/docker/{f}"), &data)?;
                }
            }
            let data = b.into_inner()?;
            let file = a
                .file
                .unwrap_or_else(|| format!("{}.dockercontext", a.name));
            if file == "-" {
                std::io::stdout().write_all(&data)?;
            } else {
                std::fs::write(&file, data)?;
                eprintln!("Written file \"{file}\"");
            }
            Ok(0)
        }
        ContextCmd::Import(a) => {
            config::validate_context_name(&a.name)?;
            if cfg.context(&a.name).is_ok() {
                bail!("context \"{}\" already exists", a.name);
            }
            let data = if a.file == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&a.file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file))?
            };
            let mut meta: Option<Value> = None;
            let mut tls: Vec<(String, Vec<u8>)> = Vec::new();
            for entry in tar::Archive::new(data.as_slice()).entries()? {
                let mut e = entry?;
                let path = e.path()?.to_string_lossy().into_owned();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body)?;
                match path.as_str() {
                    "meta.json" => meta = Some(serde_json::from_slice(&body)?),
                    p => {
                        if let Some(f) = p.strip_prefix("tls/docker/")
                            && ["ca.pem", "cert.pem", "key.pem"].contains(&f)
                        {
                            tls.push((f.to_string(), body));
                        }
                    }
                }
            }
            let mut meta = meta.ok_or_else(|| {
                anyhow::anyhow!("{}: no meta.json: not a context archive", a.file)
            })?;
            meta["Name"] = json!(a.name);
            for (f, body) in tls {
                let dir = cfg.tls_dir(&a.name);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(f), body)?;
            }
            cfg.save_context(&meta)?;
            println!("{}", a.name);
            eprintln!("Successfully imported context \"{}\"", a.name);
            Ok(0)
        }
    }
}

/// Connects our stdin and stdout to the daemon: the far end of an ssh://
/// host. Each direction ends on its own (EOF is passed on as a half-close).
async fn dial_stdio(ctx: &Ctx) -> Result<i32> {
    let conn = ctx.client.connect().await?;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let up = async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut wr).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
    };
    let down = async move {
        let mut stdout = tokio::io::stdout();
        let _ = tokio::io::copy(&mut rd, &mut stdout).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
    };
    // The daemon closing its side ends the proxy even if stdin stays open.
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_read_like_dockers() {
        let ev = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}}, "timeNano": 1_700_000_000_123_456_789i64});
        assert_eq!(
            event_line(&ev),
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)"
        );
    }

    #[test]
    fn io_reasons_are_gos() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&e), "no such file or directory");
    }

    #[test]
    fn contexts_round_trip() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("berth-ctx-{}", std::process::id()));
        let cfg = Config::load(&dir)?;
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(context(
            &cfg,
            ContextCmd::Create(ContextCreateArgs {
                description: Some("test".into()),
                docker: Some("host=unix:///tmp/x.sock".into()),
                name: "t1".into(),
            }),
        ))?;
        assert_eq!(
            cfg.context("t1")?["Endpoints"]["docker"]["Host"],
            "unix:///tmp/x.sock"
        );
        assert!(
            rt.block_on(context(
                &cfg,
                ContextCmd::Create(ContextCreateArgs {
                    description: None,
                    docker: None,
                    name: "t1".into()
                })
            ))
            .is_err()
        );
        rt.block_on(context(
            &cfg,
            ContextCmd::Use(ContextName { name: "t1".into() }),
        ))?;
        let cfg = Config::load(&dir)?;
        assert_eq!(cfg.current_context(), "t1");
        assert_eq!(config::resolve(&cfg, None, None)?.0, "unix:///tmp/x.sock");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
