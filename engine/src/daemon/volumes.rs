//! Local named volumes under `<data-root>/volumes/<name>/_data`, and the
//! mounts a container gets from `-v`, `--mount`, `--tmpfs` and its image's
//! VOLUMEs.
//!
//! A volume exists once its `opts.json` is written (after `_data`); it is
//! removed by renaming its directory out of the way (`.removing-<name>`)
//! and deleting that. An engine that dies half-way leaves either a
//! directory without `opts.json` (a create its client saw fail) or a
//! `.removing-` one, and [`Volumes::new`] clears both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::types::{MountPoint, MountSpec};

/// The driver of the volumes the engine keeps itself.
pub const LOCAL: &str = "local";

fn local() -> String {
    LOCAL.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// `local`, or the name of the plugin that serves it.
    #[serde(default = "local")]
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub created: SystemTime,
    pub anonymous: bool,
    /// Whether its create sent labels (options) at all: dockerd shows what
    /// was sent, `{}` for an empty object and null for none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub labels_sent: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub options_sent: bool,
}

impl Volume {
    /// Its labels as dockerd shows them (null when none were sent).
    pub fn shown_labels(&self) -> Option<&BTreeMap<String, String>> {
        (self.labels_sent || !self.labels.is_empty()).then_some(&self.labels)
    }

    /// Its driver options as dockerd shows them (null when none were sent).
    pub fn shown_options(&self) -> Option<&BTreeMap<String, String>> {
        (self.options_sent || !self.options.is_empty()).then_some(&self.options)
    }
}

pub struct Volumes {
    root: PathBuf,
    lock: Mutex<()>,
}

