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
use std::path::PathBuf;

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

impl Identity {
    /// Who owns what this caller creates: the uid (not the gid of the
    /// moment), the certificate's name, or nobody in particular.
    pub fn owner_key(&self) -> String {
        match self {
            Identity::Unix { uid, .. } => format!("uid:{uid}"),
            Identity::Cert(cn) => format!("cn:{cn}"),
            Identity::Anonymous => "anonymous".into(),
        }
    }
}

/// What the policy must know of the engine's objects to judge a call on
/// one of them.
pub trait Objects {
    /// The owner of the container that `key` names (id, name or id
    /// prefix): None when there is no such container, Some(None) when it
    /// was made before owners were kept.
    fn container_owner(&self, key: &str) -> Option<Option<String>>;
    /// The container an exec instance runs in.
    fn exec_container(&self, exec_id: &str) -> Option<String>;
    /// Host paths no operator may bind: the engine's sockets and state.
    fn protected_paths(&self) -> Vec<PathBuf>;
}

/// One API call as the policy sees it.
pub struct Call<'a> {
    pub method: &'a str,
    /// Without the version prefix.
    pub path: &'a str,
    pub query: &'a std::collections::HashMap<String, String>,
    /// The JSON body of the calls whose bodies can ask for the host.
    pub body: Option<&'a Value>,
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
    fn host_powers(&self, body: &Value, protected: &[PathBuf]) -> Vec<(&'static str, String)> {
        let hc = &body["HostConfig"];
        let mut out = Vec::new();
        // The caller's lists replace Docker's masked and read-only /proc
        // paths: a writable /proc/sys is root on the host.
        for k in ["MaskedPaths", "ReadonlyPaths"] {
            if !hc[k].is_null() {
                out.push((
                    "no-proc-paths",
                    format!("set {k} (Docker's defaults protect /proc and /sys)"),
                ));
            }
        }
        if hc["CgroupParent"].as_str().is_some_and(|p| !p.is_empty()) {
            out.push((
                "no-cgroup-parent",
                "place the container outside the engine's cgroup".to_string(),
            ));
        }
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
        // A volume a mount makes with options mounts what they name.
        let volume_opts = hc["Mounts"].as_array().into_iter().flatten().any(|m| {
            m["VolumeOptions"]["DriverConfig"]["Options"]
                .as_object()
                .is_some_and(|o| !o.is_empty())
        });
        if volume_opts {
            out.push((
                "no-volume-mounts",
                "create a volume that mounts what its options name".to_string(),
            ));
        }
        if hc["Devices"].as_array().is_some_and(|d| !d.is_empty()) {
            out.push(("no-devices", "pass host devices".to_string()));
        }
        // Only what tightens: any seccomp, AppArmor or label option can
        // loosen the default confinement (an inline profile allowing all).
        for o in hc["SecurityOpt"].as_array().into_iter().flatten() {
            let o = o.as_str().unwrap_or("");
            let tightens = matches!(
                o,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"
            );
            if !tightens {
                out.push((
                    "no-unconfined",
                    format!("change the seccomp, AppArmor or label confinement ({o:.40})"),
                ));
            }
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
            let real = resolve(&s);
            let is_socket = std::fs::metadata(&real)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
            let engine = protected
                .iter()
                .map(|p| resolve(&p.to_string_lossy()))
                .any(|p| p.starts_with(&real) || real.starts_with(&p));
            if !self.bind_allowed(&s) {
                out.push(("bind-outside-allowed", format!("bind-mount {s}")));
            } else if is_socket || engine {
                out.push((
                    "no-engine-socket",
                    format!("mount the engine's socket or state {s}"),
                ));
            }
        }
        out
    }

    /// The containers a create body joins (`container:<name>` modes).
    fn joined(body: &Value) -> Vec<String> {
        let hc = &body["HostConfig"];
        ["NetworkMode", "PidMode", "IpcMode"]
            .iter()
            .filter_map(|k| hc[*k].as_str()?.strip_prefix("container:"))
            .map(String::from)
            .collect()
    }

    /// The decision for one call by `who` (an [`Identity::owner_key`]).
    pub fn check(
        &self,
        role: Role,
        who: &str,
        call: &Call,
        objects: &dyn Objects,
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
        let (method, path) = (call.method, call.path);
        match role {
            Role::Admin => Ok(()),
            Role::Viewer => {
                // Reads of the engine's state; a container's files are not
                // state (they may be the host's, through its binds), nor is
                // what a registry holds (the engine would call any host a
                // viewer names, as a pull does).
                let files = path.ends_with("/archive") || path.ends_with("/export");
                let outside = path.starts_with("/distribution/");
                let read = matches!(method, "GET" | "HEAD")
                    && !path.ends_with("/attach/ws")
                    && !files
                    && !outside;
                if read {
                    Ok(())
                } else {
                    deny("viewer-read-only", format!("{method} {path}"))
                }
            }
            Role::Operator => {
                // Someone else's container may hold host powers its creator
                // was given: an operator acts only on its own.
                let mine = |key: &str| match objects.container_owner(key) {
                    None => true,
                    Some(owner) => owner.as_deref() == Some(who),
                };
                let not_mine = |key: &str| {
                    deny(
                        "own-containers-only",
                        format!("use container {key}, which it did not create"),
                    )
                };
                // A plugin runs with what its config asks (host mounts,
                // capabilities, the host's namespaces): making, changing or
                // running one is the host's root. Using an enabled one (a
                // volume it serves) is not.
                if path.starts_with("/plugins") && !matches!(method, "GET" | "HEAD") {
                    return deny(
                        "no-plugins",
                        format!("{method} {path}: install, set or run managed plugins"),
                    );
                }
                if let Some(b) = call.body {
                    if path == "/containers/create" {
                        let protected = objects.protected_paths();
                        if let Some((rule, what)) =
                            self.host_powers(b, &protected).into_iter().next()
                        {
                            return deny(rule, what);
                        }
                        if let Some(other) = Self::joined(b).into_iter().find(|o| !mine(o)) {
                            return not_mine(&other);
                        }
                    }
                    if path.ends_with("/exec") && b["Privileged"].as_bool() == Some(true) {
                        return deny("no-privileged", "run privileged execs".into());
                    }
                    // A volume's options mount what they name on the host
                    // (any directory or device): a bind by another name.
                    if path == "/volumes/create"
                        && b["DriverOpts"].as_object().is_some_and(|o| !o.is_empty())
                    {
                        return deny(
                            "no-volume-mounts",
                            "create a volume that mounts what its options name".into(),
                        );
                    }
                    if path == "/networks/create" {
                        let o = &b["Options"];
                        if !o["com.docker.network.bridge.name"].is_null() {
                            return deny(
                                "no-host-interfaces",
                                "name the network's bridge interface".into(),
                            );
                        }
                        for c in b["IPAM"]["Config"].as_array().into_iter().flatten() {
                            if let Some(route) = c["Subnet"]
                                .as_str()
                                .and_then(crate::daemon::networks::overlaps_host_route)
                            {
                                return deny(
                                    "no-host-routes",
                                    format!("create a network over the host's route {route}"),
                                );
                            }
                        }
                    }
                    if path.starts_with("/networks/")
                        && (path.ends_with("/connect") || path.ends_with("/disconnect"))
                        && let Some(c) = b["Container"].as_str()
                        && !mine(c)
                    {
                        return not_mine(c);
                    }
                }
                if path == "/build"
                    && call
                        .query
                        .get("networkmode")
                        .is_some_and(|m| m == "host" || m.starts_with("container:"))
                {
                    return deny(
                        "no-host-namespaces",
                        "build with the host's or another container's network".into(),
                    );
                }
                if path == "/containers/prune" {
                    return deny("own-containers-only", "prune everyone's containers".into());
                }
                if let Some(rest) = path.strip_prefix("/containers/")
                    && path != "/containers/create"
                    && path != "/containers/json"
                {
                    let (key, verb) = rest.split_once('/').unwrap_or((rest, ""));
                    let reads = (method == "GET"
                        && matches!(verb, "json" | "logs" | "top" | "stats" | "changes"))
                        || (method == "POST" && verb == "wait");
                    if !reads && !mine(key) {
                        return not_mine(key);
                    }
                }
                if let Some(rest) = path.strip_prefix("/exec/") {
                    let (exec, verb) = rest.split_once('/').unwrap_or((rest, ""));
                    if verb != "json"
                        && let Some(c) = objects.exec_container(exec)
                        && !mine(&c)
                    {
                        return not_mine(&c);
                    }
                }
                if path == "/commit"
                    && let Some(c) = call.query.get("container")
                    && !mine(c)
                {
                    return not_mine(c);
                }
                Ok(())
            }
        }
    }

    /// Whether an allowed call used a power of the host (for the audit).
    pub fn is_privileged(&self, path: &str, body: Option<&Value>, protected: &[PathBuf]) -> bool {
        body.is_some_and(|b| {
            (path == "/containers/create" && !self.host_powers(b, protected).is_empty())
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

    /// Containers "mine" (uid:1000's) and "admins" (root's); exec "x1" runs
    /// in "admins".
    struct Objs;
    impl Objects for Objs {
        fn container_owner(&self, key: &str) -> Option<Option<String>> {
            match key {
                "mine" => Some(Some("uid:1000".into())),
                "admins" => Some(Some("uid:0".into())),
                "old" => Some(None),
                _ => None,
            }
        }
        fn exec_container(&self, exec_id: &str) -> Option<String> {
            (exec_id == "x1").then(|| "admins".to_string())
        }
        fn protected_paths(&self) -> Vec<PathBuf> {
            vec!["/run/berth".into()]
        }
    }

    fn call(
        p: &Policy,
        role: Role,
        method: &str,
        path: &str,
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> Result<(), Denial> {
        let query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.check(
            role,
            "uid:1000",
            &Call {
                method,
                path,
                query: &query,
                body,
            },
            &Objs,
        )
    }

    #[test]
    fn operators_read_plugins_but_never_make_or_run_one() {
        let p = policy();
        for (method, path) in [
            ("POST", "/plugins/create"),
            ("POST", "/plugins/pull"),
            ("POST", "/plugins/x/enable"),
            ("POST", "/plugins/x/set"),
            ("POST", "/plugins/team/x:1/disable"),
            ("DELETE", "/plugins/x"),
        ] {
            let denied = call(&p, Role::Operator, method, path, None, &[]).unwrap_err();
            assert_eq!(denied.rule, "no-plugins", "{method} {path}");
        }
        for path in ["/plugins", "/plugins/x/json"] {
            assert!(call(&p, Role::Operator, "GET", path, None, &[]).is_ok());
        }
        assert!(call(&p, Role::Admin, "POST", "/plugins/create", None, &[]).is_ok());
        assert!(call(&p, Role::Viewer, "POST", "/plugins/x/enable", None, &[]).is_err());
    }

    #[test]
    fn operators_get_containers_but_not_the_host() {
        let p = policy();
        let create = |hc: Value| json!({"Image": "busybox", "HostConfig": hc});
        let op = |b: Value| {
            call(
                &p,
                Role::Operator,
                "POST",
                "/containers/create",
                Some(&b),
                &[],
            )
        };
        let rule = |b: Value| op(b).unwrap_err().rule;
        assert!(op(create(json!({}))).is_ok());
        assert!(op(create(json!({"CapAdd": ["NET_BIND_SERVICE"]}))).is_ok());
        assert!(op(create(json!({"Binds": ["/srv/data/x:/x", "named:/y"]}))).is_ok());
        assert!(op(create(json!({"SecurityOpt": ["no-new-privileges"]}))).is_ok());
        assert!(op(create(json!({"NetworkMode": "container:mine"}))).is_ok());
        assert_eq!(rule(create(json!({"Privileged": true}))), "no-privileged");
        assert_eq!(
            rule(create(json!({"CapAdd": ["SYS_ADMIN"]}))),
            "no-added-capabilities"
        );
        assert_eq!(
            rule(create(json!({"PidMode": "host"}))),
            "no-host-namespaces"
        );
        assert_eq!(
            rule(create(json!({"Binds": ["/:/host"]}))),
            "bind-outside-allowed"
        );
        assert_eq!(
            rule(create(
                json!({"Mounts": [{"Type": "bind", "Source": "/run/berth/berthd.sock", "Target": "/s"}]})
            )),
            "bind-outside-allowed"
        );
        assert_eq!(
            rule(create(json!({"Binds": ["/srv/data/../../etc:/x"]}))),
            "bind-outside-allowed"
        );
        assert_eq!(
            rule(create(json!({"ReadonlyPaths": ["/x"]}))),
            "no-proc-paths"
        );
        assert_eq!(rule(create(json!({"MaskedPaths": []}))), "no-proc-paths");
        assert_eq!(
            rule(create(json!({"CgroupParent": "/"}))),
            "no-cgroup-parent"
        );
        assert_eq!(
            rule(create(
                json!({"SecurityOpt": ["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]})
            )),
            "no-unconfined"
        );
        assert_eq!(
            rule(create(json!({"NetworkMode": "container:admins"}))),
            "own-containers-only"
        );
        let e = call(
            &p,
            Role::Operator,
            "POST",
            "/containers/mine/exec",
            Some(&json!({"Privileged": true})),
            &[],
        );
        assert!(
            e.unwrap_err()
                .message
                .contains("role operator may not run privileged execs")
        );
        // Its own containers, not others'.
        let op_on = |m: &str, path: &str| call(&p, Role::Operator, m, path, None, &[]);
        assert!(op_on("POST", "/containers/mine/exec").is_ok());
        assert!(op_on("DELETE", "/containers/mine").is_ok());
        assert!(op_on("GET", "/containers/admins/json").is_ok());
        assert!(op_on("GET", "/containers/admins/logs").is_ok());
        for (m, path) in [
            ("POST", "/containers/admins/exec"),
            ("POST", "/containers/old/start"),
            ("PUT", "/containers/admins/archive"),
            ("GET", "/containers/admins/archive"),
            ("GET", "/containers/admins/export"),
            ("DELETE", "/containers/admins"),
            ("POST", "/exec/x1/start"),
            ("POST", "/containers/prune"),
        ] {
            assert_eq!(
                op_on(m, path).unwrap_err().rule,
                "own-containers-only",
                "{m} {path}"
            );
        }
        assert!(
            call(
                &p,
                Role::Operator,
                "POST",
                "/commit",
                None,
                &[("container", "admins")]
            )
            .is_err()
        );
        assert!(
            call(
                &p,
                Role::Operator,
                "POST",
                "/commit",
                None,
                &[("container", "mine")]
            )
            .is_ok()
        );
        let connect = json!({"Container": "admins"});
        assert!(
            call(
                &p,
                Role::Operator,
                "POST",
                "/networks/n/connect",
                Some(&connect),
                &[]
            )
            .is_err()
        );
        let net = json!({"Name": "n", "Options": {"com.docker.network.bridge.name": "eth0"}});
        assert_eq!(
            call(
                &p,
                Role::Operator,
                "POST",
                "/networks/create",
                Some(&net),
                &[]
            )
            .unwrap_err()
            .rule,
            "no-host-interfaces"
        );
        let vol = |opts: Value| {
            call(
                &p,
                Role::Operator,
                "POST",
                "/volumes/create",
                Some(&json!({"Name": "v", "DriverOpts": opts})),
                &[],
            )
        };
        assert!(vol(json!({})).is_ok());
        let opted = json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
            "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"device": "/"}}}}]});
        assert_eq!(rule(create(opted)), "no-volume-mounts");
        assert_eq!(
            vol(json!({"type": "none", "o": "bind", "device": "/etc"}))
                .unwrap_err()
                .rule,
            "no-volume-mounts"
        );
        // Viewers read state, not files.
        let view = |m: &str, path: &str| call(&p, Role::Viewer, m, path, None, &[]);
        assert!(view("GET", "/containers/json").is_ok());
        assert_eq!(
            view("POST", "/containers/create").unwrap_err().rule,
            "viewer-read-only"
        );
        assert!(view("GET", "/containers/mine/archive").is_err());
        assert!(view("POST", "/auth").is_err());
        assert!(view("GET", "/distribution/10.0.0.1:80/x/json").is_err());
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
        // Inside the allowed paths, still never a socket or the engine's state.
        let _l = std::os::unix::net::UnixListener::bind(allowed.join("x.sock")).unwrap();
        let protected = vec![allowed.join("sub/state")];
        let powers = |src: String| {
            let b = json!({"HostConfig": {"Binds": [format!("{src}:/x")]}});
            p.host_powers(&b, &protected).first().map(|(rule, _)| *rule)
        };
        assert_eq!(powers(format!("{a}/x.sock")), Some("no-engine-socket"));
        assert_eq!(powers(format!("{a}/sub")), Some("no-engine-socket"));
        assert_eq!(
            powers(format!("{a}/sub/state/inner")),
            Some("no-engine-socket")
        );
        assert_eq!(powers(format!("{a}/not/yet/made")), None);
    }
}
