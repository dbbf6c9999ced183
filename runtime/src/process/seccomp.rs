//! The spec's seccomp section compiled by libseccomp, as runc does it: syscall
//! names unknown to this libseccomp are skipped, conditions on the same argument
//! become separate rules (libseccomp ANDs conditions within a rule), and
//! libseccomp's own no_new_privs is off so that only the spec decides it.
//!
//! A syscall newer than every syscall the profile names fails with ENOSYS,
//! not the profile's default errno, as runc makes it: glibc (and others)
//! fall back from a new syscall such as clone3 to an older one only on
//! ENOSYS, so under an EPERM default newer programs would break. A short
//! BPF stub in front of libseccomp's program does it (see [`enosys_stub`]).
//!
//! Compiling Docker's default profile costs more than the rest of a container
//! start (~13 ms here), and engines send the same few profiles over and over:
//! the compiled BPF is kept under /run/berth-runtime, keyed by a digest of the
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

/// The kernel's AUDIT_ARCH value of an architecture (seccomp_data.arch);
/// None for those the stub leaves alone.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 | ScmpArch::X32 => 0xC000_003E,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::Riscv64 => 0xC000_00F3,
        _ => return None,
    })
}

/// x32 syscall numbers carry this bit; x86_64's do not, on the same arch.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Where a stub instruction jumps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Label {
    Next,
    Enosys,
    Filter,
    Arch(usize),
    X32(usize),
}

enum Op {
    /// Loads the 32-bit word at this offset of seccomp_data.
    Load(u32),
    /// A conditional jump: BPF code, constant, then true and false targets.
    Jump(u16, u32, Label, Label),
    Always(Label),
    Ret(u32),
    Mark(Label),
}

/// The largest syscall number a profile names on one audit arch: native,
/// and x32's (which shares x86_64's audit arch).
type Maxima = (Option<u32>, Option<u32>);

