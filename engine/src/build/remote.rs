//! Remote build contexts: `remote=` of POST /build, which docker-py's
//! `build(path=URL)`, docker-compose's `build: context: URL` and API
//! clients send instead of a tar. As dockerd's classic builder takes it
//! (the body is not read):
//! - a git repository, `URL#ref:subdir`, fetched by the host's git and
//!   built from its checkout;
//! - any other http(s) URL: a tar (plain or compressed) that is the
//!   context, or a text file that is the Dockerfile alone.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::json;

use super::context::Tree;
use super::{BuildError, Progress};
use crate::api::images::PullOutput;

/// What a `remote=` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Remote {
    Git(GitRepo),
    Url(String),
}

/// A git context: where from, what to check out, and the directory of
/// the checkout that is the context.
#[derive(Debug, Clone, PartialEq)]
pub struct GitRepo {
    pub url: String,
    /// None: the repository's default branch (its HEAD).
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

/// dockerd's test for a git URL: git's own forms, or an http(s) URL whose
/// path ends in `.git` (a fragment may follow).
static GIT_SUFFIX: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r".git(?:#.+)?$").expect("a valid pattern"));

pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git_url(s: &str) -> bool {
    (is_url(s) && GIT_SUFFIX.is_match(s))
        || ["git://", "github.com/", "git@"]
            .iter()
            .any(|p| s.starts_with(p))
}

impl Remote {
    pub fn parse(remote: &str) -> Result<Remote, BuildError> {
        if is_git_url(remote) {
            return GitRepo::parse(remote).map(Remote::Git);
        }
        if is_url(remote) {
            return Ok(Remote::Url(remote.to_string()));
        }
        Err(BuildError::Step(format!(
            "remoteURL ({remote}) could not be recognized as URL"
        )))
    }
}