/// Prefix of a volume directory being removed; a volume name cannot start
/// with a dot, so it never names one.
const REMOVING: &str = ".removing-";

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && n.len() >= 2
        && c.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Volumes {
    pub fn new(data_root: &Path) -> std::io::Result<Volumes> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)?;
        let vols = Volumes {
            root,
            lock: Mutex::new(()),
        };
        vols.clear_interrupted();
        Ok(vols)
    }

    /// Finishes removals and rolls back creates that a dead engine left
    /// half-way. A directory without `opts.json` whose `_data` holds files
    /// is not ours to delete and is only logged.
    fn clear_interrupted(&self) {
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if let Some(volume) = name.strip_prefix(REMOVING) {
                tracing::info!("finishing the removal of volume {volume}");
                if let Err(err) = std::fs::remove_dir_all(&path) {
                    tracing::warn!("removing {}: {err}", path.display());
                }
                continue;
            }
            if !valid_name(&name) || path.join("opts.json").exists() {
                continue;
            }
            let data = path.join("_data");
            let empty = std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_none());
            if empty {
                tracing::info!("rolling back the unfinished create of volume {name}");
                let _ = std::fs::remove_dir(&data);
                let _ = std::fs::remove_dir(&path);
            } else {
                tracing::warn!(
                    "{} has no opts.json and is not a volume; left alone",
                    path.display()
                );
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// A volume by name; a name that could not have been created (a `/`,
    /// `..`, anything outside Docker's volume name characters) is no
    /// volume and is never joined to a path.
    pub fn get(&self, name: &str) -> Option<Volume> {
        if !valid_name(name) {
            return None;
        }
        let data = std::fs::read(self.root.join(name).join("opts.json")).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut v: Vec<Volume> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates the volume, or returns the existing one of that name.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: Option<BTreeMap<String, String>>,
        options: Option<BTreeMap<String, String>>,
    ) -> Result<(Volume, bool)> {
        let (labels_sent, options_sent) = (labels.is_some(), options.is_some());
        let (labels, options) = (labels.unwrap_or_default(), options.unwrap_or_default());
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                self.check_name(n)?;
                (n.to_string(), false)
            }
            None => (hex::encode(rand::random::<[u8; 32]>()), true),
        };
        if let Some(v) = self.get(&name) {
            return Ok((v, false));
        }
        // The local driver's options, as dockerd's: what to mount on the
        // volume when a container uses it.
        if let Some(k) = options
            .keys()
            .find(|k| !MOUNT_OPTIONS.contains(&k.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "create {name}: invalid option: {k:?}"
            )));
        }
        // What each option needs beside it, checked in dockerd's order: a
        // device is mounted as a type, options are a device's.
        for (given, needed) in [("device", "type"), ("type", "device"), ("o", "device")] {
            if options.contains_key(given) && !options.contains_key(needed) {
                return Err(ApiError::bad_request(format!(
                    "create {name}: missing required option: {needed:?}"
                )));
            }
        }
        if let Some((k, _)) = options.iter().find(|(_, v)| v.contains(['\0', '\n'])) {
            return Err(ApiError::bad_request(format!(
                "create {name}: invalid value for option {k:?}"
            )));
        }
        // The file system type is a name (`none`, `tmpfs`, `nfs4`,
        // `fuse.sshfs`), never something mount could read as a flag.
        if let Some(t) = options.get("type").filter(|t| {
            !t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
                || t.starts_with('-')
        }) {
            return Err(ApiError::bad_request(format!(
                "create {name}: invalid file system type {t:?}"
            )));
        }
        let dir = self.root.join(&name);
        std::fs::create_dir_all(dir.join("_data"))
            .map_err(|e| ApiError::internal(format!("creating volume {name}: {e}")))?;
        berth_fault::point("berthd:volume-create.after-mkdir");
        let v = Volume {
            name: name.clone(),
            driver: local(),
            labels,
            options,
            created: SystemTime::now(),
            anonymous,
            labels_sent,
            options_sent,
        };
        super::container::write_atomic(
            &dir.join("opts.json"),
            &serde_json::to_vec(&v).unwrap_or_default(),
        )
        .map_err(|e| ApiError::internal(format!("creating volume {name}: {e}")))?;
        Ok((v, true))
    }

    /// Refuses a name no volume may have (it is joined to paths).
    pub fn check_name(&self, n: &str) -> Result<()> {
        if valid_name(n) {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }

    /// Keeps the record of a volume a plugin made (`driver` is the
    /// plugin's name); its `_data` is where its mountpoint is bound.
    pub fn record(
        &self,
        name: &str,
        driver: &str,
        labels: Option<BTreeMap<String, String>>,
        options: Option<BTreeMap<String, String>>,
        anonymous: bool,
    ) -> Result<(Volume, bool)> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.check_name(name)?;
        if let Some(v) = self.get(name) {
            return Ok((v, false));
        }
        let dir = self.root.join(name);
        std::fs::create_dir_all(dir.join("_data"))
            .map_err(|e| ApiError::internal(format!("creating volume {name}: {e}")))?;
        let v = Volume {
            name: name.to_string(),
            driver: driver.to_string(),
            labels_sent: labels.is_some(),
            options_sent: options.is_some(),
            labels: labels.unwrap_or_default(),
            options: options.unwrap_or_default(),
            created: SystemTime::now(),
            anonymous,
        };
        super::container::write_atomic(
            &dir.join("opts.json"),
            &serde_json::to_vec(&v).unwrap_or_default(),
        )
        .map_err(|e| ApiError::internal(format!("creating volume {name}: {e}")))?;
        Ok((v, true))
    }

    /// Binds `host` (a plugin's mountpoint) onto the volume's `_data`,
    /// unless it is bound already.
    pub fn bind(&self, name: &str, host: &Path) -> std::result::Result<(), String> {
        use nix::mount::{MsFlags, mount};
        let path = self.path(name);
        if is_mount_point(&path) {
            return Ok(());
        }
        if !host.is_dir() {
            return Err("the plugin's mountpoint is not a directory on the host".into());
        }
        mount(
            Some(host),
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| e.to_string())
    }

    /// Lets go of what [`Volumes::bind`] bound.
    pub fn unbind(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        if is_mount_point(&path) {
            unmount_sync(&path)?;
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.get(name).is_none() {
            return Err(ApiError::not_found(format!("get {name}: no such volume")));
        }
        // What its options mounted there (a host directory, a tmpfs) is
        // let go first: the removal below must never reach into it.
        if is_mount_point(&self.path(name)) {
            unmount_sync(&self.path(name))?;
        }
        // One rename makes it gone for every reader; what a dead engine
        // leaves of the deletion is finished at the next start.
        let doomed = self.root.join(format!("{REMOVING}{name}"));
        std::fs::rename(self.root.join(name), &doomed)
            .map_err(|e| ApiError::internal(format!("removing volume {name}: {e}")))?;
        berth_fault::point("berthd:volume-rm.after-rename");
        std::fs::remove_dir_all(&doomed)
            .map_err(|e| ApiError::internal(format!("removing volume {name}: {e}")))
    }

    /// Mounts what the volume's options name on it (dockerd's local
    /// driver: `type`, `o`, `device`), unless it is mounted already.
    pub async fn mount(&self, name: &str) -> Result<()> {
        // A plugin's volume is mounted by its plugin (`mount_volume`).
        let Some(v) = self
            .get(name)
            .filter(|v| v.driver == LOCAL && needs_mount(v))
        else {
            return Ok(());
        };
        let path = self.path(name);
        if is_mount_point(&path) {
            return Ok(());
        }
        let opt = |k: &str| v.options.get(k).filter(|x| !x.is_empty());
        let mut cmd = tokio::process::Command::new("mount");
        if let Some(t) = opt("type") {
            cmd.arg("-t").arg(t);
        }
        if let Some(o) = opt("o") {
            cmd.arg("-o").arg(o);
        }
        // The source names what is mounted; a tmpfs's is only a label.
        let device = opt("device").or(opt("type")).map_or("none", String::as_str);
        cmd.arg("--").arg(device).arg(&path);
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| ApiError::internal(format!("running mount: {e}")))?;
        if !out.status.success() {
            return Err(ApiError::internal(format!(
                "error while mounting volume '{}': failed to mount local volume: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Lets go of what [`Volumes::mount`] mounted (the last container using
    /// the volume stopped), as dockerd's local driver does.
    pub fn unmount(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        if self.get(name).is_some_and(|v| needs_mount(&v)) && is_mount_point(&path) {
            unmount_sync(&path)?;
        }
        Ok(())
    }

    pub fn is_empty(&self, name: &str) -> bool {
        std::fs::read_dir(self.path(name))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }

    pub fn size(&self, name: &str) -> i64 {
        fn walk(p: &Path) -> i64 {
            let mut n = 0;
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                if let Ok(m) = e.metadata() {
                    n += if m.is_dir() {
                        walk(&e.path())
                    } else {
                        m.len() as i64
                    };
                }
            }
            n
        }
        walk(&self.path(name))
    }
}

/// The local driver's options (dockerd's validOpts less `size`, which
/// needs xfs project quotas).
const MOUNT_OPTIONS: [&str; 3] = ["type", "o", "device"];

/// Whether a volume's options mount something on it (a plugin's always
/// has its mountpoint bound).
pub fn needs_mount(v: &Volume) -> bool {
    v.driver != LOCAL
        || MOUNT_OPTIONS
            .iter()
            .any(|k| v.options.get(*k).is_some_and(|x| !x.is_empty()))
}

/// Whether something is mounted at `path` (a line of mountinfo names it).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want)
}

/// dockerd's check, at start, of each bind's propagation against the
/// mount its source is on: a shared bind needs a shared mount, a slave one
/// a shared or slave mount (otherwise the mode could not do what it says).
/// Returns the root's propagation the spec then asks for, as dockerd
/// sets it: shared for a shared bind, else rslave for a slave one.
pub fn check_propagation(oci: &[Value]) -> Result<Option<&'static str>> {
    let mut root = None;
    let mut info: Option<String> = None;
    for m in oci {
        let options: Vec<&str> = m["options"]
            .as_array()
            .map(|o| o.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let shared = options.iter().any(|o| matches!(*o, "shared" | "rshared"));
        let slave = options.iter().any(|o| matches!(*o, "slave" | "rslave"));
        if !shared && !slave {
            continue;
        }
        let source = m["source"].as_str().unwrap_or_default();
        let info = info.get_or_insert_with(|| {
            std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
        });
        let real = std::fs::canonicalize(source).unwrap_or_else(|_| PathBuf::from(source));
        let Some((mountpoint, peer)) = source_mount(info, &real) else {
            continue;
        };
        let ok = peer.shared || (slave && !shared && peer.slave);
        if !ok {
            return Err(ApiError::internal(format!(
                "path {source} is mounted on {mountpoint} but it is not a shared{} mount",
                if shared { "" } else { " or slave" }
            )));
        }
        if shared {
            root = Some("shared");
        } else if root.is_none() {
            root = Some("rslave");
        }
    }
    Ok(root)
}

/// How a mount takes part in propagation.
struct Peering {
    shared: bool,
    slave: bool,
}

/// The mount `path` is on (the longest mount point above it; the last
/// of those stacked there) and its propagation, from mountinfo's text.
fn source_mount(info: &str, path: &Path) -> Option<(String, Peering)> {
    let mut best: Option<(String, Peering)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4).map(|m| unescape_mountinfo(m)) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        if best.as_ref().is_some_and(|(b, _)| b.len() > point.len()) {
            continue;
        }
        let optional = fields.iter().skip(6).take_while(|f| **f != "-");
        let mut peer = Peering {
            shared: false,
            slave: false,
        };
        for f in optional {
            peer.shared |= f.starts_with("shared:");
            peer.slave |= f.starts_with("master:");
        }
        best = Some((point, peer));
    }
    best
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn unmount_sync(path: &Path) -> Result<()> {
    nix::mount::umount(path).map_err(|e| {
        ApiError::conflict(format!(
            "unmounting the volume at {}: {e} (is it in use?)",
            path.display()
        ))
    })
}

/// What a container mounts, as the runtime spec wants it and as inspect
/// shows it.
pub struct Planned {
    pub oci: Vec<Value>,
    pub points: Vec<MountPoint>,
    /// Volumes to fill from the image on first use.
    pub copy_up: Vec<(String, String)>,
    pub anonymous: Vec<String>,
    /// Volumes whose options mount something on them (known from the
    /// records read here, so a start reads no more of them).
    pub to_mount: Vec<String>,
}

fn bind_options(ro: bool, propagation: &str) -> Vec<String> {
    let mut o = vec![
        "rbind".to_string(),
        if ro { "ro" } else { "rw" }.to_string(),
    ];
    if !propagation.is_empty() {
        o.push(propagation.to_string());
    }
    o
}

/// An absolute path without `.`, `..` or repeated slashes, as Go's
/// filepath.Clean makes it (dockerd cleans every mount path): `..` never
/// climbs above `/`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A volume's mode as dockerd shows it: as given with `-v name:/dst:mode`,
/// else "z" for a named volume (SELinux's shared label, which it applies to
/// nothing where SELinux is off) and nothing for an anonymous one.
fn named_mode(name: Option<&str>, given: &str) -> String {
    match (name, given) {
        (None, _) => String::new(),
        (Some(_), "") => "z".into(),
        (Some(_), given) => given.into(),
    }
}

/// The fields a mount of each type must have and must not have, refused in
/// dockerd's words before anything is made for it.
fn check_mount_fields(m: &MountSpec) -> Result<()> {
    let refuse = |why: &str| {
        Err(ApiError::bad_request(format!(
            "invalid mount config for type {:?}: {why}",
            m.typ
        )))
    };
    match m.typ.as_str() {
        "bind" if m.source.is_empty() => refuse("field Source must not be empty"),
        "bind" if m.volume_options.is_some() => refuse("field VolumeOptions must not be specified"),
        "volume" | "tmpfs" if m.bind_options.is_some() => {
            refuse("field BindOptions must not be specified")
        }
        "volume" if m.source.is_empty() && m.read_only => {
            refuse("must not set ReadOnly mode when using anonymous volumes")
        }
        "tmpfs" if !m.source.is_empty() => refuse("field Source must not be specified"),
        _ => Ok(()),
    }
}

/// Plans the mounts of a container from HostConfig.Binds, HostConfig.Mounts,
/// HostConfig.Tmpfs and the image's VOLUMEs.
pub fn plan(
    vols: &Volumes,
    binds: &[String],
    mounts: &[MountSpec],
    tmpfs: &BTreeMap<String, String>,
    image_volumes: &[String],
    inherited: &[MountPoint],
    existing: &[MountPoint],
) -> Result<Planned> {
    let mut p = Planned {
        oci: Vec::new(),
        points: Vec::new(),
        copy_up: Vec::new(),
        to_mount: Vec::new(),
        anonymous: Vec::new(),
    };
    let mut taken = std::collections::BTreeSet::new();
    let add_volume = |p: &mut Planned,
                      name: Option<&str>,
                      dest: &str,
                      ro: bool,
                      nocopy: bool,
                      mode: String,
                      labels: BTreeMap<String, String>,
                      options: BTreeMap<String, String>|
     -> Result<()> {
        // An anonymous volume is made once, at create: later starts keep
        // the one the container has (its data with it).
        let kept = existing
            .iter()
            .find(|m| m.typ == "volume" && m.destination == dest && !m.name.is_empty())
            .filter(|m| vols.path(&m.name).exists())
            .map(|m| m.name.as_str());
        // The container's own anonymous volume (made now, or at its create);
        // one it names (another's, by --volumes-from or by name) is not.
        let own = name.is_none();
        let name = name.or(kept);
        // Labels and options (a `--mount`'s volume-label and volume-opt)
        // go to a volume this makes; an existing one keeps its own, as
        // dockerd's.
        let given = |m: BTreeMap<String, String>| (!m.is_empty()).then_some(m);
        let (v, _created) = vols.create(name, given(labels), given(options))?;
        if v.anonymous && own {
            p.anonymous.push(v.name.clone());
        }
        if needs_mount(&v) {
            p.to_mount.push(v.name.clone());
        }
        if !nocopy && vols.is_empty(&v.name) {
            p.copy_up.push((v.name.clone(), dest.to_string()));
        }
        p.oci.push(json!({"destination": dest, "type": "bind", "source": vols.path(&v.name), "options": bind_options(ro, "")}));
        p.points.push(MountPoint {
            typ: "volume".into(),
            name: v.name.clone(),
            source: vols.path(&v.name).to_string_lossy().into_owned(),
            destination: dest.to_string(),
            driver: v.driver.clone(),
            mode,
            rw: !ro,
            propagation: String::new(),
        });
        Ok(())
    };
    for b in binds {
        let parts: Vec<&str> = b.split(':').collect();
        let invalid = || ApiError::bad_request(format!("invalid volume specification: '{b}'"));
        let (src, dst, opts) = match parts.as_slice() {
            [d] => ("", *d, ""),
            [s, d] if !s.is_empty() => (*s, *d, ""),
            [s, d, o] if !s.is_empty() => (*s, *d, *o),
            _ => return Err(invalid()),
        };
        if !dst.starts_with('/') {
            let kind = if src.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            return Err(ApiError::bad_request(format!(
                "invalid volume specification: '{b}': invalid mount config for type \"{kind}\": invalid mount path: '{dst}' mount path must be absolute"
            )));
        }
        let dst = clean(dst);
        let dst = dst.as_str();
        if dst == "/" {
            return Err(ApiError::bad_request(format!(
                "invalid volume specification: '{b}': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
            )));
        }
        let src = if src.starts_with('/') {
            clean(src)
        } else {
            src.to_string()
        };
        let src = src.as_str();
        if !taken.insert(dst.to_string()) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {dst}"
            )));
        }
        let mut ro = false;
        let mut propagation = "";
        let mut nocopy = false;
        // At most one of each kind of mode, as dockerd's ValidMountMode.
        let mut kinds = [0u8; 5];
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            let kind = match o {
                "ro" => {
                    ro = true;
                    0
                }
                "rw" => {
                    ro = false;
                    0
                }
                "z" | "Z" => 1,
                "nocopy" => {
                    nocopy = true;
                    2
                }
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    propagation = o;
                    3
                }
                "consistent" | "cached" | "delegated" => 4,
                _ => return Err(ApiError::bad_request(format!("invalid mode: {opts}"))),
            };
            kinds[kind] += 1;
            if kinds[kind] > 1 {
                return Err(ApiError::bad_request(format!("invalid mode: {opts}")));
            }
        }
        if src.starts_with('/') {
            if !Path::new(src).exists() {
                // Docker creates a missing bind source as a directory.
                std::fs::create_dir_all(src).map_err(|e| {
                    ApiError::bad_request(format!(
                        "invalid mount config: bind source path {src}: {e}"
                    ))
                })?;
            }
            p.oci.push(json!({"destination": dst, "type": "bind", "source": src, "options": bind_options(ro, propagation)}));
            p.points.push(MountPoint {
                typ: "bind".into(),
                source: src.to_string(),
                destination: dst.to_string(),
                mode: opts.to_string(),
                rw: !ro,
                propagation: if propagation.is_empty() {
                    "rprivate".into()
                } else {
                    propagation.to_string()
                },
                ..Default::default()
            });
        } else {
            // A name, or none: an anonymous volume.
            let name = (!src.is_empty()).then_some(src);
            add_volume(
                &mut p,
                name,
                dst,
                ro,
                nocopy,
                named_mode(name, opts),
                BTreeMap::new(),
                BTreeMap::new(),
            )?;
        }
    }
    for m in mounts {
        if m.target.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type {:?}: field Target must not be empty",
                m.typ
            )));
        }
        if !m.target.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"{}\": invalid mount path: '{}' mount path must be absolute",
                m.typ, m.target
            )));
        }
        let mut m = m.clone();
        m.target = clean(&m.target);
        if m.target == "/" {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"{}\": invalid specification: destination can't be '/'",
                m.typ
            )));
        }
        check_mount_fields(&m)?;
        if m.typ == "bind" {
            if !m.source.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            m.source = clean(&m.source);
        }
        let m = &m;
        if !taken.insert(m.target.clone()) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {}",
                m.target
            )));
        }
        match m.typ.as_str() {
            "bind" => {
                let prop = m
                    .bind_options
                    .as_ref()
                    .map(|b| b.propagation.as_str())
                    .unwrap_or("");
                if !matches!(
                    prop,
                    "" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                ) {
                    return Err(ApiError::bad_request(format!(
                        "invalid mount config for type \"bind\": invalid propagation mode: {prop}"
                    )));
                }
                if !Path::new(&m.source).exists() {
                    if m.bind_options.as_ref().is_some_and(|b| b.create_mountpoint) {
                        std::fs::create_dir_all(&m.source)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    } else {
                        return Err(ApiError::bad_request(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source
                        )));
                    }
                }
                let prop = m
                    .bind_options
                    .as_ref()
                    .map(|b| b.propagation.as_str())
                    .unwrap_or("");
                p.oci.push(json!({"destination": m.target, "type": "bind", "source": m.source, "options": bind_options(m.read_only, prop)}));
                p.points.push(MountPoint {
                    typ: "bind".into(),
                    source: m.source.clone(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    propagation: if prop.is_empty() {
                        "rprivate".into()
                    } else {
                        prop.to_string()
                    },
                    ..Default::default()
                });
            }
            "volume" => {
                let nocopy = m.volume_options.as_ref().is_some_and(|v| v.no_copy);
                let labels = m
                    .volume_options
                    .as_ref()
                    .map(|v| v.labels.clone())
                    .unwrap_or_default();
                let vo = m
                    .volume_options
                    .as_ref()
                    .and_then(|v| v.driver_config.as_ref());
                let name = (!m.source.is_empty()).then_some(m.source.as_str());
                // A plugin's volume is made before the plan (the plugin is
                // asked); one that is not there had no plugin to make it.
                // An anonymous one is the container's already (made at its
                // create, before the plan).
                let own = existing
                    .iter()
                    .find(|e| e.typ == "volume" && e.destination == m.target && !e.name.is_empty())
                    .map(|e| e.name.as_str());
                if let Some(drv) = vo
                    .map(|d| d.name.as_str())
                    .filter(|d| !d.is_empty() && *d != LOCAL)
                    && name.or(own).and_then(|n| vols.get(n)).is_none()
                {
                    return Err(ApiError::not_found(format!("plugin \"{drv}\" not found")));
                }
                let options = vo.map(|d| d.options.clone()).unwrap_or_default();
                // dockerd labels a local volume of a mount "z" (SELinux's
                // shared label), named or anonymous; a plugin's, nothing.
                let local = vo
                    .map(|d| d.name.as_str())
                    .filter(|d| !d.is_empty())
                    .is_none_or(|d| d == LOCAL)
                    && name
                        .or(own)
                        .and_then(|n| vols.get(n))
                        .is_none_or(|v| v.driver == LOCAL);
                let mode = if local {
                    "z".to_string()
                } else {
                    String::new()
                };
                add_volume(
                    &mut p,
                    name,
                    &m.target,
                    m.read_only,
                    nocopy,
                    mode,
                    labels,
                    options,
                )?;
            }
            "tmpfs" => {
                let mut opts = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ];
                if let Some(t) = &m.tmpfs_options {
                    if t.size_bytes > 0 {
                        opts.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode > 0 {
                        opts.push(format!("mode={:o}", t.mode));
                    }
                }
                if m.read_only {
                    opts.push("ro".into());
                }
                p.oci.push(json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}));
                p.points.push(MountPoint {
                    typ: "tmpfs".into(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    ..Default::default()
                });
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type {other:?}: mount type unknown"
                )));
            }
        }
    }
    for (dest, opts) in tmpfs {
        if !dest.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "invalid mount path: '{dest}' mount path must be absolute"
            )));
        }
        if clean(dest) == "/" {
            return Err(ApiError::bad_request(
                "invalid specification: destination can't be '/'",
            ));
        }
        check_tmpfs_options(opts)?;
        let dest = &clean(dest);
        if !taken.insert(dest.clone()) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {dest}"
            )));
        }
        let mut o = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            "noexec".to_string(),
        ];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
        p.oci
            .push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o}));
        p.points.push(MountPoint {
            typ: "tmpfs".into(),
            destination: dest.clone(),
            rw: true,
            ..Default::default()
        });
    }
    // Another container's mounts (--volumes-from) where the container's
    // own mount nothing: the same volumes and host paths, filled from
    // nothing (dockerd copies no image content into them).
    for m in inherited {
        if !taken.insert(m.destination.clone()) {
            continue;
        }
        match m.typ.as_str() {
            "volume" => add_volume(
                &mut p,
                Some(&m.name),
                &m.destination,
                !m.rw,
                true,
                m.mode.clone(),
                BTreeMap::new(),
                BTreeMap::new(),
            )?,
            "bind" => {
                let prop = if m.propagation == "rprivate" {
                    ""
                } else {
                    m.propagation.as_str()
                };
                p.oci.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": bind_options(!m.rw, prop)}));
                p.points.push(m.clone());
            }
            _ => {}
        }
    }
    for dest in image_volumes {
        if taken.contains(dest) {
            continue;
        }
        taken.insert(dest.clone());
        add_volume(
            &mut p,
            None,
            dest,
            false,
            false,
            String::new(),
            BTreeMap::new(),
            BTreeMap::new(),
        )?;
    }
    Ok(p)
}

