//! Managed plugins (`docker plugin …`), kept as dockerd keeps them: each
//! under `<data-root>/plugins/<id>/` as its record (`plugin.json`, Docker's
//! `types.Plugin`) and its unpacked `rootfs/`. An enabled plugin runs as a
//! container of lifecycled's `plugins.berth` namespace (see `run`), with
//! `<exec-root>/plugins/<short id>/` at `/run/docker/plugins`, where it
//! makes the socket the engine then speaks to.
//!
//! A plugin exists once its `plugin.json` is written (after the rootfs is
//! in place, by renaming a whole directory in); it is removed by renaming
//! its directory out of the way (`.removing-<id>`) and deleting that. An
//! engine that dies half-way leaves a `.new-` or `.removing-` directory,
//! or one without a record, and [`Plugins::open`] clears them.

pub mod authz;
pub mod client;
pub mod config;
pub mod distribution;
pub mod ipam;
pub mod legacy;
pub mod logging;
pub mod network;
pub mod run;
pub mod volumes;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::daemon::images::{familiar, normalize};
use crate::error::{ApiError, Result};
pub use config::Plugin;

/// Directory prefixes of a plugin being made or removed; an id is hex, so
/// never one of them.
const NEW: &str = ".new-";
const REMOVING: &str = ".removing-";

/// One plugin: its record, and the lock its enable, disable, set and
/// removal take in turn.
pub struct Entry {
    pub id: String,
    pub op: tokio::sync::Mutex<()>,
    record: Mutex<Plugin>,
}

impl Entry {
    pub fn get(&self) -> Plugin {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn name(&self) -> String {
        self.get().name
    }
}

pub struct Plugins {
    root: PathBuf,
    exec_root: PathBuf,
    entries: Mutex<BTreeMap<String, Arc<Entry>>>,
    /// Set as the engine stops its plugins: a plugin that ends then is not
    /// started again.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Held from a plugin's `VolumeDriver.Create` until the volume's record
    /// is written, and while the plugins' lists are taken in: a list never
    /// takes in a volume a create is still making (without its labels).
    pub volumes_lock: tokio::sync::Mutex<()>,
    /// Held by an install or upgrade from its pull until the pull's record
    /// is renamed to the plugin's id, and by the sweep of records no plugin
    /// names: the sweep never takes a pull's record from under it.
    pub fetch_lock: Arc<tokio::sync::Mutex<()>>,
    /// Plugins that run on the host, found in the plugin directories.
    pub legacy: legacy::Legacy,
    /// Each volume driver's scope (`VolumeDriver.Capabilities`), asked once
    /// while it stays enabled.
    pub volume_scopes: Mutex<BTreeMap<String, String>>,
}

impl Plugins {
    pub fn open(data_root: &Path, exec_root: &Path) -> std::io::Result<Plugins> {
        let root = data_root.join("plugins");
        std::fs::create_dir_all(&root)?;
        let mut entries = BTreeMap::new();
        for e in std::fs::read_dir(&root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(NEW) || name.starts_with(REMOVING) {
                tracing::info!("clearing {}, left by an interrupted plugin change", name);
                if let Err(err) = std::fs::remove_dir_all(&path) {
                    tracing::warn!("removing {}: {err}", path.display());
                }
                continue;
            }
            settle_upgrade(&path);
            match std::fs::read(path.join("plugin.json")) {
                Ok(raw) => match Plugin::load(&raw) {
                    Ok(p) if p.id == name => {
                        entries.insert(
                            name.clone(),
                            Arc::new(Entry {
                                id: name,
                                op: Default::default(),
                                record: Mutex::new(p),
                            }),
                        );
                    }
                    Ok(_) => tracing::error!("skipping plugin {name}: its record names another"),
                    Err(err) => tracing::error!("skipping plugin {name}: its record: {err}"),
                },
                Err(err) => tracing::error!("skipping plugin directory {name}: {err}"),
            }
        }
        Ok(Plugins {
            root,
            exec_root: exec_root.join("plugins"),
            entries: Mutex::new(entries),
            stopping: Default::default(),
            volumes_lock: Default::default(),
            fetch_lock: Default::default(),
            legacy: legacy::Legacy::new(Vec::new()),
            volume_scopes: Default::default(),
        })
    }

