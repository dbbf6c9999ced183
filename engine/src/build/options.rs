//! `POST /build`'s query, as the classic builder takes it: each parameter
//! checked, repeatable ones (`t`) kept whole.

use std::collections::BTreeMap;

use super::BuildError;
use crate::daemon::images::normalize;
use crate::types::Ulimit;

/// What a build was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// Names the result gets, normalised (docker.io/library/app:latest).
    pub tags: Vec<String>,
    /// `--build-arg`: a value, or none (taken from the environment by the
    /// client, absent when it had none).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub quiet: bool,
    pub cache_from: Vec<String>,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub shm_size: i64,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub ulimits: Vec<Ulimit>,
    /// `remote`: a context to fetch instead of the body's.
    pub remote: Option<super::remote::Remote>,
    /// X-Registry-Config: credentials by registry, for FROM of private images.
    pub auths: BTreeMap<String, berth_proto::types::v1::Auth>,
}

fn bad(m: impl Into<String>) -> BuildError {
    BuildError::Options(m.into())
}

fn boolean(v: &str) -> bool {
    crate::api::query::go_bool(v)
}

fn number(k: &str, v: &str) -> Result<i64, BuildError> {
    if v.is_empty() {
        return Ok(0);
    }
    v.parse()
        .map_err(|_| bad(format!("invalid value for {k}: {v:?} is not a number")))
}

impl Options {
    /// From the raw query string and the X-Registry-Config header.
    pub fn parse(query: &str, registry_config: Option<&str>) -> Result<Options, BuildError> {
        let mut o = Options {
            dockerfile: "Dockerfile".into(),
            rm: true,
            network_mode: "default".into(),
            ..Default::default()
        };
        // dockerd reads a single-valued parameter's first value (docker-py
        // sends `dockerfile` twice for a Dockerfile outside the context).
        let mut dockerfile_seen = false;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (k, v) = (k.as_ref(), v.as_ref());
            match k {
                "dockerfile" if !v.is_empty() && !dockerfile_seen => {
                    dockerfile_seen = true;
                    o.dockerfile = v.to_string();
                }
                "dockerfile" => {}
                "t" if !v.is_empty() => {
                    let n = normalize(v).map_err(|e| bad(format!("invalid tag {v:?}: {e}")))?;
                    if n.contains('@') {
                        return Err(bad(format!(
                            "invalid tag {v:?}: a tag cannot name a digest"
                        )));
                    }
                    o.tags.push(n);
                }
                "buildargs" if !v.is_empty() => {
                    o.build_args = json_param(k, v)?;
                }
                "labels" if !v.is_empty() => {
                    o.labels = json_param(k, v)?;
                }
                "cachefrom" if !v.is_empty() => {
                    o.cache_from = json_param(k, v)?;
                }
                "extrahosts" if !v.is_empty() => {
                    o.extra_hosts
                        .extend(v.split(',').map(|h| h.trim().to_string()));
                }
                "ulimits" if !v.is_empty() => {
                    o.ulimits = json_param(k, v)?;
                }
                "target" if !v.is_empty() => o.target = Some(v.to_ascii_lowercase()),
                "nocache" => o.no_cache = boolean(v),
                "pull" => o.pull = boolean(v),
                "rm" => o.rm = v.is_empty() || boolean(v),
                "forcerm" => o.force_rm = boolean(v),
                "q" => o.quiet = boolean(v),
                "networkmode" if !v.is_empty() => o.network_mode = v.to_string(),
                "shmsize" => o.shm_size = number(k, v)?,
                "memory" => o.memory = number(k, v)?,
                "memswap" => o.memory_swap = number(k, v)?,
                "cpushares" => o.cpu_shares = number(k, v)?,
                "cpuperiod" => o.cpu_period = number(k, v)?,
                "cpuquota" => o.cpu_quota = number(k, v)?,
                "cpusetcpus" => o.cpuset_cpus = v.to_string(),
                "cpusetmems" => o.cpuset_mems = v.to_string(),
                "platform" if !v.is_empty() => check_platform(v)?,
                // Linux has the default isolation only, as dockerd says.
                "isolation" if !v.is_empty() && !v.eq_ignore_ascii_case("default") => {
                    return Err(bad(format!("Unsupported isolation: {v:?}")));
                }
                "remote" if !v.is_empty() => o.remote = Some(super::remote::Remote::parse(v)?),
                "squash" if boolean(v) => {
                    return Err(bad("squash is only supported with experimental mode"));
                }
                "outputs" if !v.is_empty() && v != "[]" => {
                    return Err(bad("outputs require BuildKit"));
                }
                "version" if !v.is_empty() && v != "1" => {
                    return Err(bad(format!(
                        "builder version {v} is not supported: berthd runs the classic builder (version 1)"
                    )));
                }
                _ => {}
            }
        }
        if let Some(h) = registry_config.filter(|h| !h.is_empty()) {
            o.auths = registry_config_auths(h);
        }
        if o.shm_size < 0 || o.memory < 0 || o.cpu_shares < 0 {
            return Err(bad("shmsize, memory and cpushares may not be negative"));
        }
        Ok(o)
    }
}

