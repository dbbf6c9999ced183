//! Pull and push over the OCI distribution API, through `oci-client`.
//!
//! A pull fetches the manifest (choosing this machine's platform from an
//! index), the config, then the layers in parallel straight into the
//! content store, resuming each from where an earlier attempt stopped (HTTP
//! range requests) and retrying transient failures. Layers unpack as soon
//! as they are in. The manifests are stored last and the image record after
//! them, so a record never points at something incomplete. A pull that
//! fails on bad content (a digest mismatch, an unusable manifest, another
//! platform) leaves the store as it was; one that fails on the network keeps
//! what it fetched for the next attempt.
//!
//! A push uploads what the registry lacks (mounting blobs from another
//! repository of the same registry when the store knows one that has them),
//! then the manifests byte for byte, so the pushed image has the same digest.

use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use oci_spec::image::{Descriptor, Digest, MediaType, Platform};
use tokio::sync::mpsc;

use crate::Store;
use crate::content::{BlobWriter, SOURCE_LABEL_PREFIX};
use crate::digest::{self, Hasher, short};
use crate::error::{Error, Missing, Result};
use crate::images::{ImageRecord, validate_namespace};
use crate::lease::Lease;
use crate::reference::Reference;
use crate::resolve::{self, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Parsed, PlatformSpec, media_types};

/// Credentials for one registry.
#[derive(Clone)]
pub enum Credentials {
    /// A user name and password (or identity token as password): used for
    /// HTTP basic auth, or sent to the token server of a bearer challenge.
    Basic { username: String, password: String },
    /// A registry bearer token to send as it is.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Credentials::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `host[:port]` of insecure registries: reached over TLS with any
    /// certificate when they speak TLS, else over plain HTTP (Docker's
    /// `insecure-registries`). Every other registry is HTTPS, checked.
    pub insecure: Vec<String>,
    /// PEM files of CAs trusted besides the system's, for registries with
    /// certificates of their own.
    pub ca_certs: Vec<PathBuf>,
    /// Layers downloaded at once (Docker's default is 3).
    pub max_concurrent_downloads: usize,
    /// Blobs uploaded at once (Docker's default is 5).
    pub max_concurrent_uploads: usize,
    /// Further attempts after a transient failure (connection refused or
    /// reset, timeout, 5xx, 429); downloads resume where they stopped.
    pub retries: u32,
    /// The platform to pull; default this machine's.
    pub platform: Option<PlatformSpec>,
    /// Unpack the layers as they arrive (what `docker pull` does).
    pub unpack: bool,
    /// The content is a Docker managed plugin's (`docker plugin install`):
    /// its config must be the plugin config, it has no platform to match,
    /// and its layers are stored but never unpacked.
    pub plugin: bool,
    pub connect_timeout: Duration,
    /// How long a transfer may stall before it counts as failed.
    pub read_timeout: Duration,
    /// Pull-through mirrors: (registry host, mirror host[:port]) pairs, tried
    /// in order before the registry itself (Docker's `registry-mirrors`).
    pub mirrors: Vec<(String, String)>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            ca_certs: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            retries: 3,
            platform: None,
            unpack: true,
            plugin: false,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            mirrors: Vec::new(),
        }
    }
}

/// What a pull or push is doing, per layer (or per image for `Resolving`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressAction {
    Resolving,
    /// Queued behind other downloads or uploads.
    Waiting,
    Downloading,
    Verifying,
    /// Downloaded and verified ("Download complete").
    Downloaded,
    Extracting,
    /// Downloaded and unpacked ("Pull complete").
    Complete,
    /// Already in the store, or already in the registry on push.
    Exists,
    Pushing,
    Pushed,
    /// Mounted from another repository of the registry instead of uploaded.
    Mounted,
}

/// One progress event. The engine turns these into Docker's pull and push
/// JSON lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The short layer digest (12 hex digits), or the reference while resolving.
    pub id: String,
    pub action: ProgressAction,
    /// Bytes done.
    pub current: u64,
    /// Bytes in all (0 when unknown).
    pub total: u64,
}

static CRYPTO: Once = Once::new();

