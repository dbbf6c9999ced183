//! The `changes` of `commit` and `import` (`docker commit -c`, `docker
//! import -c`): Dockerfile instructions that only touch an image's config,
//! parsed by the build's Dockerfile parser and applied with the config's
//! own environment for substitution, as dockerd's BuildFromConfig does.

use dockerfile::{CommandForm, Kind};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};

/// The instructions dockerd accepts as a change.
const VALID: &[&str] = &[
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Every `changes` value of a query (clients send one parameter per
/// change), each possibly several lines.
pub fn from_query(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "changes")
        .flat_map(|(_, v)| v.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Applies `changes` to an image config (`Env`, `Cmd`, … at its top).
pub fn apply(cfg: &mut Value, changes: &[String]) -> Result<()> {
    if !cfg.is_object() {
        *cfg = json!({});
    }
    for change in changes {
        let word = change.split_whitespace().next().unwrap_or("");
        // Named in lower case, as dockerd names it.
        let word = word.to_ascii_lowercase();
        if !VALID.contains(&word.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{word} is not a valid change command"
            )));
        }
        let ins = dockerfile::parse_instruction(change, '\\')
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let env = env_of(cfg);
        let lookup = |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        let expand = |w: &str| {
            dockerfile::expand(w, &lookup, '\\').map_err(|e| ApiError::bad_request(e.to_string()))
        };
        match &ins.kind {
            Kind::Cmd(c) => cfg["Cmd"] = json!(command(c)),
            // An empty one clears it: null, as dockerd writes it.
            Kind::Entrypoint(c) => {
                let args = command(c);
                cfg["Entrypoint"] = if args.is_empty() {
                    Value::Null
                } else {
                    json!(args)
                };
            }
            Kind::Env(pairs) => {
                let mut env = env.clone();
                for (k, v) in pairs {
                    let (k, v) = (expand(k)?, expand(v)?);
                    match env.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => env.push((k, v)),
                    }
                }
                cfg["Env"] = json!(
                    env.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                );
            }
            Kind::Label(pairs) => {
                if !cfg["Labels"].is_object() {
                    cfg["Labels"] = json!({});
                }
                for (k, v) in pairs {
                    cfg["Labels"][expand(k)?] = json!(expand(v)?);
                }
            }
            Kind::Expose(ports) => {
                if !cfg["ExposedPorts"].is_object() {
                    cfg["ExposedPorts"] = json!({});
                }
                for p in ports {
                    for spec in port_specs(&expand(p)?)? {
                        cfg["ExposedPorts"][spec] = json!({});
                    }
                }
            }
            Kind::Volume(vols) => {
                if !cfg["Volumes"].is_object() {
                    cfg["Volumes"] = json!({});
                }
                for v in vols {
                    let v = expand(v)?;
                    if v.trim().is_empty() {
                        return Err(ApiError::bad_request(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    cfg["Volumes"][v] = json!({});
                }
            }
            Kind::User(u) => cfg["User"] = json!(expand(u)?),
            Kind::Workdir(w) => {
                let w = expand(w)?;
                // Relative to the current one, as in a Dockerfile.
                let base = cfg["WorkingDir"].as_str().unwrap_or("/").to_string();
                let path = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                cfg["WorkingDir"] = json!(path);
            }
            Kind::Stopsignal(s) => {
                let s = expand(s)?;
                crate::daemon::ops::parse_signal(&s)?;
                cfg["StopSignal"] = json!(s);
            }
            Kind::Onbuild(t) => {
                if !cfg["OnBuild"].is_array() {
                    cfg["OnBuild"] = json!([]);
                }
                if let Some(a) = cfg["OnBuild"].as_array_mut() {
                    a.push(json!(t));
                }
            }
            Kind::Healthcheck(h) => cfg["Healthcheck"] = healthcheck(h.as_ref()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{word} is not a valid change command"
                )));
            }
        }
    }
    Ok(())
}

/// A HEALTHCHECK instruction as an image config's Healthcheck (also the
/// build's).
pub fn healthcheck(h: Option<&dockerfile::Healthcheck>) -> Value {
    match h {
        None => json!({"Test": ["NONE"]}),
        Some(h) => json!({
            "Test": h.test,
            "Interval": h.interval_ns,
            "Timeout": h.timeout_ns,
            "StartPeriod": h.start_period_ns,
            "StartInterval": h.start_interval_ns,
            "Retries": h.retries,
        }),
    }
}

fn env_of(cfg: &Value) -> Vec<(String, String)> {
    cfg["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A shell form runs under `/bin/sh -c`, as the classic builder's default
/// shell.
fn command(c: &CommandForm) -> Vec<String> {
    match c {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

/// EXPOSE's forms: `80`, `53/udp`, `8000-8002` → `80/tcp`, `53/udp`,
/// `8000/tcp`, … (also the build's).
pub fn port_specs(p: &str) -> Result<Vec<String>> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ApiError::bad_request(format!("invalid proto: {proto}")));
    }
    let bad = || ApiError::bad_request(format!("invalid containerPort: {ports}"));
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_fill_the_config_as_a_dockerfile_would() {
        let mut cfg = json!({"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"});
        let changes: Vec<String> = [
            "ENV B=$A-two C=\"x y\"",
            "USER 1000:1000",
            "EXPOSE 80 53/udp 8000-8001",
            "LABEL a=\"b c\" d=e",
            "WORKDIR app",
            "CMD echo hi",
            "ENTRYPOINT [\"/bin/tini\"]",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply(&mut cfg, &changes).unwrap();
        assert_eq!(cfg["Env"], json!(["PATH=/bin", "A=1", "B=1-two", "C=x y"]));
        assert_eq!(cfg["User"], "1000:1000");
        for p in ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"] {
            assert!(cfg["ExposedPorts"][p].is_object(), "{p}: {cfg}");
        }
        assert_eq!(cfg["Labels"], json!({"a": "b c", "d": "e"}));
        assert_eq!(cfg["WorkingDir"], "/srv/app");
        assert_eq!(cfg["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(cfg["Entrypoint"], json!(["/bin/tini"]));
        assert!(cfg["Volumes"]["/data"].is_object());
        assert_eq!(cfg["StopSignal"], "SIGINT");
    }

    #[test]
    fn what_is_no_change_is_refused() {
        let mut cfg = json!({});
        let e = apply(&mut cfg, &["RUN true".to_string()]).unwrap_err();
        assert_eq!(e.message, "run is not a valid change command");
        assert!(apply(&mut cfg, &["EXPOSE 80/xyz".to_string()]).is_err());
    }

    #[test]
    fn each_changes_parameter_is_one_or_more_lines() {
        let got = from_query(Some(
            "changes=CMD%20%5B%22sh%22%5D&x=1&changes=ENV%20A%3D1%0AUSER%20me",
        ));
        assert_eq!(got, ["CMD [\"sh\"]", "ENV A=1", "USER me"]);
    }
}
