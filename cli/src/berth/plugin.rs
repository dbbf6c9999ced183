//! `berth plugin …`: Docker's managed-plugin commands.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::client::{JsonLines, empty, json_body, q};
use super::images::{auth_header, body_from_reader, normalize, show_stream, split_tag};
use super::system::{InspectArgs, inspect};
use super::{Ctx, for_each, format};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Create a plugin from a rootfs and configuration. Plugin data directory must contain config.json and rootfs directory.
    Create(CreateArgs),
    /// List plugins
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more plugins
    Inspect(InspectPluginArgs),
    /// Change settings for a plugin
    Set(SetArgs),
    /// Enable a plugin
    Enable(EnableArgs),
    /// Disable a plugin
    Disable(DisableArgs),
    /// Remove one or more plugins
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Install a plugin
    Install(InstallArgs),
    /// Push a plugin to a registry
    Push(PushArgs),
    /// Upgrade an existing plugin
    Upgrade(UpgradeArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// Local name for plugin
    #[arg(long)]
    alias: Option<String>,
    /// Do not enable the plugin on install
    #[arg(long)]
    disable: bool,
    /// Grant all permissions necessary to run the plugin
    #[arg(long)]
    grant_all_permissions: bool,
    /// Skip image verification (accepted; berth verifies no signatures)
    #[arg(long)]
    disable_content_trust: bool,
    /// The plugin on its registry (`name[:tag]`)
    plugin: String,
    /// KEY=VALUE settings applied before the plugin is enabled
    settings: Vec<String>,
}

#[derive(Args)]
pub struct PushArgs {
    /// Skip image signing (accepted; berth signs nothing)
    #[arg(long)]
    disable_content_trust: bool,
    /// The plugin (`name[:tag]`); its name says where it goes
    name: String,
}

#[derive(Args)]
pub struct UpgradeArgs {
    /// Do not check if specified remote plugin matches existing plugin image
    #[arg(long)]
    skip_remote_check: bool,
    /// Grant all permissions necessary to run the plugin
    #[arg(long)]
    grant_all_permissions: bool,
    /// Skip image verification (accepted; berth verifies no signatures)
    #[arg(long)]
    disable_content_trust: bool,
    /// The installed plugin
    plugin: String,
    /// Where the new version is (default: where the plugin came from)
    remote: Option<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The plugin's name (`name[:tag]`)
    name: String,
    /// A directory with the plugin's config.json and rootfs/
    dir: PathBuf,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display plugin IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "enabled=true", "capability=volumedriver")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args)]
pub struct InspectPluginArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct SetArgs {
    name: String,
    /// KEY=VALUE settings (env, args, a mount's source, a device's path)
    #[arg(required = true)]
    settings: Vec<String>,
}

#[derive(Args)]
pub struct EnableArgs {
    /// HTTP client timeout (in seconds)
    #[arg(long, default_value_t = 30)]
    timeout: i64,
    name: String,
}

#[derive(Args)]
pub struct DisableArgs {
    /// Force the disable of an active plugin
    #[arg(short = 'f', long)]
    force: bool,
    name: String,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of an active plugin
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

pub async fn plugin(ctx: &Ctx, cmd: PluginCmd) -> Result<i32> {
    match cmd {
        PluginCmd::Create(a) => {
            if !a.dir.is_dir() {
                bail!("context must be a directory");
            }
            // As the docker CLI: the config is looked for before sending.
            let config = a.dir.join("config.json");
            if let Err(e) = std::fs::metadata(&config) {
                bail!("open {}: {}", config.display(), go_error(&e));
            }
            let stream = super::build::dir_tar(a.dir.clone())?;
            stream.set_nonblocking(true)?;
            let body = body_from_reader(tokio::net::UnixStream::from_std(stream)?);
            ctx.client
                .request(
                    Method::POST,
                    &format!("/plugins/create?name={}", q(&a.name)),
                    body,
                    &[("Content-Type", "application/x-tar".to_string())],
                )
                .await?;
            println!("{}", a.name);
            Ok(0)
        }
        PluginCmd::Ls(a) => {
            let mut path = "/plugins".to_string();
            if !a.filter.is_empty() {
                path.push_str(&format!("?filters={}", q(&super::filters_json(&a.filter)?)));
            }
            let v = ctx.client.get(&path).await?;
            let list = v.as_array().cloned().unwrap_or_default();
            let short = |id: &str| {
                if a.no_trunc {
                    id.to_string()
                } else {
                    id.chars().take(12).collect()
                }
            };
            if a.quiet {
                for p in &list {
                    println!("{}", short(p["Id"].as_str().unwrap_or_default()));
                }
                return Ok(0);
            }
            let rows: Vec<Value> = list
                .iter()
                .map(|p| {
                    let desc = p["Config"]["Description"].as_str().unwrap_or_default();
                    json!({
                        "ID": short(p["Id"].as_str().unwrap_or_default()),
                        "Name": p["Name"],
                        "Description": if a.no_trunc { desc.to_string() } else { ellipsis(desc, 45) },
                        "Enabled": p["Enabled"],
                        "PluginReference": p["PluginReference"],
                    })
                })
                .collect();
            let fmt = format::template(
                a.format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}",
            );
            let header = |f: &str| match f {
                "ID" => "ID".to_string(),
                f => format::header(f),
            };
            format::parse(&fmt, &header)?.print(&rows)?;
            Ok(0)
        }
        PluginCmd::Inspect(a) => {
            inspect(ctx, InspectArgs::new(a.format, a.names), Some("plugin")).await
        }
        PluginCmd::Set(a) => {
            ctx.client
                .post(
                    &format!("/plugins/{}/set", q(&a.name)),
                    Some(&json!(a.settings)),
                )
                .await?;
            Ok(0)
        }
        PluginCmd::Enable(a) => {
            if a.timeout < 0 {
                bail!("negative timeout {} is invalid", a.timeout);
            }
            ctx.client
                .post(
                    &format!("/plugins/{}/enable?timeout={}", q(&a.name), a.timeout),
                    None,
                )
                .await?;
            println!("{}", a.name);
            Ok(0)
        }
        PluginCmd::Disable(a) => {
            ctx.client
                .post(
                    &format!("/plugins/{}/disable?force={}", q(&a.name), a.force),
                    None,
                )
                .await?;
            println!("{}", a.name);
            Ok(0)
        }
        PluginCmd::Install(a) => install(ctx, a).await,
        PluginCmd::Push(a) => {
            let resp = ctx
                .client
                .request(
                    Method::POST,
                    &format!("/plugins/{}/push", q(&a.name)),
                    empty(),
                    &[auth_header(ctx, &a.name)],
                )
                .await?;
            show_stream(JsonLines::new(resp.into_body()), false).await?;
            Ok(0)
        }
        PluginCmd::Upgrade(a) => upgrade(ctx, a).await,
        PluginCmd::Rm(a) => {
            for_each(&a.names, false, |n| async move {
                ctx.client
                    .json(
                        Method::DELETE,
                        &format!("/plugins/{}?force={}", q(&n), a.force),
                        None,
                    )
                    .await?;
                Ok(())
            })
            .await
        }
    }
}