impl GitRepo {
    fn parse(remote: &str) -> Result<GitRepo, BuildError> {
        let transport = remote.starts_with("git@")
            || ["git://", "http://", "https://", "ssh://"]
                .iter()
                .any(|p| remote.starts_with(p));
        // `github.com/user/repo` is fetched over https, as dockerd does.
        let remote = if transport {
            remote.to_string()
        } else {
            format!("https://{remote}")
        };
        let (url, fragment) = remote.split_once('#').unwrap_or((&remote, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        // A ref that git would take for an option.
        if reference.starts_with('-') {
            return Err(BuildError::Step(format!("invalid refspec: {reference}")));
        }
        Ok(GitRepo {
            url: url.to_string(),
            reference: some(reference),
            subdir: some(subdir),
        })
    }

    /// Fetches the repository into `root` (a new directory) and checks
    /// out what was asked; the context's directory.
    pub async fn fetch(&self, root: &Path) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(root)
            .map_err(|e| BuildError::Internal(format!("creating {}: {e}", root.display())))?;
        git(root, &["init", "--quiet"]).await.map_err(|out| {
            BuildError::Internal(format!("failed to init repo at {}: {out}", root.display()))
        })?;
        git(root, &["remote", "add", "origin", &self.url])
            .await
            .map_err(|out| {
                BuildError::Step(format!("failed add origin repo at {}: {out}", self.url))
            })?;
        let wanted = self.reference.as_deref().unwrap_or("HEAD");
        // Shallow when the server can (a dumb HTTP server cannot): the
        // whole history is fetched only then.
        if git(root, &["fetch", "--depth", "1", "origin", "--", wanted])
            .await
            .is_err()
        {
            git(root, &["fetch", "origin", "--", wanted])
                .await
                .map_err(|out| BuildError::Step(format!("error fetching: {out}")))?;
        }
        // A branch by its name (HEAD then names it), else what was fetched
        // (a tag, a commit, the default branch).
        let by_name = match &self.reference {
            Some(r) => git(root, &["checkout", "--quiet", r]).await,
            None => Err(String::new()),
        };
        if let Err(out) = by_name
            && git(root, &["checkout", "--quiet", "FETCH_HEAD"])
                .await
                .is_err()
        {
            return Err(BuildError::Step(format!(
                "error checking out {wanted}: {out}"
            )));
        }
        git(
            root,
            &["submodule", "update", "--init", "--recursive", "--depth=1"],
        )
        .await
        .map_err(|out| BuildError::Step(format!("error initializing submodules: {out}")))?;
        let Some(subdir) = &self.subdir else {
            return Ok(root.to_path_buf());
        };
        // Symlinks in the checkout are the repository's: they may not
        // lead the context out of it.
        let root = root
            .canonicalize()
            .map_err(|e| BuildError::Internal(format!("{}: {e}", root.display())))?;
        let dir = root.join(subdir).canonicalize().map_err(|e| {
            BuildError::Step(format!("stat {subdir}: {}", crate::error::go_os_error(&e)))
        })?;
        if !dir.starts_with(&root) {
            return Err(BuildError::Step(format!(
                "error setting git context, {subdir:?} not within git root"
            )));
        }
        if !dir.is_dir() {
            return Err(BuildError::Step(format!(
                "error setting git context, not a directory: {subdir}"
            )));
        }
        Ok(dir)
    }
}

/// Runs git in `dir`: its combined output when it fails. As dockerd runs
/// it: no repository on the engine's filesystem may be fetched (a
/// submodule pointing at a host path would copy host files into the
/// image), no transport but git's usual ones, and neither the host's nor
/// a user's git configuration applies. Never asks for a password: a
/// repository that wants one fails.
async fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let child = tokio::process::Command::new("git")
        .args(["-c", "protocol.file.allow=never"])
        .args(args)
        .current_dir(dir)
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A group of its own: its transport helpers (git-remote-http
        // holds the connection) end with it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running git: {e}"))?;
    let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let out = child.wait_with_output().await;
    // Ended by itself: nothing of its group is left to end.
    group.0 = None;
    let out = out.map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(text.trim().to_string())
}

/// A git process group, killed whole when its build lets go of it
/// before it ends (a client that left).
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The context `remote` names, fetched under `work` (the build's own
/// directory); its tree and size, as a received context's. `dockerfile`
/// is where a Dockerfile downloaded alone is put.
pub async fn context(
    remote: &Remote,
    work: &Path,
    dockerfile: &str,
    out: &Progress,
) -> Result<(Tree, u64), BuildError> {
    let fetch = async {
        match remote {
            Remote::Git(repo) => git_context(repo, work).await,
            Remote::Url(url) => url_context(url, work, dockerfile, out).await,
        }
    };
    // A client that leaves stops the fetch (git killed with it): the
    // handler watches the connection until the first word.
    tokio::select! {
        r = fetch => r,
        _ = out.gone() => Err(BuildError::Cancelled),
    }
}

async fn git_context(repo: &GitRepo, work: &Path) -> Result<(Tree, u64), BuildError> {
    let checkout = work.join("git");
    let dir = repo.fetch(&checkout).await?;
    let work = work.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let tar = work.join("git.tar");
        tar_dir(&dir, &tar)?;
        // The tree keeps a copy of its own: the checkout is done with.
        let _ = std::fs::remove_dir_all(&checkout);
        let f = std::fs::File::open(&tar)
            .map_err(|e| BuildError::Internal(format!("reading the git context: {e}")))?;
        let mut t = Tree::default();
        let n = t.add_tar(f, &work.join("context.tar"), "")?;
        let _ = std::fs::remove_file(&tar);
        Ok((t, n))
    })
    .await
    .map_err(|e| BuildError::Internal(format!("archiving the git context: {e}")))?
}

/// What dockerd takes from a URL, by the answer's Content-Type (the part
/// of it that matches).
static ACCEPTABLE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?:application/(?:(?:x\-)?tar|octet\-stream|((?:x\-)?(?:gzip|bzip2?|xz)))|(?:text/plain))",
    )
    .expect("a valid pattern")
});

/// dockerd reads this much of the answer to tell its content.
const PREAMBLE: usize = 100;

