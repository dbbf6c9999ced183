//! The last steps before a container process becomes the user's program, shared
//! by the init of `create` and the processes of `exec`: limits, identity,
//! capabilities, seccomp, no_new_privs, file descriptors, execve.

use std::convert::Infallible;
use std::ffi::CString;

use nix::sys::resource::{Resource, setrlimit};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{PosixRlimitType, Process};

use super::caps;
use super::seccomp;
use crate::error::{Error, Result, SysContext};

fn resource(t: PosixRlimitType) -> Option<Resource> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => Resource::RLIMIT_CPU,
        RlimitFsize => Resource::RLIMIT_FSIZE,
        RlimitData => Resource::RLIMIT_DATA,
        RlimitStack => Resource::RLIMIT_STACK,
        RlimitCore => Resource::RLIMIT_CORE,
        RlimitRss => Resource::RLIMIT_RSS,
        RlimitNproc => Resource::RLIMIT_NPROC,
        RlimitNofile => Resource::RLIMIT_NOFILE,
        RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        RlimitAs => Resource::RLIMIT_AS,
        RlimitLocks => Resource::RLIMIT_LOCKS,
        RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitNice => Resource::RLIMIT_NICE,
        RlimitRtprio => Resource::RLIMIT_RTPRIO,
        RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

pub fn set_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        if let Some(res) = resource(r.typ()) {
            setrlimit(res, r.soft(), r.hard())
                .ctx(|| format!("setting rlimit {:?} to {}/{}", r.typ(), r.soft(), r.hard()))?;
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so nothing the runtime
/// holds (or was handed by its caller) reaches the container (CVE-2024-21626).
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range only changes descriptor flags; no memory is involved.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: walk /proc/self/fd.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd: &i32| *fd >= first as i32)
            .collect();
        for fd in fds {
            // SAFETY: setting FD_CLOEXEC on a descriptor number is harmless even if
            // the number was the directory iterator's own (now closed) descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// Checks that the working directory really is inside the container's root: a
/// cwd reached through a leaked host descriptor shows as "(unreachable)/…".
pub fn verify_cwd() -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(Error::Invalid(format!(
            "current working directory {} is outside of the container's root",
            p.display()
        ))),
        Err(e) => Err(Error::sys(
            "current working directory is outside of the container's root",
            e,
        )),
    }
}

pub fn chdir_checked(cwd: &std::path::Path) -> Result<()> {
    // runc's words (Go's errno text): clients show them as they are.
    nix::unistd::chdir(cwd).map_err(|e| {
        Error::Invalid(format!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            cwd.display().to_string(),
            e.desc().to_lowercase()
        ))
    })?;
    verify_cwd()
}

/// The home directory of `uid` in a passwd file; "/" when it has none.
fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

pub struct Final<'a> {
    pub process: &'a Process,
    pub seccomp: Option<&'a seccomp::Program>,
    pub preserve_fds: u32,
    pub program: CString,
    /// Run last, as the process's user, under its seccomp filter, right
    /// before the execve (the init's startContainer hooks, where runc runs
    /// them).
    pub before_exec: Option<&'a dyn Fn() -> Result<()>>,
}

/// Drops to the process's identity and privileges and executes it. Returns only
/// on failure.
pub fn exec(f: Final<'_>) -> Result<Infallible> {
    let p = f.process;
    let args: Vec<CString> = p
        .args()
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Invalid("process.args contains a NUL byte".into()))?;
    let mut env: Vec<CString> = p
        .env()
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Invalid("process.env contains a NUL byte".into()))?;
    // As runc: a process without HOME gets its user's, read (still as
    // root) from the container's /etc/passwd.
    if !env.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
        let home = home_of(
            &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
            p.user().uid(),
        );
        if let Ok(h) = CString::new(format!("HOME={home}")) {
            env.push(h);
        }
    }

    umask(Mode::from_bits_truncate(p.user().umask().unwrap_or(0o022)));
    set_rlimits(p)?;
    let filter = f.seccomp;
    let nnp = p.no_new_privileges().unwrap_or(false);
    let sets = caps::from_spec(p.capabilities().as_ref());

    caps::drop_bounding(&sets)?;
    if let (Some(filter), false) = (filter, nnp) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while
        // we are still root.
        seccomp::load(filter)?;
    }

    set_identity(p)?;
    caps::apply(&sets)?;

    if nnp {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if r != 0 {
            return Err(Error::sys(
                "setting no_new_privs",
                nix::errno::Errno::last(),
            ));
        }
        if let Some(filter) = filter {
            seccomp::load(filter)?;
        }
    }

    cloexec_from(3 + f.preserve_fds);
    if let Some(last) = f.before_exec {
        last()?;
    }
    let e = nix::unistd::execve(&f.program, &args, &env).unwrap_err();
    Err(Error::Invalid(format!(
        "exec {}: {}",
        f.program.to_string_lossy(),
        e.desc().to_lowercase()
    )))
}

/// Hands stdin, stdout and stderr (a terminal, pipes) to the user the
/// process becomes, as runc does before it switches: only the owner
/// changes (the group may be the terminal's `tty`), and what points at
/// /dev/null is left alone.
fn give_stdio_to(uid: u32) {
    let null = nix::sys::stat::stat("/dev/null").map(|s| s.st_rdev).ok();
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if st.st_uid == uid || Some(st.st_rdev) == null {
            continue;
        }
        // SAFETY: fchown on one of our standard descriptors; -1 keeps the group.
        if unsafe { libc::fchown(fd, uid, u32::MAX) } != 0 {
            tracing::debug!("fchown of fd {fd}: {}", nix::errno::Errno::last());
        }
    }
}

fn set_identity(p: &Process) -> Result<()> {
    let user = p.user();
    give_stdio_to(user.uid());
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups file says deny;
    // only an explicit list makes that an error.
    if let Err(e) = setgroups(&groups)
        && (!groups.is_empty() || e != nix::errno::Errno::EPERM)
    {
        return Err(Error::sys(
            format!("setgroups {:?}", user.additional_gids()),
            e,
        ));
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setting gid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setting uid {}", user.uid()))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_passwd_or_is_root() {
        let pw =
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\nnohome:x:7:7:::\n";
        assert_eq!(home_of(pw, 0), "/root");
        assert_eq!(home_of(pw, 33), "/var/www");
        assert_eq!(home_of(pw, 7), "/");
        assert_eq!(home_of(pw, 1000), "/");
    }
}
