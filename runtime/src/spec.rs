//! Loading config.json and refusing what cannot work before anything is created.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{Error, Result};

/// Reads `<bundle>/config.json`. A type error names the field's path
/// (`process.user.uid: invalid type: …`), not just a line and column.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Config {
            path: path.clone(),
            reason: "no such file: the bundle has no config.json".into(),
        },
        _ => Error::io("reading", &path, e),
    })?;
    parse(&data).map_err(|reason| Error::Config { path, reason })
}

pub fn parse(data: &[u8]) -> std::result::Result<Spec, String> {
    from_json(data, true)
}

/// `T` from JSON; an error names the field it is in, and its line and
/// column when they are the user's (`positions`).
pub fn from_json<T: serde::de::DeserializeOwned>(
    data: &[u8],
    positions: bool,
) -> std::result::Result<T, String> {
    serde_json::from_slice(data).map_err(|e| {
        let at = crate::json_path::offset(data, e.line(), e.column());
        let path = crate::json_path::at(data, at);
        let mut message = e.to_string();
        if !positions {
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_string();
            }
        }
        if path.is_empty() || e.is_syntax() || e.is_eof() {
            format!("malformed JSON: {message}")
        } else {
            format!("field {path}: {message}")
        }
    })
}

pub fn parse_process(path: &Path) -> Result<Process> {
    let data = fs::read(path).map_err(|e| Error::io("reading process file", path, e))?;
    let bad = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let mut v: serde_json::Value = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
    // runc takes a process without `user` as uid and gid 0 (Go's zero
    // values); oci-spec's type insists on the field.
    if let Some(o) = v.as_object_mut() {
        o.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    // Through bytes again: one instantiation of the deserializer for
    // config.json and process files alike.
    let data = serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?;
    from_json(&data, false).map_err(bad)
}

/// The rootfs, absolute (relative paths are relative to the bundle).
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| Error::Config {
        path: bundle.join("config.json"),
        reason: "root is missing".into(),
    })?;
    let p = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(Error::Invalid(format!(
            "rootfs {} is not a directory",
            p.display()
        ))),
        Err(_) => Err(Error::Invalid(format!(
            "rootfs {} does not exist",
            p.display()
        ))),
    }
}

/// Checks that make `create` fail early, with nothing left behind.
pub fn validate(spec: &Spec, config_path: &Path) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::Config {
            path: config_path.to_path_buf(),
            reason,
        })
    };
    let Some(process) = spec.process() else {
        return bad("process is missing".into());
    };
    validate_process(process).or_else(bad)?;
    let Some(linux) = spec.linux() else {
        return bad("linux is missing".into());
    };
    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return bad(format!("namespace {:?} is listed twice", ns.typ()));
        }
        if let Some(p) = ns.path()
            && !p.exists()
        {
            return bad(format!("namespace path {} does not exist", p.display()));
        }
    }
    let has = |t| seen.contains(&t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return bad("hostname is set but there is no uts namespace".into());
    }
    if has(LinuxNamespaceType::User) {
        let no_uid = linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty());
        let no_gid = linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty());
        let joining = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
        if !joining && (no_uid || no_gid) {
            return bad("a user namespace needs uidMappings and gidMappings".into());
        }
    }
    if let Some(prop) = linux.rootfs_propagation()
        && !prop.is_empty()
        && crate::rootfs::propagation_flag(prop).is_none()
    {
        return bad(format!(
            "rootfsPropagation {prop:?} is not a propagation mode"
        ));
    }
    // runc's words: a hybrid host counts as v1 (its unified tree has no
    // controllers to write these files to).
    let unified = linux
        .resources()
        .as_ref()
        .and_then(|r| r.unified().as_ref())
        .is_some_and(|u| !u.is_empty());
    if unified && crate::cgroups::layout() != Some(crate::cgroups::Layout::V2) {
        return bad("cannot use unified on cgroup v1".into());
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return bad(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            ));
        }
    }
    Ok(())
}

pub fn validate_process(process: &Process) -> std::result::Result<(), String> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args must name a program to run".into());
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {} is not an absolute path",
            process.cwd().display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let err =
            parse(br#"{"ociVersion":"1.0.2","process":{"user":{"uid":"root","gid":0},"cwd":"/"}}"#)
                .unwrap_err();
        assert!(err.contains("process.user.uid"), "{err}");
    }

    #[test]
    fn malformed_json_is_reported_as_such() {
        let err = parse(b"{\"ociVersion\": ").unwrap_err();
        assert!(
            err.contains("malformed JSON") || err.contains("EOF"),
            "{err}"
        );
    }

    #[test]
    fn relative_cwd_is_refused() {
        let spec = parse(br#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"tmp"},"root":{"path":"rootfs"},"linux":{}}"#).unwrap();
        let err = validate(&spec, Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
    }
}
