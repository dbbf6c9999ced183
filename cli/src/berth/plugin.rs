//! `berth plugin …`: Docker's managed-plugin commands.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::client::q;
use super::images::body_from_reader;
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