/// The kind of content its first bytes show, as Go's
/// http.DetectContentType tells the ones that matter here: markup (which
/// is refused), gzip, text, or other bytes (an archive).
fn sniff(head: &[u8]) -> &'static str {
    let start = head
        .iter()
        .position(|b| !b" \t\n\x0c\r".contains(b))
        .unwrap_or(head.len());
    let text = &head[start..];
    let markup = [
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    ];
    for tag in markup {
        if text.len() > tag.len()
            && text[..tag.len()].eq_ignore_ascii_case(tag.as_bytes())
            && matches!(text[tag.len()], b' ' | b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if text.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if head.starts_with(b"\x1f\x8b\x08") {
        return "application/x-gzip";
    }
    let binary = |b: &u8| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f);
    if head.iter().any(binary) {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// A URL's answer as dockerd takes it: a tar is the context; a text is
/// the Dockerfile, alone in it. The download is shown as dockerd shows it
/// ("Downloading context").
async fn url_context(
    url: &str,
    work: &Path,
    dockerfile: &str,
    out: &Progress,
) -> Result<(Tree, u64), BuildError> {
    let failed = |status: u16, m: String| {
        BuildError::Remote(
            status,
            format!("error downloading remote context {url}: {m}"),
        )
    };
    let mut resp = get(url).await.map_err(|(code, m)| failed(code, m))?;
    let header = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let detecting = |m: String| {
        BuildError::Step(format!(
            "error detecting content type for remote {url}: {m}"
        ))
    };
    let first = resp
        .chunk()
        .await
        .map_err(|e| detecting(error_chain(&e)))?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| detecting("empty response".into()))?;
    let kind = if header.is_empty() || header == "application/octet-stream" {
        sniff(&first[..first.len().min(PREAMBLE)])
    } else {
        header.as_str()
    };
    let Some(kind) = ACCEPTABLE.find(kind).map(|m| m.as_str().to_string()) else {
        return Err(detecting(format!("unsupported Content-Type {header:?}")));
    };
    let mut shown = Shown::new(url, out);
    shown.add(first.len()).await;
    if kind == "text/plain" {
        let mut text = first.to_vec();
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| failed(500, error_chain(&e)))?
        {
            text.extend_from_slice(&c);
            shown.add(c.len()).await;
        }
        shown.done().await;
        return dockerfile_alone(&text, work, dockerfile);
    }
    let chunks = futures::stream::unfold(
        (Some(first), resp, &mut shown),
        |(first, mut resp, shown)| async move {
            if let Some(c) = first {
                return Some((Ok(c), (None, resp, shown)));
            }
            match resp.chunk().await {
                Ok(Some(c)) => {
                    shown.add(c.len()).await;
                    Some((Ok(c), (None, resp, shown)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(error_chain(&e)), (None, resp, shown))),
            }
        },
    );
    let received = super::context::receive_chunks(chunks, work).await;
    // The tar may end before the answer does (its reader stops at the
    // archive's end): the last line is said here, whatever was read.
    shown.done().await;
    received
}

/// A GET as dockerd makes it for a build: the answer, or what failed and
/// the status dockerd answers it with (a server's 400, 401, 403 and 404
/// are kept; the rest is 500).
async fn get(url: &str) -> Result<reqwest::Response, (u16, String)> {
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| (500, format!("an HTTP client: {e}")))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| (500, error_chain(&e)))?;
    let status = resp.status();
    if status.as_u16() < 400 {
        return Ok(resp);
    }
    // The server's own words for its status, as Go keeps them.
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| status.canonical_reason().map(String::from))
        .unwrap_or_default();
    let body = resp.text().await.unwrap_or_default();
    let m = format!(
        "failed to GET {url} with status {} {reason}: {}",
        status.as_u16(),
        body.trim()
    );
    let code = match status.as_u16() {
        c @ (400 | 401 | 403 | 404) => c,
        _ => 500,
    };
    Err((code, m))
}

/// Where ADD's downloads are kept in a tree: no path of a context can
/// start with a NUL, so none is shadowed.
pub const DOWNLOADS: &str = "\0downloads";

/// A source of ADD fetched as dockerd fetches it: one file named by the
/// URL's path (or else its Content-Disposition), mode 0600, its time the
/// answer's Last-Modified (else zero), never unpacked; added to `tree`
/// under [`DOWNLOADS`]/`n`/. A URL that names no file takes `unnamed`
/// (the destination's name, when it is a file). Its path in the tree. The
/// download is shown as dockerd shows it ("Downloading", then a blank
/// line).
pub async fn add_source(
    url: &str,
    unnamed: Option<&str>,
    n: usize,
    tree: &mut Tree,
    work: &Path,
    out: &Progress,
) -> Result<String, BuildError> {
    // A client that leaves stops the download, an answer that never
    // comes included.
    tokio::select! {
        r = download(url, unnamed, n, tree, work, out) => r,
        _ = out.gone() => Err(BuildError::Cancelled),
    }
}

