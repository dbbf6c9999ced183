//! Image archives: Docker `save` archives (`manifest.json`, `repositories`)
//! and OCI image layouts (`oci-layout`, `index.json`, `blobs/`), in and out,
//! plus root filesystem tarballs imported as one-layer images.
//!
//! Import reads the archive once, as a stream: blobs go straight into the
//! content store (verified against their names when the name is a digest),
//! small metadata files stay in memory, and the images are assembled at the
//! end. Whatever fails, the store is left as it was: blobs the import added
//! are removed again and no record is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::SystemTime;

use oci_spec::image::{Descriptor, Digest, ImageIndex, MediaType};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::content::{self, BlobWriter};
use crate::digest::{self, HashingReader};
use crate::error::{Error, Result};
use crate::images::{ImageRecord, validate_name, validate_namespace};
use crate::layer::{self, Compression};
use crate::lease::Lease;
use crate::resolve::{self, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Parsed, PlatformSpec, media_types};

/// Files up to this size that are not blobs are kept in memory while the
/// archive streams by (manifest.json, index.json, configs of old archives).
const SMALL_FILE: u64 = 4 << 20;

const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The two archive formats [`Store::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save`: `manifest.json` and `repositories`, one platform per
    /// image, blobs under `blobs/sha256/` as Docker 25 writes them (with an
    /// `index.json` too, so OCI tools read it as well).
    Docker,
    /// An OCI image layout: `oci-layout`, `index.json`, `blobs/`; images are
    /// written whole (every platform the store has).
    Oci,
}

/// A function from a name in an archive to the name recorded.
pub type Rename = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How [`Store::import`] names and treats what it imports.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Used for images the archive does not name in full: an OCI
    /// `org.opencontainers.image.ref.name` that is only a tag becomes
    /// `<base_name>:<tag>`, an unnamed image `<base_name>@<digest>`.
    /// Default: `import`.
    pub base_name: Option<String>,
    /// Applied to every name the archive gives, e.g. Docker's
    /// normalisation of `busybox:latest` to `docker.io/library/busybox:latest`.
    pub rename: Option<Rename>,
    /// Labels for the records created.
    pub labels: BTreeMap<String, String>,
    /// Also unpack each image for this machine's platform.
    pub unpack: bool,
    /// The archive holds Docker managed plugins (an OCI layout): each
    /// manifest's config must be the plugin config; nothing is unpacked.
    pub plugin: bool,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("base_name", &self.base_name)
            .field("rename", &self.rename.is_some())
            .field("labels", &self.labels)
            .field("unpack", &self.unpack)
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// The config of an image made by [`Store::import_rootfs`] (what
/// `docker import --change` sets).
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp` style.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    /// Labels of the image config.
    pub config_labels: BTreeMap<String, String>,
    /// Labels of the image record.
    pub labels: BTreeMap<String, String>,
    /// Default: this machine's.
    pub architecture: Option<String>,
    pub os: Option<String>,
    /// The history entry's comment (`docker import -m`).
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidArchive {
        reason: reason.into(),
    }
}

fn read_err(source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::UnexpectedEof {
        return invalid(format!(
            "it ends in the middle of an entry ({source}): the archive is truncated"
        ));
    }
    Error::Read {
        what: "the archive".into(),
        source,
    }
}

/// A link target inside the archive, `..` resolved lexically; a target
/// above the archive root is refused.
fn resolve_member(link: &str, target: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(format!(
                        "link {link:?} points to {target:?}, outside the archive"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// An archive member name, normalised (`./a//b` → `a/b`); `..` and absolute
/// names are refused.
fn clean_member(raw: &[u8]) -> Result<String> {
    let s = String::from_utf8_lossy(raw);
    if s.starts_with('/') {
        return Err(invalid(format!("entry {s:?} is an absolute path")));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!(
                    "entry {s:?} escapes the archive root through '..'"
                )));
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// `blobs/<alg>/<hex>` → its digest.
fn blob_member_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    digest::parse_digest(&format!("{alg}:{hex}")).ok()
}

