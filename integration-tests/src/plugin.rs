//! Plugins for the tests, run by the host's python3 (`tests/plugin/`: a
//! volume driver, an authorization plugin, a log driver, a network driver
//! and an IPAM driver), each made into the directory `docker plugin
//! create` takes (its /usr bound in by the plugin's config) or run on the
//! host as a legacy plugin.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// The plugin's directory under `root`: `config.json` and `rootfs/`.
/// `entrypoint` replaces the python server (a plugin that never listens).
pub fn volume_plugin_dir(root: &Path, name: &str, entrypoint: Option<&[&str]>) -> PathBuf {
    let entrypoint: Vec<&str> = entrypoint
        .map(<[&str]>::to_vec)
        .unwrap_or_else(|| vec!["/usr/bin/python3", "/tvol.py"]);
    let config = json!({
        "description": "berth's test volume plugin",
        "documentation": "https://example.invalid/tvol",
        "entrypoint": entrypoint,
        "interface": {"types": ["docker.volumedriver/1.0"], "socket": "tvol.sock"},
        "network": {"type": "none"},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind",
                    "options": ["rbind", "ro"], "settable": ["source"]}],
        "propagatedMount": "/data",
        "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"},
                {"name": "ROOT", "value": "/data"}],
        "args": {"name": "args", "settable": ["value"], "value": ["--flag"]},
    });
    python_plugin_dir(
        &root.join(format!("plugin-{name}")),
        ("tvol.py", include_str!("../tests/plugin/tvol.py")),
        &config,
    )
}

/// The authorization plugin (`tests/plugin/authz.py`) as a managed
/// plugin's directory under `root`, listening on `az.sock`.
pub fn authz_plugin_dir(root: &Path) -> PathBuf {
    let config = json!({
        "description": "berth's test authorization plugin",
        "documentation": "https://example.invalid/authz",
        "entrypoint": ["/usr/bin/python3", "/authz.py"],
        "interface": {"types": ["docker.authz/1.0"], "socket": "az.sock"},
        "network": {"type": "none"},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind",
                    "options": ["rbind", "ro"]}],
        "env": [{"name": "SOCKET", "value": "/run/docker/plugins/az.sock"}],
    });
    python_plugin_dir(
        &root.join("plugin-authz"),
        ("authz.py", include_str!("../tests/plugin/authz.py")),
        &config,
    )
}

/// The log driver plugin (`tests/plugin/logplug.py`) as a managed
/// plugin's directory under `root`, listening on `tlog.sock`; what it
/// receives goes to its rootfs' `/data`.
pub fn log_plugin_dir(root: &Path) -> PathBuf {
    let config = json!({
        "description": "berth's test log driver plugin",
        "documentation": "https://example.invalid/tlog",
        "entrypoint": ["/usr/bin/python3", "/logplug.py"],
        "interface": {"types": ["docker.logdriver/1.0"], "socket": "tlog.sock"},
        "network": {"type": "none"},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind",
                    "options": ["rbind", "ro"]}],
    });
    python_plugin_dir(
        &root.join("plugin-tlog"),
        ("logplug.py", include_str!("../tests/plugin/logplug.py")),
        &config,
    )
}

/// The network plugin (`tests/plugin/tnet.py`) as a managed plugin's
/// directory under `root`: on the host's network, with the capability to
/// make links there, listening on `tnet.sock`.
pub fn network_plugin_dir(root: &Path) -> PathBuf {
    let config = json!({
        "description": "berth's test network plugin",
        "documentation": "https://example.invalid/tnet",
        "entrypoint": ["/usr/bin/python3", "/tnet.py"],
        "interface": {"types": ["docker.networkdriver/1.0"], "socket": "tnet.sock"},
        "network": {"type": "host"},
        "linux": {"capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"]},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind",
                    "options": ["rbind", "ro"]}],
        "env": [{"name": "SOCKET", "value": "/run/docker/plugins/tnet.sock"},
                {"name": "PATH", "value": "/usr/sbin:/usr/bin"}],
    });
    python_plugin_dir(
        &root.join("plugin-tnet"),
        ("tnet.py", include_str!("../tests/plugin/tnet.py")),
        &config,
    )
}

/// The IPAM plugin (`tests/plugin/tipam.py`) as a managed plugin's
/// directory under `root`, listening on `tipam.sock`, picking from
/// `pools` when asked for none.
pub fn ipam_plugin_dir(root: &Path, pools: &str) -> PathBuf {
    let config = json!({
        "description": "berth's test IPAM plugin",
        "documentation": "https://example.invalid/tipam",
        "entrypoint": ["/usr/bin/python3", "/tipam.py"],
        "interface": {"types": ["docker.ipamdriver/1.0"], "socket": "tipam.sock"},
        "network": {"type": "none"},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind",
                    "options": ["rbind", "ro"]}],
        "env": [{"name": "SOCKET", "value": "/run/docker/plugins/tipam.sock"},
                {"name": "POOLS", "value": pools}],
    });
    python_plugin_dir(
        &root.join("plugin-tipam"),
        ("tipam.py", include_str!("../tests/plugin/tipam.py")),
        &config,
    )
}

