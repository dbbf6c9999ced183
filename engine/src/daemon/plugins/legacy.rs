//! Plugins that run on the host, outside the engine (Docker's legacy or
//! "v1" plugins: local-persist, convoy, netshare and the like, started by
//! systemd or by hand), found as dockerd finds them by name:
//!
//! - a socket `<dir>/<name>.sock` or `<dir>/<name>/<name>.sock`;
//! - else a spec `<dir>/<name>.spec` (one address: `unix:///path` or
//!   `tcp://host:port`) or `<dir>/<name>.json` (`{"Name": …, "Addr": …}`),
//!   also in a `<dir>/<name>/` directory.
//!
//! The directories are the configuration's `plugin-dirs`, by default
//! Docker's own (`/run/docker/plugins`, `/etc/docker/plugins`,
//! `/usr/lib/docker/plugins`), so plugins set up for dockerd serve berth
//! unchanged. A plugin is activated (`Plugin.Activate`, which says what it
//! implements) at its first use and kept, as dockerd keeps it: one that
//! stops answering fails the calls made meanwhile and serves again once it
//! is back at its address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::{self, Addr};

/// Docker's plugin directories: where legacy plugins put their sockets,
/// and where their specs are written.
pub const DEFAULT_DIRS: [&str; 3] = [
    "/run/docker/plugins",
    "/etc/docker/plugins",
    "/usr/lib/docker/plugins",
];

/// How long a plugin found by name may take to answer its activation (it
/// may be starting beside the engine), as dockerd's client retries.
const ACTIVATE_DEADLINE: Duration = Duration::from_secs(30);

/// How long a listing (`volume ls`) waits for a plugin it activates.
const LIST_WAIT: Duration = Duration::from_secs(2);

/// A plugin found and activated: where it answers, what it implements.
#[derive(Clone, Debug)]
pub struct Active {
    pub addr: Addr,
    pub implements: Vec<String>,
}

pub struct Legacy {
    dirs: Vec<PathBuf>,
    active: Mutex<BTreeMap<String, Active>>,
}