/// oci-client is built without a rustls crypto provider so that the whole
/// tree uses ring; one has to be installed before a client is built.
pub(crate) fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Err means another part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build_client(
    opts: &RegistryOptions,
    registry: &str,
    transport: crate::transport::Transport,
) -> Result<Client> {
    use crate::transport::Transport;
    install_crypto_provider();
    let mut certs = Vec::new();
    for p in &opts.ca_certs {
        let data = std::fs::read(p).map_err(|source| Error::CaCertificate {
            path: p.clone(),
            source,
        })?;
        certs.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    let config = ClientConfig {
        protocol: match transport {
            Transport::Http => ClientProtocol::HttpsExcept(vec![registry.to_string()]),
            Transport::Https | Transport::HttpsUnverified => ClientProtocol::Https,
        },
        accept_invalid_certificates: transport == Transport::HttpsUnverified,
        extra_root_certificates: certs,
        // Platform selection is ours (with the error message we want).
        platform_resolver: None,
        max_concurrent_download: opts.max_concurrent_downloads.max(1),
        max_concurrent_upload: opts.max_concurrent_uploads.max(1),
        // One PUT per blob: fewer round trips than PATCH chunks.
        use_monolithic_push: true,
        connect_timeout: Some(opts.connect_timeout),
        read_timeout: Some(opts.read_timeout),
        ..Default::default()
    };
    Client::try_from(config).map_err(|e| Error::Registry {
        registry: "(any)".into(),
        what: "building the HTTP client".into(),
        source: Box::new(e),
    })
}

fn to_auth(c: Option<Credentials>) -> RegistryAuth {
    match c {
        None => RegistryAuth::Anonymous,
        Some(Credentials::Basic { username, password }) => RegistryAuth::Basic(username, password),
        Some(Credentials::Token(t)) => RegistryAuth::Bearer(t),
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What a registry holds under a reference (`Store::distribution`).
#[derive(Debug, Clone)]
pub struct Distribution {
    /// The manifest or index the reference names.
    pub descriptor: Descriptor,
    pub platforms: Vec<Platform>,
}

/// The config of what a registry holds under a reference
/// (`Store::fetch_config`), fetched without its layers.
#[derive(Debug, Clone)]
pub struct FetchedConfig {
    /// The manifest (for this machine's platform, when the reference names
    /// an index).
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub data: Vec<u8>,
}

/// What a reference names: the top manifest or index as fetched, and the
/// manifest chosen (the top itself, or an index's entry, whose body is
/// `child`).
struct Named {
    top: Vec<u8>,
    top_digest: Digest,
    top_mt: String,
    manifest: Box<oci_spec::image::ImageManifest>,
    desc: Descriptor,
    child: Option<Vec<u8>>,
}

/// Everything one pull or push needs.
struct Session {
    /// Set when one layer failed: the others stop at their next step
    /// instead of running on after the pull has given up.
    failed: std::sync::atomic::AtomicBool,
    /// Set once the registry's token server gave this session a bearer
    /// token: a 401 after that means the token does not cover the
    /// repository (see [`Session::map`]).
    bearer: std::sync::atomic::AtomicBool,
    /// Set by a push's authentication: what a pull reads as a missing
    /// image stays a refusal there.
    pushing: std::sync::atomic::AtomicBool,
    store: Store,
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
    opts: RegistryOptions,
    progress: mpsc::Sender<Progress>,
}

/// How feeding one response into a writer ended.
enum StreamEnd {
    /// The stream ended; the writer holds what it sent.
    Done,
    /// The bytes did not match the digest (the writer's commit reports it).
    Corrupt,
    /// Failed, and whether trying again may help.
    Failed(Error, bool),
}

/// What a registry's error says is not there, and the error as dockerd
/// quotes it (`manifest unknown: manifest unknown`).
fn missing(e: &oci_client::errors::OciError) -> Option<(Missing, String)> {
    let (missing, words) = match e.code {
        OciErrorCode::ManifestUnknown => (Missing::Manifest, "manifest unknown"),
        OciErrorCode::NameUnknown => (Missing::Repository, "name unknown"),
        OciErrorCode::Denied => (Missing::Denied, "denied"),
        _ => return None,
    };
    Some((missing, format!("{words}: {}", e.message)))
}

impl Session {
    async fn new(
        store: &Store,
        reference: Reference,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
        progress: mpsc::Sender<Progress>,
    ) -> Result<Session> {
        let transport = crate::transport::transport(reference.registry(), opts).await;
        Ok(Session {
            failed: std::sync::atomic::AtomicBool::new(false),
            bearer: std::sync::atomic::AtomicBool::new(false),
            pushing: std::sync::atomic::AtomicBool::new(false),
            store: store.clone(),
            client: build_client(opts, reference.registry(), transport)?,
            auth: to_auth(auth),
            reference,
            opts: opts.clone(),
            progress,
        })
    }

    fn registry(&self) -> &str {
        self.reference.registry()
    }

    async fn report(&self, id: &str, action: ProgressAction, current: u64, total: u64) {
        // A caller that stopped listening does not stop the transfer.
        let _ = self
            .progress
            .send(Progress {
                id: id.to_string(),
                action,
                current,
                total,
            })
            .await;
    }

    fn pushing(&self) -> bool {
        self.pushing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Maps a client error to ours, and says whether trying again may help.
    fn map(&self, e: OciDistributionError, what: &str) -> (Error, bool) {
        let registry = self.registry().to_string();
        let reference = self.reference.to_string();
        match e {
            OciDistributionError::RequestError(re) => {
                let text = chain_text(&re);
                if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                    (
                        Error::Registry {
                            registry,
                            what: format!(
                                "{what}: the TLS handshake failed (is the registry's CA among the \
                                 trusted CA files, or is it a plain-HTTP registry that must be \
                                 listed as insecure?)"
                            ),
                            source: Box::new(re),
                        },
                        false,
                    )
                } else if let Some(status @ (401 | 403)) = re.status().map(|s| s.as_u16()) {
                    (
                        Error::Unauthorized {
                            registry,
                            reference,
                            reason: format!(
                                "{status} {}: the credentials are missing or wrong",
                                if status == 401 {
                                    "Unauthorized"
                                } else {
                                    "Forbidden"
                                }
                            ),
                        },
                        false,
                    )
                } else if re.status().is_some_and(|s| s.as_u16() == 404) {
                    (
                        Error::RegistryNotFound {
                            registry,
                            what: what.to_string(),
                        },
                        false,
                    )
                } else if re.is_connect() || re.is_timeout() {
                    (
                        Error::RegistryUnreachable {
                            registry,
                            source: Box::new(re),
                        },
                        true,
                    )
                } else {
                    let retry = re
                        .status()
                        .is_none_or(|s| s.is_server_error() || s.as_u16() == 429);
                    (
                        Error::Registry {
                            registry,
                            what: what.to_string(),
                            source: Box::new(re),
                        },
                        retry,
                    )
                }
            }
            // oci-client keeps neither the body nor the challenge of a 401.
            // dockerd reads the challenge: `insufficient_scope` is Docker
            // Hub's (and a token-auth registry's) answer to a token that
            // does not cover the repository, a missing or private one
            // alike, and it shows that as a denied pull. A token the
            // server has just issued fails for no other reason.
            OciDistributionError::UnauthorizedError { .. }
                if self.bearer.load(std::sync::atomic::Ordering::Relaxed) && !self.pushing() =>
            {
                (
                    Error::NotInRegistry {
                        missing: Missing::Denied,
                        name: self.reference.familiar_name(),
                        answer: "denied: requested access to the resource is denied".into(),
                    },
                    false,
                )
            }
            OciDistributionError::UnauthorizedError { .. } => (
                Error::Unauthorized {
                    registry,
                    reference,
                    reason: "401 Unauthorized: the credentials are missing or wrong".into(),
                },
                false,
            ),
            OciDistributionError::AuthenticationFailure(msg) => (
                Error::Unauthorized {
                    registry,
                    reference,
                    reason: if matches!(self.auth, RegistryAuth::Anonymous) {
                        format!(
                            "the registry wants credentials and its token server refused an anonymous request ({})",
                            msg.trim()
                        )
                    } else {
                        format!("the token server refused the credentials ({})", msg.trim())
                    },
                },
                false,
            ),
            // dockerd answers from the registry's first error; these three
            // say the image is not there for this caller.
            OciDistributionError::RegistryError { envelope, .. }
                if !self.pushing()
                    && let Some((missing, answer)) = envelope.errors.first().and_then(missing) =>
            {
                let name = match missing {
                    Missing::Manifest => self.reference.familiar(),
                    Missing::Repository | Missing::Denied => self.reference.familiar_name(),
                };
                (
                    Error::NotInRegistry {
                        missing,
                        name,
                        answer,
                    },
                    false,
                )
            }
            OciDistributionError::RegistryError { envelope, url } => {
                let not_found = envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                });
                let denied = envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
                let msg = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                if not_found {
                    (
                        Error::RegistryNotFound {
                            registry,
                            what: what.to_string(),
                        },
                        false,
                    )
                } else if denied {
                    (
                        Error::Unauthorized {
                            registry,
                            reference,
                            reason: msg,
                        },
                        false,
                    )
                } else {
                    (
                        Error::Registry {
                            registry,
                            what: format!("{what}: {msg}"),
                            source: Box::new(OciDistributionError::GenericError(Some(url))),
                        },
                        false,
                    )
                }
            }
            OciDistributionError::ServerError { code, url, message } => match code {
                404 => (
                    Error::RegistryNotFound {
                        registry,
                        what: what.to_string(),
                    },
                    false,
                ),
                401 | 403 => (
                    Error::Unauthorized {
                        registry,
                        reference,
                        reason: format!("{code}: {}", message.trim()),
                    },
                    false,
                ),
                c => (
                    Error::Registry {
                        registry,
                        what: format!("{what}: HTTP {c}"),
                        source: Box::new(OciDistributionError::ServerError { code, url, message }),
                    },
                    c >= 500 || c == 429,
                ),
            },
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => (
                Error::DigestMismatch {
                    what: format!("{what} from {registry}"),
                    expected,
                    actual,
                },
                false,
            ),
            other => (
                Error::Registry {
                    registry,
                    what: what.to_string(),
                    source: Box::new(other),
                },
                false,
            ),
        }
    }

    async fn backoff(attempt: u32) {
        tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(5))).await;
    }

    /// Runs a registry call, retrying transient failures.
    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let (e, retry) = self.map(e, what);
                    if retry && attempt < self.opts.retries {
                        tracing::debug!("{what}: {} (attempt {})", e.chain(), attempt + 1);
                        attempt += 1;
                        Self::backoff(attempt).await;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        what: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| Error::TaskFailed {
                what: what.to_string(),
            })?
    }

    async fn authenticate(&self, op: RegistryOperation) -> Result<()> {
        let oref = self.reference.to_oci();
        let token = self
            .retry("authenticating", || self.client.auth(&oref, &self.auth, op))
            .await?;
        let pushing = matches!(op, RegistryOperation::Push);
        self.pushing
            .store(pushing, std::sync::atomic::Ordering::Relaxed);
        self.bearer
            .store(token.is_some(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Fetches a manifest and checks its digest: against the reference's
    /// digest if it has one, against `expected` for an index entry.
    async fn fetch_manifest(
        &self,
        r: &Reference,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, Digest)> {
        let oref = r.to_oci();
        let what = format!("manifest {r}");
        let (body, _) = self
            .retry(&what, || {
                self.client
                    .pull_manifest_raw(&oref, &self.auth, media_types::MANIFEST_ACCEPT)
            })
            .await?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::InvalidContent {
                what: "manifest",
                digest: r.to_string(),
                reason: format!("it is {} bytes, more than {MAX_MANIFEST_SIZE}", body.len()),
            });
        }
        let want = expected
            .map(|d| d.digest().clone())
            .or_else(|| r.digest().cloned());
        let alg = match &want {
            Some(d) => digest::split(d)?.0,
            None => digest::Algorithm::Sha256,
        };
        let mut h = Hasher::new(alg);
        h.update(&body);
        let actual = h.finish();
        if let Some(w) = want
            && w != actual
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest {r} from {}", self.registry()),
                expected: w.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Some(e) = expected
            && e.size() != body.len() as u64
        {
            return Err(Error::SizeMismatch {
                what: format!("manifest {r}"),
                expected: e.size(),
                actual: body.len() as u64,
            });
        }
        Ok((body.to_vec(), actual))
    }

    /// The platform to pull: the one asked, or this machine's.
    fn platform(&self) -> PlatformSpec {
        self.opts
            .platform
            .clone()
            .unwrap_or_else(PlatformSpec::host)
    }

    /// The manifest the reference names for `want`: the one it names, or
    /// `want`'s entry of the index it names (whose body is then `child`).
    async fn named_manifest(&self, want: &PlatformSpec) -> Result<Named> {
        let (top, top_digest) = self.fetch_manifest(&self.reference, None).await?;
        let top_mt = own_media_type(&top);
        let (manifest, desc, child) =
            match resolve::parse_manifest(&top, &top_mt, top_digest.as_ref())? {
                Parsed::Manifest(manifest) => {
                    let desc = Descriptor::new(
                        media_type_or(&top_mt, media_types::OCI_MANIFEST),
                        top.len() as u64,
                        top_digest.clone(),
                    );
                    (manifest, desc, None)
                }
                Parsed::Index(idx) => {
                    let entry = resolve::select_platform(&idx, want, &self.reference.to_string())?;
                    let child_ref = self.reference.with_digest(entry.digest().clone());
                    let (body, _) = self.fetch_manifest(&child_ref, Some(&entry)).await?;
                    let manifest = match resolve::parse_manifest(
                        &body,
                        entry.media_type().as_ref(),
                        entry.digest().as_ref(),
                    )? {
                        Parsed::Manifest(m) => m,
                        Parsed::Index(_) => {
                            return Err(Error::InvalidContent {
                                what: "index",
                                digest: top_digest.to_string(),
                                reason: format!("its entry for {want} is another index"),
                            });
                        }
                    };
                    let desc = Descriptor::new(
                        entry.media_type().clone(),
                        body.len() as u64,
                        entry.digest().clone(),
                    );
                    (manifest, desc, Some(body))
                }
            };
        Ok(Named {
            top,
            top_digest,
            top_mt,
            manifest,
            desc,
            child,
        })
    }

    async fn pull(&self, lease: Arc<Lease>) -> Result<ImageRecord> {
        let name = self.reference.to_string();
        self.report(&name, ProgressAction::Resolving, 0, 0).await;
        self.authenticate(RegistryOperation::Pull).await?;
        let want = self.platform();

        let Named {
            top,
            top_digest,
            top_mt,
            manifest,
            desc: manifest_desc,
            child,
        } = self.named_manifest(&want).await?;
        let from_index = child.is_some();
        let mut to_store: Vec<(Descriptor, Vec<u8>)> = Vec::new();
        if let Some(body) = child {
            to_store.push((manifest_desc.clone(), body));
        }
        if self.opts.plugin {
            resolve::check_plugin_manifest(&manifest, manifest_desc.digest().as_ref())?;
        } else {
            resolve::check_manifest(&manifest, manifest_desc.digest().as_ref())?;
        }

        let cdesc = manifest.config().clone();
        // As dockerd shows a pull: an image here already (its config is)
        // shows no layers; a layer here already, "exists" alone.
        let image_here = self.store.inner.content.exists(cdesc.digest());
        let cdata = self.fetch_config(&cdesc).await?;
        // A plugin's config names no platform, and its layers are not
        // unpacked here: it needs no diff ids.
        let diff_ids = if self.opts.plugin {
            Vec::new()
        } else {
            let (config, diff_ids) =
                resolve::parse_config(&cdata, cdesc.digest().as_ref(), manifest.layers().len())?;
            if !from_index && !resolve::config_matches(&config, &want) {
                return Err(Error::NoMatchingPlatform {
                    wanted: want.to_string(),
                    image: name,
                    available: resolve::platform_string(&resolve::config_platform(&config)),
                });
            }
            diff_ids
        };
        let chains = digest::chain_ids(&diff_ids);
        let layers = manifest.layers().clone();

        // One download per distinct blob; every position that uses it is
        // unpacked after it.
        let mut distinct: Vec<Descriptor> = Vec::new();
        for l in &layers {
            if !distinct.iter().any(|d| d.digest() == l.digest()) {
                distinct.push(l.clone());
            }
        }
        for l in distinct
            .iter()
            .filter(|l| !self.store.inner.content.exists(l.digest()))
        {
            self.report(&short(l.digest()), ProgressAction::Waiting, 0, l.size())
                .await;
        }
        // Every task runs to its end (they stop early once one failed), so
        // that nothing of this pull is still writing when it returns and a
        // rollback sees all it did.
        // Boxed one by one: a stream of closures over references makes the
        // whole pull future !Send (rust-lang/rust#102211).
        let tasks: Vec<BoxFuture<'_, Result<()>>> = distinct
            .iter()
            .map(|l| {
                let lease = lease.clone();
                let (layers, chains, diff_ids) = (&layers, &chains, &diff_ids);
                async move {
                    let res = async {
                        let Some(downloaded) = self.fetch_layer(l, &lease, !image_here).await?
                        else {
                            return Ok(());
                        };
                        let mut unpacked = false;
                        if self.opts.unpack && !self.opts.plugin {
                            match self
                                .unpack_positions(l, layers, chains, diff_ids, &lease)
                                .await?
                            {
                                Some(u) => unpacked = u,
                                None => return Ok(()),
                            }
                        }
                        // A layer that was there already, unpacked, stays
                        // "Already exists", as Docker shows it.
                        if !downloaded && !unpacked {
                            return Ok(());
                        }
                        self.report(
                            &short(l.digest()),
                            ProgressAction::Complete,
                            l.size(),
                            l.size(),
                        )
                        .await;
                        Ok(())
                    }
                    .await;
                    if res.is_err() {
                        self.failed
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    res
                }
                .boxed()
            })
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(tasks)
            .buffer_unordered(self.opts.max_concurrent_downloads.max(1))
            .collect()
            .await;
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            return Err(e);
        }

        // Children before parents: a manifest is never stored without what
        // it points at.
        let mut blobs = vec![(cdesc.clone(), cdata)];
        blobs.extend(to_store);
        let default_mt = if from_index {
            media_types::OCI_INDEX
        } else {
            media_types::OCI_MANIFEST
        };
        let top_desc = Descriptor::new(
            media_type_or(&top_mt, default_mt),
            top.len() as u64,
            top_digest,
        );
        blobs.push((top_desc.clone(), top));
        let store = self.store.clone();
        let registry = self.registry().to_string();
        let repo = self.reference.repository().to_string();
        let all: Vec<Digest> = blobs
            .iter()
            .map(|(d, _)| d.digest().clone())
            .chain(layers.iter().map(|l| l.digest().clone()))
            .collect();
        let lease2 = lease.clone();
        Self::blocking("storing the manifests", move || {
            for (d, body) in &blobs {
                store.write_blob(Some(d), &body[..], Some(&lease2))?;
            }
            for d in &all {
                add_source(&store, d, &registry, &repo);
            }
            Ok(())
        })
        .await?;
        Ok(ImageRecord::new(name, top_desc))
    }

    /// The config of the manifest the reference names (this platform's,
    /// from an index), as it is: a plugin's, with `opts.plugin`, else an
    /// image's.
    async fn config(&self) -> Result<FetchedConfig> {
        self.authenticate(RegistryOperation::Pull).await?;
        let want = self.platform();
        let Named { manifest, desc, .. } = self.named_manifest(&want).await?;
        if self.opts.plugin {
            resolve::check_plugin_manifest(&manifest, desc.digest().as_ref())?;
        } else {
            resolve::check_manifest(&manifest, desc.digest().as_ref())?;
        }
        let data = self.fetch_config(manifest.config()).await?;
        Ok(FetchedConfig {
            manifest: desc,
            config: manifest.config().clone(),
            data,
        })
    }

    /// The tags the registry lists for the reference's repository.
    async fn tags(&self) -> Result<Vec<String>> {
        self.authenticate(RegistryOperation::Pull).await?;
        let repo = self.reference.repository_only().to_oci();
        let listed = self
            .retry(&format!("the tags of {repo}"), || {
                self.client.list_tags(&repo, &self.auth, None, None)
            })
            .await?;
        Ok(listed.tags)
    }

    /// The manifest or index the reference names and the platforms it
    /// has: an index's entries as it lists them, a single manifest's from
    /// its config.
    async fn distribution(&self) -> Result<Distribution> {
        self.authenticate(RegistryOperation::Pull).await?;
        let (top, digest) = self.fetch_manifest(&self.reference, None).await?;
        let own = own_media_type(&top);
        let size = top.len() as u64;
        match resolve::parse_manifest(&top, &own, digest.as_ref())? {
            Parsed::Index(idx) => Ok(Distribution {
                descriptor: Descriptor::new(
                    media_type_or(&own, media_types::OCI_INDEX),
                    size,
                    digest,
                ),
                platforms: idx
                    .manifests()
                    .iter()
                    .filter_map(|m| m.platform().clone())
                    .collect(),
            }),
            Parsed::Manifest(m) => {
                let cdata = self.fetch_config(m.config()).await?;
                let (config, _) =
                    resolve::parse_config(&cdata, m.config().digest().as_ref(), m.layers().len())?;
                Ok(Distribution {
                    descriptor: Descriptor::new(
                        media_type_or(&own, media_types::OCI_MANIFEST),
                        size,
                        digest,
                    ),
                    platforms: vec![resolve::config_platform(&config)],
                })
            }
        }
    }

    async fn fetch_config(&self, cdesc: &Descriptor) -> Result<Vec<u8>> {
        if cdesc.size() > MAX_CONFIG_SIZE {
            return Err(Error::InvalidContent {
                what: "config",
                digest: cdesc.digest().to_string(),
                reason: format!(
                    "its descriptor says {} bytes, more than {MAX_CONFIG_SIZE}",
                    cdesc.size()
                ),
            });
        }
        if self.store.inner.content.exists(cdesc.digest()) {
            return self.store.read_blob(cdesc.digest(), MAX_CONFIG_SIZE);
        }
        let repo = self.reference.repository_only().to_oci();
        let digest = cdesc.digest().to_string();
        let data = self
            .retry(&format!("config {digest}"), || async {
                let mut out = Vec::new();
                self.client
                    .pull_blob(&repo, digest.as_str(), &mut out)
                    .await?;
                Ok(out)
            })
            .await?;
        if data.len() as u64 != cdesc.size() {
            return Err(Error::SizeMismatch {
                what: format!("config {digest}"),
                expected: cdesc.size(),
                actual: data.len() as u64,
            });
        }
        Ok(data)
    }

    fn given_up(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Downloads one layer blob into the store, resuming an ingest left by
    /// an earlier attempt and retrying transient failures from where the
    /// transfer stopped. Returns whether it downloaded (false: the store
    /// had it; said with `show_existing`), or `None` when it stopped
    /// because another layer failed.
    async fn fetch_layer(
        &self,
        l: &Descriptor,
        lease: &Arc<Lease>,
        show_existing: bool,
    ) -> Result<Option<bool>> {
        if self.given_up() {
            return Ok(None);
        }
        let id = short(l.digest());
        let total = l.size();
        let store = self.store.clone();
        let d = l.clone();
        let w = Self::blocking("opening an ingest", move || store.writer(Some(&d))).await?;
        let Some(mut w) = w else {
            lease.add_blob(l.digest());
            if show_existing {
                self.report(&id, ProgressAction::Exists, total, total).await;
            }
            return Ok(Some(false));
        };
        let repo = self.reference.repository_only().to_oci();
        let digest = l.digest().to_string();
        let what = format!("layer {digest}");
        let mut attempt = 0;
        loop {
            let offset = w.offset();
            let resp = if offset > 0 && offset < total {
                self.client
                    .pull_blob_stream_partial(&repo, digest.as_str(), offset, None)
                    .await
            } else {
                self.client
                    .pull_blob_stream(&repo, digest.as_str())
                    .await
                    .map(BlobResponse::Full)
            };
            let end = match resp {
                Err(e) => {
                    let (e, retry) = self.map(e, &what);
                    StreamEnd::Failed(e, retry)
                }
                Ok(r) => {
                    let s = match r {
                        BlobResponse::Full(s) => {
                            if w.offset() > 0 {
                                w.reset()?;
                            }
                            s
                        }
                        BlobResponse::Partial(s) => s,
                    };
                    let (back, end) = self.pump(w, s.stream, &id, total).await?;
                    w = back;
                    end
                }
            };
            match end {
                StreamEnd::Done if w.offset() == total => break,
                StreamEnd::Corrupt => break,
                // What arrived stays in the ingest for the next pull.
                _ if self.given_up() => return Ok(None),
                StreamEnd::Done => {
                    // The body ended early without an error: resume.
                    if attempt >= self.opts.retries {
                        return Err(Error::Registry {
                            registry: self.registry().to_string(),
                            what: format!(
                                "{what}: the transfer ended after {} of {total} bytes",
                                w.offset()
                            ),
                            source: Box::new(OciDistributionError::GenericError(None)),
                        });
                    }
                }
                StreamEnd::Failed(e, retry) => {
                    if matches!(e, Error::SizeMismatch { .. }) {
                        // Bad bytes are never resumed.
                        w.discard();
                        return Err(e);
                    }
                    if !retry || attempt >= self.opts.retries {
                        return Err(e);
                    }
                    tracing::debug!("{what}: {}; resuming at byte {}", e.chain(), w.offset());
                }
            }
            attempt += 1;
            Self::backoff(attempt).await;
        }
        self.report(&id, ProgressAction::Verifying, total, total)
            .await;
        let lease = lease.clone();
        Self::blocking("verifying a layer", move || {
            w.commit(Some(&lease)).map(|_| ())
        })
        .await?;
        self.report(&id, ProgressAction::Downloaded, total, total)
            .await;
        Ok(Some(true))
    }

    /// Feeds a byte stream to the writer on a blocking thread (hashing and
    /// disk writes stay off the async threads) and reports progress.
    async fn pump(
        &self,
        mut w: BlobWriter,
        mut stream: futures::stream::BoxStream<'static, std::result::Result<Bytes, std::io::Error>>,
        id: &str,
        total: u64,
    ) -> Result<(BlobWriter, StreamEnd)> {
        let start = w.offset();
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let writer = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut res = Ok(());
            while let Some(b) = rx.blocking_recv() {
                if let Err(e) = w.write_all(&b) {
                    res = Err(e);
                    break;
                }
            }
            (w, res)
        });
        let step = (total / 100).max(512 * 1024);
        let mut end = StreamEnd::Done;
        let mut current = 0u64;
        let mut reported: Option<u64> = None;
        while let Some(item) = stream.next().await {
            if self.given_up() {
                break;
            }
            match item {
                Ok(b) => {
                    current += b.len() as u64;
                    if tx.send(b).await.is_err() {
                        break; // the writer failed; its error is below
                    }
                    if reported.is_none_or(|r| current - r >= step) {
                        reported = Some(current);
                        self.report(id, ProgressAction::Downloading, start + current, total)
                            .await;
                    }
                }
                Err(e) => {
                    let corrupt = e
                        .get_ref()
                        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
                    end = if corrupt {
                        StreamEnd::Corrupt
                    } else {
                        StreamEnd::Failed(
                            Error::Registry {
                                registry: self.registry().to_string(),
                                what: format!("downloading layer {id}"),
                                source: Box::new(e),
                            },
                            true,
                        )
                    };
                    break;
                }
            }
        }
        drop(tx);
        let (w, res) = writer.await.map_err(|_| Error::TaskFailed {
            what: "writing a layer".into(),
        })?;
        if let Err(e) = res {
            let end = if w.overflowed() {
                StreamEnd::Failed(
                    Error::SizeMismatch {
                        what: format!(
                            "blob {}",
                            w.expected()
                                .map(|d| d.digest().to_string())
                                .unwrap_or_default()
                        ),
                        expected: total,
                        actual: w.offset() + 1,
                    },
                    false,
                )
            } else {
                StreamEnd::Failed(
                    Error::Io {
                        op: "writing",
                        path: self.store.root().join("content/ingest"),
                        source: e,
                    },
                    false,
                )
            };
            return Ok((w, end));
        }
        self.report(id, ProgressAction::Downloading, w.offset(), total)
            .await;
        Ok((w, end))
    }

    async fn unpack_positions(
        &self,
        l: &Descriptor,
        layers: &[Descriptor],
        chains: &[Digest],
        diff_ids: &[Digest],
        lease: &Arc<Lease>,
    ) -> Result<Option<bool>> {
        let id = short(l.digest());
        let mut unpacked = false;
        for (i, x) in layers.iter().enumerate() {
            if x.digest() != l.digest() {
                continue;
            }
            if self.given_up() {
                return Ok(None);
            }
            let chain = chains[i].clone();
            if self
                .store
                .inner
                .snapshots
                .lock()
                .committed
                .contains_key(&chain)
            {
                lease.add_snapshot(&chain);
                continue;
            }
            unpacked = true;
            self.report(&id, ProgressAction::Extracting, 0, l.size())
                .await;
            let store = self.store.clone();
            let parent = if i == 0 {
                None
            } else {
                Some(chains[i - 1].clone())
            };
            let layer = l.clone();
            let diff = diff_ids[i].clone();
            let lease = lease.clone();
            Self::blocking("unpacking a layer", move || {
                store
                    .ensure_layer(&chain, parent.as_ref(), &layer, &diff, Some(&lease))
                    .map(|_| ())
            })
            .await?;
            berth_fault::point("lifecycled:pull.after-layer-unpack");
        }
        Ok(Some(unpacked))
    }

    async fn push(&self, target: &Descriptor) -> Result<Descriptor> {
        let name = self.reference.to_string();
        self.report(&name, ProgressAction::Resolving, 0, 0).await;
        self.authenticate(RegistryOperation::Push).await?;

        // Manifests children first, and the blobs they need.
        let store = self.store.clone();
        let t = target.clone();
        let (manifests, all_blobs) = Self::blocking("reading the image", move || {
            let mut manifests = Vec::new();
            let mut blobs = Vec::new();
            collect_push(&store, &t, &mut manifests, &mut blobs, 0)?;
            Ok((manifests, blobs))
        })
        .await?;
        let mut blobs: Vec<Descriptor> = Vec::new();
        for d in all_blobs {
            if !blobs.iter().any(|x| x.digest() == d.digest()) {
                blobs.push(d);
            }
        }
        for b in &blobs {
            self.report(&short(b.digest()), ProgressAction::Waiting, 0, b.size())
                .await;
        }
        let tasks: Vec<BoxFuture<'_, Result<()>>> =
            blobs.iter().map(|b| self.push_blob(b).boxed()).collect();
        futures::stream::iter(tasks)
            .buffer_unordered(self.opts.max_concurrent_uploads.max(1))
            .try_collect::<Vec<()>>()
            .await?;

        let count = manifests.len();
        for (i, (d, body)) in manifests.into_iter().enumerate() {
            // The top goes up under the reference's tag (or digest); the
            // others by their digest.
            let oref = match (i + 1 == count, self.reference.tag()) {
                (true, Some(tag)) => oci_client::Reference::with_tag(
                    self.registry().into(),
                    self.reference.repository().into(),
                    tag.into(),
                ),
                _ => self.reference.with_digest(d.digest().clone()).to_oci(),
            };
            let own = own_media_type(&body);
            let ct = if own.is_empty() {
                d.media_type().to_string()
            } else {
                own
            };
            let header: http::HeaderValue = ct.parse().map_err(|_| Error::InvalidContent {
                what: "manifest",
                digest: d.digest().to_string(),
                reason: format!("media type {ct:?} is not a valid header value"),
            })?;
            let body = Bytes::from(body);
            self.retry(&format!("pushing manifest {}", d.digest()), || {
                self.client
                    .push_manifest_raw(&oref, body.clone(), header.clone())
            })
            .await?;
        }
        let store = self.store.clone();
        let registry = self.registry().to_string();
        let repo = self.reference.repository().to_string();
        let all: Vec<Digest> = blobs.iter().map(|b| b.digest().clone()).collect();
        Self::blocking("recording sources", move || {
            for d in &all {
                add_source(&store, d, &registry, &repo);
            }
            Ok(())
        })
        .await?;
        Ok(target.clone())
    }

    async fn push_blob(&self, b: &Descriptor) -> Result<()> {
        let id = short(b.digest());
        let repo = self.reference.repository_only().to_oci();
        let digest = b.digest().to_string();
        let exists = self
            .retry(&format!("checking blob {digest}"), || {
                self.client.blob_exists(&repo, &digest)
            })
            .await?;
        if exists {
            self.report(&id, ProgressAction::Exists, b.size(), b.size())
                .await;
            return Ok(());
        }
        // A repository of this registry the blob came from or went to: the
        // registry can link it there instead of receiving it again.
        let labels = self
            .store
            .inner
            .content
            .labels(b.digest())
            .unwrap_or_default();
        if let Some(repos) = labels.get(&format!("{SOURCE_LABEL_PREFIX}{}", self.registry())) {
            for src in repos
                .split(',')
                .filter(|r| !r.is_empty() && *r != self.reference.repository())
            {
                let source = oci_client::Reference::with_tag(
                    self.registry().into(),
                    src.into(),
                    "latest".into(),
                );
                match self.client.mount_blob(&repo, &source, &digest).await {
                    Ok(()) => {
                        self.report(&id, ProgressAction::Mounted, b.size(), b.size())
                            .await;
                        return Ok(());
                    }
                    Err(e) => tracing::debug!("mounting {digest} from {src}: {e}"),
                }
            }
        }
        let mut attempt = 0;
        loop {
            let file = self.store.open_blob(b.digest())?;
            let stream = file_stream(
                tokio::fs::File::from_std(file),
                self.progress.clone(),
                id.clone(),
                b.size(),
            );
            match self
                .client
                .push_blob_stream(&repo, stream, &digest, Some(b.size()))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    let (e, retry) = self.map(e, &format!("pushing blob {digest}"));
                    if !retry || attempt >= self.opts.retries {
                        return Err(e);
                    }
                    attempt += 1;
                    Self::backoff(attempt).await;
                }
            }
        }
        self.report(&id, ProgressAction::Pushed, b.size(), b.size())
            .await;
        Ok(())
    }
}

