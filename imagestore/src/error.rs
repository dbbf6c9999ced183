//! The crate's one error type. Every variant carries what a person needs to
//! act on it: the digest, the path, the reference, the registry.

use std::path::PathBuf;

/// What went wrong in the image store. Display is one lowercase line naming
/// the input; the cause, when there is one, is in [`std::error::Error::source`]
/// (see [`Error::chain`] for the whole story on one line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the store's lock file.
    #[error("the store at {root} is already open in another process")]
    Locked { root: PathBuf },
    #[error("namespace {namespace:?} is not valid: use letters, digits, '.', '_' and '-'")]
    InvalidNamespace { namespace: String },
    #[error("digest {digest:?} is not valid: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error("blob {digest} not found")]
    BlobNotFound { digest: String },
    /// Content whose bytes do not hash to the digest it was announced with.
    #[error("{what}: digest mismatch, expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: size mismatch, expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A blob that an image or a lease still needs.
    #[error("blob {digest} is in use by {user}")]
    BlobInUse { digest: String, user: String },
    #[error("image {name:?} not found in namespace {namespace}")]
    ImageNotFound { namespace: String, name: String },
    #[error("image name {name:?} is not valid: {reason}")]
    InvalidImageName { name: String, reason: &'static str },
    #[error("reference {reference:?} is not valid: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A manifest, index or config that does not parse or breaks the spec.
    #[error("{what} {digest} is not valid: {reason}")]
    InvalidContent {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("{what} {digest} has media type {media_type:?}, which berth does not support")]
    UnsupportedMediaType {
        what: &'static str,
        digest: String,
        media_type: String,
    },
    #[error("no manifest for {wanted} in {image}; available: {available}")]
    NoMatchingPlatform {
        wanted: String,
        image: String,
        available: String,
    },
    #[error("snapshot key {key:?} is not valid: {reason}")]
    InvalidSnapshotKey { key: String, reason: &'static str },
    #[error("snapshot {key} not found")]
    SnapshotNotFound { key: String },
    #[error("snapshot {key} already exists")]
    SnapshotExists { key: String },
    #[error("snapshot {key} is in use: {reason}")]
    SnapshotInUse { key: String, reason: String },
    /// A tar entry that would land outside the directory it is unpacked in,
    /// or that cannot be represented there.
    #[error("layer {layer}: entry {entry:?} {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A layer that is not a readable (optionally compressed) tar stream.
    #[error("layer {layer} is not a valid tar stream")]
    BadLayer {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("archive is not valid: {reason}")]
    InvalidArchive { reason: String },
    /// Reading a caller's stream (an archive, a blob's bytes) failed.
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing to a caller's stream (an exported archive) failed.
    #[error("writing {what}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "overlay options for snapshot {key} are {len} bytes ({layers} layers), over the {max} bytes the kernel accepts"
    )]
    MountOptionsTooLong {
        key: String,
        len: usize,
        layers: usize,
        max: usize,
    },
    #[error("mounting {kind} on {target}")]
    Mount {
        kind: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("registry {registry} is unreachable")]
    RegistryUnreachable {
        registry: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("registry {registry} refused access to {reference}: {reason}")]
    Unauthorized {
        registry: String,
        reference: String,
        reason: String,
    },
    #[error("{what} not found in registry {registry}")]
    RegistryNotFound { registry: String, what: String },
    /// The registry has no such image, or will not show it to this caller,
    /// in the words dockerd uses for it (clients match them: docker-py's
    /// `ImageNotFound` looks for "repository does not exist"). `name` is the
    /// reference as Docker shows it, `answer` the registry's error as
    /// `code words: message`.
    #[error("{}", .missing.describe(.name, .answer))]
    NotInRegistry {
        missing: Missing,
        name: String,
        answer: String,
    },
    /// The registry's own words for what it does not have (`manifest
    /// unknown: manifest unknown`), where dockerd quotes them bare: a
    /// look-up that pulls nothing.
    #[error("{answer}")]
    RegistryAnswer { answer: String },
    /// Any other answer of a registry that is not what the protocol expects.
    #[error("registry {registry}: {what}")]
    Registry {
        registry: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading the CA certificate {path}")]
    CaCertificate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the store panicked or was cancelled.
    #[error("{what} did not finish")]
    TaskFailed { what: String },
}

impl Error {
    /// The error and all its causes on one line, `outer: inner: innermost`,
    /// for places that can show only a string (a gRPC status, a log line).
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            let msg = e.to_string();
            // Some libraries repeat their cause in their own message.
            if !s.ends_with(&msg) {
                s.push_str(": ");
                s.push_str(&msg);
            }
            cur = e.source();
        }
        s
    }

    /// Whether retrying the same operation later may succeed: the network or
    /// the registry failed, not the content. A pull that fails this way keeps
    /// what it downloaded so that the next attempt resumes.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RegistryUnreachable { .. }
                | Error::Registry { .. }
                | Error::RegistryNotFound { .. }
                | Error::NotInRegistry { .. }
                | Error::RegistryAnswer { .. }
                | Error::Unauthorized { .. }
                | Error::TaskFailed { .. }
        )
    }

    /// A pull's "not in the registry" as a look-up reports it: the
    /// registry's answer alone.
    pub(crate) fn bare(self) -> Error {
        match self {
            Error::NotInRegistry { answer, .. } => Error::RegistryAnswer { answer },
            e => e,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// What a registry said is not there for a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No manifest under that tag or digest (`MANIFEST_UNKNOWN`).
    Manifest,
    /// No repository of that name (`NAME_UNKNOWN`).
    Repository,
    /// Access refused (`DENIED`, or a token that does not cover the
    /// repository): Docker Hub's answer for a repository that does not
    /// exist as much as for a private one.
    Denied,
}

impl Missing {
    fn describe(self, name: &str, answer: &str) -> String {
        match self {
            Missing::Manifest => format!("manifest for {name} not found: {answer}"),
            Missing::Repository => format!("repository {name} not found: {answer}"),
            Missing::Denied => format!(
                "pull access denied for {name}, repository does not exist or may require \
                 'docker login': {answer}"
            ),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
