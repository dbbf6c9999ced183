//! Who is calling and what they may do. berthd knows its callers: the
//! peer's uid/gid on the unix socket (SO_PEERCRED) and the client
//! certificate's subject on TLS. daemon.json's `authorization` maps them
//! to roles: `admin` (everything, as Docker), `operator` (containers, but
//! nothing that is root on the host: no --privileged, no capabilities
//! beyond Docker's defaults, no host namespaces, no devices, no binds
//! outside an allowed list, never the engine's socket) and `viewer`
//! (reads). Refusals and privileged calls go to an audit log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

/// The caller of one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    Unix {
        uid: u32,
        gid: u32,
    },
    /// A client certificate's subject common name.
    Cert(String),
    /// Plain TCP (--tls=false): nobody in particular.
    Anonymous,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Unix { uid, gid } => write!(f, "uid:{uid} gid:{gid}"),
            Identity::Cert(cn) => write!(f, "cn:{cn}"),
            Identity::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// daemon.json `authorization`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// "uid:1000", "gid:1001", "cn:alice", "anonymous" → a role.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The role of a caller the map does not name (default: admin, as
    /// Docker: whoever may reach the socket or holds a certificate).
    #[serde(default, rename = "default-role")]
    pub default_role: Option<String>,
    /// Host paths operators may bind-mount (and what is below them).
    #[serde(default, rename = "allowed-bind-paths")]
    pub allowed_bind_paths: Vec<PathBuf>,
    #[serde(default, rename = "audit-log")]
    pub audit_log: Option<PathBuf>,
}

/// Why a call was refused: the rule, and a sentence for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub rule: &'static str,
    pub message: String,
}