/// runc's -ENOSYS stub, run before libseccomp's program: for each
/// architecture the profile lists, a syscall number above the largest it
/// names (in any rule) returns ENOSYS; everything else goes on to the
/// filter unchanged. There is none when the default action lets syscalls
/// through anyway (allow, log, trace). On x86_64 the x32 numbers (bit 30)
/// are compared with the x32 maximum, the others with x86_64's.
pub fn enosys_stub(spec: &LinuxSeccomp) -> Vec<libc::sock_filter> {
    use std::collections::BTreeMap;
    if matches!(
        spec.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    ) {
        return Vec::new();
    }
    // Per audit arch: the largest native number and the largest x32 one.
    let mut maxima: BTreeMap<u32, Maxima> = BTreeMap::new();
    for arch in spec.architectures().iter().flatten() {
        let Ok(a) = ScmpArch::from_str(&arch.to_string()) else {
            continue;
        };
        let Some(audit) = audit_arch(a) else {
            continue;
        };
        let max = spec
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .map(|s| s.as_raw_syscall())
            .filter(|n| *n > 0)
            .max();
        let Some(max) = max else {
            continue;
        };
        let e = maxima.entry(audit).or_default();
        if a == ScmpArch::X32 {
            e.1 = Some(max as u32);
        } else {
            e.0 = Some(max as u32);
        }
    }
    if maxima.is_empty() {
        return Vec::new();
    }
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    let groups: Vec<(u32, Maxima)> = maxima.into_iter().collect();
    let mut ops = vec![Op::Load(4)];
    for (i, (audit, _)) in groups.iter().enumerate() {
        ops.push(Op::Jump(JEQ, *audit, Label::Arch(i), Label::Next));
    }
    ops.push(Op::Always(Label::Filter));
    for (i, (audit, (native, x32))) in groups.iter().enumerate() {
        ops.push(Op::Mark(Label::Arch(i)));
        ops.push(Op::Load(0));
        let shared = *audit == 0xC000_003E;
        match (native, x32) {
            (Some(n), Some(x)) => {
                ops.push(Op::Jump(JSET, X32_SYSCALL_BIT, Label::X32(i), Label::Next));
                ops.push(Op::Jump(JGT, *n, Label::Enosys, Label::Filter));
                ops.push(Op::Mark(Label::X32(i)));
                ops.push(Op::Jump(JGT, *x, Label::Enosys, Label::Filter));
            }
            (Some(n), None) => {
                if shared {
                    // x32 is not listed: its syscalls go to the filter.
                    ops.push(Op::Jump(JSET, X32_SYSCALL_BIT, Label::Filter, Label::Next));
                }
                ops.push(Op::Jump(JGT, *n, Label::Enosys, Label::Filter));
            }
            (None, Some(x)) => {
                ops.push(Op::Jump(JSET, X32_SYSCALL_BIT, Label::Next, Label::Filter));
                ops.push(Op::Jump(JGT, *x, Label::Enosys, Label::Filter));
            }
            (None, None) => ops.push(Op::Always(Label::Filter)),
        }
    }
    ops.push(Op::Mark(Label::Enosys));
    ops.push(Op::Ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    ops.push(Op::Mark(Label::Filter));
    assemble(&ops).unwrap_or_default()
}

/// Resolves labels to the relative offsets of classic BPF (every jump is
/// forward); None if a conditional jump is too long for its 8 bits.
fn assemble(ops: &[Op]) -> Option<Vec<libc::sock_filter>> {
    let mut at = std::collections::HashMap::new();
    let mut pc = 0usize;
    for op in ops {
        match op {
            Op::Mark(l) => {
                at.insert(*l, pc);
            }
            _ => pc += 1,
        }
    }
    let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let mut out = Vec::with_capacity(pc);
    for op in ops {
        let pc = out.len();
        let off = |l: &Label| -> Option<usize> {
            match l {
                Label::Next => Some(0),
                l => at.get(l)?.checked_sub(pc + 1),
            }
        };
        out.push(match op {
            Op::Mark(_) => continue,
            Op::Load(k) => insn(
                (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                0,
                0,
                *k,
            ),
            Op::Jump(code, k, t, f) => insn(
                *code,
                u8::try_from(off(t)?).ok()?,
                u8::try_from(off(f)?).ok()?,
                *k,
            ),
            Op::Always(l) => insn((libc::BPF_JMP | libc::BPF_JA) as u16, 0, 0, off(l)? as u32),
            Op::Ret(k) => insn((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, *k),
        });
    }
    Some(out)
}

fn to_bytes(filter: &[libc::sock_filter]) -> Vec<u8> {
    let mut b = Vec::with_capacity(filter.len() * INSN);
    for f in filter {
        b.extend_from_slice(&f.code.to_ne_bytes());
        b.push(f.jt);
        b.push(f.jf);
        b.extend_from_slice(&f.k.to_ne_bytes());
    }
    b
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

/// The filter of a container's spec, if it has one, through the cache in
/// the runtime's private directory.
pub fn for_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Program>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| compile(s, Some(&crate::container::seccomp_cache_dir())))
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
    let mut bytes = to_bytes(&enosys_stub(spec));
    bytes.extend(export(&build(spec)?)?);
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
        "\0libseccomp {v}\0berth-runtime {}\0{}\0{kernel}\0enosys-stub 1",
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

    /// Runs a stub on one syscall: Some(ret) when it returns, None when it
    /// hands the syscall on to libseccomp's program.
    fn run_stub(stub: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while let Some(i) = stub.get(pc) {
            let jump = |taken: bool| pc + 1 + if taken { i.jt } else { i.jf } as usize;
            pc = match i.code {
                0x20 => {
                    acc = if i.k == 4 { arch } else { nr };
                    pc + 1
                }
                0x15 => jump(acc == i.k),
                0x25 => jump(acc > i.k),
                0x45 => jump(acc & i.k != 0),
                0x05 => pc + 1 + i.k as usize,
                0x06 => return Some(i.k),
                other => panic!("unexpected BPF code {other:#x}"),
            };
        }
        None
    }

    #[test]
    fn syscalls_newer_than_the_profile_fail_with_enosys() {
        let spec = |default: &str, archs: &[&str]| -> LinuxSeccomp {
            serde_json::from_value(serde_json::json!({
                "defaultAction": default,
                "architectures": archs,
                "syscalls": [
                    {"names": ["read", "write", "openat2"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["no_such_syscall"], "action": "SCMP_ACT_ALLOW"}
                ]
            }))
            .expect("a valid profile")
        };
        let (x86_64, i386) = (0xC000_003E, 0x4000_0003);
        let enosys = Some(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        let stub = enosys_stub(&spec(
            "SCMP_ACT_ERRNO",
            &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ));
        // openat2 is 437 on x86_64: clone3 (435) is the filter's to judge,
        // 438 and up are unknown to the profile.
        assert_eq!(run_stub(&stub, x86_64, 435), None);
        assert_eq!(run_stub(&stub, x86_64, 437), None);
        assert_eq!(run_stub(&stub, x86_64, 438), enosys);
        assert_eq!(run_stub(&stub, x86_64, 1000), enosys);
        // x32 numbers are compared with x32's maximum (bit 30 set).
        assert_eq!(run_stub(&stub, x86_64, X32_SYSCALL_BIT | 437), None);
        assert_eq!(run_stub(&stub, x86_64, X32_SYSCALL_BIT | 1000), enosys);
        // i386 has its own numbers: openat2 is 437 there too.
        assert_eq!(run_stub(&stub, i386, 300), None);
        assert_eq!(run_stub(&stub, i386, 1000), enosys);
        // An architecture the profile does not list goes to the filter,
        // which applies its bad-arch action.
        assert_eq!(run_stub(&stub, 0xC000_00B7, 1000), None);
        // Without x32 listed, its syscalls are left to the filter.
        let stub = enosys_stub(&spec("SCMP_ACT_KILL", &["SCMP_ARCH_X86_64"]));
        assert_eq!(run_stub(&stub, x86_64, X32_SYSCALL_BIT | 1000), None);
        assert_eq!(run_stub(&stub, x86_64, 1000), enosys);
        // A default that lets syscalls through needs no stub.
        assert!(enosys_stub(&spec("SCMP_ACT_ALLOW", &["SCMP_ARCH_X86_64"])).is_empty());
        assert!(enosys_stub(&spec("SCMP_ACT_LOG", &["SCMP_ARCH_X86_64"])).is_empty());
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