/// A blob file as a stream of chunks for an upload, reporting progress.
fn file_stream(
    file: tokio::fs::File,
    progress: mpsc::Sender<Progress>,
    id: String,
    total: u64,
) -> impl futures::Stream<Item = std::result::Result<Bytes, OciDistributionError>> + Send + 'static
{
    use tokio::io::AsyncReadExt;
    futures::stream::unfold((file, 0u64, 0u64), move |(mut f, done, sent)| {
        let progress = progress.clone();
        let id = id.clone();
        async move {
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let done = done + n as u64;
                    let mut sent = sent;
                    if done - sent >= (total / 100).max(1 << 20) || done == total {
                        sent = done;
                        let _ = progress
                            .send(Progress {
                                id,
                                action: ProgressAction::Pushing,
                                current: done,
                                total,
                            })
                            .await;
                    }
                    Some((Ok(Bytes::from(buf)), (f, done, sent)))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), (f, done, sent))),
            }
        }
    })
}

/// The same repository and tag or digest on `mirror`.
fn on_mirror(r: &Reference, mirror: &str) -> Result<Reference> {
    let mut via = format!("{mirror}/{}", r.repository());
    if let Some(t) = r.tag() {
        via.push(':');
        via.push_str(t);
    }
    if let Some(d) = r.digest() {
        via.push('@');
        via.push_str(d.as_ref());
    }
    Reference::parse(&via)
}

