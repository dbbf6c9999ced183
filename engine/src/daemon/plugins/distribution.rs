//! Plugins and registries (`docker plugin install`, `push`, `upgrade` and
//! the privileges an install asks to grant). A plugin's manifest, config
//! and layer live in lifecycled's content store, under a record of the
//! `plugins.berth` namespace named by the plugin's id: a push sends what was
//! installed or created, byte for byte, as dockerd's plugin blob store
//! keeps them. A created plugin's layer is its rootfs packed at create,
//! before the plugin ever ran in it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use berth_proto::lifecycle::v1 as api;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;
use tokio_stream::wrappers::ReceiverStream;

use super::config::{Config, RootFs};
use super::run::NAMESPACE;
use crate::daemon::Daemon;
use crate::error::{ApiError, Result};

const PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The name lifecycled's OCI layout import records a manifest under.
const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// One thing a plugin asks of the host, as Docker's `types.PluginPrivilege`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Privilege {
    #[serde(rename = "Name", alias = "name", default)]
    pub name: String,
    #[serde(rename = "Description", alias = "description", default)]
    pub description: String,
    #[serde(rename = "Value", alias = "value", default)]
    pub value: Option<Vec<String>>,
}

fn privilege(name: &str, description: &str, value: Vec<String>) -> Privilege {
    Privilege {
        name: name.into(),
        description: description.into(),
        value: Some(value),
    }
}

/// What installing a plugin of this config grants it, in dockerd's order
/// and words (its `computePrivileges`).
pub fn privileges(c: &Config) -> Vec<Privilege> {
    let mut out = Vec::new();
    let net = c.network.typ.as_str();
    if !matches!(net, "" | "null" | "bridge") {
        out.push(privilege(
            "network",
            "permissions to access a network",
            vec![net.to_string()],
        ));
    }
    if c.ipc_host {
        out.push(privilege(
            "host ipc namespace",
            "allow access to host ipc namespace",
            vec!["true".into()],
        ));
    }
    if c.pid_host {
        out.push(privilege(
            "host pid namespace",
            "allow access to host pid namespace",
            vec!["true".into()],
        ));
    }
    for m in c.mounts.iter().flatten() {
        if let Some(src) = &m.source {
            out.push(privilege("mount", "host path to mount", vec![src.clone()]));
        }
    }
    for d in c.linux.devices.iter().flatten() {
        if let Some(path) = &d.path {
            out.push(privilege(
                "device",
                "host device to access",
                vec![path.clone()],
            ));
        }
    }
    if c.linux.allow_all_devices {
        out.push(privilege(
            "allow-all-devices",
            "allow 'rwm' access to all devices",
            vec!["true".into()],
        ));
    }
    if let Some(caps) = c.linux.capabilities.as_ref().filter(|c| !c.is_empty()) {
        out.push(privilege(
            "capabilities",
            "list of additional capabilities required",
            caps.clone(),
        ));
    }
    out
}

/// Whether the privileges a client granted are the ones a plugin needs:
/// the same names and values, in any order (descriptions are not
/// compared, as dockerd does not).
pub fn granted(required: &[Privilege], given: &[Privilege]) -> bool {
    let key = |p: &Privilege| (p.name.clone(), p.value.clone().unwrap_or_default());
    let mut a: Vec<_> = required.iter().map(key).collect();
    let mut b: Vec<_> = given.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// The privileges a client sends with an install or upgrade: a JSON array
/// (`null` or an empty body: none).
pub fn parse_privileges(body: &[u8]) -> Result<Vec<Privilege>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice::<Option<Vec<Privilege>>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::bad_request(format!("failed to parse privileges: {e}")))
}

/// A plugin's layer (its rootfs, as a gzipped tar in its directory) and its
/// config, as a push sends them.
pub struct Packed {
    pub layer: PathBuf,
    pub layer_digest: String,
    pub layer_size: u64,
    pub config: Vec<u8>,
    pub config_digest: String,
}

