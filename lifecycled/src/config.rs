//! lifecycled's configuration file (TOML), mostly its runtime table:
//!
//! ```toml
//! default_runtime = "berth-runtime"
//! cgroup_parent = "berth"
//! [runtimes.runc]
//! path = "/usr/sbin/runc"
//! args = []            # extra global arguments, e.g. ["--systemd-cgroup"]
//! ```
//!
//! The CRI (`runtime.v1`, for the kubelet and crictl) has a table of its
//! own:
//!
//! ```toml
//! [cri]
//! cni_conf_dir = "/etc/cni/net.d"     # the first network config is the pods'
//! cni_bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
//! stream_address = "127.0.0.1"        # exec/attach/port-forward server
//! stream_port = 0                     # 0: any free port
//! address = "/run/berth/cri.sock"     # also serve the CRI, alone, here
//! [cri.registry]
//! insecure = ["registry.lan:5000"]    # any TLS certificate, or plain HTTP (loopback always is)
//! ca_certs = ["/etc/berth/registry-ca.pem"]
//! [cri.registry.mirrors]              # tried in order before the registry
//! "docker.io" = ["https://mirror.lan", "http://10.0.0.5:5000"]
//! ```
//!
//! `berth-runtime` is always in the table (the binary next to lifecycled, or
//! on PATH), unless the file names it otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: default_runtime {name:?} is not in [runtimes]")]
    UnknownDefault { path: PathBuf, name: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    default_runtime: Option<String>,
    shim: Option<PathBuf>,
    cgroup_parent: Option<String>,
    #[serde(default)]
    runtimes: BTreeMap<String, RuntimeEntry>,
    #[serde(default)]
    cri: CriConfig,
}

/// The `[cri]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
    pub stream_address: String,
    pub stream_port: u16,
    /// A socket of its own for the CRI (besides lifecycled's), serving only
    /// `runtime.v1`, as the kubelet's `--container-runtime-endpoint`.
    pub address: Option<PathBuf>,
    pub registry: CriRegistry,
}

/// How the CRI's pulls reach registries (`[cri.registry]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CriRegistry {
    /// `host[:port]` of registries reached over plain HTTP.
    pub insecure: Vec<String>,
    /// CAs trusted besides the system's.
    pub ca_certs: Vec<PathBuf>,
    /// Per registry host, mirrors tried in order before it: `host[:port]`
    /// (HTTPS), or a URL whose scheme says `http` or `https`.
    pub mirrors: BTreeMap<String, Vec<String>>,
}

impl CriRegistry {
    /// The imagestore's options for a pull from `registry`: loopback
    /// registries are plain HTTP as containerd's resolver has them, and so
    /// are mirrors named with `http://`.
    pub fn options(&self, registry: &str, on_loopback: bool) -> imagestore::RegistryOptions {
        let mut insecure = self.insecure.clone();
        if on_loopback {
            insecure.push(registry.to_string());
        }
        let mut mirrors = Vec::new();
        for m in self.mirrors.get(registry).into_iter().flatten() {
            let host = if let Some(h) = m.strip_prefix("http://") {
                insecure.push(h.trim_end_matches('/').to_string());
                h
            } else {
                m.strip_prefix("https://").unwrap_or(m)
            };
            mirrors.push((registry.to_string(), host.trim_end_matches('/').to_string()));
        }
        imagestore::RegistryOptions {
            insecure,
            ca_certs: self.ca_certs.clone(),
            mirrors,
            ..Default::default()
        }
    }
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            stream_address: "127.0.0.1".into(),
            stream_port: 0,
            address: None,
            registry: CriRegistry::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub default_runtime: String,
    pub shim: PathBuf,
    /// Containers without a cgroups path get `/<parent>/<namespace>/<id>`.
    pub cgroup_parent: String,
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    pub cri: CriConfig,
}

/// A binary next to our own, else the bare name (found on PATH).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Resolves a bare command name through PATH, so errors name a real file.
pub fn resolve(p: &Path) -> PathBuf {
    if p.components().count() > 1 {
        return p.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(p))
                .find(|c| c.exists())
        })
        .unwrap_or_else(|| p.to_path_buf())
}

impl Config {
    /// Reads the file if it exists; a missing default config file is fine, a
    /// broken one is an error that names it.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let file: File = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => File::default(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut runtimes = file.runtimes;
        runtimes
            .entry("berth-runtime".to_string())
            .or_insert_with(|| RuntimeEntry {
                path: sibling("berth-runtime"),
                args: Vec::new(),
            });
        for r in runtimes.values_mut() {
            r.path = resolve(&r.path);
        }
        let default_runtime = file
            .default_runtime
            .unwrap_or_else(|| "berth-runtime".to_string());
        if !runtimes.contains_key(&default_runtime) {
            return Err(ConfigError::UnknownDefault {
                path: path.to_path_buf(),
                name: default_runtime,
            });
        }
        Ok(Config {
            default_runtime,
            shim: resolve(&file.shim.unwrap_or_else(|| sibling("berth-shim"))),
            cgroup_parent: file.cgroup_parent.unwrap_or_else(|| "berth".to_string()),
            runtimes,
            cri: file.cri,
        })
    }

    /// The cgroup driver the default runtime is run with, as the CRI's
    /// RuntimeConfig reports it.
    pub fn systemd_cgroup(&self) -> bool {
        self.runtimes
            .get(&self.default_runtime)
            .is_some_and(|r| r.args.iter().any(|a| a == "--systemd-cgroup"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_file_gives_berth_runtime() {
        let c = Config::load(Path::new("/nonexistent/lifecycled.toml"), false).unwrap();
        assert_eq!(c.default_runtime, "berth-runtime");
        assert!(c.runtimes.contains_key("berth-runtime"));
    }

    #[test]
    fn runtime_table_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "default_runtime = \"runc\"\n[runtimes.runc]\npath = \"/usr/sbin/runc\"\nargs = [\"--debug\"]\n").unwrap();
        let c = Config::load(&p, true).unwrap();
        assert_eq!(c.default_runtime, "runc");
        assert_eq!(c.runtimes["runc"].args, vec!["--debug"]);

        std::fs::write(&p, "default_runtime = \"nope\"\n").unwrap();
        let e = Config::load(&p, true).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");

        std::fs::write(&p, "[runtimes.x]\npath = 3\n").unwrap();
        let e = Config::load(&p, true).unwrap_err().to_string();
        assert!(e.contains("c.toml"), "{e}");

        std::fs::write(&p, "bogus_key = 1\n").unwrap();
        assert!(Config::load(&p, true).is_err());
    }

    #[test]
    fn cri_mirrors_say_their_scheme_and_loopback_is_plain_http() {
        let r: CriRegistry = toml::from_str(
            r#"
            insecure = ["lan:5000"]
            [mirrors]
            "docker.io" = ["https://m1.example/", "http://10.0.0.5:5000", "m3.example"]
            "#,
        )
        .expect("a [cri.registry] table");
        let o = r.options("docker.io", false);
        assert_eq!(
            o.mirrors,
            [
                ("docker.io".to_string(), "m1.example".to_string()),
                ("docker.io".into(), "10.0.0.5:5000".into()),
                ("docker.io".into(), "m3.example".into()),
            ]
        );
        assert_eq!(o.insecure, ["lan:5000", "10.0.0.5:5000"]);
        let o = r.options("127.0.0.1:5000", true);
        assert!(o.mirrors.is_empty());
        assert_eq!(o.insecure, ["lan:5000", "127.0.0.1:5000"]);
        assert!(toml::from_str::<CriRegistry>("mirror = {}").is_err());
    }
}
