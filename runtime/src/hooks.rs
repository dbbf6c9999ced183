//! OCI hooks: each runs with the container's state JSON on stdin, its own args
//! and env, and a timeout; a failure names the hook and shows what it printed.

use std::io::{Read, Seek, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

pub fn run(kind: &str, hooks: Option<&Vec<Hook>>, state: &str) -> Result<()> {
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        run_one(hook, state).map_err(|e| {
            Error::Hook(format!(
                "error running {kind} hook #{i} ({}): {e}",
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Runs hooks whose failure the spec says to report but not act on.
pub fn run_warn(kind: &str, hooks: Option<&Vec<Hook>>, state: &str) {
    if let Err(e) = run(kind, hooks, state) {
        tracing::warn!("{e}");
    }
}

fn run_one(hook: &Hook, state: &str) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Output goes to an anonymous file, not a pipe, so a chatty hook can never
    // block on a full pipe while we wait for it.
    let out_fd = nix::sys::memfd::memfd_create(
        c"hook-output",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| format!("memfd_create: {e}"))?;
    let mut out_file = std::fs::File::from(out_fd);
    let err_file = out_file.try_clone().map_err(|e| e.to_string())?;
    let out_for_child = out_file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out_for_child))
        .stderr(Stdio::from(err_file));
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {}s", hook.timeout().unwrap_or(0)));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    let _ = out_file.seek(std::io::SeekFrom::Start(0));
    let _ = out_file.read_to_string(&mut out);
    Err(format!("{}: {}", describe(status), out.trim()))
}

/// An unsuccessful exit in words: "exit status 3", or the signal's name as
/// the C library says it ("signal: bad system call" for a hook that the
/// seccomp filter killed).
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(sig) = status.signal() else {
        return format!("exit status {}", status.code().unwrap_or(-1));
    };
    // SAFETY: strsignal returns a pointer to a NUL-terminated string that
    // stays valid until the next call; it is copied right away.
    let name = unsafe {
        let p = libc::strsignal(sig);
        if p.is_null() {
            format!("signal {sig}")
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().to_lowercase()
        }
    };
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    format!("signal: {name}{core}")
}