/// What the archive stream left: blobs in the store by member name, small
/// files in memory, links between members.
#[derive(Default)]
struct Members {
    small: HashMap<String, Vec<u8>>,
    stored: HashMap<String, Descriptor>,
    links: HashMap<String, String>,
}

impl Members {
    fn resolve<'a>(&'a self, mut name: &'a str) -> &'a str {
        for _ in 0..16 {
            match self.links.get(name) {
                Some(t) => name = t,
                None => break,
            }
        }
        name
    }

    fn bytes(&self, store: &Store, name: &str, limit: u64) -> Result<Vec<u8>> {
        let n = self.resolve(name);
        if let Some(b) = self.small.get(n) {
            return Ok(b.clone());
        }
        if let Some(d) = self.stored.get(n) {
            return store.read_blob(d.digest(), limit);
        }
        Err(invalid(format!(
            "{name} is referenced but not in the archive (truncated?)"
        )))
    }

    /// The member as a blob in the store, writing it there if it was kept
    /// in memory.
    fn blob(&mut self, store: &Store, name: &str, lease: &Lease) -> Result<Descriptor> {
        let n = self.resolve(name).to_string();
        if let Some(d) = self.stored.get(&n) {
            return Ok(d.clone());
        }
        if let Some(b) = self.small.get(&n) {
            let d = store.write_blob(None, &b[..], Some(lease))?;
            self.stored.insert(n, d.clone());
            return Ok(d);
        }
        Err(invalid(format!(
            "{name} is referenced but not in the archive (truncated?)"
        )))
    }
}

/// Notes when its reader has run out.
struct EofFlag<R> {
    inner: R,
    eof: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Copies everything read from `inner` into a blob writer as well.
struct Tee<'a, R> {
    inner: R,
    w: &'a mut BlobWriter,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.w.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

impl Store {
    /// Imports a Docker `save` archive or an OCI image layout tar (optionally
    /// gzip or zstd compressed), telling them apart by their files, and
    /// returns the records created, one per name. On any error the store is
    /// left as it was.
    pub fn import(
        &self,
        ns: &str,
        reader: impl Read + Send,
        opts: &ImportOptions,
    ) -> Result<Vec<ImageRecord>> {
        validate_namespace(ns)?;
        let lease = self.lease();
        let res = self.import_with(ns, reader, opts, &lease);
        if res.is_err() {
            self.rollback(&lease);
        }
        res
    }

    fn import_with(
        &self,
        ns: &str,
        reader: impl Read + Send,
        opts: &ImportOptions,
        lease: &Lease,
    ) -> Result<Vec<ImageRecord>> {
        let mut members = self.read_members(reader, lease)?;
        let named: Vec<(String, Descriptor)> = if members.small.contains_key("index.json") {
            self.import_oci(&mut members, opts)?
        } else if members.small.contains_key("manifest.json") {
            self.import_docker(&mut members, opts, lease)?
        } else {
            return Err(invalid(
                "it has neither index.json (OCI layout) nor manifest.json (docker save); \
                 a root filesystem tarball is imported with import_rootfs",
            ));
        };
        if named.is_empty() {
            return Err(invalid("it contains no image"));
        }
        let base = opts.base_name.as_deref().unwrap_or("import");
        let mut records = Vec::new();
        let mut seen = HashSet::new();
        for (name, desc) in &named {
            let name = match &opts.rename {
                Some(f) => f(name),
                None => name.clone(),
            };
            let name = if name.is_empty() {
                format!("{base}@{}", desc.digest())
            } else {
                name
            };
            validate_name(&name)?;
            if seen.insert(name.clone()) {
                records.push((name, desc.clone()));
            }
        }
        if opts.plugin {
            for (_, desc) in &records {
                let data = self.read_blob(desc.digest(), MAX_MANIFEST_SIZE)?;
                match resolve::parse_manifest(
                    &data,
                    desc.media_type().as_ref(),
                    desc.digest().as_ref(),
                )? {
                    Parsed::Manifest(m) => {
                        resolve::check_plugin_manifest(&m, desc.digest().as_ref())?
                    }
                    Parsed::Index(_) => {
                        return Err(invalid(format!(
                            "{} is an index; a plugin is one manifest",
                            desc.digest()
                        )));
                    }
                }
            }
        } else if opts.unpack {
            for (name, desc) in &records {
                let r = self.resolve_named(desc, &PlatformSpec::host(), name)?;
                self.unpack_resolved(&r, Some(lease))?;
            }
        }
        let mut out = Vec::new();
        for (name, desc) in records {
            let mut rec = ImageRecord::new(name, desc);
            rec.labels = opts.labels.clone();
            out.push(self.put_image(ns, rec)?);
        }
        Ok(out)
    }