    /// Where legacy plugins are looked for (none until this is called).
    pub fn with_legacy_dirs(mut self, dirs: Vec<PathBuf>) -> Plugins {
        self.legacy = legacy::Legacy::new(dirs);
        self
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.map().values().cloned().collect()
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.dir(id).join("rootfs")
    }

    /// Where the plugin's `PropagatedMount` is on the host.
    pub fn propagated(&self, id: &str) -> PathBuf {
        self.dir(id).join("propagated-mount")
    }

    /// Bound at `/run/docker/plugins` in the plugin. The short id keeps a
    /// socket's path within the 108 bytes a unix address holds.
    pub fn socket_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join(&id[..12.min(id.len())])
    }

    /// The plugin's socket on the host.
    pub fn socket(&self, p: &Plugin) -> PathBuf {
        self.socket_dir(&p.id).join(&p.config.interface.socket)
    }

    /// A plugin by its full id.
    pub fn find_id(&self, id: &str) -> Option<Arc<Entry>> {
        self.map().get(id).cloned()
    }

    /// A plugin by its id, an unambiguous prefix of it, or its name (the
    /// tag `latest` when none is given), as dockerd looks one up.
    pub fn find(&self, given: &str) -> Result<Arc<Entry>> {
        let map = self.map();
        if let Some(e) = map.get(given) {
            return Ok(e.clone());
        }
        if let Ok(full) = normalize(given)
            && !full.contains('@')
        {
            let name = familiar(&full);
            if let Some(e) = map.values().find(|e| e.name() == name) {
                return Ok(e.clone());
            }
        }
        if !given.is_empty() && given.chars().all(|c| c.is_ascii_hexdigit()) {
            let found: Vec<&Arc<Entry>> =
                map.values().filter(|e| e.id.starts_with(given)).collect();
            match found.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "multiple plugins found for {given:?}"
                    )));
                }
            }
        }
        Err(not_found(given))
    }

    /// Writes a plugin's record in place of the old one.
    pub fn save(&self, e: &Entry, p: Plugin) -> Result<()> {
        write_record(&self.dir(&p.id).join("plugin.json"), &p)?;
        *e.record.lock().unwrap_or_else(|e| e.into_inner()) = p;
        Ok(())
    }

    /// A new plugin's staging directory (a fresh id, with an empty
    /// `rootfs/` and `propagated-mount/`): [`Plugins::commit`] makes it a
    /// plugin, [`Plugins::discard`] drops it; a restart clears one left.
    pub fn stage(&self) -> Result<(String, PathBuf)> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let staging = self.root.join(format!("{NEW}{id}"));
        for sub in ["rootfs", "propagated-mount"] {
            if let Err(e) = std::fs::create_dir_all(staging.join(sub)) {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(ApiError::internal(format!(
                    "creating the plugin's {sub}: {e}"
                )));
            }
        }
        Ok((id, staging))
    }

    pub fn discard(&self, staging: &Path) {
        if let Err(e) = std::fs::remove_dir_all(staging)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", staging.display());
        }
    }

    /// `POST /plugins/create`: a staged plugin from `config.json` and
    /// `rootfs/` in a tar stream, not yet committed. Blocking: it unpacks
    /// the whole rootfs and packs it again as the layer a push sends.
    pub fn create(
        &self,
        name: &str,
        body: impl Read,
        docker_version: &str,
    ) -> Result<(PathBuf, Plugin, distribution::Packed)> {
        let name = self.new_name(name)?;
        let (id, staging) = self.stage()?;
        let made = (|| {
            let raw = unpack(body, &staging)?;
            let mut config = Config::parse(&raw)
                .map_err(|e| ApiError::bad_request(format!("failed to parse config: {e}")))?;
            config.docker_version = docker_version.to_string();
            let packed = distribution::pack(&staging, &mut config)?;
            let p = Plugin {
                settings: Plugin::initial_settings(&config),
                config,
                enabled: false,
                id: id.clone(),
                name: name.clone(),
                reference: name.clone(),
            };
            Ok((p, packed))
        })();
        match made {
            Ok((p, packed)) => Ok((staging, p, packed)),
            Err(e) => {
                self.discard(&staging);
                Err(e)
            }
        }
    }

    /// Makes a staged plugin one of the engine's: its record is written and
    /// its directory renamed in. The name is checked again here, with the
    /// map held: two creates of one name race to here. The staging
    /// directory is gone after, whether it succeeded or not.
    pub fn commit(&self, staging: &Path, p: Plugin) -> Result<Plugin> {
        if let Err(e) = write_record(&staging.join("plugin.json"), &p) {
            self.discard(staging);
            return Err(e);
        }
        let mut map = self.map();
        if map.values().any(|e| e.name() == p.name) {
            drop(map);
            self.discard(staging);
            return Err(already_exists(&p.name));
        }
        if let Err(e) = std::fs::rename(staging, self.dir(&p.id)) {
            drop(map);
            self.discard(staging);
            return Err(ApiError::internal(format!(
                "storing plugin {}: {e}",
                p.name
            )));
        }
        map.insert(
            p.id.clone(),
            Arc::new(Entry {
                id: p.id.clone(),
                op: Default::default(),
                record: Mutex::new(p.clone()),
            }),
        );
        Ok(p)
    }

    /// Where an upgrade unpacks the plugin's new rootfs, made empty.
    pub fn upgrade_rootfs(&self, id: &str) -> Result<PathBuf> {
        let new = self.dir(id).join(UPGRADE_ROOTFS);
        let _ = std::fs::remove_dir_all(&new);
        std::fs::create_dir_all(&new)
            .map_err(|e| ApiError::internal(format!("error preparing upgrade: {e}")))?;
        Ok(new)
    }

    /// Puts an upgrade's rootfs (see [`Plugins::upgrade_rootfs`]) and record
    /// in place of the plugin's. The new record is written aside first and
    /// renamed in last: an engine that dies before that rename finds the
    /// old rootfs and record again at its start, one that dies after finds
    /// the new ones (`settle_upgrade`).
    pub fn upgrade(&self, e: &Entry, p: Plugin) -> Result<()> {
        let dir = self.dir(&e.id);
        let fail = |what: &str, err: std::io::Error| {
            ApiError::internal(format!("upgrading plugin {}: {what}: {err}", p.name))
        };
        write_record(&dir.join(UPGRADE_RECORD), &p)?;
        let swapped = std::fs::rename(dir.join("rootfs"), dir.join(OLD_ROOTFS))
            .map_err(|err| fail("its old rootfs", err))
            .and_then(|()| {
                std::fs::rename(dir.join(UPGRADE_ROOTFS), dir.join("rootfs"))
                    .map_err(|err| fail("its new rootfs", err))
            })
            .and_then(|()| {
                std::fs::rename(dir.join(UPGRADE_RECORD), dir.join("plugin.json"))
                    .map_err(|err| fail("its record", err))
            });
        if let Err(err) = swapped {
            settle_upgrade(&dir);
            return Err(err);
        }
        settle_upgrade(&dir);
        *e.record.lock().unwrap_or_else(|e| e.into_inner()) = p;
        Ok(())
    }

    /// The name a new plugin would have (`name:latest` when untagged),
    /// refused when it is malformed, has a digest, or is taken.
    pub fn new_name(&self, given: &str) -> Result<String> {
        let full = normalize(given).map_err(|e| {
            ApiError::bad_request(format!("failed to parse reference {given}: {e}"))
        })?;
        if full.contains('@') {
            return Err(ApiError::bad_request(
                "canonical references are not permitted",
            ));
        }
        let name = familiar(&full);
        if self.map().values().any(|e| e.name() == name) {
            return Err(already_exists(&name));
        }
        Ok(name)
    }

    /// Forgets a plugin and deletes its files (it must not be running).
    pub fn remove(&self, e: &Entry) -> Result<()> {
        let dir = self.dir(&e.id);
        let gone = self.root.join(format!("{REMOVING}{}", e.id));
        std::fs::rename(&dir, &gone)
            .map_err(|err| ApiError::internal(format!("removing plugin {}: {err}", e.name())))?;
        self.map().remove(&e.id);
        if let Err(err) = std::fs::remove_dir_all(&gone) {
            tracing::warn!("removing {}: {err}", gone.display());
        }
        let _ = std::fs::remove_dir_all(self.socket_dir(&e.id));
        Ok(())
    }
}

