//! `berth-ctr containers …`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use clap::Subcommand;

use super::client::{Ctx, daemon, time};
use crate::table;

#[derive(Subcommand)]
pub enum Cmd {
    /// Record a container: from an image (IMAGE ID [CMD…]), or a spec
    /// (config.json, or a default one running CMD) and a rootfs directory
    Create(CreateArgs),
    /// List containers
    #[command(visible_alias = "ls")]
    List {
        /// labels.KEY==VALUE, labels.KEY, id==ID, image==REF, runtime==NAME
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Everything lifecycled knows about a container, as JSON
    Info { id: String },
    /// Delete container records (their tasks must be deleted first)
    #[command(visible_alias = "rm")]
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Set (KEY=VALUE) or remove (KEY=) labels
    Label {
        id: String,
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

#[derive(clap::Args, Clone)]
pub struct CreateArgs {
    /// Runtime name from lifecycled's runtime table
    #[arg(long, default_value = "")]
    pub runtime: String,
    /// KEY=VALUE
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Host directory to use as the root filesystem
    #[arg(long, conflicts_with = "bundle")]
    pub rootfs: Option<PathBuf>,
    /// OCI bundle: config.json and its rootfs
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Allocate a terminal for the process
    #[arg(short, long)]
    pub tty: bool,
    /// Environment variable KEY=VALUE for the process
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// IMAGE ID [CMD…] (the image's full name, as `images ls` shows it), or
    /// ID CMD… with --rootfs, or ID [CMD…] with --bundle
    #[arg(
        trailing_var_arg = true,
        required = true,
        value_name = "[IMAGE] ID [CMD]"
    )]
    pub args: Vec<String>,
}

fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("label {l:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// Builds the container record `create` and `run` send.
pub async fn build(ctx: &Ctx, a: &CreateArgs) -> Result<api::Container> {
    let from_image = a.bundle.is_none() && a.rootfs.is_none();
    let (image, id, command) = match (from_image, a.args.as_slice()) {
        (true, [image, id, cmd @ ..]) => (Some(image.clone()), id.clone(), cmd.to_vec()),
        (true, _) => bail!("give IMAGE ID [CMD…], or --rootfs DIR ID CMD…, or --bundle DIR ID"),
        (false, [id, cmd @ ..]) => (None, id.clone(), cmd.to_vec()),
        (false, []) => bail!("the container needs an id"),
    };
    let a = &CreateArgs {
        args: command.clone(),
        ..a.clone()
    };
    if let Some(image) = image {
        return super::images::container_from_image(ctx, a, &image, &id, &command).await;
    }
    let (spec, rootfs) = match (&a.bundle, &a.rootfs) {
        (Some(bundle), None) => {
            let path = bundle.join("config.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut spec: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            let root = spec["root"]["path"]
                .as_str()
                .unwrap_or("rootfs")
                .to_string();
            let root = if root.starts_with('/') {
                PathBuf::from(root)
            } else {
                bundle.join(root)
            };
            let root = std::fs::canonicalize(&root)
                .with_context(|| format!("bundle rootfs {}", root.display()))?;
            if !command.is_empty() {
                spec["process"]["args"] = serde_json::json!(command);
            }
            (spec, root)
        }
        (None, Some(dir)) => {
            if command.is_empty() {
                bail!("--rootfs needs a command to run");
            }
            let dir =
                std::fs::canonicalize(dir).with_context(|| format!("rootfs {}", dir.display()))?;
            let mut spec = specgen::defaults::spec(&command, a.tty);
            spec["hostname"] = serde_json::json!(id.chars().take(12).collect::<String>());
            (spec, dir)
        }
        _ => bail!("give --rootfs DIR (with a command) or --bundle DIR"),
    };
    let mut spec = spec;
    if a.tty {
        spec["process"]["terminal"] = serde_json::json!(true);
    }
    if !a.env.is_empty() {
        let env = spec["process"]["env"].as_array_mut();
        if let Some(env) = env {
            env.extend(a.env.iter().map(|e| serde_json::json!(e)));
        }
    }
    Ok(api::Container {
        id,
        labels: parse_labels(&a.labels)?.into_iter().collect(),
        runtime: a.runtime.clone(),
        spec: spec.to_string().into_bytes(),
        rootfs: vec![pb::Mount {
            r#type: "bind".into(),
            source: rootfs.to_string_lossy().into_owned(),
            target: String::new(),
            options: vec!["rbind".into()],
        }],
        ..Default::default()
    })
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let mut c = ctx.containers();
    match cmd {
        Cmd::Create(a) => {
            let container = build(ctx, &a).await?;
            c.create(ctx.req(api::CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .map_err(daemon)?;
        }
        Cmd::List {
            filters,
            quiet,
            format,
        } => {
            let list = c
                .list(ctx.req(api::ListContainersRequest { filters }))
                .await
                .map_err(daemon)?
                .into_inner()
                .containers;
            if quiet {
                for x in &list {
                    println!("{}", x.id);
                }
            } else if format == "json" {
                let v: Vec<_> = list.iter().map(to_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|x| {
                        let mut labels: Vec<String> =
                            x.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        labels.sort();
                        vec![
                            x.id.clone(),
                            if x.image.is_empty() {
                                "-".into()
                            } else {
                                x.image.clone()
                            },
                            x.runtime.clone(),
                            time(&x.created_at),
                            labels.join(","),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(
                        &["CONTAINER", "IMAGE", "RUNTIME", "CREATED", "LABELS"],
                        &rows
                    )
                );
            }
        }
        Cmd::Info { id } => {
            let x = c
                .get(ctx.req(api::ContainerRequest { id }))
                .await
                .map_err(daemon)?
                .into_inner();
            println!("{}", serde_json::to_string_pretty(&to_json(&x))?);
        }
        Cmd::Delete { ids } => {
            let mut failed = false;
            for id in ids {
                if let Err(e) = c.delete(ctx.req(api::ContainerRequest { id })).await {
                    eprintln!("berth-ctr: {:#}", daemon(e));
                    failed = true;
                }
            }
            return Ok(failed as i32);
        }
        Cmd::Label { id, labels } => {
            c.update(ctx.req(api::UpdateContainerRequest {
                id,
                labels: parse_labels(&labels)?.into_iter().collect(),
                merge_labels: true,
                spec: Vec::new(),
            }))
            .await
            .map_err(daemon)?;
        }
    }
    Ok(0)
}

fn to_json(c: &api::Container) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "labels": c.labels,
        "image": c.image,
        "runtime": c.runtime,
        "spec": serde_json::from_slice::<serde_json::Value>(&c.spec).unwrap_or_default(),
        "rootfs": c.rootfs.iter().map(|m| serde_json::json!({
            "type": m.r#type, "source": m.source, "target": m.target, "options": m.options
        })).collect::<Vec<_>>(),
        "snapshotKey": c.snapshot_key,
        "createdAt": time(&c.created_at),
        "updatedAt": time(&c.updated_at),
    })
}
