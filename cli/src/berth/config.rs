//! The CLI's configuration directory (`~/.berth`, or --config / BERTH_CONFIG):
//! `config.json` in Docker's format (auths, currentContext) and contexts in
//! Docker's layout (`contexts/meta/<sha256 of name>/meta.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sha2::Digest;

pub const DEFAULT_HOST: &str = "unix:///run/berth/berthd.sock";

pub struct Config {
    pub dir: PathBuf,
    pub file: Value,
}

pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_CONFIG") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".berth")
}

impl Config {
    pub fn load(dir: &Path) -> Result<Config> {
        let path = dir.join("config.json");
        let file = match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().is_empty() => json!({}),
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("loading config file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Config {
            dir: dir.to_path_buf(),
            file,
        })
    }

    pub fn save(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join("config.json");
        let tmp = self.dir.join("config.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.file)? + "\n")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn meta_dir(&self, name: &str) -> PathBuf {
        let h = sha2::Sha256::digest(name.as_bytes());
        self.dir.join("contexts").join("meta").join(hex::encode(h))
    }

    /// Where a context's TLS files live (ca.pem, cert.pem, key.pem), as
    /// Docker keeps them.
    pub fn tls_dir(&self, name: &str) -> PathBuf {
        let h = sha2::Sha256::digest(name.as_bytes());
        self.dir
            .join("contexts")
            .join("tls")
            .join(hex::encode(h))
            .join("docker")
    }

    pub fn context(&self, name: &str) -> Result<Value> {
        if name == "default" {
            return Ok(
                json!({"Name": "default", "Metadata": {"Description": "Current DOCKER_HOST based configuration"}, "Endpoints": {"docker": {"Host": DEFAULT_HOST, "SkipTLSVerify": false}}}),
            );
        }
        let p = self.meta_dir(name).join("meta.json");
        let t = std::fs::read_to_string(&p)
            .map_err(|_| anyhow::anyhow!("context {name:?} does not exist"))?;
        Ok(serde_json::from_str(&t)?)
    }

    pub fn contexts(&self) -> Vec<Value> {
        let mut out = vec![self.context("default").unwrap_or_default()];
        let base = self.dir.join("contexts").join("meta");
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path().join("meta.json"))
                && let Ok(v) = serde_json::from_str::<Value>(&t)
            {
                out.push(v);
            }
        }
        out[1..].sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
        out
    }

    pub fn save_context(&self, meta: &Value) -> Result<()> {
        let name = meta["Name"].as_str().unwrap_or("");
        let dir = self.meta_dir(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("meta.json"), serde_json::to_string(meta)?)?;
        Ok(())
    }

    pub fn remove_context(&self, name: &str) -> Result<()> {
        if name == "default" {
            bail!("default: context \"default\" cannot be removed");
        }
        let dir = self.meta_dir(name);
        if !dir.exists() {
            bail!("context \"{name}\" does not exist");
        }
        std::fs::remove_dir_all(dir)?;
        if let Some(tls) = self.tls_dir(name).parent()
            && tls.exists()
        {
            std::fs::remove_dir_all(tls)?;
        }
        Ok(())
    }

    pub fn current_context(&self) -> String {
        self.file["currentContext"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    }
}

pub fn validate_context_name(name: &str) -> Result<()> {
    let mut c = name.chars();
    let ok = matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && c.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if !ok || name == "default" {
        bail!(
            "context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\""
        );
    }
    Ok(())
}

/// Where to connect, with Docker's precedence: -H, then --context, then the
/// environment's host (BERTH_HOST, DOCKER_HOST), then its context
/// (BERTH_CONTEXT, DOCKER_CONTEXT), then the current context.
/// The host, and the context it came from when it came from one (its TLS
/// files go with it).
pub fn resolve(
    cfg: &Config,
    host_flag: Option<&str>,
    context_flag: Option<&str>,
) -> Result<(String, Option<String>)> {
    if let Some(h) = host_flag {
        if context_flag.is_some() {
            bail!("conflicting options: either specify --host or --context, not both");
        }
        return Ok((normalize_host(h)?, None));
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ctx_name = if let Some(c) = context_flag {
        Some(c.to_string())
    } else if let Some(h) = env("BERTH_HOST").or_else(|| env("DOCKER_HOST")) {
        return Ok((normalize_host(&h)?, None));
    } else {
        env("BERTH_CONTEXT").or_else(|| env("DOCKER_CONTEXT"))
    };
    let name = ctx_name.unwrap_or_else(|| cfg.current_context());
    let ctx = cfg.context(&name)?;
    let host = ctx["Endpoints"]["docker"]["Host"]
        .as_str()
        .unwrap_or(DEFAULT_HOST)
        .to_string();
    Ok((host, Some(name)))
}

pub fn normalize_host(h: &str) -> Result<String> {
    if h.starts_with("unix://") || h.starts_with("tcp://") || h.starts_with("ssh://") {
        return Ok(h.to_string());
    }
    if h.starts_with('/') {
        return Ok(format!("unix://{h}"));
    }
    bail!("invalid host {h:?}: use unix:///path")
}

/// Credentials from config.json's "auths" for a registry, as X-Registry-Auth.
pub fn registry_auth(cfg: &Config, registry: &str) -> Option<String> {
    use base64::Engine;
    let auths = cfg.file["auths"].as_object()?;
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        if registry == "docker.io" {
            "https://index.docker.io/v1/".to_string()
        } else {
            String::new()
        },
    ];
    let entry = keys
        .iter()
        .filter(|k| !k.is_empty())
        .find_map(|k| auths.get(k))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    let j = json!({"username": user, "password": pass, "serveraddress": registry});
    Some(base64::engine::general_purpose::URL_SAFE.encode(j.to_string()))
}

/// The context in effect when no --context is given: BERTH_CONTEXT or
/// DOCKER_CONTEXT, else the current one.
pub fn resolve_context_name(cfg: &Config) -> String {
    ["BERTH_CONTEXT", "DOCKER_CONTEXT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| cfg.current_context())
}