/// Where a managed plugin's socket named `socket` is on the host.
pub fn socket_named(exec_root: &Path, id: &str, socket: &str) -> PathBuf {
    exec_root.join("plugins").join(&id[..12]).join(socket)
}

/// A plugin rootfs under `dir` that runs the host's python3 (its /usr
/// bound in by the plugin's config).
/// A managed plugin's directory `dir`: a rootfs that runs `script`
/// (its name and source) by the host's python3, and `config`.
fn python_plugin_dir(dir: &Path, script: (&str, &str), config: &Value) -> PathBuf {
    let rootfs = python_rootfs(dir);
    std::fs::write(rootfs.join(script.0), script.1).expect("plugin script");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("plugin config");
    dir.to_path_buf()
}

fn python_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["data", "tmp", "etc", "proc", "dev", "sys", "usr", "run"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("plugin rootfs");
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let _ = std::os::unix::fs::symlink(to, rootfs.join(link));
    }
    rootfs
}

/// The test plugin run on the host as a legacy plugin (as systemd would
/// run local-persist): on the unix socket `listen`, or on TCP when it is
/// None (its port returned); volumes under `root`. Killed by its PID when
/// dropped.
pub struct HostPlugin {
    child: std::process::Child,
    pub port: Option<u16>,
}

impl HostPlugin {
    pub fn start(
        dir: &Path,
        listen: Option<&Path>,
        root: &Path,
        env: &[(&str, &str)],
    ) -> HostPlugin {
        let script = dir.join("tvol.py");
        std::fs::write(&script, include_str!("../tests/plugin/tvol.py")).expect("plugin script");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(&script)
            .env("ROOT", root)
            .env("DEBUG", "legacy")
            .envs(env.iter().copied());
        let port_file = dir.join(format!("port-{}", testsupport::unique("p")));
        match listen {
            Some(sock) => cmd.env("SOCKET", sock),
            None => cmd.env("PORT_FILE", &port_file),
        };
        let child = cmd
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting python3");
        let mut p = HostPlugin { child, port: None };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match listen {
                Some(sock) => std::os::unix::net::UnixStream::connect(sock).is_ok(),
                None => {
                    p.port = std::fs::read_to_string(&port_file)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    p.port.is_some()
                }
            };
            if ready {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the host plugin did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl HostPlugin {
    /// The authorization plugin (`tests/plugin/authz.py`) on the socket
    /// `listen`.
    pub fn start_authz(dir: &Path, listen: &Path) -> HostPlugin {
        HostPlugin::start_script(
            dir,
            "authz.py",
            include_str!("../tests/plugin/authz.py"),
            listen,
            &[],
        )
    }

    /// The network plugin (`tests/plugin/tnet.py`) on the socket `listen`.
    pub fn start_network(dir: &Path, listen: &Path, env: &[(&str, &str)]) -> HostPlugin {
        HostPlugin::start_script(
            dir,
            "tnet.py",
            include_str!("../tests/plugin/tnet.py"),
            listen,
            env,
        )
    }

    /// The IPAM plugin (`tests/plugin/tipam.py`) on the socket `listen`,
    /// picking from `pools` (comma-separated) when asked for none.
    pub fn start_ipam(dir: &Path, listen: &Path, pools: &str) -> HostPlugin {
        HostPlugin::start_script(
            dir,
            "tipam.py",
            include_str!("../tests/plugin/tipam.py"),
            listen,
            &[("POOLS", pools)],
        )
    }

    /// The Python plugin `text` (written to `dir/file`) on the socket
    /// `listen`, once it listens.
    fn start_script(
        dir: &Path,
        file: &str,
        text: &str,
        listen: &Path,
        env: &[(&str, &str)],
    ) -> HostPlugin {
        let script = dir.join(file);
        std::fs::write(&script, text).expect("plugin script");
        let child = std::process::Command::new("python3")
            .arg(&script)
            .env("SOCKET", listen)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting python3");
        let p = HostPlugin { child, port: None };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(listen).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin {file} did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }
}

impl Drop for HostPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where berthd puts an enabled plugin's socket (`<exec-root>/plugins/`
/// and the id's first 12 characters).
pub fn socket(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("plugins").join(&id[..12]).join("tvol.sock")
}

/// One call of Docker's plugin protocol on the plugin's socket, as the
/// engine makes it; None when nothing answers there.
pub fn call(socket: &Path, method: &str, args: &Value) -> Option<Value> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = args.to_string();
    write!(
        s,
        "POST /{method} HTTP/1.0\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (_, body) = raw.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}