async fn download(
    url: &str,
    unnamed: Option<&str>,
    n: usize,
    tree: &mut Tree,
    work: &Path,
    out: &Progress,
) -> Result<String, BuildError> {
    let mut resp = get(url).await.map_err(|(_, m)| BuildError::Step(m))?;
    let name = download_name(&resp, url)
        .or_else(|| unnamed.map(String::from))
        .ok_or_else(|| BuildError::Step(format!("cannot determine filename for source {url}")))?;
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let total = resp
        .content_length()
        .map_or(0, |n| i64::try_from(n).unwrap_or(0));
    let body = work.join(format!("download-{n}"));
    let bad = |e: std::io::Error| BuildError::Internal(format!("downloading {url}: {e}"));
    let mut f = tokio::fs::File::create(&body).await.map_err(bad)?;
    let show = |done: i64| {
        json!({
            "status": "Downloading",
            "progressDetail": {"current": done, "total": total},
            "progress": crate::api::images::progress_bar(done, total),
            "id": "",
        })
    };
    let (mut done, mut last) = (0i64, 0i64);
    while let Some(c) = resp
        .chunk()
        .await
        .map_err(|e| BuildError::Step(format!("downloading {url}: {}", error_chain(&e))))?
    {
        tokio::io::AsyncWriteExt::write_all(&mut f, &c)
            .await
            .map_err(bad)?;
        done += i64::try_from(c.len()).unwrap_or(0);
        if done - last >= 512 << 10 {
            last = done;
            out.line(show(done)).await;
        }
    }
    tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(bad)?;
    drop(f);
    out.line(show(done)).await;
    out.stream("\n").await;
    let dir = format!("{DOWNLOADS}/{n}");
    let path = format!("{dir}/{name}");
    let mut owned = std::mem::take(tree);
    let (back, r) = tokio::task::spawn_blocking({
        let work = work.to_path_buf();
        let url = url.to_string();
        move || {
            let r = add_file(&mut owned, &body, &name, mtime, &work, n, &dir)
                .map_err(|e| BuildError::Internal(format!("downloading {url}: {e}")));
            (owned, r)
        }
    })
    .await
    .map_err(|e| BuildError::Internal(format!("downloading {url}: {e}")))?;
    *tree = back;
    r?;
    Ok(path)
}

/// The downloaded file `body` into `tree` as `dir`/`name` (mode 0600).
fn add_file(
    tree: &mut Tree,
    body: &Path,
    name: &str,
    mtime: u64,
    work: &Path,
    n: usize,
    dir: &str,
) -> Result<(), BuildError> {
    let io = |e: std::io::Error| BuildError::Internal(e.to_string());
    let entry = work.join(format!("download-{n}.entry"));
    let mut b = tar::Builder::new(std::fs::File::create(&entry).map_err(io)?);
    let mut src = std::fs::File::open(body).map_err(io)?;
    let mut h = tar::Header::new_gnu();
    h.set_size(src.metadata().map_err(io)?.len());
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, &mut src).map_err(io)?;
    b.into_inner().map_err(io)?;
    let _ = std::fs::remove_file(body);
    let r = std::fs::File::open(&entry).map_err(io)?;
    tree.add_tar(r, &work.join(format!("download-{n}.tar")), dir)?;
    let _ = std::fs::remove_file(&entry);
    Ok(())
}

/// The name a download gets, as dockerd picks it: the URL path's last
/// part, else the Content-Disposition's filename.
fn download_name(resp: &reqwest::Response, url: &str) -> Option<String> {
    let base = |p: &str| {
        (!p.is_empty() && !p.ends_with('/'))
            .then(|| p.rsplit('/').next().unwrap_or(p).to_string())
            .filter(|b| !b.is_empty() && b != "." && b != "..")
    };
    let path = reqwest::Url::parse(url)
        .ok()
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    if let Some(b) = base(&path) {
        return Some(b);
    }
    let disposition = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let filename = disposition.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("filename")
            .then(|| v.trim().trim_matches('"').to_string())
    })?;
    base(&filename)
}

/// dockerd's "Downloading context" lines (the URL as their status, the
/// phrase as their id): each half megabyte, and at the end.
struct Shown<'a> {
    url: &'a str,
    out: &'a Progress,
    bytes: u64,
    last: u64,
}

impl<'a> Shown<'a> {
    const EVERY: u64 = 512 << 10;