    fn read_members(&self, reader: impl Read + Send, lease: &Lease) -> Result<Members> {
        let (_, plain) = layer::decompress(reader).map_err(read_err)?;
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut ar = tar::Archive::new(EofFlag {
            inner: plain,
            eof: eof.clone(),
        });
        // The tar crate words a cut archive in several ways ("unexpected EOF
        // during skip", "failed to read entire block"); an error after the
        // input ran out is a cut all the same.
        let entry_err = |source: io::Error| {
            if eof.load(std::sync::atomic::Ordering::Relaxed) {
                invalid(format!(
                    "it ends in the middle of an entry ({source}): the archive is truncated"
                ))
            } else {
                read_err(source)
            }
        };
        let mut m = Members::default();
        for entry in ar.entries().map_err(entry_err)? {
            let mut e = entry.map_err(entry_err)?;
            let name = clean_member(&e.path_bytes())?;
            use tar::EntryType as T;
            match e.header().entry_type() {
                T::Symlink | T::Link => {
                    let kind = e.header().entry_type();
                    let Some(target) = e.link_name_bytes() else {
                        continue;
                    };
                    // Symlinks are relative to their directory (old docker
                    // save links duplicate layers as ../<id>/layer.tar), hard
                    // links to the archive root.
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let joined = match (kind, name.rfind('/')) {
                        (T::Symlink, Some(i)) => format!("{}/{target}", &name[..i]),
                        _ => target,
                    };
                    if joined.starts_with('/') {
                        return Err(invalid(format!("link {name:?} has an absolute target")));
                    }
                    let resolved = resolve_member(&name, &joined)?;
                    m.links.insert(name, resolved);
                }
                T::Regular | T::Continuous => {
                    let size = e.size();
                    if let Some(d) = blob_member_digest(&name) {
                        let desc = Descriptor::new(
                            MediaType::Other("application/octet-stream".into()),
                            size,
                            d,
                        );
                        let desc = self.store_member(&mut e, &name, Some(&desc), size, lease)?;
                        m.stored.insert(name, desc);
                    } else if size <= SMALL_FILE && !name.ends_with("layer.tar") {
                        let mut data = Vec::with_capacity(size as usize);
                        e.read_to_end(&mut data).map_err(read_err)?;
                        if (data.len() as u64) < size {
                            return Err(truncated(&name, data.len() as u64, size));
                        }
                        m.small.insert(name, data);
                    } else {
                        let desc = self.store_member(&mut e, &name, None, size, lease)?;
                        m.stored.insert(name, desc);
                    }
                }
                _ => {}
            }
        }
        Ok(m)
    }

    fn store_member(
        &self,
        e: &mut impl Read,
        name: &str,
        expected: Option<&Descriptor>,
        size: u64,
        lease: &Lease,
    ) -> Result<Descriptor> {
        let Some(mut w) = self.writer(expected)? else {
            // Already stored: the bytes still have to be read past.
            let n = io::copy(e, &mut io::sink()).map_err(read_err)?;
            if n < size {
                return Err(truncated(name, n, size));
            }
            let d = expected
                .cloned()
                .ok_or_else(|| invalid(format!("{name}: no descriptor")))?;
            lease.add_blob(d.digest());
            return Ok(d);
        };
        // A partial ingest of this digest is not resumable from an archive
        // stream that starts at byte 0.
        w.reset()?;
        let what = || format!("archive entry {name}");
        content::copy_into(e, &mut w, &what)?;
        if w.offset() < size {
            let got = w.offset();
            w.discard();
            return Err(truncated(name, got, size));
        }
        w.commit(Some(lease))
    }