impl Legacy {
    pub fn new(dirs: Vec<PathBuf>) -> Legacy {
        Legacy {
            dirs,
            active: Mutex::new(BTreeMap::new()),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plugin `name` if it implements `interface` (e.g.
    /// `VolumeDriver`): activated now if it was not. `Ok(None)` when no
    /// plugin of that name is found; `Err` when one is found but cannot be
    /// activated or does not implement the interface.
    pub async fn get(&self, name: &str, interface: &str) -> Result<Option<Active>, String> {
        let known = self.active().get(name).cloned();
        let a = match known {
            Some(a) => a,
            None => {
                let Some(addr) = find(&self.dirs, name)? else {
                    return Ok(None);
                };
                let a = activate(&addr, Instant::now() + ACTIVATE_DEADLINE).await?;
                self.active().insert(name.to_string(), a.clone());
                a
            }
        };
        if !a.implements.iter().any(|i| i == interface) {
            return Err(format!(
                "Plugin does not implement the requested driver: plugin={name:?}, requested implementation={interface:?}"
            ));
        }
        Ok(Some(a))
    }

    /// Where the plugin `name` would be asked, without asking it.
    pub fn locate(&self, name: &str) -> Result<Option<Addr>, String> {
        find(&self.dirs, name)
    }

    /// Every plugin in the directories that implements `interface`, each
    /// asked once (a listing must not wait for one that is down).
    pub async fn all(&self, interface: &str) -> Vec<(String, Addr)> {
        let mut out = Vec::new();
        for name in scan(&self.dirs) {
            let known = self.active().get(&name).cloned();
            let a = match known {
                Some(a) => a,
                None => {
                    let found = match find(&self.dirs, &name) {
                        // A listing waits on no plugin long: one that does
                        // not answer (a spec naming a host that is gone) is
                        // left out of it.
                        Ok(Some(addr)) => {
                            tokio::time::timeout(LIST_WAIT, activate(&addr, Instant::now()))
                                .await
                                .unwrap_or_else(|_| {
                                    Err(format!("no answer within {}s", LIST_WAIT.as_secs()))
                                })
                        }
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    };
                    match found {
                        Ok(a) => {
                            self.active().insert(name.clone(), a.clone());
                            a
                        }
                        Err(e) => {
                            tracing::debug!("legacy plugin {name}: {e}");
                            continue;
                        }
                    }
                }
            };
            if a.implements.iter().any(|i| i == interface) {
                out.push((name, a.addr));
            }
        }
        out
    }

    /// The names activated so far that implement `interface` (what
    /// `docker info` lists beside the managed ones, as dockerd's).
    pub fn activated(&self, interface: &str) -> Vec<String> {
        self.active()
            .iter()
            .filter(|(_, a)| a.implements.iter().any(|i| i == interface))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// A legacy plugin's name names a file: no separators, no `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains("..") && !name.contains('\0')
}

/// `<dir>/<name><ext>` and `<dir>/<name>/<name><ext>`.
fn candidates(dir: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    let file = format!("{name}{ext}");
    [dir.join(&file), dir.join(name).join(&file)]
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Where the plugin `name` answers: a socket in any directory first, then
/// a spec. `Ok(None)` when there is neither; `Err` for a spec that does
/// not name an address berth can speak to.
pub fn find(dirs: &[PathBuf], name: &str) -> Result<Option<Addr>, String> {
    if !valid_name(name) {
        return Ok(None);
    }
    for dir in dirs {
        if let Some(p) = candidates(dir, name, ".sock")
            .into_iter()
            .find(|p| is_socket(p))
        {
            return Ok(Some(Addr::Unix(p)));
        }
    }
    for dir in dirs {
        for ext in [".spec", ".json"] {
            for p in candidates(dir, name, ext) {
                let raw = match std::fs::read_to_string(&p) {
                    Ok(raw) => raw,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(format!("reading {}: {e}", p.display())),
                };
                let addr = if ext == ".json" {
                    let v: Value = serde_json::from_str(&raw)
                        .map_err(|e| format!("{}: not a plugin spec: {e}", p.display()))?;
                    v["Addr"].as_str().unwrap_or_default().to_string()
                } else {
                    raw.trim().to_string()
                };
                return parse_addr(&addr)
                    .map(Some)
                    .map_err(|e| format!("{}: {e}", p.display()));
            }
        }
    }
    Ok(None)
}

/// A spec's address: `unix:///path`, or `tcp://` / `http://host:port`
/// (plain HTTP, as dockerd speaks to a `tcp://` plugin).
pub fn parse_addr(addr: &str) -> Result<Addr, String> {
    let Some((scheme, rest)) = addr.split_once("://") else {
        return Err(format!("Unknown protocol in plugin address {addr:?}"));
    };
    match scheme {
        "unix" if rest.starts_with('/') => Ok(Addr::Unix(PathBuf::from(rest))),
        "unix" => Err(format!(
            "plugin address {addr:?}: not an absolute socket path"
        )),
        "tcp" | "http" => {
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') {
                return Err(format!("plugin address {addr:?}: not host:port"));
            }
            Ok(Addr::Tcp(host.to_string()))
        }
        "https" => Err(format!(
            "plugin address {addr:?}: plugins over TLS are not supported by berth"
        )),
        _ => Err(format!("Unknown protocol in plugin address {addr:?}")),
    }
}

/// The names of the plugins in the directories, sockets' and specs', each
/// once.
pub fn scan(dirs: &[PathBuf]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if path.is_dir() {
                let inner =
                    [".sock", ".spec", ".json"].map(|ext| path.join(format!("{file}{ext}")));
                if inner.iter().any(|p| p.exists()) {
                    names.insert(file);
                }
                continue;
            }
            for ext in [".sock", ".spec", ".json"] {
                if let Some(n) = file.strip_suffix(ext)
                    && valid_name(n)
                {
                    names.insert(n.to_string());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// `Plugin.Activate`, asked again while the plugin cannot be reached until
/// `deadline` (with a backoff doubling from 100 ms to 2 s).
async fn activate(addr: &Addr, deadline: Instant) -> Result<Active, String> {
    let mut wait = Duration::from_millis(100);
    loop {
        match client::call(addr, "Plugin.Activate", &json!({})).await {
            Ok(r) => {
                let implements = r["Implements"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(Active {
                    addr: addr.clone(),
                    implements,
                });
            }
            Err(e) if Instant::now() + wait > deadline => {
                return Err(format!("legacy plugin: {e}"));
            }
            Err(e) => {
                tracing::debug!("activating the plugin at {addr}: {e}; asking again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_dockerd_reads_a_spec() {
        assert_eq!(
            parse_addr("unix:///run/p/x.sock"),
            Ok(Addr::Unix("/run/p/x.sock".into()))
        );
        assert_eq!(
            parse_addr("tcp://127.0.0.1:8080"),
            Ok(Addr::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            parse_addr("http://localhost:80/"),
            Ok(Addr::Tcp("localhost:80".into()))
        );
        assert!(
            parse_addr("/run/p/x.sock")
                .unwrap_err()
                .contains("Unknown protocol")
        );
        assert!(parse_addr("unix://x.sock").is_err());
        assert!(parse_addr("https://h:1").unwrap_err().contains("TLS"));
        assert!(parse_addr("tcp://h:1/path").is_err());
    }

    #[test]
    fn a_socket_comes_before_a_spec_and_names_never_leave_the_directories() {
        let d = tempfile::tempdir().unwrap();
        let socks = d.path().join("run");
        let specs = d.path().join("etc");
        std::fs::create_dir_all(socks.join("nested")).unwrap();
        std::fs::create_dir_all(&specs).unwrap();
        let dirs = vec![socks.clone(), specs.clone()];
        let _a = std::os::unix::net::UnixListener::bind(socks.join("a.sock")).unwrap();
        let _n = std::os::unix::net::UnixListener::bind(socks.join("nested/nested.sock")).unwrap();
        std::fs::write(specs.join("a.spec"), "tcp://127.0.0.1:1\n").unwrap();
        std::fs::write(specs.join("b.spec"), " unix:///x/b.sock\n").unwrap();
        std::fs::write(specs.join("c.json"), r#"{"Name":"c","Addr":"tcp://h:2"}"#).unwrap();
        std::fs::write(specs.join("bad.spec"), "b.sock").unwrap();
        std::fs::write(socks.join("plain.sock"), "").unwrap();
        assert_eq!(
            find(&dirs, "a").unwrap(),
            Some(Addr::Unix(socks.join("a.sock")))
        );
        assert_eq!(
            find(&dirs, "nested").unwrap(),
            Some(Addr::Unix(socks.join("nested/nested.sock")))
        );
        assert_eq!(
            find(&dirs, "b").unwrap(),
            Some(Addr::Unix("/x/b.sock".into()))
        );
        assert_eq!(find(&dirs, "c").unwrap(), Some(Addr::Tcp("h:2".into())));
        assert!(find(&dirs, "bad").unwrap_err().contains("Unknown protocol"));
        // A regular file named .sock is not a socket.
        assert_eq!(find(&dirs, "plain").unwrap(), None);
        assert_eq!(find(&dirs, "none").unwrap(), None);
        assert_eq!(find(&dirs, "../etc/a").unwrap(), None);
        assert_eq!(
            scan(&dirs),
            ["a", "b", "bad", "c", "nested", "plain"].map(String::from)
        );
    }

    #[tokio::test]
    async fn activation_is_kept_and_checked_against_the_interface() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("p.sock");
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let served = tokio::spawn(async move {
            // One connection: the activation. A second use must not ask.
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = c.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("POST /Plugin.Activate "));
            let body = r#"{"Implements":["VolumeDriver"]}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            c.write_all(resp.as_bytes()).await.unwrap();
        });
        let reg = Legacy::new(vec![d.path().to_path_buf()]);
        let a = reg.get("p", "VolumeDriver").await.unwrap().unwrap();
        assert_eq!(a.addr, Addr::Unix(sock.clone()));
        served.await.unwrap();
        assert!(reg.get("p", "VolumeDriver").await.unwrap().is_some());
        let e = reg.get("p", "NetworkDriver").await.unwrap_err();
        assert!(e.contains("does not implement"), "{e}");
        assert_eq!(
            reg.get("q", "VolumeDriver").await.unwrap().map(|a| a.addr),
            None
        );
        assert_eq!(reg.activated("VolumeDriver"), ["p"]);
        assert!(reg.activated("NetworkDriver").is_empty());
    }
}
