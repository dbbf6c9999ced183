//! The engine's service layer: containers, images, volumes and events over
//! berth-lifecycled. API handlers are thin and call into this.

pub mod container;
pub mod create;
pub mod events;
pub mod exec;
pub mod files;
pub mod fluentd;
pub mod freeze;
pub mod gelf;
pub mod health;
pub mod images;
pub mod ipc;
pub mod journal;
pub mod lifecycle;
pub mod lines;
pub mod links;
pub mod logopts;
pub mod logs;
pub mod logship;
pub mod monitor;
pub mod names;
pub mod netsetup;
pub mod networks;
pub mod ops;
pub mod plugins;
pub mod record;
pub mod recover;
pub mod resources;
pub mod spec;
pub mod syslog;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::error::{ApiError, Result};
use container::Container;
use events::Events;
use lifecycle::Lifecycle;
use volumes::Volumes;

/// A container and what waits on it.
pub struct Entry {
    pub c: record::Record,
    pub id: String,
    /// Bumped at every exit of the container's process.
    pub exits: watch::Sender<u64>,
    pub removed: watch::Sender<bool>,
    /// Clients attached before the task exists, told when it does.
    pub attach_waiters: Mutex<Vec<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>>,
    /// The run (`exits` count) whose health is being checked.
    pub health_run: Mutex<Option<u64>>,
    /// Who created it; fixed for its life, so the policy reads it without
    /// waiting for the container's lock.
    pub owner: Option<String>,
}

impl Entry {
    /// Whether the container is running, until its next exit (watched
    /// from now: called while its record is held, no exit slips by).
    pub fn running_watch(&self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(true);
        let mut exits = self.exits.subscribe();
        let seen = *exits.borrow_and_update();
        tokio::spawn(async move {
            while *exits.borrow_and_update() == seen {
                if exits.changed().await.is_err() {
                    break;
                }
            }
            let _ = tx.send(false);
        });
        rx
    }
}

/// The keys of the configuration that a SIGHUP changes while berthd runs
/// (as dockerd's reload does); the rest of `Config` is fixed at start.
#[derive(Debug, Clone)]
pub struct Live {
    pub debug: bool,
    pub log_level: String,
    pub default_runtime: String,
    pub log_opts: std::collections::BTreeMap<String, String>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub labels: Vec<String>,
    pub authorization: crate::authz::Policy,
    /// Authorization plugins asked about every call, in order (a disabled
    /// one leaves the chain until the next reload, as dockerd's).
    pub authorization_plugins: Vec<String>,
}

impl Live {
    pub fn of(cfg: &Config) -> Live {
        Live {
            debug: cfg.debug,
            log_level: cfg.log_level.clone(),
            default_runtime: cfg.default_runtime.clone(),
            log_opts: cfg.log_opts.clone(),
            insecure_registries: cfg.insecure_registries.clone(),
            registry_mirrors: cfg.registry_mirrors.clone(),
            labels: cfg.labels.clone(),
            authorization: cfg.authorization.clone(),
            authorization_plugins: cfg.authorization_plugins.clone(),
        }
    }
}

/// (alias, id of the container that links by it).
pub type LinkedAs = std::collections::BTreeSet<(String, String)>;

pub struct Daemon {
    /// The configuration berthd started with. The keys in `Live` are read
    /// through `live()`, which a reload changes.
    pub cfg: Config,
    live: RwLock<Arc<Live>>,
    pub lc: Lifecycle,
    pub events: Events,
    pub volumes: Volumes,
    pub plugins: plugins::Plugins,
    pub networks: networks::Networks,
    pub cni: crate::network::cni::Cni,
    pub dns: crate::network::dns::Dns,
    /// Host ports a start is publishing, by (protocol, port), until it
    /// ends: two starts must not pick the same one (the container that
    /// has it is locked while it starts, and nothing listens on a port
    /// the firewall forwards).
    pub ports_in_flight: std::sync::Mutex<std::collections::HashMap<(String, u16), String>>,
    /// The sender of each syslog, gelf or fluentd container's lines (see
    /// [`logship`]): a run's sender waits for the one before it, which
    /// ends once that run's lines are sent, so no line is sent twice or
    /// out of order.
    pub log_senders:
        std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
    /// The host port last given to a binding that named none, by (host
    /// address, protocol): the next is looked for after it.
    pub last_ports: std::sync::Mutex<std::collections::HashMap<(String, String), u16>>,
    /// Addresses a start or connect picked for a container (by network
    /// id), held until its plugins have leased them: two starts on one
    /// network must not pick the same lowest free address.
    pub addresses_in_flight:
        std::sync::Mutex<std::collections::HashMap<(String, std::net::IpAddr), String>>,
    pub firewall: crate::network::firewall::Firewall,
    /// Bridges of removed networks the kernel is still deleting.
    pub bridge_deletions: crate::network::bridges::Deletions,
    /// Published ports on the host's IPv6 addresses, relayed.
    pub relays: crate::network::relay::Relays,
    pub execs: exec::Execs,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    names: Mutex<HashMap<String, String>>,
    /// Link aliases on user networks: (network id, linked container's
    /// name or id) → the aliases containers there link it by, each with
    /// the linking container's id.
    pub link_names: Mutex<HashMap<(String, String), LinkedAs>>,
    pub started: SystemTime,
}