    fn import_oci(
        &self,
        m: &mut Members,
        opts: &ImportOptions,
    ) -> Result<Vec<(String, Descriptor)>> {
        if let Some(layout) = m.small.get("oci-layout") {
            let v: serde_json::Value = serde_json::from_slice(layout)
                .map_err(|e| invalid(format!("oci-layout is not JSON: {e}")))?;
            if v["imageLayoutVersion"] != "1.0.0" {
                return Err(invalid(format!(
                    "oci-layout has imageLayoutVersion {}, expected \"1.0.0\"",
                    v["imageLayoutVersion"]
                )));
            }
        }
        let index: ImageIndex = serde_json::from_slice(&m.small["index.json"])
            .map_err(|e| invalid(format!("index.json is not a valid OCI index: {e}")))?;
        // Docker 25+ archives carry both files; manifest.json names images
        // whose index entries carry no name.
        let docker_names: HashMap<String, Vec<String>> = match m.small.get("manifest.json") {
            Some(b) => serde_json::from_slice::<Vec<DockerManifestEntry>>(b)
                .map(|v| {
                    v.into_iter()
                        .map(|e| {
                            (
                                m.resolve(&e.config).to_string(),
                                e.repo_tags.unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => HashMap::new(),
        };
        let base = opts.base_name.as_deref().unwrap_or("import");
        let mut out = Vec::new();
        for d in index.manifests() {
            let config = self.check_tree(d, 0)?;
            let ann = d.annotations().clone().unwrap_or_default();
            let mut names = Vec::new();
            if let Some(n) = ann.get(ANNOTATION_CONTAINERD_NAME) {
                names.push(n.clone());
            } else if let Some(r) = ann.get(ANNOTATION_REF_NAME) {
                if r.contains('/') {
                    names.push(r.clone());
                } else {
                    names.push(format!("{base}:{r}"));
                }
            } else if let Some(tags) = config.and_then(|c| {
                let (alg, hex) = c.as_ref().split_once(':')?;
                docker_names.get(&format!("blobs/{alg}/{hex}"))
            }) {
                names.extend(tags.iter().cloned());
            }
            if names.is_empty() {
                names.push(format!("{base}@{}", d.digest()));
            }
            let mut target = Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
            target.set_platform(d.platform().clone());
            for n in names {
                out.push((n, target.clone()));
            }
        }
        Ok(out)
    }

    /// Checks that what `d` points at is in the store: a manifest with its
    /// config and layers, or an index with at least one complete child
    /// (images for other platforms may be left out). Returns the config of
    /// a manifest.
    fn check_tree(&self, d: &Descriptor, depth: usize) -> Result<Option<Digest>> {
        let missing = |what: &str, digest: &Digest| {
            invalid(format!(
                "{what} {digest} is referenced but not in the archive (truncated?)"
            ))
        };
        if depth > 4 {
            return Err(invalid(format!("index {} nests too deep", d.digest())));
        }
        if !self.inner.content.exists(d.digest()) {
            return Err(missing("manifest", d.digest()));
        }
        let data = self.read_blob(d.digest(), MAX_MANIFEST_SIZE)?;
        match resolve::parse_manifest(&data, d.media_type().as_ref(), d.digest().as_ref())? {
            Parsed::Manifest(man) => {
                let c = man.config();
                let size = self
                    .info(c.digest())
                    .map_err(|_| missing("config", c.digest()))?
                    .size;
                if size != c.size() {
                    return Err(Error::SizeMismatch {
                        what: format!("config {}", c.digest()),
                        expected: c.size(),
                        actual: size,
                    });
                }
                for l in man.layers() {
                    let size = self
                        .info(l.digest())
                        .map_err(|_| missing("layer", l.digest()))?
                        .size;
                    if size != l.size() {
                        return Err(Error::SizeMismatch {
                            what: format!("layer {}", l.digest()),
                            expected: l.size(),
                            actual: size,
                        });
                    }
                }
                Ok(Some(c.digest().clone()))
            }
            Parsed::Index(idx) => {
                let mut complete = 0;
                for c in idx.manifests() {
                    if self.inner.content.exists(c.digest()) {
                        self.check_tree(c, depth + 1)?;
                        complete += 1;
                    }
                }
                if complete == 0 && !idx.manifests().is_empty() {
                    return Err(invalid(format!(
                        "none of the manifests of index {} is in the archive",
                        d.digest()
                    )));
                }
                Ok(None)
            }
        }
    }

    fn import_docker(
        &self,
        m: &mut Members,
        opts: &ImportOptions,
        lease: &Lease,
    ) -> Result<Vec<(String, Descriptor)>> {
        let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&m.small["manifest.json"])
            .map_err(|e| {
            invalid(format!("manifest.json is not a docker save manifest: {e}"))
        })?;
        let base = opts.base_name.as_deref().unwrap_or("import");
        let mut out = Vec::new();
        for e in entries {
            let cdata = m.bytes(self, &e.config, MAX_CONFIG_SIZE)?;
            let mut cdesc = m.blob(self, &e.config, lease)?;
            cdesc.set_media_type(MediaType::Other(media_types::DOCKER_CONFIG.into()));
            let (_, diff_ids) =
                resolve::parse_config(&cdata, cdesc.digest().as_ref(), e.layers.len())?;
            let mut layers = Vec::new();
            for (path, diff_id) in e.layers.iter().zip(&diff_ids) {
                let mut d = m.blob(self, path, lease)?;
                let mut head = [0u8; 4];
                let n = self
                    .open_blob(d.digest())?
                    .read(&mut head)
                    .map_err(Error::io("reading", path))?;
                let mt = match Compression::detect(&head[..n]) {
                    Compression::None => {
                        if d.digest() != diff_id {
                            return Err(Error::DigestMismatch {
                                what: format!("layer {path} of the archive"),
                                expected: diff_id.to_string(),
                                actual: d.digest().to_string(),
                            });
                        }
                        media_types::DOCKER_LAYER
                    }
                    Compression::Gzip => media_types::DOCKER_LAYER_GZIP,
                    Compression::Zstd => media_types::OCI_LAYER_ZSTD,
                };
                d.set_media_type(MediaType::Other(mt.into()));
                layers.push(d);
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_types::DOCKER_MANIFEST,
                "config": cdesc,
                "layers": layers,
            });
            let body = serde_json::to_vec(&manifest).map_err(|err| invalid(err.to_string()))?;
            let mut mdesc = self.write_blob(None, &body[..], Some(lease))?;
            mdesc.set_media_type(MediaType::Other(media_types::DOCKER_MANIFEST.into()));
            let tags = e.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                out.push((format!("{base}@{}", mdesc.digest()), mdesc));
            } else {
                for t in tags {
                    out.push((t, mdesc.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Writes the named images as one archive. A Docker archive holds this
    /// machine's platform of each image; an OCI layout holds each image as
    /// stored (an index with every platform that was pulled).
    pub fn export(
        &self,
        ns: &str,
        names: &[String],
        out: impl Write,
        format: ArchiveFormat,
    ) -> Result<()> {
        validate_namespace(ns)?;
        let mut records = Vec::new();
        for n in names {
            records.push(self.get_image(ns, n)?);
        }
        let werr = |source| Error::Write {
            what: "the archive".into(),
            source,
        };
        let mut b = tar::Builder::new(out);
        let mut written: HashSet<Digest> = HashSet::new();
        b.append_data(
            &mut file_header(30),
            "oci-layout",
            &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
        )
        .map_err(werr)?;
        let mut index_entries = Vec::new();
        match format {
            ArchiveFormat::Oci => {
                for r in &records {
                    let mut blobs = Vec::new();
                    self.collect_present(&r.target, &r.name, &mut blobs, 0)?;
                    for d in blobs {
                        self.append_blob(&mut b, &d, &mut written)?;
                    }
                    index_entries.push(annotated(&r.target, &r.name));
                }
            }
            ArchiveFormat::Docker => {
                // One manifest.json entry per image, with every name it has.
                let mut entries: Vec<(Digest, DockerManifestEntry)> = Vec::new();
                let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
                for r in &records {
                    let res = self.resolve_named(&r.target, &PlatformSpec::host(), &r.name)?;
                    let mut blobs = vec![res.manifest_digest.clone(), res.config_digest.clone()];
                    blobs.extend(res.layers.iter().map(|l| l.digest().clone()));
                    for d in &blobs {
                        self.append_blob(&mut b, d, &mut written)?;
                    }
                    // Docker's archives name images as Docker shows them.
                    let shown = docker_familiar(&r.name);
                    let tag = docker_tag(&shown);
                    if let Some((repo, t)) = &tag
                        && let Some(last) = res.layers.last()
                    {
                        repositories
                            .entry(repo.clone())
                            .or_default()
                            .insert(t.clone(), digest::split(last.digest())?.1.to_string());
                    }
                    index_entries.push(annotated(&res.manifest, &r.name));
                    match entries.iter_mut().find(|(d, _)| *d == res.manifest_digest) {
                        Some((_, e)) => {
                            if tag.is_some() {
                                e.repo_tags.get_or_insert_with(Vec::new).push(shown.clone());
                            }
                        }
                        None => entries.push((
                            res.manifest_digest.clone(),
                            DockerManifestEntry {
                                config: member_name(&res.config_digest)?,
                                repo_tags: tag.map(|_| vec![shown.clone()]),
                                layers: res
                                    .layers
                                    .iter()
                                    .map(|l| member_name(l.digest()))
                                    .collect::<Result<_>>()?,
                            },
                        )),
                    }
                }
                let manifest: Vec<&DockerManifestEntry> = entries.iter().map(|(_, e)| e).collect();
                let body = serde_json::to_vec(&manifest).map_err(|e| invalid(e.to_string()))?;
                b.append_data(
                    &mut file_header(body.len() as u64),
                    "manifest.json",
                    &body[..],
                )
                .map_err(werr)?;
                let body = serde_json::to_vec(&repositories).map_err(|e| invalid(e.to_string()))?;
                b.append_data(
                    &mut file_header(body.len() as u64),
                    "repositories",
                    &body[..],
                )
                .map_err(werr)?;
            }
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": index_entries,
        });
        let body = serde_json::to_vec(&index).map_err(|e| invalid(e.to_string()))?;
        b.append_data(&mut file_header(body.len() as u64), "index.json", &body[..])
            .map_err(werr)?;
        b.into_inner().map_err(werr)?.flush().map_err(werr)
    }

    /// Every blob an image needs that the store has, children first; an
    /// index's children that were never pulled are skipped, but a manifest
    /// must be complete.
    fn collect_present(
        &self,
        d: &Descriptor,
        name: &str,
        out: &mut Vec<Digest>,
        depth: usize,
    ) -> Result<()> {
        let data = self.read_blob(d.digest(), MAX_MANIFEST_SIZE)?;
        match resolve::parse_manifest(&data, d.media_type().as_ref(), d.digest().as_ref())? {
            Parsed::Index(idx) => {
                for c in idx.manifests() {
                    if self.inner.content.exists(c.digest()) && depth < 4 {
                        self.collect_present(c, name, out, depth + 1)?;
                    }
                }
            }
            Parsed::Manifest(m) => {
                for x in std::iter::once(m.config()).chain(m.layers().iter()) {
                    if !self.inner.content.exists(x.digest()) {
                        return Err(Error::BlobNotFound {
                            digest: format!("{} (of image {name})", x.digest()),
                        });
                    }
                    out.push(x.digest().clone());
                }
            }
        }
        out.push(d.digest().clone());
        Ok(())
    }

    fn append_blob<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        d: &Digest,
        written: &mut HashSet<Digest>,
    ) -> Result<()> {
        if !written.insert(d.clone()) {
            return Ok(());
        }
        let f = self.open_blob(d)?;
        let size = f
            .metadata()
            .map_err(Error::io("reading", d.to_string()))?
            .len();
        b.append_data(&mut file_header(size), member_name(d)?, f.take(size))
            .map_err(|source| Error::Write {
                what: "the archive".into(),
                source,
            })
    }

    /// Makes a one-layer image from a root filesystem tarball (optionally
    /// gzip or zstd compressed, stored as it comes), with a config built
    /// from `opts`, and records it as `name`. Entries that escape the root
    /// are refused; on any error the store is left as it was.
    pub fn import_rootfs(
        &self,
        ns: &str,
        reader: impl Read + Send,
        name: &str,
        opts: &RootfsOptions,
    ) -> Result<ImageRecord> {
        validate_namespace(ns)?;
        validate_name(name)?;
        let lease = self.lease();
        let res = self.import_rootfs_with(ns, reader, name, opts, &lease);
        if res.is_err() {
            self.rollback(&lease);
        }
        res
    }

    fn import_rootfs_with(
        &self,
        ns: &str,
        reader: impl Read + Send,
        name: &str,
        opts: &RootfsOptions,
        lease: &Lease,
    ) -> Result<ImageRecord> {
        let Some(mut w) = self.writer(None)? else {
            return Err(Error::TaskFailed {
                what: "opening an ingest".into(),
            });
        };
        let (compression, diff_id) = {
            let mut tee = Tee {
                inner: reader,
                w: &mut w,
                failed: None,
            };
            let res = check_rootfs(&mut tee);
            if let Some(e) = tee.failed.take() {
                return Err(Error::Io {
                    op: "writing",
                    path: self.root().join("content/ingest"),
                    source: e,
                });
            }
            res?
        };
        let mut layer = w.commit(Some(lease))?;
        layer.set_media_type(MediaType::Other(compression.oci_media_type().into()));

        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut cfg = serde_json::Map::new();
        if let Some(c) = &opts.cmd {
            cfg.insert("Cmd".into(), serde_json::json!(c));
        }
        if let Some(e) = &opts.entrypoint {
            cfg.insert("Entrypoint".into(), serde_json::json!(e));
        }
        if !opts.env.is_empty() {
            cfg.insert("Env".into(), serde_json::json!(opts.env));
        }
        if let Some(w) = &opts.working_dir {
            cfg.insert("WorkingDir".into(), serde_json::json!(w));
        }
        if let Some(u) = &opts.user {
            cfg.insert("User".into(), serde_json::json!(u));
        }
        if !opts.exposed_ports.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = opts
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), serde_json::json!({})))
                .collect();
            cfg.insert("ExposedPorts".into(), m.into());
        }
        if !opts.volumes.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = opts
                .volumes
                .iter()
                .map(|p| (p.clone(), serde_json::json!({})))
                .collect();
            cfg.insert("Volumes".into(), m.into());
        }
        if !opts.config_labels.is_empty() {
            cfg.insert("Labels".into(), serde_json::json!(opts.config_labels));
        }
        let host = PlatformSpec::host();
        let mut history = serde_json::json!({"created": now});
        if let Some(c) = &opts.comment {
            history["comment"] = c.clone().into();
        }
        let mut config = serde_json::json!({
            "created": now,
            "architecture": opts.architecture.clone().unwrap_or(host.architecture),
            "os": opts.os.clone().unwrap_or(host.os),
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [history],
        });
        // The image's comment too, as dockerd's import writes it.
        if let Some(c) = &opts.comment {
            config["comment"] = c.clone().into();
        }
        let body = serde_json::to_vec(&config).map_err(|e| invalid(e.to_string()))?;
        let mut cdesc = self.write_blob(None, &body[..], Some(lease))?;
        cdesc.set_media_type(MediaType::ImageConfig);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": cdesc,
            "layers": [layer],
        });
        let body = serde_json::to_vec(&manifest).map_err(|e| invalid(e.to_string()))?;
        let mut mdesc = self.write_blob(None, &body[..], Some(lease))?;
        mdesc.set_media_type(MediaType::ImageManifest);
        let mut rec = ImageRecord::new(name, mdesc);
        rec.labels = opts.labels.clone();
        self.put_image(ns, rec)
    }
}

