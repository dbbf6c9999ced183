//! The runtime's error type. Every variant names the input it is about, so the one
//! line a shim shows from our `--log` file is enough to act on.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    // runc's wording: shims and engines match on "already exists" / "does not exist".
    #[error("container with id {0} already exists")]
    AlreadyExists(String),

    #[error("container {0} does not exist")]
    NotExist(String),

    #[error("container {id} is {status}: {action}")]
    BadState {
        id: String,
        status: &'static str,
        action: &'static str,
    },

    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("{0}")]
    Invalid(String),

    #[error("{context} {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Sys(String, #[source] nix::Error),

    #[error("cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("seccomp: {0}")]
    Seccomp(String),

    #[error("{0}")]
    Hook(String),

    /// An error the container's own setup reported back over the sync socket,
    /// worded as runc words a failure of its container's process.
    #[error("unable to start container process: {0}")]
    Init(String),

    #[error("state of container {id}")]
    State {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys(context.into(), source)
    }
}

/// The whole chain on one line, as runc prints it: `outer: inner: root cause`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Shorthand for turning a nix result into our error with a context line.
pub trait SysContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sys(context(), e))
    }
}
