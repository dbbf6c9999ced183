//! COPY and ADD as the classic builder does them: sources found in the
//! context (or in a stage's files) with Go's glob rules, the destination's
//! file-or-directory rules, owners set to root or `--chown`, modes kept or
//! `--chmod`, local tar archives unpacked by ADD; the files hashed (content
//! and metadata, not times) for the step's cache key, then written as one
//! tar into the container.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BuildError;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A local tar archive ADD unpacks into the destination.
    Archive,
}

#[derive(Debug, Clone)]
pub struct Item {
    /// Where it is on the host.
    pub src: PathBuf,
    /// Its name in the archive, relative to `Plan::dir`; "" is that
    /// directory itself.
    pub name: String,
    pub kind: Kind,
}

/// What one COPY or ADD writes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The directory (in the container) the archive is written at.
    pub dir: String,
    pub items: Vec<Item>,
    /// The destination directory did not exist: it is made, with the
    /// step's owner.
    pub make_dir: bool,
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
    /// How the history names the sources: file, dir or multi.
    pub what: &'static str,
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's filepath.Match for one whole path: `*` and `?` never match `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed incl. ']').
        let mut i = 0;
        let negate = p.first() == Some(&b'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let mut lo = p[i];
            if lo == b'\\' {
                i += 1;
                lo = *p.get(i)?;
            }
            i += 1;
            let mut hi = lo;
            if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
                hi = p[i + 1];
                if hi == b'\\' {
                    hi = *p.get(i + 2)?;
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        None
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => {
                let rest = &p[1..];
                let mut i = 0;
                loop {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i >= n.len() || n[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(b'?') => !n.is_empty() && n[0] != b'/' && go(&p[1..], &n[1..]),
            Some(b'[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&0))) {
                (Some(&c), Some((true, len))) if c != b'/' => go(&p[1 + len..], &n[1..]),
                _ => false,
            },
            Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Every path under `root`, relative, '/'-separated, parents first.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(root.join(&rel))
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let r = rel.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(r.clone());
            }
            out.push(r.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// `src` as a path inside `root`, `..` kept from climbing out.
fn inside(root: &Path, src: &str) -> Result<(PathBuf, String), BuildError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(BuildError::Step(format!(
                        "forbidden path outside the build context: {src}"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    let rel = parts.join("/");
    Ok((root.join(&rel), rel))
}

fn is_archive(p: &Path) -> bool {
    let mut head = [0u8; 262];
    let Ok(mut f) = fs::File::open(p) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.get(257..262) == Some(b"ustar")
}

/// The sources of one COPY/ADD found under `root`, and where they go.
/// `dest` is absolute (WORKDIR applied); `dest_is_dir` says whether it
/// exists in the image as a directory (None: it does not exist).
pub fn plan(
    root: &Path,
    srcs: &[String],
    dest: &str,
    dest_is_dir: Option<bool>,
    add: bool,
    what_cmd: &str,
) -> Result<Plan, BuildError> {
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    for s in srcs {
        if add && (s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")) {
            return Err(BuildError::Step(format!(
                "ADD {s}: berth's builder has no network to fetch remote sources from; download the file into the build context and ADD it from there"
            )));
        }
        if has_wildcards(s) {
            let (_, pattern) = inside(root, s)?;
            let matches: Vec<String> = walk(root)
                .into_iter()
                .filter(|p| glob_match(&pattern, p))
                .collect();
            for m in matches {
                found.push((root.join(&m), m));
            }
        } else {
            let (path, rel) = inside(root, s)?;
            // A source that is a symlink is followed, inside the context.
            let real = fs::canonicalize(&path)
                .ok()
                .filter(|r| fs::canonicalize(root).is_ok_and(|root| r.starts_with(root)));
            match real {
                Some(r) => found.push((r, rel)),
                None => {
                    return Err(BuildError::Step(format!(
                        "{what_cmd} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
                    )));
                }
            }
        }
    }
    if found.is_empty() {
        return Err(BuildError::Step(format!(
            "{what_cmd} failed: no source files were specified"
        )));
    }
    let multiple = found.len() > 1;
    let dest_slash = dest.ends_with('/') || dest.ends_with("/.");
    if multiple && !dest_slash {
        return Err(BuildError::Step(format!(
            "When using {what_cmd} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let clean_dest = crate::daemon::volumes::clean(dest);
    let any_dir = found.iter().any(|(p, _)| p.is_dir());
    let archive = |p: &Path| add && p.is_file() && is_archive(p);
    let into_dir = dest_slash
        || multiple
        || any_dir
        || dest_is_dir == Some(true)
        || found.iter().any(|(p, _)| archive(p));
    let (dir, rename) = if into_dir {
        (clean_dest.clone(), None)
    } else {
        // One file to a file path: written into its parent under the new name.
        let (parent, name) = clean_dest.rsplit_once('/').unwrap_or(("", &clean_dest));
        let parent = if parent.is_empty() { "/" } else { parent };
        (parent.to_string(), Some(name.to_string()))
    };
    let mut items = Vec::new();
    for (path, rel) in &found {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| BuildError::Step(format!("{what_cmd} failed: {rel}: {e}")))?;
        if meta.is_dir() {
            // A directory's contents go into the destination.
            for sub in walk(path) {
                let src = path.join(&sub);
                let m = fs::symlink_metadata(&src)
                    .map_err(|e| BuildError::Step(format!("{what_cmd} failed: {e}")))?;
                items.push(Item {
                    src,
                    name: sub,
                    kind: kind_of(&m),
                });
            }
        } else if archive(path) {
            items.push(Item {
                src: path.clone(),
                name: String::new(),
                kind: Kind::Archive,
            });
        } else {
            let name = rename.clone().unwrap_or_else(|| {
                Path::new(rel)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| rel.clone())
            });
            items.push(Item {
                src: path.clone(),
                name,
                kind: kind_of(&meta),
            });
        }
    }
    let what = if multiple {
        "multi"
    } else if any_dir {
        "dir"
    } else {
        "file"
    };
    Ok(Plan {
        make_dir: into_dir && dest_is_dir.is_none(),
        dir,
        items,
        owner: (0, 0),
        chmod: None,
        what,
    })
}

fn kind_of(m: &fs::Metadata) -> Kind {
    if m.file_type().is_symlink() {
        Kind::Symlink
    } else if m.is_dir() {
        Kind::Dir
    } else {
        Kind::File
    }
}

impl Plan {
    /// The digest of what the step writes: names, kinds, modes, owners,
    /// sizes, contents and link targets, never times (a touched file with
    /// the same bytes is the same COPY, as Docker's cache has it).
    pub fn digest(&self) -> Result<String, BuildError> {
        let mut h = Sha256::new();
        h.update(self.dir.as_bytes());
        h.update([0]);
        h.update(format!(
            "{:?} {:?} {}",
            self.owner, self.chmod, self.make_dir
        ));
        let io = |e: std::io::Error| BuildError::Step(format!("reading the build context: {e}"));
        for it in &self.items {
            let m = fs::symlink_metadata(&it.src).map_err(io)?;
            h.update(it.name.as_bytes());
            h.update([0]);
            h.update(format!("{:?} {:o} {}", it.kind, m.mode() & 0o7777, m.len()));
            match it.kind {
                Kind::Symlink => h.update(
                    fs::read_link(&it.src)
                        .map_err(io)?
                        .as_os_str()
                        .as_encoded_bytes(),
                ),
                Kind::File | Kind::Archive => {
                    let mut f = fs::File::open(&it.src).map_err(io)?;
                    let mut buf = vec![0u8; 256 << 10];
                    loop {
                        match f.read(&mut buf).map_err(io)? {
                            0 => break,
                            n => h.update(&buf[..n]),
                        }
                    }
                }
                Kind::Dir => {}
            }
            h.update([0]);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Writes the step's archive to `out` (relative to `self.dir`).
    pub fn write_tar(&self, out: impl Write) -> std::io::Result<()> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        let (uid, gid) = self.owner;
        let header = |m: &fs::Metadata, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
            h.set_uid(uid.into());
            h.set_gid(gid.into());
            h.set_mode(mode);
            h.set_username("").ok();
            h.set_groupname("").ok();
            h
        };
        if self.make_dir {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(self.chmod.unwrap_or(0o755));
            h.set_uid(uid.into());
            h.set_gid(gid.into());
            h.set_size(0);
            h.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
            b.append_data(&mut h, ".", std::io::empty())?;
        }
        for it in &self.items {
            let m = fs::symlink_metadata(&it.src)?;
            let mode = self.chmod.unwrap_or(m.permissions().mode() & 0o7777);
            match it.kind {
                Kind::Archive => {
                    let r = super::context::decompress(fs::File::open(&it.src)?)?;
                    let mut a = tar::Archive::new(r);
                    for e in a.entries()? {
                        let mut e = e?;
                        let mut h = e.header().clone();
                        // Fields some archivers leave blank are made explicit.
                        h.set_uid(h.uid().unwrap_or(0));
                        h.set_gid(h.gid().unwrap_or(0));
                        h.set_mtime(h.mtime().unwrap_or(0));
                        let path = e.path()?.into_owned();
                        match e.link_name()? {
                            Some(target)
                                if h.entry_type().is_symlink() || h.entry_type().is_hard_link() =>
                            {
                                let target = target.into_owned();
                                b.append_link(&mut h, path, target)?;
                            }
                            _ => b.append_data(&mut h, path, &mut e)?,
                        }
                    }
                }
                Kind::Dir => {
                    let mut h = header(&m, mode);
                    b.append_data(&mut h, &it.name, std::io::empty())?;
                }
                Kind::Symlink => {
                    let mut h = header(&m, m.permissions().mode() & 0o7777);
                    let target = fs::read_link(&it.src)?;
                    b.append_link(&mut h, &it.name, target)?;
                }
                Kind::File => {
                    let mut h = header(&m, mode);
                    b.append_data(&mut h, &it.name, fs::File::open(&it.src)?)?;
                }
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("src/sub")).unwrap();
        fs::write(d.path().join("a.txt"), "a").unwrap();
        fs::write(d.path().join("b.txt"), "b").unwrap();
        fs::write(d.path().join("src/x.c"), "int main(){}").unwrap();
        fs::write(d.path().join("src/sub/y.h"), "").unwrap();
        d
    }

    fn names(p: &Plan) -> Vec<String> {
        p.items.iter().map(|i| i.name.clone()).collect()
    }

    #[test]
    fn globs_are_gos() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("src/*.c", "src/x.c"));
        assert!(glob_match("[ab].txt", "b.txt"));
        assert!(!glob_match("[^ab].txt", "b.txt"));
        assert!(glob_match("?.txt", "a.txt"));
        assert!(glob_match("\\*", "*"));
    }

    #[test]
    fn destinations_follow_dockers_rules() {
        let d = ctx();
        let one = |src: &str, dest: &str, exists: Option<bool>| {
            plan(d.path(), &[src.to_string()], dest, exists, false, "COPY")
        };
        // A file to a file path: renamed, written into the parent.
        let p = one("a.txt", "/etc/conf", None).unwrap();
        assert_eq!(
            (p.dir.as_str(), names(&p)),
            ("/etc", vec!["conf".to_string()])
        );
        // To a directory (trailing slash, or one that exists).
        let p = one("a.txt", "/app/", None).unwrap();
        assert_eq!(
            (p.dir.as_str(), names(&p)),
            ("/app", vec!["a.txt".to_string()])
        );
        assert!(p.make_dir);
        let p = one("a.txt", "/app", Some(true)).unwrap();
        assert_eq!(names(&p), vec!["a.txt"]);
        assert!(!p.make_dir);
        // A directory's contents, not the directory.
        let p = one("src", "/code", None).unwrap();
        assert_eq!(names(&p), vec!["sub", "sub/y.h", "x.c"]);
        assert_eq!(p.what, "dir");
        // Several sources need a directory ending in '/'.
        assert!(plan(d.path(), &["*.txt".into()], "/x", None, false, "COPY").is_err());
        let p = plan(d.path(), &["*.txt".into()], "/x/", None, false, "COPY").unwrap();
        assert_eq!(names(&p), vec!["a.txt", "b.txt"]);
        assert_eq!(p.what, "multi");
        // Missing sources and escapes are errors.
        assert!(
            one("nope", "/x", None)
                .unwrap_err()
                .to_string()
                .contains("file not found")
        );
        assert!(
            one("../etc/passwd", "/x", None)
                .unwrap_err()
                .to_string()
                .contains("outside the build context")
        );
        assert!(
            plan(
                d.path(),
                &["https://example.com/f".into()],
                "/x",
                None,
                true,
                "ADD"
            )
            .is_err()
        );
    }

    #[test]
    fn the_digest_sees_bytes_and_modes_but_not_times() {
        let d = ctx();
        let p = plan(d.path(), &["src".into()], "/code/", None, false, "COPY").unwrap();
        let before = p.digest().unwrap();
        let f = d.path().join("src/x.c");
        let t = filetime_now_minus(&f);
        assert_eq!(
            p.digest().unwrap(),
            before,
            "a new mtime ({t}) is the same COPY"
        );
        fs::write(&f, "int main(){return 1;}").unwrap();
        let changed = p.digest().unwrap();
        assert_ne!(changed, before);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(p.digest().unwrap(), changed);
        let mut chowned = p.clone();
        chowned.owner = (1000, 1000);
        assert_ne!(chowned.digest().unwrap(), p.digest().unwrap());
    }

    fn filetime_now_minus(p: &Path) -> i64 {
        let f = fs::File::options().write(true).open(p).unwrap();
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        f.set_modified(t).unwrap();
        3600
    }

    #[test]
    fn the_archive_carries_owner_and_mode() {
        let d = ctx();
        let mut p = plan(d.path(), &["src".into()], "/code/", None, false, "COPY").unwrap();
        p.owner = (1000, 100);
        p.chmod = Some(0o700);
        let mut out = Vec::new();
        p.write_tar(&mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
                h.mode().unwrap() & 0o7777,
            ));
        }
        assert_eq!(seen[0], (".".to_string(), 1000, 0o700));
        assert!(seen.contains(&("x.c".to_string(), 1000, 0o700)));
    }
}
