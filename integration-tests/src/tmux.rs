//! A terminal a test can type into and read: a tmux server of the test's
//! own (its own socket in the test's directory), one window running a
//! command. The server is ended by its PID in Drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::eventually;

const SESSION: &str = "t";

pub struct Tmux {
    socket: PathBuf,
    server_pid: Option<i32>,
}

/// A shell command that runs `command`, then shows how it ended and
/// whether the terminal was given back in cooked mode, then waits.
pub fn reporting(command: &str) -> String {
    format!(
        "{command}; echo \"EXIT=$?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon | sed 's/^/MODE=/'; exec sleep 600"
    )
}

impl Tmux {
    /// A window of `cols` × `rows` running `command` through `sh -c`.
    pub fn start(dir: &Path, cols: u16, rows: u16, command: &str) -> Tmux {
        let mut t = Tmux {
            socket: dir.join("tmux.sock"),
            server_pid: None,
        };
        t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            command,
        ]);
        t.server_pid = t
            .tmux(&["display-message", "-p", "#{pid}"])
            .trim()
            .parse()
            .ok();
        t.tmux(&["set-option", "-g", "history-limit", "10000"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux (scripts/deps installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, then Enter.
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", SESSION, "-l", text]);
        self.keys(&["Enter"]);
    }

    /// Keys by tmux's names: `C-p`, `Enter`…
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// The window's text, with the scrollback.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", SESSION])
    }

    /// Waits until the screen shows `needle`; the screen when it never does.
    pub fn wait_for(&self, secs: u64, needle: &str) -> Result<(), String> {
        if eventually(secs, || self.screen().contains(needle)) {
            Ok(())
        } else {
            Err(format!(
                "{needle:?} never showed; the screen:\n{}",
                self.screen()
            ))
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            SESSION,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// Replaces what runs in the window with `command`, on a clear screen.
    pub fn respawn(&self, command: &str) {
        self.tmux(&["respawn-pane", "-k", "-t", SESSION, command]);
        self.tmux(&["clear-history", "-t", SESSION]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        if let Some(pid) = self.server_pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