/// A JSON-valued parameter; `null` is an empty one, as Go's client sends a
/// map or list it was not given (every build from the Go SDK has
/// `buildargs=null`).
fn json_param<T: serde::de::DeserializeOwned + Default>(k: &str, v: &str) -> Result<T, BuildError> {
    serde_json::from_str::<Option<T>>(v)
        .map(Option::unwrap_or_default)
        .map_err(|e| bad(format!("invalid {k}: {e}")))
}

/// The builder makes images of this machine's platform only; a platform
/// that does not parse is refused in containerd's words, as dockerd does.
fn check_platform(p: &str) -> Result<(), BuildError> {
    let host = crate::daemon::images::host_architecture();
    let platform = crate::daemon::images::parse_platform(p).map_err(bad)?;
    if platform.os != "linux" || platform.arch != host {
        return Err(bad(format!(
            "platform {p:?} is not supported: this engine builds linux/{host} images only"
        )));
    }
    Ok(())
}

/// X-Registry-Config: base64 JSON of registry → {username, password, …};
/// one that does not decode is none, as dockerd ignores it.
fn registry_config_auths(h: &str) -> BTreeMap<String, berth_proto::types::v1::Auth> {
    let v = crate::api::images::decode_auth_json(h).unwrap_or_default();
    let mut out = BTreeMap::new();
    for (registry, a) in v.as_object().into_iter().flatten() {
        let host = registry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let host = if host == "index.docker.io" {
            "docker.io"
        } else {
            host
        };
        out.insert(host.to_string(), crate::api::images::auth_of(a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_clis_query_parses() {
        let o = Options::parse(
            "t=app&t=app%3Av2&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&target=Build&nocache=1&rm=1&forcerm=0&networkmode=host&shmsize=0&dockerfile=sub%2FDockerfile",
            None,
        )
        .unwrap();
        assert_eq!(
            o.tags,
            vec!["docker.io/library/app:latest", "docker.io/library/app:v2"]
        );
        assert_eq!(o.build_args["A"].as_deref(), Some("1"));
        assert_eq!(o.build_args["B"], None);
        assert_eq!(o.target.as_deref(), Some("build"));
        assert!(o.no_cache && o.rm && !o.force_rm);
        assert_eq!(o.network_mode, "host");
        assert_eq!(o.dockerfile, "sub/Dockerfile");
    }

    #[test]
    fn what_cannot_be_built_says_so() {
        assert!(Options::parse("platform=linux/s390x", None).is_err());
        let host = crate::daemon::images::host_architecture();
        assert!(Options::parse(&format!("platform=LINUX/{host}"), None).is_ok());
        let Err(BuildError::Options(m)) = Options::parse("platform=foo", None) else {
            panic!("a platform that does not parse was taken");
        };
        assert_eq!(
            m,
            r#""foo": unknown operating system or architecture: invalid argument"#
        );
        assert!(Options::parse("remote=/etc", None).is_err());
        assert!(Options::parse("remote=https://github.com/x/y.git", None).is_ok());
        assert!(Options::parse("t=UPPER", None).is_err());
        assert!(Options::parse("buildargs=nope", None).is_err());
        assert!(Options::parse("memory=abc", None).is_err());
        // Credentials that do not decode are none, as dockerd takes them.
        assert!(Options::parse("", Some("!!")).is_ok_and(|o| o.auths.is_empty()));
        let e = Options::parse("isolation=hyperv", None).unwrap_err();
        assert_eq!(e.to_string(), r#"Unsupported isolation: "hyperv""#);
        assert!(Options::parse("isolation=default", None).is_ok());
    }
}
