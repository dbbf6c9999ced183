//! `berth-ctr images …`, `snapshots …`, `content …`, and containers made
//! from images. Names are lifecycled's: full references, as stored.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_proto::lifecycle::v1 as api;
use berth_proto::lifecycle::v1::{
    content_client::ContentClient, images_client::ImagesClient, snapshots_client::SnapshotsClient,
};
use berth_proto::types::v1 as pb;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::client::{Ctx, daemon, time};
use super::containers::CreateArgs;
use crate::table;

#[derive(Subcommand)]
pub enum ImagesCmd {
    /// List images
    #[command(visible_alias = "ls")]
    List {
        /// name==REF, labels.KEY==VALUE
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Only names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry (a full reference: host/repo:tag)
    Pull(RegistryArgs),
    /// Push an image to a registry, under its own name or REMOTE
    Push {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Where to push it (default: its own name)
        remote: Option<String>,
    },
    /// Import a docker-save or OCI archive (FILE or - for stdin); with
    /// --rootfs, a root filesystem tarball as a one-layer image
    Import {
        /// Name the image made from a rootfs tarball
        #[arg(long)]
        rootfs: Option<String>,
        file: String,
    },
    /// Export images as a docker-save or OCI archive
    Export {
        /// docker or oci
        #[arg(long, default_value = "docker")]
        format: String,
        /// The archive (default: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Remove image names (content goes with `content gc`)
    #[command(visible_alias = "rm")]
    Remove {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// An image as lifecycled knows it, with its config, as JSON
    Inspect { name: String },
}

#[derive(Args)]
pub struct RegistryArgs {
    /// USER:PASSWORD for the registry
    #[arg(short, long)]
    user: Option<String>,
    /// Registry host[:port] to reach over plain HTTP (repeatable)
    #[arg(long)]
    insecure: Vec<String>,
    /// The reference (pull) or local name (push)
    reference: String,
}

#[derive(Subcommand)]
pub enum SnapshotsCmd {
    /// Unpacked layers and containers' writable snapshots
    #[command(visible_alias = "ls")]
    List,
    /// Disk use, in total or of one snapshot
    Usage { key: Option<String> },
}

#[derive(Subcommand)]
pub enum ContentCmd {
    /// Blobs by digest
    #[command(visible_alias = "ls")]
    List,
    /// Remove blobs and unpacked layers nothing refers to
    Gc,
}

fn images(ctx: &Ctx) -> ImagesClient<tonic::transport::Channel> {
    ImagesClient::new(ctx.channel.clone())
}

fn short(digest: &str) -> String {
    digest
        .split_once(':')
        .map(|(_, h)| h)
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// Bytes, decimal, as Docker shows sizes.
fn size(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{n}B");
    }
    let s = format!("{v:.2}");
    format!(
        "{}{}",
        s.trim_end_matches('0').trim_end_matches('.'),
        UNITS[i]
    )
}

fn auth(user: &Option<String>) -> Result<Option<pb::Auth>> {
    let Some(u) = user else { return Ok(None) };
    let (username, password) = u
        .split_once(':')
        .context("--user: expected USER:PASSWORD")?;
    Ok(Some(pb::Auth {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    }))
}

/// Shows pull or push progress: on a terminal one line per layer, redrawn
/// in place; otherwise a line per state change.
async fn show_progress(mut s: tonic::Streaming<api::PullResponse>) -> Result<api::Image> {
    let tty = crate::term::is_tty(1);
    let mut ids: Vec<String> = Vec::new();
    let mut out = std::io::stdout();
    loop {
        let msg = s.message().await.map_err(daemon)?;
        let Some(msg) = msg else {
            bail!("berth-lifecycled ended the stream without a result");
        };
        match msg.kind {
            Some(api::pull_response::Kind::Image(i)) => return Ok(i),
            Some(api::pull_response::Kind::Progress(p)) => {
                let moving = matches!(p.action.as_str(), "downloading" | "pushing" | "extracting");
                let mut line = format!("{}: {}", p.id, p.action);
                if moving && p.total > 0 {
                    let width = 30;
                    let filled = ((p.current as f64 / p.total as f64) * width as f64) as usize;
                    let filled = filled.min(width);
                    line.push_str(&format!(
                        " [{}{}] {}/{}",
                        "=".repeat(filled),
                        " ".repeat(width - filled),
                        size(p.current),
                        size(p.total)
                    ));
                }
                if !tty {
                    if !moving {
                        writeln!(out, "{line}")?;
                    }
                    continue;
                }
                match ids.iter().position(|x| *x == p.id) {
                    Some(i) => {
                        let up = ids.len() - i;
                        write!(out, "\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B")?;
                    }
                    None => {
                        ids.push(p.id.clone());
                        writeln!(out, "{line}")?;
                    }
                }
                out.flush()?;
            }
            None => {}
        }
    }
}

pub async fn run_images(ctx: &Ctx, cmd: ImagesCmd) -> Result<i32> {
    let mut c = images(ctx);
    match cmd {
        ImagesCmd::List { filters, quiet } => {
            let list = c
                .list(ctx.req(api::ListImagesRequest { filters }))
                .await
                .map_err(daemon)?
                .into_inner()
                .images;
            if quiet {
                for i in &list {
                    println!("{}", i.name);
                }
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        short(&i.config_digest),
                        i.target
                            .as_ref()
                            .map(|t| t.digest.clone())
                            .unwrap_or_default(),
                        size(i.size),
                        time(&i.created_at),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["NAME", "IMAGE ID", "DIGEST", "SIZE", "CREATED"], &rows)
            );
        }
        ImagesCmd::Pull(r) => {
            let s = c
                .pull(ctx.req(api::PullRequest {
                    reference: r.reference.clone(),
                    auth: auth(&r.user)?,
                    registry: Some(api::RegistryOptions {
                        insecure: r.insecure,
                        ..Default::default()
                    }),
                    plugin: false,
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            let image = show_progress(s).await?;
            let digest = image.target.map(|t| t.digest).unwrap_or_default();
            println!("{}: pulled {digest}", image.name);
        }
        ImagesCmd::Push {
            registry: r,
            remote,
        } => {
            let s = c
                .push(ctx.req(api::PushRequest {
                    name: r.reference.clone(),
                    reference: remote.unwrap_or_default(),
                    auth: auth(&r.user)?,
                    registry: Some(api::RegistryOptions {
                        insecure: r.insecure,
                        ..Default::default()
                    }),
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            let image = show_progress(s).await?;
            let digest = image.target.map(|t| t.digest).unwrap_or_default();
            println!("{}: pushed {digest}", image.name);
        }
        ImagesCmd::Import { rootfs, file } => {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tx.send(api::ImportRequest {
                kind: Some(api::import_request::Kind::Options(api::ImportOptions {
                    rootfs_name: rootfs.unwrap_or_default(),
                    rootfs_config: Vec::new(),
                    plugin: false,
                })),
            })
            .await?;
            let mut input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == "-" {
                Box::new(tokio::io::stdin())
            } else {
                Box::new(
                    tokio::fs::File::open(&file)
                        .await
                        .with_context(|| format!("opening {file}"))?,
                )
            };
            let feed = tokio::spawn(async move {
                loop {
                    let mut buf = vec![0u8; 256 * 1024];
                    let n = input.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    buf.truncate(n);
                    let chunk = api::ImportRequest {
                        kind: Some(api::import_request::Kind::Chunk(buf)),
                    };
                    if tx.send(chunk).await.is_err() {
                        return Ok(());
                    }
                }
            });
            let res = c
                .import(ctx.req(tokio_stream::wrappers::ReceiverStream::new(rx)))
                .await;
            feed.await?.with_context(|| format!("reading {file}"))?;
            for i in res.map_err(daemon)?.into_inner().images {
                println!("{}", i.name);
            }
        }
        ImagesCmd::Export {
            format,
            output,
            names,
        } => {
            let mut s = c
                .export(ctx.req(api::ExportRequest { names, format }))
                .await
                .map_err(daemon)?
                .into_inner();
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => {
                    if crate::term::is_tty(1) {
                        bail!(
                            "refusing to write an archive to a terminal: use -o FILE or redirect"
                        );
                    }
                    Box::new(std::io::stdout())
                }
            };
            while let Some(chunk) = s.message().await.map_err(daemon)? {
                out.write_all(&chunk.data)?;
            }
            out.flush()?;
        }
        ImagesCmd::Tag { source, target } => {
            let i = c
                .tag(ctx.req(api::TagImageRequest { source, target }))
                .await
                .map_err(daemon)?
                .into_inner();
            println!("{}", i.name);
        }
        ImagesCmd::Remove { names } => {
            let mut failed = false;
            for name in names {
                match c
                    .delete(ctx.req(api::ImageRequest { name: name.clone() }))
                    .await
                {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berth-ctr: {name}: {}", e.message());
                        failed = true;
                    }
                }
            }
            return Ok(failed as i32);
        }
        ImagesCmd::Inspect { name } => {
            let i = c
                .get(ctx.req(api::ImageRequest { name }))
                .await
                .map_err(daemon)?
                .into_inner();
            let config: Value = serde_json::from_slice(&i.config).unwrap_or(Value::Null);
            let v = json!({
                "name": i.name,
                "target": i.target.as_ref().map(|t| json!({"mediaType": t.media_type, "digest": t.digest, "size": t.size})),
                "configDigest": i.config_digest,
                "chainId": i.chain_id,
                "size": i.size,
                "labels": i.labels,
                "createdAt": time(&i.created_at),
                "layers": i.layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
                "diffIds": i.diff_ids,
                "config": config,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(0)
}

pub async fn run_snapshots(ctx: &Ctx, cmd: SnapshotsCmd) -> Result<i32> {
    let list = SnapshotsClient::new(ctx.channel.clone())
        .list(ctx.req(api::ListSnapshotsRequest {}))
        .await
        .map_err(daemon)?
        .into_inner()
        .snapshots;
    match cmd {
        SnapshotsCmd::List => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.key.clone(),
                        if s.parent.is_empty() {
                            "-".into()
                        } else {
                            s.parent.clone()
                        },
                        s.kind.clone(),
                        size(s.size),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["KEY", "PARENT", "KIND", "SIZE"], &rows)
            );
        }
        SnapshotsCmd::Usage { key } => {
            let chosen: Vec<&api::Snapshot> = match &key {
                Some(k) => list.iter().filter(|s| s.key == *k).collect(),
                None => list.iter().collect(),
            };
            if chosen.is_empty() {
                bail!("no snapshot {}", key.unwrap_or_default());
            }
            let rows: Vec<Vec<String>> = chosen
                .iter()
                .map(|s| vec![s.key.clone(), size(s.size), s.inodes.to_string()])
                .collect();
            print!("{}", table::render(&["KEY", "SIZE", "INODES"], &rows));
            if key.is_none() {
                let total: i64 = chosen.iter().map(|s| s.size).sum();
                println!("total: {} in {} snapshots", size(total), chosen.len());
            }
        }
    }
    Ok(0)
}

pub async fn run_content(ctx: &Ctx, cmd: ContentCmd) -> Result<i32> {
    let mut c = ContentClient::new(ctx.channel.clone());
    match cmd {
        ContentCmd::List => {
            let blobs = c
                .list(ctx.req(()))
                .await
                .map_err(daemon)?
                .into_inner()
                .blobs;
            let rows: Vec<Vec<String>> = blobs
                .iter()
                .map(|b| vec![b.digest.clone(), size(b.size)])
                .collect();
            print!("{}", table::render(&["DIGEST", "SIZE"], &rows));
        }
        ContentCmd::Gc => {
            let r = c
                .garbage_collect(ctx.req(()))
                .await
                .map_err(daemon)?
                .into_inner();
            println!(
                "removed {} blobs and {} unpacked layers, freed {}",
                r.blobs_removed,
                r.snapshots_removed,
                size(r.bytes_freed)
            );
        }
    }
    Ok(0)
}

/// A container from an image: the image's entrypoint, command, env and
/// working directory, its rootfs a snapshot of the image (key = id).
pub async fn container_from_image(
    ctx: &Ctx,
    a: &CreateArgs,
    image: &str,
    id: &str,
    command: &[String],
) -> Result<api::Container> {
    let i = images(ctx)
        .get(ctx.req(api::ImageRequest {
            name: image.to_string(),
        }))
        .await
        .map_err(daemon)?
        .into_inner();
    let config: Value = serde_json::from_slice(&i.config).unwrap_or(Value::Null);
    let cfg = &config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut args = strings(&cfg["Entrypoint"]);
    if command.is_empty() {
        args.extend(strings(&cfg["Cmd"]));
    } else {
        args.extend(command.iter().cloned());
    }
    if args.is_empty() {
        bail!("image {image} has no command: give one after the id");
    }
    let mut spec = specgen::defaults::spec(&args, a.tty);
    spec["hostname"] = json!(id.chars().take(12).collect::<String>());
    let mut env = strings(&cfg["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", specgen::defaults::DEFAULT_PATH));
    }
    env.extend(a.env.iter().cloned());
    spec["process"]["env"] = json!(env);
    if let Some(w) = cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
        spec["process"]["cwd"] = json!(w);
    }
    if let Some(u) = cfg["User"].as_str().filter(|u| !u.is_empty()) {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        match (uid.parse::<u32>(), gid.parse::<u32>()) {
            (Ok(uid), Ok(gid)) => spec["process"]["user"] = json!({"uid": uid, "gid": gid}),
            _ => bail!(
                "image {image} runs as user {u:?}: berth-ctr takes numeric users only (berthd resolves names)"
            ),
        }
    }
    if a.tty {
        spec["process"]["terminal"] = json!(true);
    }
    let labels = a
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("label {l:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    Ok(api::Container {
        id: id.to_string(),
        labels,
        image: i.name,
        runtime: a.runtime.clone(),
        spec: spec.to_string().into_bytes(),
        snapshot_key: id.to_string(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(1500), "1.5kB");
        assert_eq!(size(4_260_000), "4.26MB");
    }
}
