//! Docker's seccomp profile format turned into the runtime spec's
//! `linux.seccomp`, as dockerd does it: the architecture of this machine with its
//! sub-architectures, and each rule kept only if its `includes`/`excludes`
//! (capabilities, architectures, minimum kernel) match the container.

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// Docker's default profile (moby's profiles/seccomp/default.json).
pub const DOCKER_DEFAULT: &str = include_str!("../data/docker-default-seccomp.json");

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("seccomp profile: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("seccomp profile: architecture {0} has no entry in archMap")]
    NoArch(String),
}

/// Docker's profiles write `null` where a list is empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_as_empty")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "null_as_empty")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    syscalls: Vec<Rule>,
    #[serde(default, deserialize_with = "null_as_empty")]
    flags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default, deserialize_with = "null_as_empty")]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "null_as_empty")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// What the profile is filtered against.
pub struct Target<'a> {
    /// Go's name for the architecture (`amd64`, `arm64`, …), as the profile uses.
    pub go_arch: &'a str,
    /// The container's capabilities, `CAP_…`.
    pub caps: &'a [String],
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

impl Target<'_> {
    pub fn native_go_arch() -> &'static str {
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64" => "mips64le",
            other => other,
        }
    }
}

fn seccomp_arch(go_arch: &str) -> &'static str {
    match go_arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// The kernel version as (major, minor) from uname's release string.
pub fn parse_kernel(release: &str) -> (u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

pub fn running_kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| parse_kernel(s.trim()))
        .unwrap_or((0, 0))
}

/// Converts a Docker-format profile to the runtime spec's seccomp object.
pub fn to_oci(profile: &str, target: &Target<'_>) -> Result<Value, ProfileError> {
    let p: Profile = serde_json::from_str(profile)?;
    let arch = seccomp_arch(target.go_arch);
    let architectures: Vec<String> = if !p.arch_map.is_empty() {
        let m = p
            .arch_map
            .iter()
            .find(|m| m.architecture == arch)
            .ok_or_else(|| ProfileError::NoArch(arch.to_string()))?;
        std::iter::once(m.architecture.clone())
            .chain(m.sub_architectures.iter().cloned())
            .collect()
    } else {
        p.architectures.clone()
    };
    let mut syscalls = Vec::new();
    let none = Filter::default();
    for r in &p.syscalls {
        let (inc, exc) = (
            r.includes.as_ref().unwrap_or(&none),
            r.excludes.as_ref().unwrap_or(&none),
        );
        if !exc.arches.is_empty() && exc.arches.iter().any(|a| a == target.go_arch) {
            continue;
        }
        if !exc.caps.is_empty() && exc.caps.iter().any(|c| target.caps.contains(c)) {
            continue;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == target.go_arch) {
            continue;
        }
        if !inc.caps.is_empty() && !inc.caps.iter().all(|c| target.caps.contains(c)) {
            continue;
        }
        if let Some(min) = &inc.min_kernel
            && target.kernel < parse_kernel(min)
        {
            continue;
        }
        let mut names = r.names.clone();
        if let Some(n) = &r.name {
            names.push(n.clone());
        }
        let mut rule = json!({ "names": names, "action": r.action });
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if let Some(args) = &r.args
            && !args.is_empty()
        {
            rule["args"] = json!(args);
        }
        syscalls.push(rule);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !p.flags.is_empty() {
        out["flags"] = json!(p.flags);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[&str]) -> (Vec<String>, &'static str) {
        (caps.iter().map(|s| s.to_string()).collect(), "amd64")
    }

    #[test]
    fn default_profile_follows_capabilities_and_arch() {
        let (caps, arch) = target(&["CAP_CHOWN"]);
        let v = to_oci(
            DOCKER_DEFAULT,
            &Target {
                go_arch: arch,
                caps: &caps,
                kernel: (6, 1),
            },
        )
        .unwrap();
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let names: Vec<String> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect();
        assert!(
            names.contains(&"arch_prctl".to_string()),
            "amd64-only rule kept"
        );
        assert!(
            !names.contains(&"s390_pci_mmio_read".to_string()),
            "s390 rule dropped"
        );
        assert!(
            !names.contains(&"unshare".to_string()),
            "CAP_SYS_ADMIN rule dropped without the cap"
        );
        // Without CAP_SYS_ADMIN, clone3 gets ENOSYS so libc falls back to clone.
        assert!(
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == json!(38))
        );

        let (caps, arch) = target(&["CAP_SYS_ADMIN"]);
        let v = to_oci(
            DOCKER_DEFAULT,
            &Target {
                go_arch: arch,
                caps: &caps,
                kernel: (6, 1),
            },
        )
        .unwrap();
        assert!(v.to_string().contains("\"unshare\""));
    }

    #[test]
    fn min_kernel_is_honoured() {
        let (caps, arch) = target(&[]);
        let old = to_oci(
            DOCKER_DEFAULT,
            &Target {
                go_arch: arch,
                caps: &caps,
                kernel: (4, 4),
            },
        )
        .unwrap();
        assert!(!old.to_string().contains("process_vm_readv"));
        assert_eq!(parse_kernel("6.18.44-fc-v669"), (6, 18));
    }
}
