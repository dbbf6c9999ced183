//! The OCI runtime's command line, as runc defines it. Every call gets
//! `--root`, `--log` and `--log-format json`; when a call fails, the runtime's
//! own words (the last error in that log) become the error.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

pub struct Runtime {
    pub path: PathBuf,
    /// Global arguments from lifecycled's runtime table (e.g. --root DIR).
    pub args: Vec<String>,
    pub log: PathBuf,
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

    fn check(&self, what: &str, from: u64, out: std::io::Result<Output>) -> Result<Output> {
        let out = out.with_context(|| format!("running {} {what}", self.path.display()))?;
        if out.status.success() {
            return Ok(out);
        }
        let msg = self
            .last_error(from)
            .or_else(|| {
                let e = String::from_utf8_lossy(&out.stderr).trim().to_string();
                (!e.is_empty()).then_some(e)
            })
            .unwrap_or_else(|| format!("exited with {}", out.status));
        bail!(
            "{} {what}: {msg}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("runtime")
        )
    }

    /// Runs a command with the given stdio and waits for the runtime (not for
    /// the container, which inherits that stdio and outlives the call).
    fn run_with(&self, what: &str, args: &[&str], io: (Stdio, Stdio, Stdio)) -> Result<()> {
        let from = self.log_size();
        let status = self
            .command()
            .args(args)
            .stdin(io.0)
            .stdout(io.1)
            .stderr(io.2)
            .status();
        let out = status.map(|status| Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        });
        self.check(what, from, out).map(|_| ())
    }

    fn run(&self, what: &str, args: &[&str]) -> Result<Output> {
        let from = self.log_size();
        let out = self.command().args(args).stdin(Stdio::null()).output();
        self.check(what, from, out)
    }

    pub fn create(
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
        self.run_with("create", &args, io)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run("start", &["start", id]).map(|_| ())
    }

    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        io: (Stdio, Stdio, Stdio),
    ) -> Result<()> {
        let process = process.to_string_lossy();
        let pid_file = pid_file.to_string_lossy();
        let mut args = vec![
            "exec",
            "--process",
            &process,
            "--detach",
            "--pid-file",
            &pid_file,
        ];
        let console = console.map(|c| c.to_string_lossy().into_owned());
        if let Some(c) = &console {
            args.extend(["--console-socket", c]);
        }
        args.push(id);
        self.run_with("exec", &args, io)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, &sig]);
        self.run("kill", &args).map(|_| ())
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", &args).map(|_| ())
    }

    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run("ps", &["ps", "--format", "json", id])?;
        serde_json::from_slice(&out.stdout).context("reading the runtime's ps output")
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run("pause", &["pause", id]).map(|_| ())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run("resume", &["resume", id]).map(|_| ())
    }

    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let out = self.run("state", &["state", id])?;
        serde_json::from_slice(&out.stdout).context("reading the runtime's state output")
    }

    pub fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        use std::io::Write;
        let from = self.log_size();
        let mut child = self
            .command()
            .args(["update", "--resources", "-", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {} update", self.path.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(resources).context("writing resources")?;
        }
        let out = child.wait_with_output();
        self.check("update", from, out).map(|_| ())
    }
}