struct Hashing<W> {
    inner: W,
    hash: sha2::Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: sha2::Sha256::new(),
        size: 0,
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Packs the `rootfs/` of plugin directory `dir` as one gzipped layer
/// (`dir/layer.tar.gz`; the same files give the same layer),
/// records its diff id in `config` and returns the layer and config.
/// Blocking.
pub fn pack(dir: &Path, config: &mut Config) -> Result<Packed> {
    let fail = |e: std::io::Error| ApiError::internal(format!("packing the plugin's rootfs: {e}"));
    let path = dir.join("layer.tar.gz");
    let file = std::fs::File::create(&path).map_err(fail)?;
    let gz = flate2::write::GzEncoder::new(hashing(file), flate2::Compression::default());
    let mut b = tar::Builder::new(hashing(gz));
    b.follow_symlinks(false);
    // Owners, modes and times as the files have them, as dockerd's create
    // packs a rootfs: a plugin installed from the push gets them back.
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir.join("rootfs")).map_err(fail)?;
    let plain = b.into_inner().map_err(fail)?;
    let diff_id = format!("sha256:{}", hex::encode(plain.hash.finalize()));
    let mut gz = plain.inner.finish().map_err(fail)?;
    gz.flush().map_err(fail)?;
    gz.inner.sync_all().map_err(fail)?;
    config.rootfs = Some(RootFs {
        diff_ids: vec![diff_id],
        typ: "layers".into(),
    });
    let raw = serde_json::to_vec(&*config)
        .map_err(|e| ApiError::internal(format!("the plugin's config: {e}")))?;
    Ok(Packed {
        layer: path,
        layer_digest: format!("sha256:{}", hex::encode(gz.hash.finalize())),
        layer_size: gz.size,
        config_digest: sha256(&raw),
        config: raw,
    })
}

/// A writer that sends what it is given to lifecycled's import, in chunks.
struct ImportFeed {
    tx: tokio::sync::mpsc::Sender<api::ImportRequest>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 << 10;

impl ImportFeed {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(api::ImportRequest {
                kind: Some(api::import_request::Kind::Chunk(data)),
            })
            .map_err(|_| std::io::Error::other("lifecycled stopped reading the import"))
    }
}

impl Write for ImportFeed {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn member(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// Writes an OCI image layout of one plugin manifest (its config and layer
/// from `packed`) named `name`. Blocking.
fn write_layout(w: impl Write, name: &str, packed: &Packed) -> std::io::Result<()> {
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": PLUGIN_CONFIG, "size": packed.config.len(), "digest": packed.config_digest},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": packed.layer_size, "digest": packed.layer_digest}],
    }))?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": DOCKER_MANIFEST,
            "size": manifest.len(),
            "digest": sha256(&manifest),
            "annotations": {IMAGE_NAME_ANNOTATION: name},
        }],
    }))?;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut t = tar::Builder::new(w);
    t.append(&member("oci-layout", layout.len() as u64), &layout[..])?;
    t.append(
        &member(
            &blob_path(&packed.config_digest),
            packed.config.len() as u64,
        ),
        packed.config.as_slice(),
    )?;
    let layer = std::fs::File::open(&packed.layer)?;
    t.append(
        &member(&blob_path(&packed.layer_digest), packed.layer_size),
        layer,
    )?;
    t.append(
        &member(&blob_path(&sha256(&manifest)), manifest.len() as u64),
        manifest.as_slice(),
    )?;
    t.append(&member("index.json", index.len() as u64), index.as_slice())?;
    t.into_inner()?.flush()
}

/// Applies one layer (a tar, gzipped or not) to `rootfs`, as a layer is
/// applied: whiteouts remove what lower layers put there. Nothing is
/// written outside `rootfs`. Blocking.
pub fn apply_layer(reader: impl Read, rootfs: &Path) -> Result<()> {
    let bad = |e: std::io::Error| ApiError::internal(format!("applying the plugin's layer: {e}"));
    let mut reader = std::io::BufReader::new(reader);
    let magic = std::io::BufRead::fill_buf(&mut reader).map_err(bad)?;
    let plain: Box<dyn Read> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(ApiError::internal(
                "the plugin's layer is zstd-compressed; berth applies gzip or plain layers to plugins",
            ));
        }
        _ => Box::new(reader),
    };
    let mut archive = tar::Archive::new(plain);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_os_string()),
                Component::CurDir => {}
                _ => {
                    return Err(ApiError::internal(format!(
                        "the plugin's layer names a path outside its rootfs: {}",
                        path.display()
                    )));
                }
            }
        }
        let Some(last) = parts.last().and_then(|p| p.to_str()).map(str::to_string) else {
            continue;
        };
        if let Some(hidden) = last.strip_prefix(".wh.") {
            let parent: PathBuf = parts[..parts.len() - 1].iter().collect();
            let dir = rootfs.join(&parent);
            // Only within the rootfs as it is: no symlink on the way out.
            let inside = dir
                .canonicalize()
                .ok()
                .zip(rootfs.canonicalize().ok())
                .is_some_and(|(d, r)| d.starts_with(r));
            if !inside {
                continue;
            }
            if hidden == ".wh..opq" {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    remove_any(&e.path());
                }
            } else {
                remove_any(&dir.join(hidden));
            }
            continue;
        }
        if !entry.unpack_in(rootfs).map_err(bad)? {
            return Err(ApiError::internal(format!(
                "the plugin's layer names a path outside its rootfs: {}",
                path.display()
            )));
        }
    }
    Ok(())
}

