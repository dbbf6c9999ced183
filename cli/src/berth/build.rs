//! `berth build`: the context (a directory, a tar or a Dockerfile on stdin)
//! streamed to berthd as a tar with the .dockerignore applied as the docker
//! CLI applies it, the daemon's steps shown as they run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use super::Ctx;
use super::client::JsonLines;
use super::images::body_from_reader;

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the name:tag format (repeatable)
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: PATH/Dockerfile; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set metadata for an image (KEY=VALUE, repeatable)
    #[arg(long = "label")]
    label: Vec<String>,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: String,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Limit the CPU CFS period
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// Limit the CPU CFS quota
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// PATH, - to read a tar archive or a Dockerfile from stdin, or a URL
    /// the daemon fetches: a git repository (URL#ref:subdir), a tar
    /// archive, or a Dockerfile
    context: String,
}

/// `--memory 64m` and friends as bytes (Docker's RAMInBytes).
fn bytes(v: &str) -> Result<i64> {
    if v == "-1" {
        return Ok(-1);
    }
    let lower = v.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{v}'"))?;
    Ok((n * mult as f64) as i64)
}

fn q(s: &str) -> String {
    super::client::q(s)
}

/// Whether stdin's first bytes are an archive rather than a Dockerfile.
fn looks_like_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.get(257..262) == Some(b"ustar")
}

/// The context as a tar, written by a thread into a pipe the request
/// streams from: never held whole in memory.
fn context_tar(
    dir: PathBuf,
    ignore: dockerignore::Patterns,
    dockerfile_rel: Option<String>,
    extra: Option<(String, Vec<u8>)>,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    let (rd, wr) = std::os::unix::net::UnixStream::pair()?;
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(256 << 10, wr));
        b.follow_symlinks(false);
        let keep = |rel: &str| {
            // The Dockerfile and .dockerignore always go: the daemon reads
            // them and drops them if they are excluded, as Docker's CLI.
            rel == ".dockerignore"
                || Some(rel) == dockerfile_rel.as_deref()
                || !ignore.excludes(rel)
        };
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(dir.join(&rel)) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let r = rel.join(e.file_name());
                let rs = r.to_string_lossy().into_owned();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    if keep(&rs) {
                        if b.append_path_with_name(e.path(), &r).is_err() {
                            return;
                        }
                        stack.push(r);
                    } else if ignore.may_include_below(&rs) {
                        stack.push(r);
                    }
                } else if keep(&rs) && b.append_path_with_name(e.path(), &r).is_err() {
                    return;
                }
            }
        }
        if let Some((name, data)) = extra {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            if b.append_data(&mut h, name, &data[..]).is_err() {
                return;
            }
        }
        let _ = b.finish();
    });
    Ok(rd)
}

/// A whole directory as a tar stream (a plugin's config and rootfs).
pub fn dir_tar(dir: PathBuf) -> std::io::Result<std::os::unix::net::UnixStream> {
    context_tar(dir, dockerignore::Patterns::default(), None, None)
}

/// A lone Dockerfile as a one-file context.
fn dockerfile_tar(text: &[u8]) -> std::io::Result<std::os::unix::net::UnixStream> {
    let (rd, wr) = std::os::unix::net::UnixStream::pair()?;
    let data = text.to_vec();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(wr);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let _ = b.append_data(&mut h, "Dockerfile", &data[..]);
        let _ = b.finish();
    });
    Ok(rd)
}

/// Stdin (a tar, or a Dockerfile) passed on as the context.
fn stdin_stream() -> Result<std::os::unix::net::UnixStream> {
    let mut head = vec![0u8; 512];
    let mut stdin = std::io::stdin().lock();
    let mut got = 0;
    while got < head.len() {
        match stdin.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    head.truncate(got);
    if !looks_like_archive(&head) {
        let mut rest = head;
        stdin.read_to_end(&mut rest)?;
        return Ok(dockerfile_tar(&rest)?);
    }
    drop(stdin);
    let (rd, mut wr) = std::os::unix::net::UnixStream::pair()?;
    std::thread::spawn(move || {
        if wr.write_all(&head).is_err() {
            return;
        }
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut wr);
    });
    Ok(rd)
}

/// A context the daemon fetches itself (the API's `remote`): an http(s)
/// URL, a git URL, or `github.com/…` when no such path is here.
fn is_remote(context: &str) -> bool {
    ["http://", "https://", "git://", "git@"]
        .iter()
        .any(|p| context.starts_with(p))
        || (context.starts_with("github.com/") && !Path::new(context).exists())
}