impl Daemon {
    /// The reloadable keys as they are now.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the reloadable keys as they are now.
    pub fn set_live(&self, live: Arc<Live>) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// Takes the reloadable keys of `new` (a configuration read again on
    /// SIGHUP); returns the names of the keys that changed but only take
    /// effect at the next start.
    pub fn reload(&self, new: &Config) -> Vec<&'static str> {
        let live = Live::of(new);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        let old = &self.cfg;
        let mut fixed = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                fixed.push(name);
            }
        };
        check("data-root", old.data_root == new.data_root);
        check("exec-root", old.exec_root == new.exec_root);
        check("hosts", old.hosts == new.hosts);
        check("live-restore", old.live_restore == new.live_restore);
        check("group", old.group == new.group);
        check("containerd", old.lifecycled == new.lifecycled);
        check("cgroup-parent", old.cgroup_parent == new.cgroup_parent);
        check("log-driver", old.log_driver == new.log_driver);
        check("dns", old.dns == new.dns);
        check("dns-search", old.dns_search == new.dns_search);
        check(
            "shutdown-timeout",
            old.shutdown_timeout == new.shutdown_timeout,
        );
        check("bridge", old.bridge == new.bridge);
        check(
            "host-gateway-ip",
            old.host_gateway_ip == new.host_gateway_ip,
        );
        check("bip", old.bip == new.bip);
        check("fixed-cidr-v6", old.bip6 == new.bip6);
        check(
            "default-address-pools",
            old.default_address_pools == new.default_address_pools,
        );
        check("tls", old.tls.is_some() == new.tls.is_some());
        check(
            "api-idle-timeout",
            old.api_idle_timeout == new.api_idle_timeout,
        );
        check(
            "api-connections-per-caller",
            old.api_connections_per_caller == new.api_connections_per_caller,
        );
        fixed
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.cfg.data_root.join("containers")
    }

    /// Loads the container records kept under the data root.
    pub fn open(cfg: Config) -> anyhow::Result<Arc<Daemon>> {
        let lc = Lifecycle::new(&cfg.lifecycled);
        let volumes = Volumes::new(&cfg.data_root)?;
        let plugins = plugins::Plugins::open(&cfg.data_root, &cfg.exec_root)?
            .with_legacy_dirs(cfg.plugin_dirs.clone());
        let networks = networks::Networks::open(
            &cfg.data_root,
            cfg.bridge.as_deref(),
            cfg.bip.as_deref(),
            &cfg.default_address_pools,
        )?;
        networks.set_default_ipv6(cfg.bip6.as_deref())?;
        if let Err(e) = networks.make_default_bridge() {
            tracing::warn!("making the default bridge: {e:#}");
        }
        let d = Arc::new(Daemon {
            live: RwLock::new(Arc::new(Live::of(&cfg))),
            lc,
            volumes,
            plugins,
            networks,
            cni: crate::network::cni::Cni::default(),
            dns: crate::network::dns::Dns::new(
                &cfg.exec_root.join("dns"),
                &cfg.exec_root.join("netns"),
            ),
            ports_in_flight: Default::default(),
            log_senders: Default::default(),
            addresses_in_flight: Default::default(),
            last_ports: Default::default(),
            relays: Default::default(),
            firewall: Default::default(),
            bridge_deletions: Default::default(),
            execs: exec::Execs::default(),
            events: Events::default(),
            entries: RwLock::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            link_names: Mutex::new(HashMap::new()),
            started: SystemTime::now(),
            cfg,
        });
        d.dns.resume();
        let dir = d.containers_dir();
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)?.flatten() {
            match Container::load(&e.path()) {
                Ok(c) => {
                    d.names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(c.name.clone(), c.id.clone());
                    // A stopped container's execs ended with its run (one
                    // reaped after the run's end may have written its record
                    // again).
                    if c.is_running() {
                        for x in exec::Exec::load_all(&c.dir.join("execs")) {
                            d.execs.insert(Arc::new(x));
                        }
                    } else {
                        let _ = std::fs::remove_dir_all(c.dir.join("execs"));
                    }
                    d.note_links(&c);
                    d.insert(c);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // A create that died before its record was saved.
                    tracing::info!(
                        "removing {}, left by an interrupted create",
                        e.path().display()
                    );
                    let _ = std::fs::remove_dir_all(e.path());
                }
                Err(err) => {
                    tracing::error!("skipping container record {}: {err}", e.path().display())
                }
            }
        }
        Ok(d)
    }

    fn insert(&self, c: Container) -> Arc<Entry> {
        let e = Arc::new(Entry {
            id: c.id.clone(),
            owner: c.owner.clone(),
            c: record::Record::new(c),
            exits: watch::channel(0).0,
            removed: watch::channel(false).0,
            attach_waiters: Mutex::new(Vec::new()),
            health_run: Mutex::new(None),
        });
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(e.id.clone(), e.clone());
        e
    }

    fn forget(&self, id: &str, name: &str) {
        self.execs.forget_container(id);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.get(name).map(String::as_str) == Some(id) {
            names.remove(name);
        }
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// By full id, name (with or without '/'), or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Entry>> {
        let not_found = || ApiError::not_found(format!("No such container: {key}"));
        if key.is_empty() {
            // dockerd's lookup refuses an empty name (a network connect's
            // body without a container) before it looks.
            return Err(ApiError::bad_request("invalid name or ID supplied: \"\""));
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get(key) {
            return Ok(e.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(id) = self
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && let Some(e) = entries.get(id)
        {
            return Ok(e.clone());
        }
        let matches: Vec<&Arc<Entry>> = entries
            .iter()
            .filter(|(id, _)| id.starts_with(key))
            .map(|(_, e)| e)
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found()),
            _ => Err(ApiError::bad_request(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// The name a container holds now.
    pub fn name_of(&self, id: &str) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone())
    }

    /// Claims a name for a container; 409 if another has it.
    pub fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = names.get(name)
            && other != id
        {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    pub fn release_name(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub fn name_taken(&self, name: &str) -> bool {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Attributes of a container's events: image, name and its labels.
    /// The image as the container's config names it (as it was asked
    /// for: `busybox`, an id), as dockerd's.
    pub fn event_attrs(c: &Container) -> std::collections::BTreeMap<String, String> {
        let mut a: std::collections::BTreeMap<String, String> = c.config.labels.clone();
        let image = if c.config.image.is_empty() {
            images::familiar(&c.image_ref)
        } else {
            c.config.image.clone()
        };
        a.insert("image".into(), image);
        a.insert("name".into(), c.name.clone());
        a
    }

    pub fn container_event(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut a = Self::event_attrs(c);
        for (k, v) in extra {
            a.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, a);
    }

    /// The events dockerd gives each volume a container uses: "create" as
    /// the container is made (an existing one too), "mount" at each start,
    /// "unmount" at each stop.
    pub fn volume_events(&self, c: &Container, action: &str) {
        for m in c.mounts.iter().filter(|m| m.typ == "volume") {
            let driver = if m.driver.is_empty() {
                "local"
            } else {
                &m.driver
            };
            let mut a = std::collections::BTreeMap::new();
            a.insert("driver".to_string(), driver.to_string());
            if action != "create" {
                a.insert("container".to_string(), c.id.clone());
            }
            if action == "mount" {
                a.insert("destination".to_string(), m.destination.clone());
                a.insert("propagation".to_string(), m.propagation.clone());
                a.insert("read/write".to_string(), m.rw.to_string());
            }
            self.events.publish("volume", action, &m.name, a);
        }
    }

    pub fn network_event(&self, n: &networks::Network, action: &str, container: &str) {
        let mut a = std::collections::BTreeMap::new();
        a.insert("name".to_string(), n.name.clone());
        a.insert("type".to_string(), n.driver.clone());
        if !container.is_empty() {
            a.insert("container".to_string(), container.to_string());
        }
        self.events.publish("network", action, &n.id, a);
    }
}
