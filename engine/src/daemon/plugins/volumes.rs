//! Volumes a plugin serves (`docker volume create -d PLUGIN`, `--mount
//! volume-driver=PLUGIN`, `--volume-driver`): the engine keeps the record
//! (name, driver, labels, options) beside the local ones and asks the
//! plugin for the rest, as dockerd's volume adapter does. At a start the
//! plugin's mountpoint is bound onto the volume's own `_data`, which the
//! container's bind then names like any volume's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::Plugin;
use super::client::{self, Addr};
use crate::daemon::Daemon;
use crate::daemon::volumes::{LOCAL, Volume, clean};
use crate::error::{ApiError, Result};
use crate::types::{HostConfig, MountPoint};

/// A volume a container names for a plugin: name, driver, labels, options.
type Wanted = (
    String,
    String,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
);

/// A plugin serving volumes: a managed one (whose paths are inside it) or
/// a legacy one on the host (whose paths are the host's).
pub struct Driver {
    /// What volumes record as their driver: a managed plugin's full name
    /// (`tvol:latest`), a legacy plugin's name as found.
    pub name: String,
    pub addr: Addr,
    managed: Option<Plugin>,
}

impl Driver {
    pub async fn call(&self, method: &str, args: &Value) -> std::result::Result<Value, String> {
        client::call(&self.addr, method, args).await
    }
}

impl Daemon {
    /// The plugin that serves volumes as `driver`, or dockerd's reason why
    /// there is none: an enabled managed plugin of that name first, else a
    /// legacy plugin found in the plugin directories (a disabled managed
    /// one is not passed over for a legacy one, as dockerd's lookup).
    pub async fn volume_driver(&self, driver: &str) -> std::result::Result<Driver, String> {
        let (addr, managed) = self
            .plugin_serving(driver, "volumedriver", "VolumeDriver")
            .await
            .map_err(|why| format!("error looking up volume plugin {driver}: {why}"))?;
        Ok(Driver {
            name: managed
                .as_ref()
                .map_or_else(|| driver.to_string(), |p| p.name.clone()),
            addr,
            managed,
        })
    }