/// The options a tmpfs takes, as dockerd's ParseTmpfsOptions checks them:
/// mount flags, and the data options tmpfs knows.
fn check_tmpfs_options(opts: &str) -> Result<()> {
    const FLAGS: &[&str] = &[
        "defaults",
        "ro",
        "rw",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "exec",
        "noexec",
        "sync",
        "async",
        "dirsync",
        "remount",
        "mand",
        "nomand",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "bind",
        "rbind",
        "unbindable",
        "runbindable",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
    ];
    const DATA: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    for o in opts
        .split(',')
        .filter(|o| !o.is_empty() && !FLAGS.contains(o))
    {
        let parts: Vec<&str> = o.splitn(2, '=').collect();
        if !DATA.contains(&parts[0]) {
            let quoted: Vec<String> = parts.iter().map(|p| format!("{p:?}")).collect();
            return Err(ApiError::bad_request(format!(
                "invalid tmpfs option [{}]",
                quoted.join(" ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sources_mount_is_the_longest_above_it_with_its_peering() {
        let info = "\
21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 21 0:40 / /tmp rw master:5 - tmpfs tmpfs rw
31 21 0:41 / /srv\\040x rw - tmpfs tmpfs rw
32 30 0:42 / /tmp/a rw shared:7 master:5 - tmpfs tmpfs rw
";
        let at = |p: &str| source_mount(info, Path::new(p)).map(|(m, p)| (m, p.shared, p.slave));
        assert_eq!(at("/etc/x"), Some(("/".into(), true, false)));
        assert_eq!(at("/tmp/ab"), Some(("/tmp".into(), false, true)));
        assert_eq!(at("/tmp/a/b"), Some(("/tmp/a".into(), true, true)));
        assert_eq!(at("/srv x/y"), Some(("/srv x".into(), false, false)));
    }

    #[test]
    fn binds_docker_refuses_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vols = Volumes::new(dir.path()).unwrap();
        let none = BTreeMap::new();
        let plan_of = |b: &str| plan(&vols, &[b.to_string()], &[], &none, &[], &[], &[]);
        for bad in ["/:/", ":/x", "/tmp:/..", "/tmp:/x/../..", "a:b:c:d"] {
            let e = plan_of(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was taken"));
            assert!(e.message.contains("invalid"), "{bad}: {}", e.message);
        }
        let p = plan_of("/tmp/../tmp:/data/./x/").unwrap();
        assert_eq!(p.points[0].source, "/tmp");
        assert_eq!(p.points[0].destination, "/data/x");
        let tmpfs: BTreeMap<String, String> = [("/".to_string(), String::new())].into();
        assert!(plan(&vols, &[], &[], &tmpfs, &[], &[], &[]).is_err());
        assert_eq!(clean("/a/../../b//c/."), "/b/c");
    }

    #[test]
    fn an_anonymous_volume_is_made_once_and_kept_by_later_plans() {
        let dir = tempfile::tempdir().unwrap();
        let vols = Volumes::new(dir.path()).unwrap();
        let none = BTreeMap::new();
        let binds = ["/data".to_string()];
        let first = plan(&vols, &binds, &[], &none, &[], &[], &[]).unwrap();
        let again = plan(&vols, &binds, &[], &none, &[], &[], &first.points).unwrap();
        assert_eq!(first.points[0].name, again.points[0].name);
        assert_eq!(vols.list().len(), 1);
    }

    #[test]
    fn what_a_dead_engine_left_half_way_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volumes");
        // A create cut before opts.json, a removal cut after its rename,
        // and a directory someone filled by hand.
        std::fs::create_dir_all(root.join("cut/_data")).unwrap();
        std::fs::create_dir_all(root.join(".removing-old/_data/sub")).unwrap();
        std::fs::write(root.join(".removing-old/_data/sub/f"), "x").unwrap();
        std::fs::create_dir_all(root.join("hand/_data")).unwrap();
        std::fs::write(root.join("hand/_data/keep"), "x").unwrap();
        let vols = Volumes::new(dir.path()).unwrap();
        vols.create(Some("kept"), None, None).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["hand", "kept"]);
        assert_eq!(
            vols.list()
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>(),
            ["kept"]
        );
        vols.remove("kept").unwrap();
        assert!(vols.get("kept").is_none());
        assert!(!root.join(".removing-kept").exists());
    }
}