pub async fn build(ctx: &Ctx, a: BuildArgs) -> Result<i32> {
    let remote = is_remote(&a.context);
    if !remote && a.context.contains("://") {
        bail!(
            "unable to prepare context: {}: only http(s) and git URLs are fetched",
            a.context
        );
    }
    let mut query: Vec<(String, String)> = Vec::new();
    let (stream, dockerfile_param) = if remote {
        if a.file.as_deref() == Some("-") {
            bail!("invalid argument: can't use stdin for the Dockerfile of a remote context");
        }
        query.push(("remote".into(), a.context.clone()));
        // Nothing to send: the body ends at once.
        let (rd, _) = std::os::unix::net::UnixStream::pair()?;
        (rd, a.file.clone())
    } else if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        (stdin_stream()?, a.file.clone())
    } else {
        let dir = PathBuf::from(&a.context);
        if !dir.is_dir() {
            bail!("unable to prepare context: path {:?} not found", a.context);
        }
        let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
            Ok(t) => dockerignore::Patterns::parse(&t).context("reading .dockerignore")?,
            Err(_) => dockerignore::Patterns::default(),
        };
        let (rel, extra) = match a.file.as_deref() {
            Some("-") => {
                let mut text = Vec::new();
                std::io::stdin().read_to_end(&mut text)?;
                let name = format!(".dockerfile.{}", hex::encode(rand_bytes()));
                (name.clone(), Some((name, text)))
            }
            Some(f) => {
                let p = Path::new(f);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    std::env::current_dir()?.join(p)
                };
                let cdir = std::fs::canonicalize(&dir)?;
                let full = std::fs::canonicalize(&full).with_context(|| {
                    format!("unable to prepare context: the Dockerfile ({f}) cannot be read")
                })?;
                match full.strip_prefix(&cdir) {
                    Ok(r) => (r.to_string_lossy().into_owned(), None),
                    Err(_) => {
                        // Outside the context: sent in it under a name of its own.
                        let name = format!(".dockerfile.{}", hex::encode(rand_bytes()));
                        (name.clone(), Some((name, std::fs::read(&full)?)))
                    }
                }
            }
            None => {
                if !dir.join("Dockerfile").exists() && !dir.join("dockerfile").exists() {
                    bail!(
                        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                        dir.join("Dockerfile").display()
                    );
                }
                let name = if dir.join("Dockerfile").exists() {
                    "Dockerfile"
                } else {
                    "dockerfile"
                };
                (name.to_string(), None)
            }
        };
        (
            context_tar(dir, ignore, Some(rel.clone()), extra)?,
            Some(rel),
        )
    };
    if let Some(f) = &dockerfile_param {
        query.push(("dockerfile".into(), f.clone()));
    }
    for t in &a.tag {
        query.push(("t".into(), t.clone()));
    }
    let mut args = serde_json::Map::new();
    for b in &a.build_arg {
        match b.split_once('=') {
            Some((k, v)) => {
                args.insert(k.to_string(), json!(v));
            }
            None => {
                // KEY alone: its value from our environment, if set.
                let v = std::env::var(b).ok();
                args.insert(b.clone(), json!(v));
            }
        }
    }
    if !args.is_empty() {
        query.push(("buildargs".into(), Value::Object(args).to_string()));
    }
    let mut labels = serde_json::Map::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), json!(v));
    }
    if !labels.is_empty() {
        query.push(("labels".into(), Value::Object(labels).to_string()));
    }
    if let Some(t) = &a.target {
        query.push(("target".into(), t.clone()));
    }
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    query.push(("nocache".into(), flag(a.no_cache)));
    query.push(("pull".into(), flag(a.pull)));
    query.push(("q".into(), flag(a.quiet)));
    query.push(("rm".into(), flag(a.rm)));
    query.push(("forcerm".into(), flag(a.force_rm)));
    query.push(("networkmode".into(), a.network.clone()));
    if !a.add_host.is_empty() {
        query.push(("extrahosts".into(), a.add_host.join(",")));
    }
    if let Some(p) = &a.platform {
        query.push(("platform".into(), p.clone()));
    }
    if !a.cache_from.is_empty() {
        query.push(("cachefrom".into(), json!(a.cache_from).to_string()));
    }
    for (k, v) in [
        ("shmsize", &a.shm_size),
        ("memory", &a.memory),
        ("memswap", &a.memory_swap),
    ] {
        if let Some(v) = v {
            query.push((k.into(), bytes(v)?.to_string()));
        }
    }
    for (k, v) in [
        ("cpushares", a.cpu_shares),
        ("cpuperiod", a.cpu_period),
        ("cpuquota", a.cpu_quota),
    ] {
        if let Some(v) = v {
            query.push((k.into(), v.to_string()));
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        query.push(("cpusetcpus".into(), c.clone()));
    }
    let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", q(v))).collect();
    let path = format!("/build?{}", qs.join("&"));
    let mut headers = vec![("Content-Type", "application/x-tar".to_string())];
    if let Some(c) = registry_config(ctx) {
        headers.push(("X-Registry-Config", c));
    }
    stream.set_nonblocking(true)?;
    let body = body_from_reader(tokio::net::UnixStream::from_std(stream)?);
    let resp = ctx
        .client
        .request(Method::POST, &path, body, &headers)
        .await?;
    let mut lines = JsonLines::new(resp.into_body());
    let mut id = String::new();
    let mut out = std::io::stdout();
    // Quiet, the daemon says only the image id, or on a failure what it
    // held back first: shown then, on stderr, as the docker CLI does.
    let mut held: Vec<u8> = Vec::new();
    let mut held_view = super::images::StatusView::new(false);
    let mut view = super::images::StatusView::new(crate::term::is_tty(1));
    while let Some(m) = lines.next().await? {
        if let Some(e) = m["errorDetail"]["message"].as_str().or(m["error"].as_str()) {
            out.flush()?;
            if a.quiet {
                eprint!("{}", String::from_utf8_lossy(&held));
            }
            let code = m["errorDetail"]["code"]
                .as_i64()
                .filter(|c| *c > 0)
                .unwrap_or(1);
            return Err(super::exit_with(i32::try_from(code).unwrap_or(1), e));
        }
        if let Some(i) = m["aux"]["ID"].as_str() {
            id = i.to_string();
        }
        if a.quiet {
            if let Some(s) = m["stream"].as_str() {
                held.extend_from_slice(s.as_bytes());
            } else if m.get("status").is_some() {
                held_view.show(&mut held, &m)?;
            }
            continue;
        }
        if let Some(s) = m["stream"].as_str() {
            write!(out, "{s}")?;
            out.flush()?;
        } else if m.get("status").is_some() {
            // A FROM image's pull, shown as `pull` shows it.
            view.show(&mut out, &m)?;
        }
    }
    if a.quiet && id.is_empty() {
        id = String::from_utf8_lossy(&held).trim().to_string();
    }
    if id.is_empty() {
        bail!("the daemon's build ended without an image ID");
    }
    if a.quiet {
        println!("{id}");
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing image ID to {}", f.display()))?;
    }
    Ok(0)
}

