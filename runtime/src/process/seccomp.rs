//! The spec's seccomp section compiled by libseccomp, as runc does it: syscall
//! names unknown to this libseccomp are skipped, conditions on the same argument
//! become separate rules (libseccomp ANDs conditions within a rule), and
//! libseccomp's own no_new_privs is off so that only the spec decides it.
//!
//! Compiling Docker's default profile costs more than the rest of a container
//! start (~13 ms here), and engines send the same few profiles over and over:
//! the compiled BPF is kept under the runtime root, keyed by a digest of the
//! profile and of the libseccomp that compiled it, and loaded with seccomp(2).

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which berth-runtime does not support"
                    .into(),
            ));
        }
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

fn seccomp_err(what: String) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    move |e| Error::Seccomp(format!("{what}: {e}"))
}

pub fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(seccomp_err("creating filter".into()))?;
    ctx.set_ctl_nnp(false)
        .map_err(seccomp_err("turning off libseccomp's no_new_privs".into()))?;
    for arch in spec.architectures().iter().flatten() {
        let name = arch.to_string();
        let a = ScmpArch::from_str(&name).map_err(seccomp_err(format!("architecture {name}")))?;
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a)
                .map_err(seccomp_err(format!("adding architecture {name}")))?;
        }
    }
    for flag in spec.flags().iter().flatten() {
        let r = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map(|_| ())
            }
        };
        if let Err(e) = r {
            tracing::warn!("seccomp flag {flag} not supported here: {e}");
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let args = rule.args().clone().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let mut per_index = [0usize; 6];
        for a in &args {
            if let Some(c) = per_index.get_mut(a.index()) {
                *c += 1;
            }
        }
        let split = per_index.iter().any(|c| *c > 1);
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: skipping syscall {name} unknown to libseccomp");
                continue;
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, sys)
            } else if split {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sys, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
            };
            res.map_err(seccomp_err(format!("adding rule for {name}")))?;
        }
    }
    Ok(ctx)
}

/// A compiled filter: classic BPF as seccomp(2) takes it, and the flags the
/// spec asks for.
pub struct Program {
    filter: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// The largest program the kernel accepts (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
const INSN: usize = std::mem::size_of::<libc::sock_filter>();

impl Program {
    fn from_bytes(b: &[u8], flags: libc::c_ulong) -> Option<Program> {
        if b.is_empty() || !b.len().is_multiple_of(INSN) || b.len() / INSN > MAX_INSNS {
            return None;
        }
        let filter = b
            .chunks_exact(INSN)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program { filter, flags })
    }

    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
}

fn flags(spec: &LinuxSeccomp) -> libc::c_ulong {
    let mut f = 0;
    for flag in spec.flags().iter().flatten() {
        f |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with a notify listener, which we refuse.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    f
}

/// The filter of a container's spec, if it has one, through the cache under
/// the runtime's `root`.
pub fn for_spec(spec: &oci_spec::runtime::Spec, root: &Path) -> Result<Option<Program>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| compile(s, Some(&root.join(crate::container::SECCOMP_CACHE))))
        .transpose()
}

/// The filter for `spec`: from the cache in `cache_dir` when this profile was
/// compiled before, else compiled now and stored there (best effort: a
/// read-only or missing directory only costs the compile).
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program> {
    let flags = flags(spec);
    let key = cache_key(spec);
    let cached = cache_dir.map(|d| d.join(format!("{key}.bpf")));
    if let Some(prog) = cached
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .and_then(|b| Program::from_bytes(&b, flags))
    {
        return Ok(prog);
    }
    let bytes = export(&build(spec)?)?;
    let prog = Program::from_bytes(&bytes, flags).ok_or_else(|| {
        Error::Seccomp(format!(
            "libseccomp produced a program of {} bytes, which seccomp(2) cannot take",
            bytes.len()
        ))
    })?;
    if let (Some(dir), Some(path)) = (cache_dir, &cached)
        && let Err(e) = store(dir, path, &bytes)
    {
        tracing::debug!("not caching the seccomp filter in {}: {e}", dir.display());
    }
    Ok(prog)
}

/// Digest of the profile and of what compiles it: another libseccomp (or
/// berth-runtime) may compile the same profile differently.
fn cache_key(spec: &LinuxSeccomp) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).unwrap_or_default());
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    h.update(format!(
        "\0libseccomp {v}\0berth-runtime {}\0{}\0{kernel}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    ));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// libseccomp 2.5 exports only to a file descriptor: a memfd keeps it off disk.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    // SAFETY: a static C string name and flags; the fd is owned right away.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sys(
            "creating a memfd for the seccomp filter",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: fd was just created and nothing else owns it.
    let mut f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&f)
        .map_err(seccomp_err("exporting the filter".into()))?;
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut bytes))
        .map_err(|e| Error::Seccomp(format!("reading the exported filter: {e}")))?;
    Ok(bytes)
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Unique per process: concurrent creates may compile the same profile.
    let tmp = dir.join(format!(".tmp.{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Installs the filter on this thread (all threads with TSYNC).
pub fn load(p: &Program) -> Result<()> {
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at p.filter, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(Error::sys(
            "loading the seccomp filter",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .expect("a valid profile")
    }

    fn insns(p: &Program) -> Vec<(u16, u8, u8, u32)> {
        p.filter.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    #[test]
    fn compiled_filters_are_cached_and_a_bad_cache_entry_is_recompiled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("@seccomp");
        let fresh = compile(&profile(), None).expect("compiles");
        assert!(!fresh.is_empty());
        assert_eq!(fresh.flags, libc::SECCOMP_FILTER_FLAG_LOG);

        let first = compile(&profile(), Some(&cache)).expect("compiles");
        let files: Vec<_> = fs::read_dir(&cache).expect("cache dir").flatten().collect();
        assert_eq!(files.len(), 1, "one entry, no temp file left");
        let entry = files[0].path();
        let second = compile(&profile(), Some(&cache)).expect("from the cache");
        assert_eq!(insns(&first), insns(&fresh));
        assert_eq!(insns(&second), insns(&fresh));

        // A truncated entry is not trusted: compiled again and replaced.
        fs::write(&entry, b"short").expect("corrupting");
        let third = compile(&profile(), Some(&cache)).expect("recompiled");
        assert_eq!(insns(&third), insns(&fresh));
        assert_eq!(fs::read(&entry).expect("entry").len(), fresh.len() * INSN);

        // Another profile, another entry.
        let mut other = profile();
        other.set_default_action(LinuxSeccompAction::ScmpActLog);
        compile(&other, Some(&cache)).expect("compiles");
        assert_eq!(fs::read_dir(&cache).expect("cache dir").count(), 2);
    }
}