use config::Config;

impl crate::daemon::Daemon {
    /// Where the plugin `name` serves `interface` (`VolumeDriver`,
    /// `NetworkDriver`, `IpamDriver`, `authz`; a managed plugin's
    /// `capability`, e.g. `volumedriver`): an enabled managed plugin of
    /// that name first (a disabled one is not passed over), else a legacy
    /// one found in the plugin directories; dockerd's words when there is
    /// none. The managed plugin's record with it.
    pub async fn plugin_serving(
        &self,
        name: &str,
        capability: &str,
        interface: &str,
    ) -> std::result::Result<(client::Addr, Option<Plugin>), String> {
        let Ok(e) = self.plugins.find(name) else {
            return match self.plugins.legacy.get(name, interface).await {
                Ok(Some(a)) => Ok((a.addr, None)),
                Ok(None) => Err(format!("plugin {name:?} not found")),
                Err(why) => Err(why),
            };
        };
        let p = e.get();
        if !p.config.types().iter().any(|t| t.capability == capability) {
            return Err(format!(
                "plugin {:?} found, but not implementing \"{interface}\"",
                p.name
            ));
        }
        if !p.enabled {
            return Err(format!("plugin {:?} found but disabled", p.name));
        }
        Ok((client::Addr::Unix(self.plugins.socket(&p)), Some(p)))
    }
}

