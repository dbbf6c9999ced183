//! COPY and ADD as the classic builder does them: sources found in the
//! context (or in a stage's files) with Go's glob rules, the destination's
//! file-or-directory rules, owners set to root or `--chown`, modes kept or
//! `--chmod`, local tar archives unpacked by ADD (and its URLs fetched, by
//! the caller, into the tree); a digest of what is
//! copied (content and metadata, not times) for the step's cache key, then
//! one tar written into the container.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::BuildError;
use super::context::{self, Tree};

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
    /// Its path in the tree.
    pub src: String,
    /// Its name in the archive, relative to `Plan::dir`.
    pub name: String,
    pub kind: Kind,
}

/// A directory a layer names on the way to where it writes, with the
/// image's own owner, mode and time.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
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

/// Whether a file's first bytes are an archive ADD unpacks.
fn is_archive(tree: &Tree, rel: &str) -> bool {
    let Some(n) = tree.get(rel).filter(|n| n.kind == context::Kind::File) else {
        return false;
    };
    let mut head = [0u8; 262];
    let got = tree
        .open(n)
        .and_then(|mut r| {
            let mut got = 0;
            while got < head.len() {
                match r.read(&mut head[got..])? {
                    0 => break,
                    k => got += k,
                }
            }
            Ok(got)
        })
        .unwrap_or(0);
    let head = &head[..got];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.get(257..262) == Some(b"ustar")
}

fn kind_of(n: &context::Node) -> Kind {
    match n.kind {
        context::Kind::File => Kind::File,
        context::Kind::Dir => Kind::Dir,
        context::Kind::Symlink => Kind::Symlink,
    }
}