fn truncated(name: &str, got: u64, size: u64) -> Error {
    invalid(format!(
        "entry {name} ends after {got} of its {size} bytes: the archive is truncated"
    ))
}

/// Reads a rootfs tarball through, checking every entry's path, and returns
/// its compression and the digest of the uncompressed tar.
fn check_rootfs(r: &mut (impl Read + Send)) -> Result<(Compression, Digest)> {
    let layer_name = "of the rootfs tarball";
    let bad = |source| Error::BadLayer {
        layer: "(rootfs tarball)".into(),
        source,
    };
    let (compression, plain) = layer::decompress(&mut *r).map_err(bad)?;
    let mut ar = tar::Archive::new(HashingReader::new(plain));
    let mut symlinks: HashSet<Vec<u8>> = HashSet::new();
    for entry in ar.entries().map_err(bad)? {
        let e = entry.map_err(bad)?;
        let raw = e.path_bytes().into_owned();
        let show = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |reason: &str| Error::UnsafeEntry {
            layer: layer_name.into(),
            entry: show.clone(),
            reason: reason.into(),
        };
        let comps = check_path(&raw).map_err(&refuse)?;
        let mut prefix = Vec::new();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(c);
            if symlinks.contains(&prefix) {
                return Err(refuse("goes through a symlink of the same tarball"));
            }
        }
        match e.header().entry_type() {
            tar::EntryType::Symlink => {
                symlinks.insert(comps.join(&b'/'));
            }
            tar::EntryType::Link => {
                let t = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                check_path(&t).map_err(|_| refuse("is a hard link to a path outside the root"))?;
            }
            _ => {}
        }
    }
    let (diff_id, _) = ar.into_inner().finish().map_err(bad)?;
    // What the decompressor did not need (padding after the compressed
    // stream) still belongs to the blob.
    io::copy(r, &mut io::sink()).map_err(bad)?;
    Ok((compression, diff_id))
}