/// Capabilities Docker gives every container: adding them changes nothing.
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        for (who, role) in &self.roles {
            if Role::parse(role).is_none() {
                return Err(format!(
                    "authorization.roles[{who:?}]: unknown role {role:?} (admin, operator, viewer)"
                ));
            }
            let ok = who == "anonymous"
                || who
                    .strip_prefix("uid:")
                    .is_some_and(|u| u.parse::<u32>().is_ok())
                || who
                    .strip_prefix("gid:")
                    .is_some_and(|g| g.parse::<u32>().is_ok())
                || who.strip_prefix("cn:").is_some_and(|c| !c.is_empty());
            if !ok {
                return Err(format!(
                    "authorization.roles: {who:?} is not uid:N, gid:N, cn:NAME or anonymous"
                ));
            }
        }
        if let Some(r) = &self.default_role
            && Role::parse(r).is_none()
        {
            return Err(format!("authorization.default-role: unknown role {r:?}"));
        }
        Ok(())
    }

    pub fn role_of(&self, id: &Identity) -> Role {
        let named = |k: String| self.roles.get(&k).and_then(|r| Role::parse(r));
        let mapped = match id {
            // root on the host is root in berth.
            Identity::Unix { uid: 0, .. } => return Role::Admin,
            Identity::Unix { uid, gid } => {
                named(format!("uid:{uid}")).or_else(|| named(format!("gid:{gid}")))
            }
            Identity::Cert(cn) => named(format!("cn:{cn}")),
            Identity::Anonymous => named("anonymous".into()),
        };
        mapped
            .or_else(|| self.default_role.as_deref().and_then(Role::parse))
            .unwrap_or(Role::Admin)
    }

    /// Whether a bind source is inside an allowed path, judged on the path
    /// the kernel would mount: `..` resolved, and symlinks followed (an
    /// operator's container could have left `allowed/link -> /`).
    fn bind_allowed(&self, source: &str) -> bool {
        let real = resolve(source);
        self.allowed_bind_paths
            .iter()
            .any(|a| real.starts_with(resolve(&a.to_string_lossy())))
    }

    /// What in a create body would be root on the host, as (rule, why).
    fn host_powers(&self, body: &Value) -> Vec<(&'static str, String)> {
        let hc = &body["HostConfig"];
        let mut out = Vec::new();
        if hc["Privileged"].as_bool() == Some(true) {
            out.push(("no-privileged", "run privileged containers".to_string()));
        }
        for c in hc["CapAdd"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap_or("").to_ascii_uppercase();
            let c = c.trim_start_matches("CAP_");
            if !DEFAULT_CAPS.contains(&c) {
                out.push(("no-added-capabilities", format!("add capability {c}")));
            }
        }
        for (k, what) in [
            ("NetworkMode", "network"),
            ("PidMode", "pid"),
            ("IpcMode", "ipc"),
            ("UTSMode", "uts"),
            ("UsernsMode", "user"),
            ("CgroupnsMode", "cgroup"),
        ] {
            if hc[k].as_str() == Some("host") {
                out.push((
                    "no-host-namespaces",
                    format!("use the host's {what} namespace"),
                ));
            }
        }
        if hc["Devices"].as_array().is_some_and(|d| !d.is_empty()) {
            out.push(("no-devices", "pass host devices".to_string()));
        }
        if hc["SecurityOpt"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o.as_str().is_some_and(|o| o.contains("unconfined")))
        {
            out.push(("no-unconfined", "turn off seccomp or AppArmor".to_string()));
        }
        let mut sources: Vec<String> = hc["Binds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str())
            .filter_map(|b| b.split(':').next())
            .filter(|s| s.starts_with('/'))
            .map(String::from)
            .collect();
        sources.extend(
            hc["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["Type"] == "bind")
                .filter_map(|m| m["Source"].as_str().map(String::from)),
        );
        for s in sources {
            let name = Path::new(&s)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            if name.ends_with(".sock") && (name.contains("docker") || name.contains("berth")) {
                out.push(("no-engine-socket", format!("mount the engine's socket {s}")));
            } else if !self.bind_allowed(&s) {
                out.push(("bind-outside-allowed", format!("bind-mount {s}")));
            }
        }
        out
    }

    /// The decision for one call; `body` is the JSON of a container create
    /// or exec create (the calls whose bodies can ask for the host).
    pub fn check(
        &self,
        role: Role,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), Denial> {
        let deny = |rule: &'static str, what: String| {
            Err(Denial {
                rule,
                message: format!(
                    "authorization denied by berth's policy: role {} may not {what} (rule {rule})",
                    role.name()
                ),
            })
        };
        match role {
            Role::Admin => Ok(()),
            Role::Viewer => {
                let read = matches!(method, "GET" | "HEAD") && !path.ends_with("/attach/ws");
                // /auth checks credentials and changes nothing.
                if read || (method == "POST" && path == "/auth") {
                    Ok(())
                } else {
                    deny("viewer-read-only", format!("{method} {path}"))
                }
            }
            Role::Operator => {
                if let Some(b) = body {
                    if path == "/containers/create"
                        && let Some((rule, what)) = self.host_powers(b).into_iter().next()
                    {
                        return deny(rule, what);
                    }
                    if path.ends_with("/exec") && b["Privileged"].as_bool() == Some(true) {
                        return deny("no-privileged", "run privileged execs".into());
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether an allowed call used a power of the host (for the audit).
    pub fn is_privileged(&self, path: &str, body: Option<&Value>) -> bool {
        body.is_some_and(|b| {
            (path == "/containers/create" && !self.host_powers(b).is_empty())
                || (path.ends_with("/exec") && b["Privileged"].as_bool() == Some(true))
        })
    }

    /// One JSON line per refusal or privileged call.
    pub fn audit(
        &self,
        id: &Identity,
        role: Role,
        method: &str,
        path: &str,
        decision: &str,
        rule: &str,
    ) {
        let Some(p) = &self.audit_log else { return };
        let line = json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "identity": id.to_string(),
            "role": role.name(),
            "method": method,
            "path": path,
            "decision": decision,
            "rule": rule,
        });
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{line}");
            }
            Err(e) => tracing::error!("audit log {}: {e}", p.display()),
        }
    }
}

/// A host path as it resolves now: lexically cleaned, then its longest
/// existing prefix with symlinks followed (what does not exist yet is made
/// below that, as the bind source Docker creates).
fn resolve(path: &str) -> PathBuf {
    let clean = PathBuf::from(crate::daemon::volumes::clean(path));
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return clean,
        }
    }
}