/// The `mediaType` a manifest or index names itself with ("" if none).
fn own_media_type(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn media_type_or(own: &str, default: &str) -> MediaType {
    MediaType::from(if own.is_empty() { default } else { own })
}

/// Records that `digest` exists in `repo` of `registry`.
fn add_source(store: &Store, digest: &Digest, registry: &str, repo: &str) {
    let key = format!("{SOURCE_LABEL_PREFIX}{registry}");
    let res = store.inner.content.update_labels(digest, |labels| {
        let v = labels.entry(key).or_default();
        if !v.split(',').any(|r| r == repo) {
            if !v.is_empty() {
                v.push(',');
            }
            v.push_str(repo);
        }
    });
    if let Err(e) = res {
        tracing::debug!("recording the source of {digest}: {}", e.chain());
    }
}

/// Manifests (children first) and blobs of an image, all of which must be
/// in the store: a registry refuses an index whose manifests it lacks.
fn collect_push(
    store: &Store,
    d: &Descriptor,
    manifests: &mut Vec<(Descriptor, Vec<u8>)>,
    blobs: &mut Vec<Descriptor>,
    depth: usize,
) -> Result<()> {
    let body = store.read_blob(d.digest(), MAX_MANIFEST_SIZE)?;
    match resolve::parse_manifest(&body, d.media_type().as_ref(), d.digest().as_ref())? {
        Parsed::Index(idx) => {
            if depth > 2 {
                return Err(Error::InvalidContent {
                    what: "index",
                    digest: d.digest().to_string(),
                    reason: "indexes nest too deep".into(),
                });
            }
            for c in idx.manifests() {
                if !store.inner.content.exists(c.digest()) {
                    let platform = c
                        .platform()
                        .as_ref()
                        .map(resolve::platform_string)
                        .unwrap_or_else(|| "unnamed".into());
                    return Err(Error::BlobNotFound {
                        digest: format!(
                            "{} (the {platform} manifest of index {}; only complete images can be pushed)",
                            c.digest(),
                            d.digest()
                        ),
                    });
                }
                collect_push(store, c, manifests, blobs, depth + 1)?;
            }
        }
        Parsed::Manifest(m) => {
            for b in std::iter::once(m.config()).chain(m.layers().iter()) {
                store.info(b.digest())?;
                blobs.push(b.clone());
            }
        }
    }
    manifests.push((d.clone(), body));
    Ok(())
}

impl Store {
    /// Pulls `reference` (in full, with a tag or digest) into namespace
    /// `ns` and records it under that name. Progress goes to `progress`
    /// (a closed receiver does not stop the pull).
    /// The same repository and tag or digest from `mirror`, anonymously
    /// (credentials belong to the registry, not to its mirrors), recorded
    /// under the registry's name.
    async fn pull_from_mirror(
        &self,
        r: &Reference,
        mirror: &str,
        opts: &RegistryOptions,
        progress: &mpsc::Sender<Progress>,
        lease: &Arc<Lease>,
    ) -> Result<ImageRecord> {
        let session =
            Session::new(self, on_mirror(r, mirror)?, None, opts, progress.clone()).await?;
        let mut rec = session.pull(lease.clone()).await?;
        rec.name = r.to_string();
        Ok(rec)
    }

    pub async fn pull(
        &self,
        ns: &str,
        reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
        progress: mpsc::Sender<Progress>,
    ) -> Result<ImageRecord> {
        validate_namespace(ns)?;
        let r = Reference::parse(reference)?;
        if r.tag().is_none() && r.digest().is_none() {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "it has neither a tag nor a digest (the engine adds :latest)".into(),
            });
        }
        let lease = Arc::new(self.lease());
        let mut from_mirror = None;
        for (_, mirror) in opts.mirrors.iter().filter(|(reg, _)| reg == r.registry()) {
            match self
                .pull_from_mirror(&r, mirror, opts, &progress, &lease)
                .await
            {
                Ok(rec) => {
                    from_mirror = Some(rec);
                    break;
                }
                Err(e) => tracing::info!("mirror {mirror} did not give {r}: {e}; trying the next"),
            }
        }
        let pulled = match from_mirror {
            Some(rec) => Ok(rec),
            None => {
                let session = Session::new(self, r, auth, opts, progress).await?;
                session.pull(lease.clone()).await
            }
        };
        let res = match pulled {
            Ok(rec) => {
                let store = self.clone();
                let ns = ns.to_string();
                Session::blocking("recording the image", move || store.put_image(&ns, rec)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &res
            && !e.is_transient()
        {
            let store = self.clone();
            let l = lease.clone();
            let _ = tokio::task::spawn_blocking(move || store.rollback(&l)).await;
        }
        res
    }

    /// What the registry holds under `reference`, without pulling it: from
    /// the first of its mirrors that answers, else from the registry.
    pub async fn distribution(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
    ) -> Result<Distribution> {
        self.look_up(
            reference,
            auth,
            opts,
            |s| async move { s.distribution().await },
        )
        .await
        .map_err(Error::bare)
    }

    /// The config of what the registry (or the first of its mirrors that
    /// answers) holds under `reference`, without its layers: what a
    /// plugin's install asks before it pulls (Docker's plugin privileges).
    /// Nothing is stored.
    pub async fn fetch_config(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
    ) -> Result<FetchedConfig> {
        self.look_up(reference, auth, opts, |s| async move { s.config().await })
            .await
    }

    /// The tags the registry (or the first of its mirrors that answers)
    /// lists for the repository of `reference`.
    pub async fn tags(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
    ) -> Result<Vec<String>> {
        self.look_up(reference, auth, opts, |s| async move { s.tags().await })
            .await
    }

    /// What `ask` gets from the first of `reference`'s mirrors that answers
    /// (anonymously: credentials belong to the registry), else from the
    /// registry itself; nothing is stored.
    async fn look_up<T, Fut>(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
        ask: impl Fn(Session) -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let r = Reference::parse(reference)?;
        // Nobody listens to the progress of a look-up.
        let (progress, _) = mpsc::channel(1);
        for (_, mirror) in opts.mirrors.iter().filter(|(reg, _)| reg == r.registry()) {
            let session =
                Session::new(self, on_mirror(&r, mirror)?, None, opts, progress.clone()).await?;
            match ask(session).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::info!("mirror {mirror} did not answer for {r}: {e}; trying the next")
                }
            }
        }
        ask(Session::new(self, r, auth, opts, progress).await?).await
    }

    /// Pushes the local image `local_name` of `ns` as `remote_reference`
    /// (in full, with a tag, or with the image's own digest) and returns
    /// the descriptor pushed (its digest is the local one: manifests go up
    /// byte for byte).
    pub async fn push(
        &self,
        ns: &str,
        local_name: &str,
        remote_reference: &str,
        auth: Option<Credentials>,
        opts: &RegistryOptions,
        progress: mpsc::Sender<Progress>,
    ) -> Result<Descriptor> {
        let rec = self.get_image(ns, local_name)?;
        let r = Reference::parse(remote_reference)?;
        if r.tag().is_none() && r.digest().is_none() {
            return Err(Error::InvalidReference {
                reference: remote_reference.to_string(),
                reason: "it has neither a tag nor a digest".into(),
            });
        }
        if let Some(d) = r.digest()
            && d != rec.target.digest()
        {
            return Err(Error::InvalidReference {
                reference: remote_reference.to_string(),
                reason: format!("its digest is not the image's, {}", rec.target.digest()),
            });
        }
        let session = Session::new(self, r, auth, opts, progress).await?;
        session.push(&rec.target).await
    }
}