fn remove_any(p: &Path) {
    let res = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => return,
    };
    if let Err(e) = res {
        tracing::warn!("removing {} (a whiteout): {e}", p.display());
    }
}

impl Daemon {
    /// Records a packed plugin's blobs in lifecycled under the plugin's id
    /// (what a push sends); the packed layer file is removed after.
    pub async fn plugin_store_blobs(&self, id: &str, packed: Packed) -> Result<()> {
        let (tx, rx) = tokio::sync::mpsc::channel::<api::ImportRequest>(4);
        tx.send(api::ImportRequest {
            kind: Some(api::import_request::Kind::Options(api::ImportOptions {
                plugin: true,
                ..Default::default()
            })),
        })
        .await
        .map_err(|_| ApiError::internal("import relay closed"))?;
        let name = id.to_string();
        let layer = packed.layer.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut feed = ImportFeed {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            write_layout(&mut feed, &name, &packed)
        });
        let imported = self
            .lc
            .images()
            .import(self.lc.req_in(NAMESPACE, ReceiverStream::new(rx)))
            .await;
        let written = writer
            .await
            .map_err(|e| ApiError::internal(format!("packing the plugin: {e}")))?;
        let _ = std::fs::remove_file(&layer);
        imported?;
        written.map_err(|e| ApiError::internal(format!("sending the plugin's blobs: {e}")))
    }

    /// Whether lifecycled holds the plugin's blobs.
    pub async fn plugin_has_blobs(&self, id: &str) -> Result<bool> {
        match self
            .lc
            .images()
            .get(
                self.lc
                    .req_in(NAMESPACE, api::ImageRequest { name: id.into() }),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(s.into()),
        }
    }

    /// Forgets a record of the plugins' namespace (a removed plugin's
    /// blobs, a finished install's reference); gone already is fine.
    pub async fn plugin_forget_blobs(&self, name: &str) {
        if let Err(s) = self
            .lc
            .images()
            .delete(self.lc.req_in(
                NAMESPACE,
                api::ImageRequest {
                    name: name.to_string(),
                },
            ))
            .await
            && s.code() != tonic::Code::NotFound
        {
            tracing::warn!("forgetting the plugin record {name}: {}", s.message());
        }
    }

    /// Applies the layers of a pulled plugin (`image`, as lifecycled's pull
    /// answered) to `rootfs`, read from the content store in order.
    pub async fn plugin_apply_layers(&self, image: &api::Image, rootfs: &Path) -> Result<()> {
        use futures::TryStreamExt;
        for l in &image.layers {
            let stream = self
                .lc
                .content()
                .read(self.lc.req_in(
                    NAMESPACE,
                    api::ContentRequest {
                        digest: l.digest.clone(),
                    },
                ))
                .await?
                .into_inner()
                .map_ok(|c| bytes::Bytes::from(c.data))
                .map_err(|s| std::io::Error::other(s.message().to_string()));
            let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
                Box::pin(stream),
            ));
            let root = rootfs.to_path_buf();
            tokio::task::spawn_blocking(move || apply_layer(reader, &root))
                .await
                .map_err(|e| ApiError::internal(format!("applying the plugin's layer: {e}")))??;
        }
        Ok(())
    }

    /// Clears records of the plugins' namespace that name no plugin: an
    /// install or upgrade the engine died in the middle of.
    pub async fn plugin_sweep_blobs(&self) {
        let Ok(list) = self
            .lc
            .images()
            .list(self.lc.req_in(NAMESPACE, api::ListImagesRequest::default()))
            .await
        else {
            return;
        };
        for i in list.into_inner().images {
            if self.plugins.find_id(&i.name).is_none() {
                self.plugin_forget_blobs(&i.name).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(raw: &str) -> Config {
        Config::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn privileges_are_what_the_config_asks_of_the_host_in_dockerds_order() {
        let c = config(
            r#"{"Network": {"Type": "host"}, "PidHost": true,
                "Mounts": [{"Source": "/var/lib", "Destination": "/x"}, {"Destination": "/y"}],
                "Linux": {"Capabilities": ["CAP_SYS_ADMIN"], "AllowAllDevices": true,
                          "Devices": [{"Path": "/dev/fuse"}]},
                "Interface": {"Socket": "p.sock", "Types": ["docker.volumedriver/1.0"]}}"#,
        );
        let names: Vec<(String, Vec<String>)> = privileges(&c)
            .into_iter()
            .map(|p| (p.name, p.value.unwrap_or_default()))
            .collect();
        let want = [
            ("network", vec!["host"]),
            ("host pid namespace", vec!["true"]),
            ("mount", vec!["/var/lib"]),
            ("device", vec!["/dev/fuse"]),
            ("allow-all-devices", vec!["true"]),
            ("capabilities", vec!["CAP_SYS_ADMIN"]),
        ];
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(names, want);
        assert!(privileges(&config(r#"{"Network": {"Type": "bridge"}}"#)).is_empty());
    }

    #[test]
    fn granted_privileges_match_by_name_and_value_in_any_order() {
        let need = vec![
            privilege("mount", "host path to mount", vec!["/a".into()]),
            privilege("network", "x", vec!["host".into()]),
        ];
        let mut given = need.clone();
        given.reverse();
        given[0].description = "said otherwise".into();
        assert!(granted(&need, &given));
        assert!(!granted(&need, &given[..1]));
        given[1].value = Some(vec!["/b".into()]);
        assert!(!granted(&need, &given));
        assert!(granted(&[], &parse_privileges(b"").unwrap()));
        assert!(granted(&[], &parse_privileges(b"null").unwrap()));
        let parsed = parse_privileges(
            br#"[{"name": "network", "value": ["host"]}, {"Name": "mount", "Value": ["/a"]}]"#,
        )
        .unwrap();
        assert!(granted(&need, &parsed));
        assert_eq!(parse_privileges(b"{").unwrap_err().status, 400);
    }

    #[test]
    fn a_packed_rootfs_is_applied_back_the_same_and_whiteouts_remove() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("bin/tool", root.join("link")).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        // Owners come back too (where this test may set one).
        let owned = std::os::unix::fs::chown(root.join("bin/tool"), Some(1234), Some(5678)).is_ok();
        let mut c = config(r#"{"Interface": {"Socket": "p.sock"}}"#);
        let packed = pack(dir.path(), &mut c).unwrap();
        assert_eq!(packed.config_digest, sha256(&packed.config));
        let diff = &c.rootfs.as_ref().unwrap().diff_ids[0];
        // Packing is stable: the same rootfs gives the same layer.
        let again = pack(dir.path(), &mut c.clone()).unwrap();
        assert_eq!(again.layer_digest, packed.layer_digest);
        assert_eq!(&c.rootfs.as_ref().unwrap().diff_ids[0], diff);

        let out = tempfile::tempdir().unwrap();
        apply_layer(std::fs::File::open(&packed.layer).unwrap(), out.path()).unwrap();
        assert_eq!(
            std::fs::read(out.path().join("bin/tool")).unwrap(),
            b"#!/bin/sh\n"
        );
        let meta = std::fs::metadata(out.path().join("bin/tool")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o750);
        let before = std::fs::metadata(root.join("bin/tool")).unwrap();
        assert_eq!(meta.mtime(), before.mtime());
        if owned {
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        }
        assert_eq!(
            std::fs::read_link(out.path().join("link")).unwrap(),
            Path::new("bin/tool")
        );

        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        t.append_data(&mut h, "bin/.wh.tool", &b""[..]).unwrap();
        apply_layer(t.into_inner().unwrap().as_slice(), out.path()).unwrap();
        assert!(!out.path().join("bin/tool").exists());
    }

    #[test]
    fn a_layer_that_leads_out_of_the_rootfs_is_refused() {
        let out = tempfile::tempdir().unwrap();
        let mut raw = Vec::new();
        {
            let mut t = tar::Builder::new(&mut raw);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            // set_path refuses `..`; write the name bytes as a hostile
            // archive would.
            h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
            h.set_cksum();
            t.append(&h, &b"x"[..]).unwrap();
            t.finish().unwrap();
        }
        assert!(apply_layer(raw.as_slice(), &out.path().join("r")).is_err());
        assert!(!out.path().join("escape").exists());
    }
}
