//! Protection of the runtime binary against a container that tries to overwrite
//! it through /proc/<pid>/exe (CVE-2019-5736).
//!
//! A process that enters a container's namespaces runs this binary until its
//! final execve; a container can reach that file through /proc and, once the
//! runtime has exited, open it for writing. The defence is to make sure that the
//! file behind our /proc/self/exe cannot be written: before `create`, `run` or
//! `exec` does anything, the runtime re-executes itself from a private, detached,
//! read-only overlayfs mount of its own directory (what runc 1.2 does), which
//! costs one execve and no copy; if overlayfs is not available, from a sealed
//! memfd copy. A binary already on a read-only mount is left as it is.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::statvfs::{FsFlags, fstatvfs};

use crate::error::{Error, Result};

const MARK: &str = "_BERTH_RUNTIME_SEALED";

fn cstr(s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Invalid("argument contains a NUL byte".into()))
}

fn last_err(what: &str) -> Error {
    Error::sys(what.to_string(), nix::errno::Errno::last())
}

fn exe_is_readonly() -> bool {
    match fs::File::open("/proc/self/exe") {
        Ok(f) => fstatvfs(&f)
            .map(|s| s.flags().contains(FsFlags::ST_RDONLY))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Re-executes the runtime from a write-protected copy unless it already runs
/// from one. Returns only when no re-exec is needed (or when one already
/// happened: the marker in the environment prevents loops).
pub fn ensure(empty_dir: &Path) -> Result<()> {
    if std::env::var_os(MARK).is_some() {
        // SAFETY: single-threaded at this point; nothing reads the environment concurrently.
        unsafe { std::env::remove_var(MARK) };
        return Ok(());
    }
    if exe_is_readonly() {
        return Ok(());
    }
    let exe =
        fs::read_link("/proc/self/exe").map_err(|e| Error::io("reading", "/proc/self/exe", e))?;
    let fd = match overlay_copy(&exe, empty_dir) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!("overlayfs seal unavailable ({e}), using a sealed memfd copy");
            memfd_copy(&exe)?
        }
    };
    reexec(fd.as_raw_fd())
}

fn reexec(fd: RawFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv.as_bytes())
        })
        .collect::<Result<_>>()?;
    env.push(cstr(format!("{MARK}=1").as_bytes())?);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NUL-terminated arrays of pointers into CStrings
    // that outlive the call; on success execveat does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(last_err("re-executing the runtime from its sealed copy"))
}

fn overlay_copy(exe: &Path, empty_dir: &Path) -> Result<OwnedFd> {
    let dir = exe
        .parent()
        .ok_or_else(|| Error::Invalid("runtime path has no directory".into()))?;
    let name = exe
        .file_name()
        .ok_or_else(|| Error::Invalid("runtime path has no name".into()))?;
    fs::create_dir_all(empty_dir).map_err(|e| Error::io("creating", empty_dir, e))?;
    let lower = format!("{}:{}", escape(dir), escape(empty_dir));

    // SAFETY (all blocks below): plain syscalls on descriptors we own and
    // NUL-terminated strings that live across each call.
    let sfd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), libc::FSOPEN_CLOEXEC) };
    if sfd < 0 {
        return Err(last_err("fsopen overlay"));
    }
    let sfd = unsafe { OwnedFd::from_raw_fd(sfd as RawFd) };
    let key = c"lowerdir";
    let val = cstr(lower.as_bytes())?;
    if unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            sfd.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            key.as_ptr(),
            val.as_ptr(),
            0,
        )
    } < 0
    {
        return Err(last_err("configuring overlay lowerdir"));
    }
    if unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            sfd.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    } < 0
    {
        return Err(last_err("creating overlay"));
    }
    let mfd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            sfd.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOSUID,
        )
    };
    if mfd < 0 {
        return Err(last_err("mounting overlay"));
    }
    let mfd = unsafe { OwnedFd::from_raw_fd(mfd as RawFd) };
    let cname = cstr(name.as_bytes())?;
    let fd = unsafe {
        libc::openat(
            mfd.as_raw_fd(),
            cname.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_err("opening the runtime in its overlay"));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// overlayfs options use ':' and ',' as separators; escape them in paths.
fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

fn memfd_copy(exe: &Path) -> Result<OwnedFd> {
    let mut src = fs::File::open(exe).map_err(|e| Error::io("opening", exe, e))?;
    // SAFETY: memfd_create with a static name and flags.
    let fd = unsafe {
        libc::memfd_create(
            c"berth-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(last_err("memfd_create"));
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let mut dst = unsafe { fs::File::from_raw_fd(fd) };
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copying", exe, e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last_err("sealing the runtime's copy"));
    }
    Ok(OwnedFd::from(dst))
}
