//! The OCI runtime's command line, as runc defines it. Every call gets
//! `--root`, `--log` and `--log-format json`; when a call fails, the runtime's
//! own words (the last error in that log) become the error, as containerd's
//! shim words it: "OCI runtime create failed: runc create failed: …".

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::reaper::Reaper;

/// `data` in an anonymous file (memfd, close-on-exec, at fd 3 or above):
/// an exec's process spec reaches the runtime without a file made and
/// deleted in the state dir for every exec (health checks run one every
/// interval). runc, crun and berth-runtime read `--process` with a plain
/// open, and close inherited descriptors before the user's process runs.
pub fn in_memory(data: &[u8]) -> std::io::Result<OwnedFd> {
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    let fd = memfd_create(c"berth-exec-process", MemFdCreateFlag::MFD_CLOEXEC)?;
    // Above the standard descriptors, which the child's stdio replaces.
    let raw = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut f = fs::File::from(fd);
    std::io::Write::write_all(&mut f, data)?;
    Ok(OwnedFd::from(f))
}

pub struct Runtime {
    pub path: PathBuf,
    /// Global arguments from lifecycled's runtime table (e.g. --root DIR).
    pub args: Vec<String>,
    pub log: PathBuf,
    /// The shim's reaper: it takes every child's exit, the runtime's too.
    pub reaper: Arc<Reaper>,
}

/// A runtime command that ran: its exit status and what it printed.
struct Ran {
    status: u32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

async fn read_all(from: Option<OwnedFd>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(fd) = from {
        pipe::Receiver::from_owned_fd(fd)?
            .read_to_end(&mut buf)
            .await?;
    }
    Ok(buf)
}

impl Runtime {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.args(&self.args)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        c
    }

    fn log_size(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The last error the runtime logged after `from`.
    fn last_error(&self, from: u64) -> Option<String> {
        let mut f = fs::File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .next_back()
    }

    /// Runs `cmd` to its end without holding the shim's one thread: the
    /// other tasks of the process (a pod's containers) go on meanwhile. Its
    /// exit comes from the reaper; `input` is written to its stdin.
    async fn spawn(&self, mut cmd: Command, input: Option<&[u8]>) -> std::io::Result<Ran> {
        let mut child = cmd.spawn()?;
        // Registered before the first await: the reaper cannot have run.
        let exited = self.reaper.wait_command(child.id() as i32);
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        let stdin = child.stdin.take().map(OwnedFd::from);
        let write = async {
            if let (Some(fd), Some(data)) = (stdin, input) {
                let mut to = pipe::Sender::from_owned_fd(fd)?;
                to.write_all(data).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (stdout, stderr, written) = tokio::join!(read_all(stdout), read_all(stderr), write);
        let exit = exited
            .await
            .map_err(|_| std::io::Error::other("the runtime's exit was lost"))?;
        written?;
        Ok(Ran {
            status: exit.status,
            stdout: stdout?,
            stderr: stderr?,
        })
    }

    fn check(&self, what: &str, from: u64, ran: std::io::Result<Ran>) -> Result<Ran> {
        let ran = ran.with_context(|| format!("running {} {what}", self.path.display()))?;
        if ran.status == 0 {
            return Ok(ran);
        }
        let msg = self
            .last_error(from)
            .or_else(|| {
                let e = String::from_utf8_lossy(&ran.stderr).trim().to_string();
                (!e.is_empty()).then_some(e)
            })
            .unwrap_or_else(|| format!("exited with status {}", ran.status));
        // containerd's shim words it so; runc's own message names runc.
        bail!("OCI runtime {what} failed: {msg}")
    }

    /// Runs a command with the given stdio and waits for the runtime (not for
    /// the container, which inherits that stdio and outlives the call).
    /// `args` run with the caller's stdio, and `pass` (a close-on-exec
    /// descriptor of this process) inherited by the runtime alone.
    async fn run_with(
        &self,
        what: &str,
        args: &[&str],
        io: (Stdio, Stdio, Stdio),
        pass: Option<&OwnedFd>,
    ) -> Result<()> {
        let from = self.log_size();
        let mut cmd = self.command();
        cmd.args(args).stdin(io.0).stdout(io.1).stderr(io.2);
        if let Some(fd) = pass.map(AsRawFd::as_raw_fd) {
            // SAFETY: between fork and exec only fcntl, which is
            // async-signal-safe, on a descriptor this process owns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let ran = self.spawn(cmd, None).await;
        self.check(what, from, ran).map(|_| ())
    }

    async fn run(&self, what: &str, args: &[&str]) -> Result<Ran> {
        let from = self.log_size();
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let ran = self.spawn(cmd, None).await;
        self.check(what, from, ran)
    }

    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        io: (Stdio, Stdio, Stdio),
    ) -> Result<()> {
        let bundle = bundle.to_string_lossy();
        let pid_file = pid_file.to_string_lossy();
        let mut args = vec!["create", "--bundle", &bundle, "--pid-file", &pid_file];
        let console = console.map(|c| c.to_string_lossy().into_owned());
        if let Some(c) = &console {
            args.extend(["--console-socket", c]);
        }
        args.push(id);
        self.run_with("create", &args, io, None).await
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.run("start", &["start", id]).await.map(|_| ())
    }

    /// `runtime exec` of the process spec in `process` (see [`in_memory`]),
    /// which the runtime reads as `/proc/self/fd/N`.
    pub async fn exec(
        &self,
        id: &str,
        process: &OwnedFd,
        pid_file: &Path,
        console: Option<&Path>,
        io: (Stdio, Stdio, Stdio),
    ) -> Result<()> {
        let by_path = format!("/proc/self/fd/{}", process.as_raw_fd());
        let pid_file = pid_file.to_string_lossy();
        let mut args = vec![
            "exec",
            "--process",
            &by_path,
            "--detach",
            "--pid-file",
            &pid_file,
        ];
        let console = console.map(|c| c.to_string_lossy().into_owned());
        if let Some(c) = &console {
            args.extend(["--console-socket", c]);
        }
        args.push(id);
        self.run_with("exec", &args, io, Some(process)).await
    }

    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, &sig]);
        self.run("kill", &args).await.map(|_| ())
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", &args).await.map(|_| ())
    }

    pub async fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run("ps", &["ps", "--format", "json", id]).await?;
        serde_json::from_slice(&out.stdout).context("reading the runtime's ps output")
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        self.run("pause", &["pause", id]).await.map(|_| ())
    }

    pub async fn resume(&self, id: &str) -> Result<()> {
        self.run("resume", &["resume", id]).await.map(|_| ())
    }

    pub async fn state(&self, id: &str) -> Result<serde_json::Value> {
        let out = self.run("state", &["state", id]).await?;
        serde_json::from_slice(&out.stdout).context("reading the runtime's state output")
    }

    pub async fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        let from = self.log_size();
        let mut cmd = self.command();
        cmd.args(["update", "--resources", "-", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let ran = self.spawn(cmd, Some(resources)).await;
        self.check("update", from, ran).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    #[test]
    fn an_exec_spec_in_memory_reads_back_by_path_and_stays_out_of_children() {
        let spec = br#"{"args":["true"],"cwd":"/"}"#;
        let fd = super::in_memory(spec).unwrap();
        let raw = fd.as_raw_fd();
        assert!(raw >= 3, "{raw}");
        // What the runtime does with --process: a plain open and read.
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{raw}")).unwrap(),
            spec.to_vec()
        );
        let flags = nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}