pub fn not_found(given: &str) -> ApiError {
    ApiError::not_found(format!("plugin {given:?} not found"))
}

fn already_exists(name: &str) -> ApiError {
    ApiError::conflict(format!("plugin {name} already exists"))
}

/// An upgrade's new record (written before the swap, renamed to
/// `plugin.json` to commit it), new rootfs, and the rootfs it replaces.
const UPGRADE_RECORD: &str = "upgrade.json";
const UPGRADE_ROOTFS: &str = "rootfs.upgrade";
const OLD_ROOTFS: &str = "rootfs.old";

/// Finishes what an upgrade of the plugin in `dir` left: one not committed
/// (its new record still aside) is rolled back to the old rootfs; one
/// committed loses the old rootfs.
fn settle_upgrade(dir: &Path) {
    let old = dir.join(OLD_ROOTFS);
    if dir.join(UPGRADE_RECORD).exists() && old.exists() {
        let _ = std::fs::remove_dir_all(dir.join("rootfs"));
        if let Err(e) = std::fs::rename(&old, dir.join("rootfs")) {
            tracing::error!("restoring {} after an upgrade: {e}", old.display());
        }
    }
    for left in [UPGRADE_RECORD, UPGRADE_ROOTFS, OLD_ROOTFS] {
        let p = dir.join(left);
        let res = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", p.display());
        }
    }
}

/// Writes a plugin's record (Docker's `types.Plugin`) at `path`, whole or
/// not at all.
fn write_record(path: &Path, p: &Plugin) -> Result<()> {
    let raw = serde_json::to_vec_pretty(p)
        .map_err(|e| ApiError::internal(format!("plugin record: {e}")))?;
    write_atomic(path, &raw)
        .map_err(|e| ApiError::internal(format!("saving plugin {}: {e}", p.name)))
}