/// The subject CN of a client certificate (DER).
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            roles: [
                ("uid:1000", "operator"),
                ("cn:ro", "viewer"),
                ("gid:50", "viewer"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            allowed_bind_paths: vec!["/srv/data".into()],
            ..Default::default()
        }
    }

    #[test]
    fn identities_map_to_roles() {
        let p = policy();
        assert_eq!(p.role_of(&Identity::Unix { uid: 0, gid: 0 }), Role::Admin);
        assert_eq!(
            p.role_of(&Identity::Unix {
                uid: 1000,
                gid: 1000
            }),
            Role::Operator
        );
        assert_eq!(p.role_of(&Identity::Unix { uid: 7, gid: 50 }), Role::Viewer);
        assert_eq!(p.role_of(&Identity::Cert("ro".into())), Role::Viewer);
        assert_eq!(p.role_of(&Identity::Cert("other".into())), Role::Admin);
        assert!(p.validate().is_ok());
        let bad = Policy {
            roles: [("uid:x".to_string(), "admin".to_string())].into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn operators_get_containers_but_not_the_host() {
        let p = policy();
        let create = |hc: Value| json!({"Image": "busybox", "HostConfig": hc});
        let op = |b: Value| p.check(Role::Operator, "POST", "/containers/create", Some(&b));
        assert!(op(create(json!({}))).is_ok());
        assert!(op(create(json!({"CapAdd": ["NET_BIND_SERVICE"]}))).is_ok());
        assert!(op(create(json!({"Binds": ["/srv/data/x:/x", "named:/y"]}))).is_ok());
        assert_eq!(
            op(create(json!({"Privileged": true}))).unwrap_err().rule,
            "no-privileged"
        );
        assert_eq!(
            op(create(json!({"CapAdd": ["SYS_ADMIN"]})))
                .unwrap_err()
                .rule,
            "no-added-capabilities"
        );
        assert_eq!(
            op(create(json!({"PidMode": "host"}))).unwrap_err().rule,
            "no-host-namespaces"
        );
        assert_eq!(
            op(create(json!({"Binds": ["/:/host"]}))).unwrap_err().rule,
            "bind-outside-allowed"
        );
        assert_eq!(
            op(create(json!({"Mounts": [{"Type": "bind", "Source": "/run/berth/berthd.sock", "Target": "/s"}]}))).unwrap_err().rule,
            "no-engine-socket"
        );
        assert_eq!(
            op(create(json!({"Binds": ["/srv/data/../../etc:/x"]})))
                .unwrap_err()
                .rule,
            "bind-outside-allowed"
        );
        let e = p.check(
            Role::Operator,
            "POST",
            "/containers/x/exec",
            Some(&json!({"Privileged": true})),
        );
        assert!(
            e.unwrap_err()
                .message
                .contains("role operator may not run privileged execs")
        );
        assert!(
            p.check(Role::Viewer, "GET", "/containers/json", None)
                .is_ok()
        );
        assert_eq!(
            p.check(Role::Viewer, "POST", "/containers/create", None)
                .unwrap_err()
                .rule,
            "viewer-read-only"
        );
    }

    #[test]
    fn binds_are_judged_where_they_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::os::unix::fs::symlink("/", allowed.join("link")).unwrap();
        let p = Policy {
            allowed_bind_paths: vec![allowed.clone()],
            ..Default::default()
        };
        let a = allowed.display();
        assert!(p.bind_allowed(&format!("{a}/sub")));
        assert!(p.bind_allowed(&format!("{a}/not/yet/made")));
        assert!(!p.bind_allowed(&format!("{a}/link")));
        assert!(!p.bind_allowed(&format!("{a}/link/etc")));
        assert!(!p.bind_allowed(&format!("{a}/../allowed-not")));
        assert!(!p.bind_allowed(&format!("{a}/sub/../../..")));
    }
}
