//! Remote build contexts: `remote=` of POST /build, which docker-py's
//! `build(path=URL)`, docker-compose's `build: context: URL` and API
//! clients send instead of a tar. As dockerd's classic builder takes it:
//! a git repository, `URL#ref:subdir`, fetched by the host's git and built
//! from its checkout (the body is not read).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::BuildError;
use super::context::Tree;

/// What a `remote=` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Remote {
    Git(GitRepo),
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

fn is_url(s: &str) -> bool {
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
    let out = tokio::process::Command::new("git")
        .args(["-c", "protocol.file.allow=never"])
        .args(args)
        .current_dir(dir)
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        // A client that leaves takes its fetch with it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(text.trim().to_string())
}

/// The context `remote` names, fetched under `work` (the build's own
/// directory); its tree and size, as a received context's.
pub async fn context(remote: &Remote, work: &Path) -> Result<(Tree, u64), BuildError> {
    let Remote::Git(repo) = remote;
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