/// X-Registry-Config: every registry's credentials from config.json, so a
/// FROM of a private image can be pulled.
fn registry_config(ctx: &Ctx) -> Option<String> {
    use base64::Engine;
    let auths = ctx.cfg.file["auths"].as_object()?;
    let mut out = serde_json::Map::new();
    for (registry, entry) in auths {
        let Some(decoded) = entry["auth"]
            .as_str()
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        if let Some((user, pass)) = text.split_once(':') {
            out.insert(
                registry.clone(),
                json!({"username": user, "password": pass, "serveraddress": registry}),
            );
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(base64::engine::general_purpose::URL_SAFE.encode(Value::Object(out).to_string()))
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_archives() {
        assert_eq!(bytes("64m").unwrap(), 64 << 20);
        assert_eq!(bytes("1g").unwrap(), 1 << 30);
        assert_eq!(bytes("512").unwrap(), 512);
        assert_eq!(bytes("-1").unwrap(), -1);
        assert!(bytes("lots").is_err());
        assert!(looks_like_archive(&[0x1f, 0x8b, 8]));
        assert!(!looks_like_archive(b"FROM busybox\n"));
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_excludes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("node_modules/x")).unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("node_modules/x/a.js"), "").unwrap();
        std::fs::write(d.path().join("src/main.c"), "").unwrap();
        std::fs::write(d.path().join("README.md"), "").unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(
            d.path().join(".dockerignore"),
            "node_modules\n*.md\nDockerfile\n",
        )
        .unwrap();
        let ignore = dockerignore::Patterns::parse("node_modules\n*.md\nDockerfile\n").unwrap();
        let mut s = context_tar(
            d.path().to_path_buf(),
            ignore,
            Some("Dockerfile".into()),
            None,
        )
        .unwrap();
        let mut data = Vec::new();
        s.read_to_end(&mut data).unwrap();
        let mut names: Vec<String> = tar::Archive::new(&data[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![".dockerignore", "Dockerfile", "src", "src/main.c"]
        );
    }
}