    /// A volume of `driver` (the local driver or a plugin's); an existing
    /// one of that name is returned as it is.
    pub async fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: Option<BTreeMap<String, String>>,
        options: Option<BTreeMap<String, String>>,
    ) -> Result<(Volume, bool)> {
        // An existing volume is the answer, unless the create names another
        // driver for it (dockerd's conflict; a plugin it cannot find first).
        if let Some(n) = name.filter(|n| !n.is_empty())
            && let Some(v) = self.volumes.get(n)
        {
            if !driver.is_empty() {
                let wanted = if driver == LOCAL {
                    LOCAL.to_string()
                } else {
                    self.volume_driver(driver)
                        .await
                        .map_err(|why| ApiError::not_found(format!("create {n}: {why}")))?
                        .name
                };
                if wanted != v.driver {
                    return Err(ApiError::conflict(format!(
                        "create {n}: driver '{}' already has volume '{n}': volume name must be unique",
                        v.driver
                    )));
                }
            }
            return Ok((v, false));
        }
        if driver.is_empty() || driver == LOCAL {
            return self.volumes.create(name, labels, options);
        }
        let named = name.filter(|n| !n.is_empty());
        let anonymous = named.is_none();
        let name = match named {
            Some(n) => n.to_string(),
            None => hex::encode(rand::random::<[u8; 32]>()),
        };
        let d = self
            .volume_driver(driver)
            .await
            .map_err(|why| ApiError::not_found(format!("create {name}: {why}")))?;
        self.volumes.check_name(&name)?;
        let _making = self.plugins.volumes_lock.lock().await;
        d.call(
            "VolumeDriver.Create",
            &json!({"Name": name, "Opts": options}),
        )
        .await
        .map_err(|e| ApiError::internal(format!("create {name}: VolumeDriver.Create: {e}")))?;
        self.volumes
            .record(&name, &d.name, labels, options, anonymous)
    }

    /// Makes the volumes a container's binds and mounts give to a plugin
    /// (HostConfig.VolumeDriver, a mount's volume driver) before its volumes
    /// are planned: named ones under their name; anonymous ones (a bind
    /// with no source, an image's VOLUME nothing else covers, a volume
    /// mount with no source) under a fresh name, returned as mount points
    /// the plan takes as the container's own anonymous volumes (at a
    /// create only: `with_anonymous`).
    pub async fn create_plugin_volumes(
        &self,
        hc: &HostConfig,
        image_volumes: &[String],
        inherited: &[MountPoint],
        with_anonymous: bool,
    ) -> Result<Vec<MountPoint>> {
        let driver = Some(hc.volume_driver.as_str()).filter(|d| !d.is_empty() && *d != LOCAL);
        let mut named: Vec<Wanted> = Vec::new();
        // (destination, driver, labels, options)
        let mut anonymous: Vec<Wanted> = Vec::new();
        let mut covered: BTreeSet<String> = hc.tmpfs.keys().map(|k| clean(k)).collect();
        covered.extend(inherited.iter().map(|m| clean(&m.destination)));
        for b in &hc.binds {
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dst) = match parts.as_slice() {
                [d] => ("", *d),
                [s, d, ..] => (*s, *d),
                [] => continue,
            };
            covered.insert(clean(dst));
            let Some(drv) = driver else { continue };
            if src.is_empty() {
                anonymous.push((
                    clean(dst),
                    drv.into(),
                    Default::default(),
                    Default::default(),
                ));
            } else if !src.starts_with('/') {
                named.push((
                    src.into(),
                    drv.into(),
                    Default::default(),
                    Default::default(),
                ));
            }
        }
        for m in &hc.mounts {
            covered.insert(clean(&m.target));
            let Some(vo) = m.volume_options.as_ref().filter(|_| m.typ == "volume") else {
                continue;
            };
            let Some(dc) = vo
                .driver_config
                .as_ref()
                .filter(|d| !d.name.is_empty() && d.name != LOCAL)
            else {
                continue;
            };
            let wanted = (
                m.source.clone(),
                dc.name.clone(),
                vo.labels.clone(),
                dc.options.clone(),
            );
            if m.source.is_empty() {
                anonymous.push((clean(&m.target), wanted.1, wanted.2, wanted.3));
            } else {
                named.push(wanted);
            }
        }
        if let Some(drv) = driver {
            for dest in image_volumes {
                // As the plan names it: the image's path as it is.
                if covered.insert(clean(dest)) {
                    anonymous.push((
                        dest.clone(),
                        drv.into(),
                        Default::default(),
                        Default::default(),
                    ));
                }
            }
        }
        if !with_anonymous {
            anonymous.clear();
        }
        let given = |m: BTreeMap<String, String>| (!m.is_empty()).then_some(m);
        for (name, driver, labels, options) in named {
            // Its "create" event is the container's (see volume_events); an
            // existing volume of another driver is refused.
            self.create_volume(Some(&name), &driver, given(labels), given(options))
                .await?;
        }
        let mut made = Vec::new();
        for (dest, driver, labels, options) in anonymous {
            match self
                .create_volume(None, &driver, given(labels), given(options))
                .await
            {
                Ok((v, _)) => made.push(MountPoint {
                    typ: "volume".into(),
                    name: v.name,
                    destination: dest,
                    driver: v.driver,
                    ..Default::default()
                }),
                Err(e) => {
                    self.drop_plugin_volumes(&made).await;
                    return Err(e);
                }
            }
        }
        Ok(made)
    }

    /// Removes the anonymous volumes [`Daemon::create_plugin_volumes`] made
    /// for a create that then failed.
    pub async fn drop_plugin_volumes(&self, made: &[MountPoint]) {
        for m in made {
            if let Some(v) = self.volumes.get(&m.name)
                && let Err(e) = self.remove_volume(&v, true).await
            {
                tracing::warn!("removing volume {}: {}", m.name, e.message);
            }
        }
    }

    /// Takes in the volumes the enabled volume plugins and the legacy ones
    /// list that the engine has no record of (made through another engine
    /// on shared storage, by a create whose record a crash lost, or before
    /// berth used the plugin), as dockerd's volume store asks its drivers.
    pub async fn adopt_plugin_volumes(&self) {
        let _taking = self.plugins.volumes_lock.lock().await;
        let mut drivers: Vec<(String, Addr)> = Vec::new();
        for e in self.plugins.all() {
            let p = e.get();
            if p.enabled
                && p.config
                    .types()
                    .iter()
                    .any(|t| t.capability == "volumedriver")
            {
                drivers.push((p.name.clone(), Addr::Unix(self.plugins.socket(&p))));
            }
        }
        for (name, addr) in self.plugins.legacy.all("VolumeDriver").await {
            // A managed plugin of the name is the one volumes use.
            if self.plugins.find(&name).is_err() {
                drivers.push((name, addr));
            }
        }
        for (driver, addr) in drivers {
            let listed = match client::call(&addr, "VolumeDriver.List", &json!({})).await {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!("plugin {driver}: VolumeDriver.List: {err}");
                    continue;
                }
            };
            for v in listed["Volumes"].as_array().into_iter().flatten() {
                let Some(name) = v["Name"].as_str() else {
                    continue;
                };
                if self.volumes.get(name).is_some() || self.volumes.check_name(name).is_err() {
                    continue;
                }
                match self.volumes.record(
                    name,
                    &driver,
                    Default::default(),
                    Default::default(),
                    false,
                ) {
                    Ok(_) => tracing::info!("volume {name} of plugin {driver} taken in"),
                    Err(err) => tracing::warn!("volume {name}: {}", err.message),
                }
            }
        }
    }

    /// What the plugin tells of a volume (`VolumeDriver.Get`): its
    /// `Volume` object (`Mountpoint`, `Status`, `CreatedAt`); None when the
    /// plugin cannot be asked.
    pub async fn plugin_volume_info(&self, v: &Volume) -> Option<Value> {
        let d = self.volume_driver(&v.driver).await.ok()?;
        match d.call("VolumeDriver.Get", &json!({"Name": v.name})).await {
            Ok(mut r) => Some(r["Volume"].take()),
            Err(e) => {
                tracing::warn!("volume {}: VolumeDriver.Get: {e}", v.name);
                None
            }
        }
    }

    /// Mounts a volume for container `id`'s start: a local one's options,
    /// or the plugin's `VolumeDriver.Mount`, its mountpoint bound onto the
    /// volume's `_data` once.
    pub async fn mount_volume(&self, name: &str, id: &str) -> Result<()> {
        let Some(v) = self.volumes.get(name) else {
            return Ok(());
        };
        if v.driver == LOCAL {
            return self.volumes.mount(name).await;
        }
        let failed = |why: String| {
            ApiError::internal(format!("error while mounting volume '{name}': {why}"))
        };
        let d = self.volume_driver(&v.driver).await.map_err(failed)?;
        let r = d
            .call("VolumeDriver.Mount", &json!({"Name": name, "ID": id}))
            .await
            .map_err(|e| failed(format!("VolumeDriver.Mount: {e}")))?;
        let at = r["Mountpoint"].as_str().unwrap_or_default();
        if !at.starts_with('/') || at.split('/').any(|c| c == "..") {
            return Err(failed(format!(
                "VolumeDriver.Mount: the plugin answered the mountpoint {at:?}, not an absolute path in it"
            )));
        }
        let host = self.scoped_path(&d, at);
        self.volumes
            .bind(name, &host)
            .map_err(|e| failed(format!("binding {}: {e}", host.display())))
    }

    /// After container `id` stopped: the plugin's `VolumeDriver.Unmount`,
    /// the bind let go first when no other running container uses it.
    pub async fn unmount_plugin_volume(&self, name: &str, driver: &str, id: &str, last: bool) {
        if last && let Err(e) = self.volumes.unbind(name) {
            tracing::warn!("volume {name}: {}", e.message);
        }
        let Ok(d) = self.volume_driver(driver).await else {
            return;
        };
        if let Err(e) = d
            .call("VolumeDriver.Unmount", &json!({"Name": name, "ID": id}))
            .await
        {
            tracing::warn!("volume {name}: VolumeDriver.Unmount: {e}");
        }
    }

    /// Removes a volume: a plugin's is removed by the plugin first
    /// (`VolumeDriver.Remove`) and kept if it refuses, unless `purge`
    /// (`volume rm -f`, as dockerd's) forgets it all the same.
    pub async fn remove_volume(&self, v: &Volume, purge: bool) -> Result<()> {
        if v.driver != LOCAL {
            self.volumes.unbind(&v.name)?;
            let removed = match self.volume_driver(&v.driver).await {
                Ok(d) => d
                    .call("VolumeDriver.Remove", &json!({"Name": v.name}))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("remove {}: VolumeDriver.Remove: {e}", v.name)),
                Err(why) => Err(format!("remove {}: {why}", v.name)),
            };
            match removed {
                Ok(()) => {}
                Err(e) if purge => tracing::warn!("{e}; forgetting the volume (forced)"),
                Err(e) => return Err(ApiError::internal(e)),
            }
        }
        self.volumes.remove(&v.name)
    }

    /// A plugin's volumes' scope as its `VolumeDriver.Capabilities` tells
    /// it: `global` (the same volume on every host, as a cluster's storage)
    /// or `local`, which is also the answer of a plugin that cannot tell.
    pub async fn volume_scope(&self, driver: &str) -> String {
        let known = self
            .plugins
            .volume_scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(driver)
            .cloned();
        if let Some(s) = known {
            return s;
        }
        let Ok(d) = self.volume_driver(driver).await else {
            return LOCAL.into();
        };
        match d.call("VolumeDriver.Capabilities", &json!({})).await {
            Ok(r) => {
                let scope = match r["Capabilities"]["Scope"].as_str() {
                    Some("global") => "global",
                    _ => LOCAL,
                }
                .to_string();
                self.plugins
                    .volume_scopes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(driver.to_string(), scope.clone());
                scope
            }
            Err(e) => {
                tracing::debug!("plugin {driver}: VolumeDriver.Capabilities: {e}");
                LOCAL.into()
            }
        }
    }

    /// Whether a volume of this plugin exists (it may not be disabled or
    /// removed then, as dockerd counts them).
    pub fn plugin_serves_volumes(&self, p: &Plugin) -> bool {
        self.volumes.list().iter().any(|v| v.driver == p.name)
    }

    /// A path the plugin names, on the host: a managed plugin's under its
    /// propagated mount or in its rootfs; a legacy plugin's as it is.
    fn scoped_path(&self, d: &Driver, at: &str) -> PathBuf {
        let Some(p) = &d.managed else {
            return PathBuf::from(at);
        };
        let prop = &p.config.propagated_mount;
        let rel = |base: PathBuf, rest: &str| base.join(rest.trim_start_matches('/'));
        match at.strip_prefix(prop.as_str()) {
            Some(rest) if !prop.is_empty() && (rest.is_empty() || rest.starts_with('/')) => {
                rel(self.plugins.propagated(&p.id), rest)
            }
            _ => rel(self.plugins.rootfs(&p.id), at),
        }
    }
}