fn check_path(raw: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("is an absolute path");
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("escapes the root through '..'"),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn member_name(d: &Digest) -> Result<String> {
    let (alg, hex) = digest::split(d)?;
    Ok(format!("blobs/{}/{hex}", alg.name()))
}

/// The descriptor for index.json with the image's name in the annotations
/// containerd and the OCI spec use.
fn annotated(d: &Descriptor, name: &str) -> Descriptor {
    let mut out = Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
    out.set_platform(d.platform().clone());
    let mut ann = HashMap::new();
    ann.insert(ANNOTATION_CONTAINERD_NAME.to_string(), name.to_string());
    if let Some((_, tag)) = docker_tag(name) {
        ann.insert(ANNOTATION_REF_NAME.to_string(), tag);
    }
    out.set_annotations(Some(ann));
    out
}

/// `repo:tag` of a name, if it has a tag and no digest.
/// A name as Docker shows it (and writes it in its archives): Docker
/// Hub's registry and `library/` left out.
fn docker_familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

fn docker_tag(name: &str) -> Option<(String, String)> {
    if name.contains('@') {
        return None;
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let colon = name[slash..].rfind(':')? + slash;
    Some((name[..colon].to_string(), name[colon + 1..].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_cleaned_and_escapes_refused() {
        assert_eq!(
            clean_member(b"./blobs//sha256/x").unwrap(),
            "blobs/sha256/x"
        );
        assert!(clean_member(b"../x").is_err());
        assert!(clean_member(b"/etc/passwd").is_err());
    }

    #[test]
    fn archives_name_images_as_docker_shows_them() {
        assert_eq!(docker_familiar("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(docker_familiar("docker.io/team/app:v1"), "team/app:v1");
        assert_eq!(docker_familiar("example.com/two:a"), "example.com/two:a");
    }

    #[test]
    fn docker_tags_are_split_after_the_last_slash() {
        assert_eq!(
            docker_tag("127.0.0.1:5000/a/b:v1"),
            Some(("127.0.0.1:5000/a/b".into(), "v1".into()))
        );
        assert_eq!(docker_tag("127.0.0.1:5000/a/b"), None);
        assert_eq!(docker_tag("a@sha256:00"), None);
    }
}