/// The sources of one COPY/ADD found in `tree`, and where they go. `dest`
/// is absolute (WORKDIR applied); `dest_is_dir` says whether it exists in
/// the image as a directory (None: it does not exist).
pub fn plan(
    tree: &Tree,
    srcs: &[String],
    dest: &str,
    dest_is_dir: Option<bool>,
    add: bool,
    what_cmd: &str,
) -> Result<Plan, BuildError> {
    // dockerd's words, its empty resolved path "()" included.
    let outside = |s: &str| {
        BuildError::Step(format!(
            "{what_cmd} failed: forbidden path outside the build context: {s} ()"
        ))
    };
    let mut found: Vec<String> = Vec::new();
    for s in srcs {
        let rel = context::key(s).ok_or_else(|| outside(s))?;
        if has_wildcards(s) {
            found.extend(tree.paths().filter(|p| glob_match(&rel, p)).cloned());
        } else if rel.is_empty() {
            // `.` is the whole tree.
            found.push(String::new());
        } else {
            // A source that is a symlink is followed, inside the tree.
            match tree.resolve(&rel).filter(|r| tree.get(r).is_some()) {
                Some(r) => found.push(r),
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
    let is_dir =
        |p: &str| p.is_empty() || tree.get(p).is_some_and(|n| n.kind == context::Kind::Dir);
    let multiple = found.len() > 1;
    let dest_slash = dest.ends_with('/') || dest.ends_with("/.");
    if multiple && !dest_slash {
        return Err(BuildError::Step(format!(
            "When using {what_cmd} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let clean_dest = crate::daemon::volumes::clean(dest);
    let any_dir = found.iter().any(|p| is_dir(p));
    // What ADD downloaded is never unpacked, as dockerd's.
    let archive = |p: &str| add && !p.starts_with(super::remote::DOWNLOADS) && is_archive(tree, p);
    let into_dir = dest_slash
        || multiple
        || any_dir
        || dest_is_dir == Some(true)
        || found.iter().any(|p| archive(p));
    let (dir, rename) = if into_dir {
        (clean_dest.clone(), None)
    } else {
        // One file to a file path: written into its parent under the new name.
        let (parent, name) = clean_dest.rsplit_once('/').unwrap_or(("", &clean_dest));
        let parent = if parent.is_empty() { "/" } else { parent };
        (parent.to_string(), Some(name.to_string()))
    };
    let mut items = Vec::new();
    for src in &found {
        if is_dir(src) {
            // A directory's contents go into the destination.
            for (sub, n) in tree.below(src) {
                let full = if src.is_empty() {
                    sub.clone()
                } else {
                    format!("{src}/{sub}")
                };
                items.push(Item {
                    src: full,
                    name: sub,
                    kind: kind_of(n),
                });
            }
        } else if archive(src) {
            items.push(Item {
                src: src.clone(),
                name: String::new(),
                kind: Kind::Archive,
            });
        } else {
            let name = rename
                .clone()
                .unwrap_or_else(|| src.rsplit('/').next().unwrap_or(src).to_string());
            let kind = tree.get(src).map(kind_of).unwrap_or(Kind::File);
            items.push(Item {
                src: src.clone(),
                name,
                kind,
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

impl Plan {
    /// The digest of what the step writes: names, kinds, modes, owners,
    /// sizes, contents (their digests, taken when the tree was received)
    /// and link targets, never times: a touched file with the same bytes
    /// is the same COPY, as Docker's cache has it.
    pub fn digest(&self, tree: &Tree) -> String {
        let mut h = Sha256::new();
        h.update(self.dir.as_bytes());
        h.update([0]);
        h.update(format!(
            "{:?} {:?} {}",
            self.owner, self.chmod, self.make_dir
        ));
        for it in &self.items {
            h.update(it.name.as_bytes());
            h.update([0]);
            if let Some(n) = tree.get(&it.src) {
                h.update(format!("{:?} {:o} {}", it.kind, n.mode, n.size));
                h.update(n.sha256);
                if let Some(l) = &n.link {
                    h.update(l.as_bytes());
                }
            }
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    /// Writes the step's archive to `out` (relative to `self.dir`).
    pub fn write_tar(&self, tree: &Tree, out: impl Write) -> std::io::Result<()> {
        self.write_at(tree, "", &[], out)
    }

    /// Writes the step as a layer: `dir` is where `self.dir` resolved to in
    /// the image (relative to its root), `above` the directories on the way
    /// there as the image has them (a layer that names a directory sets
    /// its owner and mode, so they are written as they are).
    pub fn write_layer(
        &self,
        tree: &Tree,
        dir: &str,
        above: &[DirEntry],
        out: impl Write,
    ) -> std::io::Result<()> {
        self.write_at(tree, dir, above, out)
    }

    fn write_at(
        &self,
        tree: &Tree,
        prefix: &str,
        above: &[DirEntry],
        out: impl Write,
    ) -> std::io::Result<()> {
        let named = |name: &str| -> String {
            match (prefix.is_empty(), name.is_empty()) {
                (true, true) => ".".into(),
                (true, false) => name.to_string(),
                (false, true) => prefix.to_string(),
                (false, false) => format!("{prefix}/{name}"),
            }
        };
        let mut b = tar::Builder::new(out);
        for d in above {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_uid(d.uid.into());
            h.set_gid(d.gid.into());
            h.set_mode(d.mode);
            h.set_size(0);
            h.set_mtime(d.mtime);
            b.append_data(&mut h, &d.path, std::io::empty())?;
        }
        b.follow_symlinks(false);
        let (uid, gid) = self.owner;
        let header = |kind: tar::EntryType, mode: u32, size: u64, mtime: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_uid(uid.into());
            h.set_gid(gid.into());
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(mtime);
            h
        };
        if self.make_dir {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // Made as Docker makes it: the step's owner, 0755 (--chmod is
            // for what is copied).
            let mut h = header(tar::EntryType::Directory, 0o755, 0, now);
            b.append_data(&mut h, named(""), std::io::empty())?;
        }
        for it in &self.items {
            let n = tree
                .get(&it.src)
                .ok_or_else(|| std::io::Error::other(format!("{} is gone", it.src)))?;
            let mode = self.chmod.unwrap_or(n.mode);
            match it.kind {
                Kind::Archive => {
                    // Read whole into the decompressor's own reader: the
                    // tree's reader borrows it, a thread cannot.
                    let mut data = Vec::new();
                    tree.open(n)?.read_to_end(&mut data)?;
                    let r = decompress::client_tar(std::io::Cursor::new(data))?;
                    let mut a = tar::Archive::new(r);
                    for e in a.entries()? {
                        let mut e = e?;
                        let mut h = e.header().clone();
                        // Fields some archivers leave blank are made explicit.
                        h.set_uid(h.uid().unwrap_or(0));
                        h.set_gid(h.gid().unwrap_or(0));
                        h.set_mtime(h.mtime().unwrap_or(0));
                        let path = named(&e.path()?.to_string_lossy());
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
                    let mut h = header(tar::EntryType::Directory, mode, 0, n.mtime);
                    b.append_data(&mut h, named(&it.name), std::io::empty())?;
                }
                Kind::Symlink => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0, n.mtime);
                    b.append_link(&mut h, named(&it.name), n.link.clone().unwrap_or_default())?;
                }
                Kind::File => {
                    let mut h = header(tar::EntryType::Regular, mode, n.size, n.mtime);
                    b.append_data(&mut h, named(&it.name), tree.open(n)?)?;
                }
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &[u8], u32)]) -> (tempfile::TempDir, Tree) {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mode) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let data = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::default();
        t.add_tar(std::io::Cursor::new(data), &dir.path().join("t.tar"), "")
            .unwrap();
        (dir, t)
    }

    fn ctx() -> (tempfile::TempDir, Tree) {
        tree(&[
            ("a.txt", b"a", 0o644),
            ("b.txt", b"b", 0o644),
            ("src/x.c", b"int main(){}", 0o644),
            ("src/sub/y.h", b"", 0o644),
        ])
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
        let (_d, t) = ctx();
        let one = |src: &str, dest: &str, exists: Option<bool>| {
            plan(&t, &[src.to_string()], dest, exists, false, "COPY")
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
        let p = one(".", "/all/", None).unwrap();
        assert!(names(&p).contains(&"src/x.c".to_string()));
        // Several sources need a directory ending in '/'.
        assert!(plan(&t, &["*.txt".into()], "/x", None, false, "COPY").is_err());
        let p = plan(&t, &["*.txt".into()], "/x/", None, false, "COPY").unwrap();
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
    }

    #[test]
    fn what_add_downloaded_is_never_unpacked() {
        let archive = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "inside", &b"hi"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let (d, mut t) = tree(&[("a.tar", &archive, 0o644)]);
        let mut outer = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(archive.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        outer.append_data(&mut h, "a.tar", &archive[..]).unwrap();
        let downloads = format!("{}/1", super::super::remote::DOWNLOADS);
        t.add_tar(
            std::io::Cursor::new(outer.into_inner().unwrap()),
            &d.path().join("d.tar"),
            &downloads,
        )
        .unwrap();
        let local = plan(&t, &["a.tar".into()], "/x/", None, true, "ADD").unwrap();
        assert_eq!(local.items[0].kind, Kind::Archive);
        let fetched = format!("{downloads}/a.tar");
        let got = plan(&t, &[fetched], "/x/", None, true, "ADD").unwrap();
        assert_eq!(got.items[0].kind, Kind::File);
        assert_eq!(names(&got), ["a.tar"]);
    }

    #[test]
    fn the_digest_sees_bytes_and_modes_but_not_times() {
        let (_d, t) = ctx();
        let p = plan(&t, &["src".into()], "/code/", None, false, "COPY").unwrap();
        let before = p.digest(&t);
        let (_d2, later) = tree(&[
            ("a.txt", b"a", 0o644),
            ("b.txt", b"b", 0o644),
            ("src/x.c", b"int main(){}", 0o644),
            ("src/sub/y.h", b"", 0o644),
        ]);
        assert_eq!(p.digest(&later), before, "the same bytes");
        let (_d3, changed) = tree(&[
            ("src/x.c", b"int main(){return 1;}", 0o644),
            ("src/sub/y.h", b"", 0o644),
        ]);
        assert_ne!(p.digest(&changed), before);
        let (_d4, moded) = tree(&[
            ("src/x.c", b"int main(){}", 0o755),
            ("src/sub/y.h", b"", 0o644),
        ]);
        assert_ne!(p.digest(&moded), before);
        let mut chowned = p.clone();
        chowned.owner = (1000, 1000);
        assert_ne!(chowned.digest(&t), before);
    }

    #[test]
    fn the_archive_carries_owner_and_mode() {
        let (_d, t) = ctx();
        let mut p = plan(&t, &["src".into()], "/code/", None, false, "COPY").unwrap();
        p.owner = (1000, 100);
        p.chmod = Some(0o700);
        let mut out = Vec::new();
        p.write_tar(&t, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
                h.mode().unwrap() & 0o7777,
                body,
            ));
        }
        assert_eq!(
            (seen[0].0.as_str(), seen[0].1, seen[0].2),
            (".", 1000, 0o755)
        );
        assert!(seen.contains(&("x.c".to_string(), 1000, 0o700, "int main(){}".to_string())));
    }
}
