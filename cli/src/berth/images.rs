//! Image commands: images, pull (with Docker's progress display), push,
//! tag, rmi, save, load, import, commit, history, image prune.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};

use super::client::{Body, Error, JsonLines, empty, q};
use super::{Ctx, for_each, format, human_duration, human_size, human_size4, now_unix, short_id};

#[derive(Subcommand)]
pub enum Common {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Show the history of an image
    History(HistoryArgs),
}

#[derive(Subcommand)]
pub enum Group {
    #[command(flatten)]
    Common(Common),
    /// List images
    #[command(visible_aliases = ["list"])]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(visible_aliases = ["rmi", "remove"])]
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    Inspect(super::system::InspectArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Build an image from a Dockerfile
    Build(Box<super::build::BuildArgs>),
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    image: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    image: String,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// A tarball file, or - for STDIN
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pause: bool,
    container: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Search the Docker Hub (or the registry the term names) for images
    term: String,
    /// Max number of search results
    #[arg(long)]
    limit: Option<u32>,
    /// Filter output based on conditions provided (stars=N, is-official=true)
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Format output using a Go template or "table" / "json"
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    image: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub async fn common(ctx: &Ctx, c: Common) -> Result<i32> {
    match c {
        Common::Pull(a) => {
            let name = if a.all_tags {
                pull_all_tags(ctx, &a.image, a.quiet).await?
            } else {
                pull(ctx, &a.image, a.quiet, false).await?
            };
            println!("{name}");
            Ok(0)
        }
        Common::Push(a) => push(ctx, a).await,
        Common::Tag(a) => {
            let (repo, tag) = split_tag(&a.target);
            ctx.client
                .post(
                    &format!("/images/{}/tag?repo={}&tag={}", a.source, q(&repo), q(&tag)),
                    None,
                )
                .await?;
            Ok(0)
        }
        Common::Save(a) => {
            if a.output.is_none() && crate::term::is_tty(1) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let names: Vec<String> = a.images.iter().map(|n| format!("names={}", q(n))).collect();
            let resp = ctx
                .client
                .request(
                    Method::GET,
                    &format!("/images/get?{}", names.join("&")),
                    empty(),
                    &[],
                )
                .await?;
            body_to_output(resp.into_body(), a.output.as_deref()).await?;
            Ok(0)
        }
        Common::Load(a) => {
            let body = match &a.input {
                Some(p) => body_from_reader(
                    tokio::fs::File::open(p)
                        .await
                        .with_context(|| format!("open {p}"))?,
                ),
                None => {
                    if crate::term::is_tty(0) {
                        bail!("requested load from stdin, but stdin is empty");
                    }
                    body_from_reader(tokio::io::stdin())
                }
            };
            let resp = ctx
                .client
                .request(
                    Method::POST,
                    &format!("/images/load?quiet={}", a.quiet as u8),
                    body,
                    &[("Content-Type", "application/x-tar".into())],
                )
                .await?;
            show_stream(JsonLines::new(resp.into_body()), false).await?;
            Ok(0)
        }
        Common::Import(a) => {
            let mut path = String::from("/images/create?");
            let (src, body) = if a.file == "-" {
                ("-".to_string(), body_from_reader(tokio::io::stdin()))
            } else if a.file.starts_with("http://") || a.file.starts_with("https://") {
                (a.file.clone(), empty())
            } else {
                let f = tokio::fs::File::open(&a.file)
                    .await
                    .with_context(|| format!("open {}", a.file))?;
                ("-".to_string(), body_from_reader(f))
            };
            path.push_str(&format!("fromSrc={}", q(&src)));
            if let Some(r) = &a.reference {
                let (repo, tag) = split_tag(r);
                path.push_str(&format!("&repo={}&tag={}", q(&repo), q(&tag)));
            }
            if let Some(m) = &a.message {
                path.push_str(&format!("&message={}", q(m)));
            }
            for c in &a.change {
                path.push_str(&format!("&changes={}", q(c)));
            }
            if let Some(p) = &a.platform {
                path.push_str(&format!("&platform={}", q(p)));
            }
            let resp = ctx
                .client
                .request(
                    Method::POST,
                    &path,
                    body,
                    &[("Content-Type", "application/x-tar".into())],
                )
                .await?;
            show_stream(JsonLines::new(resp.into_body()), false).await?;
            Ok(0)
        }
        Common::Commit(a) => {
            let mut path = format!("/commit?container={}&pause={}", q(&a.container), a.pause);
            if let Some(r) = &a.reference {
                let (repo, tag) = split_tag(r);
                path.push_str(&format!("&repo={}&tag={}", q(&repo), q(&tag)));
            }
            if let Some(m) = &a.message {
                path.push_str(&format!("&comment={}", q(m)));
            }
            if let Some(au) = &a.author {
                path.push_str(&format!("&author={}", q(au)));
            }
            for c in &a.change {
                path.push_str(&format!("&changes={}", q(c)));
            }
            let v = ctx.client.post(&path, Some(&json!({}))).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        Common::History(a) => history(ctx, a).await,
    }
}

pub async fn group(ctx: &Ctx, g: Group) -> Result<i32> {
    match g {
        Group::Common(c) => common(ctx, c).await,
        Group::Ls(a) => images(ctx, a).await,
        Group::Rm(a) => rmi(ctx, a).await,
        Group::Inspect(a) => super::system::inspect(ctx, a, Some("image")).await,
        Group::Build(a) => super::build::build(ctx, *a).await,
        Group::Prune(a) => {
            let warning = if a.all {
                "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
            } else {
                "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
            };
            if !a.force && !super::system::confirm(warning)? {
                return Ok(0);
            }
            let mut filters = a.filter.clone();
            if a.all {
                filters.push("dangling=false".into());
            }
            let f = super::filters_json(&filters)?;
            let v = ctx
                .client
                .post(&format!("/images/prune?filters={}", q(&f)), None)
                .await?;
            let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Images:");
                for d in &deleted {
                    if let Some(u) = d["Untagged"].as_str() {
                        println!("untagged: {u}");
                    }
                    if let Some(x) = d["Deleted"].as_str() {
                        println!("deleted: {x}");
                    }
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                human_size4(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
            );
            Ok(0)
        }
    }
}

/// `repo[:tag]` → (repo, tag), the tag being after the last colon that
/// follows the last slash (a registry port is not a tag).
pub fn split_tag(r: &str) -> (String, String) {
    if let Some((repo, digest)) = r.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[slash..].rfind(':') {
        Some(i) => (r[..slash + i].to_string(), r[slash + i + 1..].to_string()),
        None => (r.to_string(), String::new()),
    }
}

/// The registry host of a reference, as Docker decides it.
pub fn registry_of(r: &str) -> String {
    match r.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// Docker's fully qualified form: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(r: &str) -> String {
    let (repo, tag) = split_tag(r);
    let mut full = if registry_of(&repo) == "docker.io" {
        let path = repo.strip_prefix("docker.io/").unwrap_or(&repo);
        if path.contains('/') {
            format!("docker.io/{path}")
        } else {
            format!("docker.io/library/{path}")
        }
    } else {
        repo
    };
    if r.contains('@') {
        full.push('@');
        full.push_str(&tag);
    } else {
        full.push(':');
        full.push_str(if tag.is_empty() { "latest" } else { &tag });
    }
    full
}

pub(crate) fn auth_header(ctx: &Ctx, image: &str) -> (&'static str, String) {
    use base64::Engine;
    let auth = super::config::registry_auth(&ctx.cfg, &registry_of(image))
        .unwrap_or_else(|| base64::engine::general_purpose::URL_SAFE.encode("{}"));
    ("X-Registry-Auth", auth)
}

/// Pulls an image, rendering the daemon's progress (on stderr when `to_stderr`,
/// as `run` does). Returns the normalized name.
pub async fn pull(ctx: &Ctx, image: &str, quiet: bool, to_stderr: bool) -> Result<String> {
    let (repo, tag) = split_tag(image);
    let tag = if tag.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    let path = format!("/images/create?fromImage={}&tag={}", q(&repo), q(&tag));
    create(ctx, &path, image, quiet, to_stderr).await?;
    Ok(normalize(image))
}

/// POST /images/create (a pull), its progress shown or drained.
async fn create(ctx: &Ctx, path: &str, image: &str, quiet: bool, to_stderr: bool) -> Result<()> {
    let resp = ctx
        .client
        .request(Method::POST, path, empty(), &[auth_header(ctx, image)])
        .await?;
    let lines = JsonLines::new(resp.into_body());
    if quiet {
        drain(lines).await
    } else {
        show_stream(lines, to_stderr).await
    }
}

/// Pulls every tag of a repository (the daemon's pull of a name without a
/// tag). Returns the normalized repository.
async fn pull_all_tags(ctx: &Ctx, image: &str, quiet: bool) -> Result<String> {
    let (repo, tag) = split_tag(image);
    if !tag.is_empty() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let path = format!("/images/create?fromImage={}", q(&repo));
    create(ctx, &path, image, quiet, false).await?;
    let full = normalize(&repo);
    Ok(full.strip_suffix(":latest").unwrap_or(&full).to_string())
}

async fn push(ctx: &Ctx, a: PushArgs) -> Result<i32> {
    let (repo, tag) = split_tag(&a.image);
    let tag = if a.all_tags {
        String::new()
    } else if tag.is_empty() {
        "latest".into()
    } else {
        tag
    };
    let path = format!("/images/{repo}/push?tag={}", q(&tag));
    let resp = ctx
        .client
        .request(Method::POST, &path, empty(), &[auth_header(ctx, &a.image)])
        .await?;
    let lines = JsonLines::new(resp.into_body());
    if a.quiet {
        drain(lines).await?;
        println!("{}", a.image);
    } else {
        show_stream(lines, false).await?;
    }
    Ok(0)
}

/// Reads a progress stream without showing it; its error still fails.
async fn drain(mut lines: JsonLines) -> Result<()> {
    while let Some(m) = lines.next().await? {
        stream_error(&m)?;
    }
    Ok(())
}

fn stream_error(m: &Value) -> Result<()> {
    if let Some(e) = m["errorDetail"]["message"].as_str().or(m["error"].as_str()) {
        return Err(Error::Daemon {
            status: 500,
            message: e.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Docker's progress bar: `[=====>     ]  1.2MB/3.4MB`.
fn bar(current: f64, total: f64) -> String {
    if total <= 0.0 {
        return human_size(current);
    }
    let width = 50usize;
    let filled = ((current / total) * width as f64).clamp(0.0, width as f64) as usize;
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled));
    if filled < width {
        s.push('>');
        s.push_str(&" ".repeat(width - filled - 1));
    }
    s.push_str(&format!(
        "] {:>8}/{}",
        human_size(current),
        human_size(total)
    ));
    s
}

/// Shows a daemon's JSON message stream as Docker does: on a terminal one
/// line per layer, updated in place; otherwise one line per status change.
pub async fn show_stream(mut lines: JsonLines, to_stderr: bool) -> Result<()> {
    let tty = crate::term::is_tty(if to_stderr { 2 } else { 1 });
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut view = StatusView::new(tty);
    while let Some(m) = lines.next().await? {
        stream_error(&m)?;
        // A result for the client (a push's digest, a build's image id),
        // not a line to show, as the docker CLI takes it.
        if m.get("aux").is_some() {
            continue;
        }
        if let Some(s) = m["stream"].as_str() {
            write!(out, "{s}")?;
            out.flush()?;
            continue;
        }
        view.show(&mut out, &m)?;
    }
    Ok(())
}

/// The status lines of a JSON message stream (a pull's, a push's, a
/// build's pull) as the docker CLI shows them: `id: status`; on a terminal
/// a layer's line is updated in place with its progress bar, elsewhere
/// byte counts are left out (they scroll uselessly in a log).
pub struct StatusView {
    tty: bool,
    /// The layers shown, top to bottom, on a terminal.
    ids: Vec<String>,
}

impl StatusView {
    pub fn new(tty: bool) -> StatusView {
        StatusView {
            tty,
            ids: Vec::new(),
        }
    }

    pub fn show(&mut self, out: &mut dyn Write, m: &serde_json::Value) -> std::io::Result<()> {
        let status = m["status"].as_str().unwrap_or("");
        let id = m["id"].as_str().unwrap_or("");
        let detail = &m["progressDetail"];
        let progress = match (detail["current"].as_f64(), detail["total"].as_f64()) {
            (Some(c), t) => Some(bar(c, t.unwrap_or(0.0))),
            _ => m["progress"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map(String::from),
        };
        if !self.tty {
            if progress.is_some() {
                return Ok(());
            }
            if id.is_empty() {
                writeln!(out, "{status}")?;
            } else {
                writeln!(out, "{id}: {status}")?;
            }
            return Ok(());
        }
        let text = match (&progress, id.is_empty()) {
            (_, true) => status.to_string(),
            (Some(p), false) => format!("{id}: {status} {p}"),
            (None, false) => format!("{id}: {status}"),
        };
        if id.is_empty() {
            writeln!(out, "{text}")?;
            self.ids.clear();
        } else if let Some(pos) = self.ids.iter().position(|x| x == id) {
            let up = self.ids.len() - pos;
            write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
        } else {
            self.ids.push(id.to_string());
            writeln!(out, "{text}")?;
        }
        out.flush()
    }
}

/// An HTTP request body streamed from a reader (a file, our stdin).
pub fn body_from_reader<R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static>(r: R) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures::stream::unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(hyper::body::Frame::data(bytes::Bytes::from(buf))), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    http_body_util::StreamBody::new(stream).boxed()
}

/// Streams a response body to a file (`-o`) or our stdout.
pub async fn body_to_output(mut body: hyper::body::Incoming, output: Option<&str>) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("failed to save to {p}"))?,
        ),
        None => {
            if crate::term::is_tty(1) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(tokio::io::stdout())
        }
    };
    while let Some(f) = body.frame().await {
        let f = f.context("reading the daemon's answer")?;
        if let Ok(d) = f.into_data() {
            out.write_all(&d).await?;
        }
    }
    out.flush().await?;
    Ok(())
}

pub async fn images(ctx: &Ctx, a: ImagesArgs) -> Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let mut path = format!(
        "/images/json?all={}&digests={}",
        a.all as u8, a.digests as u8
    );
    if !filters.is_empty() {
        path.push_str(&format!("&filters={}", q(&super::filters_json(&filters)?)));
    }
    let list = ctx.client.get(&path).await?;
    let list = list.as_array().cloned().unwrap_or_default();
    let id_of = |img: &Value| {
        let id = img["Id"].as_str().unwrap_or("");
        if a.no_trunc {
            id.to_string()
        } else {
            short_id(id)
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for img in &list {
            let id = id_of(img);
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for img in &list {
        let created = img["Created"].as_i64().unwrap_or(0);
        let tags: Vec<String> = img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .filter(|t| *t != "<none>:<none>")
            .map(String::from)
            .collect();
        let digests: Vec<String> = img["RepoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let pairs: Vec<(String, String)> = if tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|t| {
                    let (r, tg) = split_tag(t);
                    (r, tg)
                })
                .collect()
        };
        for (repo, tag) in pairs {
            let digest = digests
                .iter()
                .find(|d| d.starts_with(&format!("{repo}@")))
                .and_then(|d| d.split_once('@'))
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "<none>".into());
            rows.push(json!({
                "ID": id_of(img),
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": format!("{} ago", human_duration(now_unix() - created)),
                "CreatedAt": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(created.max(0) as u64)).to_string(),
                "Size": human_size(img["Size"].as_f64().unwrap_or(0.0)),
                "Containers": img["Containers"].as_i64().map(|c| c.to_string()).unwrap_or_else(|| "N/A".into()),
            }));
        }
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let fmt = format::template(a.format.as_deref(), default);
    let header = |f: &str| match f {
        "ID" => "IMAGE ID".to_string(),
        f => format::header(f),
    };
    format::parse(&fmt, &header)?.print(&rows)?;
    Ok(0)
}

pub async fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<i32> {
    let query = format!("force={}&noprune={}", a.force, a.no_prune);
    for_each(&a.images, true, |n| {
        let query = query.clone();
        async move {
            let v = ctx
                .client
                .json(Method::DELETE, &format!("/images/{n}?{query}"), None)
                .await?;
            for d in v.as_array().into_iter().flatten() {
                if let Some(u) = d["Untagged"].as_str() {
                    println!("Untagged: {u}");
                }
                if let Some(x) = d["Deleted"].as_str() {
                    println!("Deleted: {x}");
                }
            }
            Ok(())
        }
    })
    .await
}

pub async fn search(ctx: &Ctx, a: SearchArgs) -> Result<i32> {
    let mut path = format!("/images/search?term={}", q(&a.term));
    if let Some(n) = a.limit {
        path.push_str(&format!("&limit={n}"));
    }
    if !a.filter.is_empty() {
        let mut f = serde_json::Map::new();
        for kv in &a.filter {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let e = f.entry(k.to_string()).or_insert_with(|| json!({}));
            e[v] = json!(true);
        }
        path.push_str(&format!("&filters={}", q(&Value::Object(f).to_string())));
    }
    let resp = ctx
        .client
        .request(Method::GET, &path, empty(), &[auth_header(ctx, &a.term)])
        .await?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the daemon's answer: {e}"))?
        .to_bytes();
    let found: Vec<Value> = serde_json::from_slice(&body).context("reading the search results")?;
    let rows: Vec<Value> = found
        .iter()
        .map(|r| {
            let mut description = r["description"].as_str().unwrap_or("").replace('\n', " ");
            if !a.no_trunc && description.chars().count() > 45 {
                description = description.chars().take(44).collect::<String>() + "…";
            }
            let yes = |k: &str| {
                if r[k].as_bool().unwrap_or(false) {
                    "[OK]"
                } else {
                    ""
                }
            };
            json!({
                "Name": r["name"], "Description": description,
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": yes("is_official"), "IsAutomated": yes("is_automated"),
            })
        })
        .collect();
    let fmt = format::template(
        a.format.as_deref(),
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
    );
    let header = |f: &str| match f {
        "StarCount" => "STARS".to_string(),
        "IsOfficial" => "OFFICIAL".to_string(),
        "IsAutomated" => "AUTOMATED".to_string(),
        f => format::header(f),
    };
    format::parse(&fmt, &header)?.print(&rows)?;
    Ok(0)
}

async fn history(ctx: &Ctx, a: HistoryArgs) -> Result<i32> {
    let v = ctx
        .client
        .get(&format!("/images/{}/history", a.image))
        .await?;
    let list = v.as_array().cloned().unwrap_or_default();
    let id_of = |h: &Value| {
        let id = h["Id"].as_str().unwrap_or("<missing>");
        if id == "<missing>" || a.no_trunc {
            id.to_string()
        } else {
            short_id(id)
        }
    };
    if a.quiet {
        for h in &list {
            println!("{}", id_of(h));
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|h| {
            let created = h["Created"].as_i64().unwrap_or(0);
            let mut by = h["CreatedBy"].as_str().unwrap_or("").to_string();
            if !a.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            let size = h["Size"].as_f64().unwrap_or(0.0);
            json!({
                "ID": id_of(h),
                "CreatedSince": if a.human { format!("{} ago", human_duration(now_unix() - created)) } else { created.to_string() },
                "CreatedBy": by,
                "Size": if a.human { human_size(size) } else { (size as i64).to_string() },
                "Comment": h["Comment"].as_str().unwrap_or(""),
            })
        })
        .collect();
    let fmt = format::template(
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    );
    let header = |f: &str| match f {
        "ID" => "IMAGE".to_string(),
        f => format::header(f),
    };
    format::parse(&fmt, &header)?.print(&rows)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_and_normalize_like_dockers() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "".into()));
        assert_eq!(split_tag("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(
            split_tag("127.0.0.1:5000/bb"),
            ("127.0.0.1:5000/bb".into(), "".into())
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/bb:v1"),
            ("127.0.0.1:5000/bb".into(), "v1".into())
        );
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("me/app:1"), "docker.io/me/app:1");
        assert_eq!(normalize("localhost:5000/bb"), "localhost:5000/bb:latest");
        assert_eq!(registry_of("localhost/bb"), "localhost");
        assert_eq!(registry_of("library/bb"), "docker.io");
    }

    #[test]
    fn progress_bars_have_dockers_shape() {
        let b = bar(50.0, 100.0);
        assert!(b.starts_with("[=========================>"));
        assert!(b.ends_with("50B/100B"));
        assert_eq!(bar(10.0, 0.0), "10B");
    }
}