/// The privileges a plugin asks, granted: shown and asked about unless
/// `grant_all`, as the docker CLI asks.
async fn granted(ctx: &Ctx, remote: &str, grant_all: bool) -> Result<Value> {
    let resp = ctx
        .client
        .request(
            Method::GET,
            &format!("/plugins/privileges?remote={}", q(remote)),
            empty(),
            &[auth_header(ctx, remote)],
        )
        .await?;
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    let privileges: Value = serde_json::from_slice(&body)?;
    let list = privileges.as_array().cloned().unwrap_or_default();
    if grant_all || list.is_empty() {
        return Ok(privileges);
    }
    println!("Plugin {remote:?} is requesting the following privileges:");
    for p in &list {
        let values: Vec<&str> = p["Value"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            " - {}: [{}]",
            p["Name"].as_str().unwrap_or_default(),
            values.join(" ")
        );
    }
    if !super::system::confirm("Do you grant the above permissions? [y/N] ")? {
        bail!("permission denied while installing plugin {remote}");
    }
    Ok(privileges)
}

/// A name with the tag `latest` when it has none (the docker CLI's
/// EnsureTagged).
fn tagged(name: &str) -> String {
    let (repo, tag) = split_tag(name);
    if tag.is_empty() && !name.contains('@') {
        format!("{repo}:latest")
    } else {
        name.to_string()
    }
}

async fn install(ctx: &Ctx, a: InstallArgs) -> Result<i32> {
    let local = a.alias.as_deref().map(tagged).unwrap_or_default();
    if local.contains('@') {
        bail!("invalid name: {local}");
    }
    let privileges = granted(ctx, &a.plugin, a.grant_all_permissions).await?;
    let resp = ctx
        .client
        .request(
            Method::POST,
            &format!("/plugins/pull?remote={}&name={}", q(&a.plugin), q(&local)),
            json_body(&privileges),
            &[
                auth_header(ctx, &a.plugin),
                ("Content-Type", "application/json".to_string()),
            ],
        )
        .await?;
    let name = resp
        .headers()
        .get("Docker-Plugin-Name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if local.is_empty() {
                a.plugin.clone()
            } else {
                local.clone()
            }
        });
    show_stream(JsonLines::new(resp.into_body()), false).await?;
    if !a.settings.is_empty() {
        ctx.client
            .post(
                &format!("/plugins/{}/set", q(&name)),
                Some(&json!(a.settings)),
            )
            .await?;
    }
    if !a.disable {
        ctx.client
            .post(&format!("/plugins/{}/enable?timeout=0", q(&name)), None)
            .await?;
    }
    println!("Installed plugin {}", a.plugin);
    Ok(0)
}

async fn upgrade(ctx: &Ctx, a: UpgradeArgs) -> Result<i32> {
    let p = ctx
        .client
        .get(&format!("/plugins/{}/json", q(&a.plugin)))
        .await?;
    if p["Enabled"] == true {
        bail!("the plugin must be disabled before upgrading");
    }
    let old = p["PluginReference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let remote = a.remote.clone().unwrap_or_else(|| old.clone());
    let name = p["Name"].as_str().unwrap_or(&a.plugin).to_string();
    println!("Upgrading plugin {name} from {old} to {remote}");
    if !a.skip_remote_check
        && normalize(&old) != normalize(&remote)
        && !super::system::confirm("Plugin images do not match, are you sure? [y/N] ")?
    {
        bail!("canceling upgrade request");
    }
    let privileges = granted(ctx, &remote, a.grant_all_permissions).await?;
    let resp = ctx
        .client
        .request(
            Method::POST,
            &format!("/plugins/{}/upgrade?remote={}", q(&a.plugin), q(&remote)),
            json_body(&privileges),
            &[
                auth_header(ctx, &remote),
                ("Content-Type", "application/json".to_string()),
            ],
        )
        .await?;
    show_stream(JsonLines::new(resp.into_body()), false).await?;
    println!("Upgraded plugin {name} to {remote}");
    Ok(0)
}

/// Go's words for a failed stat.
fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The docker CLI's Ellipsis: at most `max` characters, the last one `…`.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_descriptions_end_in_an_ellipsis_as_the_docker_clis() {
        assert_eq!(super::ellipsis("short", 45), "short");
        let long = "x".repeat(50);
        let cut = super::ellipsis(&long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }
}