    fn new(url: &'a str, out: &'a Progress) -> Shown<'a> {
        Shown {
            url,
            out,
            bytes: 0,
            last: 0,
        }
    }

    async fn add(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.bytes - self.last >= Self::EVERY {
            self.show().await;
        }
    }

    async fn done(&mut self) {
        self.show().await;
    }

    async fn show(&mut self) {
        self.last = self.bytes;
        let n = i64::try_from(self.bytes).unwrap_or(i64::MAX);
        self.out
            .line(json!({
                "status": self.url,
                "progressDetail": {"current": n},
                "progress": format!("{:>8}", crate::api::images::progress_bar(n, 0)),
                "id": "Downloading context",
            }))
            .await;
    }
}

/// A context holding the Dockerfile alone, at `name`.
fn dockerfile_alone(text: &[u8], work: &Path, name: &str) -> Result<(Tree, u64), BuildError> {
    let bad = |e: std::io::Error| BuildError::Internal(format!("the downloaded Dockerfile: {e}"));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, text).map_err(bad)?;
    let tar = b.into_inner().map_err(bad)?;
    let mut t = Tree::default();
    let n = t.add_tar(std::io::Cursor::new(tar), &work.join("context.tar"), "")?;
    Ok((t, n))
}

/// An error with its causes, as Go's wrapped errors read.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The context directory as a tar in `to` (symlinks kept as links).
fn tar_dir(dir: &Path, to: &Path) -> Result<(), BuildError> {
    let bad = |e: std::io::Error| BuildError::Internal(format!("archiving the git context: {e}"));
    let f = std::fs::File::create(to).map_err(bad)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).map_err(bad)?;
    b.into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(url: &str, reference: Option<&str>, subdir: Option<&str>) -> Remote {
        Remote::Git(GitRepo {
            url: url.into(),
            reference: reference.map(String::from),
            subdir: subdir.map(String::from),
        })
    }

    #[test]
    fn downloads_are_told_apart_by_their_first_bytes() {
        assert_eq!(
            sniff(b"FROM busybox\nRUN true\n"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(sniff(b"  <!doctype html><p>x"), "text/html; charset=utf-8");
        assert_eq!(sniff(b"<html>"), "text/html; charset=utf-8");
        // A Dockerfile whose first word looks like a tag is still text.
        assert_eq!(sniff(b"<Bogus"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\x1f\x8b\x08\x00rest"), "application/x-gzip");
        assert_eq!(sniff(b"Dockerfile\0\0\0\0"), "application/octet-stream");
        let ok = |ct: &str| ACCEPTABLE.find(ct).map(|m| m.as_str().to_string());
        assert_eq!(
            ok("text/plain; charset=utf-8").as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            ok("application/x-gzip").as_deref(),
            Some("application/x-gzip")
        );
        assert_eq!(
            ok("application/x-tar").as_deref(),
            Some("application/x-tar")
        );
        assert_eq!(ok("text/html; charset=utf-8"), None);
    }

    #[test]
    fn remotes_are_told_apart_as_dockerd_tells_them() {
        let p = |s: &str| Remote::parse(s).expect(s);
        assert_eq!(
            p("https://github.com/docker/rootfs.git#container:docker"),
            git(
                "https://github.com/docker/rootfs.git",
                Some("container"),
                Some("docker")
            )
        );
        assert_eq!(
            p("github.com/docker/rootfs"),
            git("https://github.com/docker/rootfs", None, None)
        );
        assert_eq!(
            p("git@github.com:docker/rootfs.git#v1.0"),
            git("git@github.com:docker/rootfs.git", Some("v1.0"), None)
        );
        assert_eq!(
            p("git://example.com/r#:sub/dir"),
            git("git://example.com/r", None, Some("sub/dir"))
        );
        assert_eq!(
            p("http://127.0.0.1:8080/r.git"),
            git("http://127.0.0.1:8080/r.git", None, None)
        );
        for bad in [
            "/etc",
            "ext::sh -c touch% /tmp/x",
            "ftp://h/r.git",
            "file:///r.git",
        ] {
            assert!(
                matches!(Remote::parse(bad), Err(BuildError::Step(_))),
                "{bad}"
            );
        }
        assert!(Remote::parse("https://h/r.git#--upload-pack=x").is_err());
    }
}