fn write_atomic(path: &Path, raw: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, raw)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Unpacks the `rootfs/` of a plugin's tar stream into `staging` and returns
/// its `config.json`. Other entries are passed over, as dockerd passes
/// them; nothing is written outside `rootfs`.
fn unpack(body: impl Read, staging: &Path) -> Result<Vec<u8>> {
    let bad = |e: std::io::Error| {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        ApiError::bad_request(format!("reading the plugin's tar: {e}{cause}"))
    };
    let mut archive = tar::Archive::new(body);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut config = None;
    let mut saw_rootfs = false;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let mut parts = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir));
        let first = parts.next().map(|c| c.as_os_str().to_os_string());
        let nested = parts.next().is_some();
        match first.as_ref().and_then(|f| f.to_str()) {
            Some("config.json") if !nested => {
                let mut raw = Vec::new();
                entry.read_to_end(&mut raw).map_err(bad)?;
                config = Some(raw);
            }
            Some("rootfs") => {
                saw_rootfs = true;
                // Under the staging directory with its `rootfs/` prefix, so
                // that tar's own checks (no `..`, no write through a symlink
                // that leads out) keep every entry inside; hard links name
                // their targets the same way.
                let inside = entry.unpack_in(staging).map_err(bad)?;
                if !inside {
                    return Err(ApiError::bad_request(format!(
                        "the plugin's tar names a path outside its rootfs: {}",
                        path.display()
                    )));
                }
            }
            _ => {}
        }
    }
    if !saw_rootfs {
        return Err(ApiError::bad_request("no rootfs found"));
    }
    config.ok_or_else(|| ApiError::bad_request("config not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"description": "t", "entrypoint": ["/bin/x"],
        "interface": {"types": ["docker.volumedriver/1.0"], "socket": "t.sock"}}"#;

    /// A tar of `entries` (path, contents; a trailing `/` is a directory).
    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            } else {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
            }
            // Paths set raw: a hostile archive's `..` must reach unpack.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn store() -> (tempfile::TempDir, Plugins) {
        let dir = tempfile::tempdir().unwrap();
        let p = Plugins::open(&dir.path().join("data"), &dir.path().join("exec")).unwrap();
        (dir, p)
    }

    #[test]
    fn a_plugin_is_made_from_config_json_and_rootfs_and_found_by_name_or_id() {
        let (_dir, s) = store();
        let tar = tar_of(&[
            ("config.json", CONFIG),
            ("rootfs/", ""),
            ("rootfs/bin/", ""),
            ("rootfs/bin/x", "#!/bin/sh\n"),
            ("./README", "not part of the plugin"),
        ]);
        let (staging, p, packed) = s.create("team/t", tar.as_slice(), "1.0").unwrap();
        // The layer a push sends is the rootfs as it was made.
        assert!(packed.layer.starts_with(&staging) && packed.layer.is_file());
        assert_eq!(p.config.rootfs.as_ref().unwrap().diff_ids.len(), 1);
        let p = s.commit(&staging, p).unwrap();
        assert!(!staging.exists());
        assert_eq!(p.name, "team/t:latest");
        assert_eq!(p.config.docker_version, "1.0");
        assert!(s.rootfs(&p.id).join("bin/x").is_file());
        assert!(!s.rootfs(&p.id).join("README").exists());
        assert!(!s.dir(&p.id).join("README").exists());
        for given in [
            "team/t",
            "team/t:latest",
            "docker.io/team/t",
            &p.id,
            &p.id[..6],
        ] {
            assert_eq!(s.find(given).unwrap().id, p.id, "{given}");
        }
        let missing = s.find("team/t:v2").err().map(|e| e.message);
        assert_eq!(missing.as_deref(), Some("plugin \"team/t:v2\" not found"));
        let again = s
            .create("team/t:latest", tar.as_slice(), "1.0")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(again.message, "plugin team/t:latest already exists");
        // Two creates of one name: the second to commit is refused and
        // leaves nothing.
        let (a, pa, _) = s.create("team/u", tar.as_slice(), "1.0").unwrap();
        let (b, pb, _) = s.create("team/u", tar.as_slice(), "1.0").unwrap();
        s.commit(&a, pa).unwrap();
        let lost = s.commit(&b, pb).unwrap_err();
        assert_eq!(lost.message, "plugin team/u:latest already exists");
        assert!(!b.exists());
        // Read back by a new store as it was written.
        let reopened = Plugins::open(&_dir.path().join("data"), &_dir.path().join("exec")).unwrap();
        assert_eq!(reopened.find(&p.id).unwrap().get(), p);
    }

    #[test]
    fn a_tar_that_is_not_a_plugin_makes_nothing() {
        let (dir, s) = store();
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("rootfs/", "")], "config not found"),
            (&[("config.json", CONFIG)], "no rootfs found"),
            (
                &[("config.json", "{"), ("rootfs/", "")],
                "failed to parse config",
            ),
            (
                &[("config.json", CONFIG), ("rootfs/../../escape", "x")],
                "outside its rootfs",
            ),
        ];
        for (entries, words) in cases {
            let err = s
                .create("t", tar_of(entries).as_slice(), "1")
                .map(|_| ())
                .unwrap_err();
            assert!(err.message.contains(words), "{words}: {}", err.message);
        }
        assert!(s.all().is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("data/plugins"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(!dir.path().join("escape").exists());
        let digest = format!("t@sha256:{}", "0".repeat(64));
        assert_eq!(
            s.create(&digest, &b""[..], "1")
                .map(|_| ())
                .unwrap_err()
                .message,
            "canonical references are not permitted"
        );
    }

    #[test]
    fn what_an_interrupted_change_left_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data/plugins");
        for d in [".new-abc/rootfs", ".removing-def/rootfs"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let s = Plugins::open(&dir.path().join("data"), &dir.path().join("exec")).unwrap();
        assert!(s.all().is_empty());
        assert!(!root.join(".new-abc").exists() && !root.join(".removing-def").exists());
    }

    #[test]
    fn an_upgrade_is_whole_or_not_at_all_across_a_restart() {
        let (dir, s) = store();
        let tar = tar_of(&[("config.json", CONFIG), ("rootfs/v", "1")]);
        let (staging, p, _) = s.create("up", tar.as_slice(), "1").unwrap();
        let p = s.commit(&staging, p).unwrap();
        let pdir = s.dir(&p.id);
        let reopen = || Plugins::open(&dir.path().join("data"), &dir.path().join("exec")).unwrap();
        let new_record = |desc: &str| {
            let mut n = p.clone();
            n.config.description = desc.into();
            serde_json::to_vec(&n).unwrap()
        };

        // Died after the swap of rootfs, before the record's commit: the
        // old plugin, whole.
        std::fs::rename(pdir.join("rootfs"), pdir.join(OLD_ROOTFS)).unwrap();
        std::fs::create_dir_all(pdir.join("rootfs")).unwrap();
        std::fs::write(pdir.join("rootfs/v"), "2").unwrap();
        std::fs::write(pdir.join(UPGRADE_RECORD), new_record("two")).unwrap();
        let e = reopen().find(&p.id).unwrap();
        assert_eq!(std::fs::read_to_string(pdir.join("rootfs/v")).unwrap(), "1");
        assert_eq!(e.get().config.description, p.config.description);

        // Died after the commit: the new plugin, and the old rootfs gone.
        std::fs::rename(pdir.join("rootfs"), pdir.join(OLD_ROOTFS)).unwrap();
        std::fs::create_dir_all(pdir.join("rootfs")).unwrap();
        std::fs::write(pdir.join("rootfs/v"), "2").unwrap();
        std::fs::write(pdir.join("plugin.json"), new_record("two")).unwrap();
        let e = reopen().find(&p.id).unwrap();
        assert_eq!(std::fs::read_to_string(pdir.join("rootfs/v")).unwrap(), "2");
        assert_eq!(e.get().config.description, "two");
        assert!(!pdir.join(OLD_ROOTFS).exists());

        // A whole upgrade through the store.
        let s = reopen();
        let e = s.find(&p.id).unwrap();
        let new = s.upgrade_rootfs(&p.id).unwrap();
        std::fs::write(new.join("v"), "3").unwrap();
        let mut n = e.get();
        n.config.description = "three".into();
        s.upgrade(&e, n).unwrap();
        assert_eq!(std::fs::read_to_string(pdir.join("rootfs/v")).unwrap(), "3");
        assert_eq!(
            reopen().find(&p.id).unwrap().get().config.description,
            "three"
        );
        for left in [UPGRADE_RECORD, UPGRADE_ROOTFS, OLD_ROOTFS] {
            assert!(!pdir.join(left).exists(), "{left}");
        }
    }
}
