//! What the registry and tool tests share: a real Debian `docker-registry`
//! started per test on a free 127.0.0.1 port (plain HTTP, HTTPS with a CA
//! made here, htpasswd basic auth, or token auth through a small token
//! server run here), killed by its PID in Drop; and images built in memory.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use imagestore::{Progress, RegistryOptions, Store};
use sha2::Digest as _;

pub const NS: &str = "test";
pub const USER: &str = "berth";
pub const PASSWORD: &str = "s3cret-pass";

pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("root")).unwrap();
    (dir, s)
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs {tool} (Debian package {package}: apt-get install {package})"
    );
}

pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP: the client must list it as insecure.
    Plain,
    /// HTTPS with a certificate from a CA made by the test.
    Tls,
    /// Plain HTTP with htpasswd basic auth.
    Basic,
    /// Plain HTTP with token auth through [`TokenServer`].
    Token,
    /// Token auth whose server, as Docker Hub's, gives an anonymous caller
    /// a token too, one that grants nothing.
    TokenForAnyone,
}

pub struct Registry {
    child: Child,
    pub host: String,
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    pub ca: Option<PathBuf>,
    _token: Option<TokenServer>,
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        Registry::start_on(mode, free_port(), None)
    }

    /// Starts on a port chosen before (for a client that is already trying
    /// it), optionally with a copy of another registry's storage.
    pub fn start_on(mode: Mode, port: u16, seed: Option<&Path>) -> Registry {
        need("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        if let Some(seed) = seed {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(seed)
                .arg(dir.path().join("data"))
                .status()
                .unwrap()
                .success();
            assert!(ok, "copying {}", seed.display());
        }
        let host = format!("127.0.0.1:{port}");
        let d = dir.path();
        let mut http_extra = String::new();
        let mut auth = String::new();
        let mut ca = None;
        let mut token = None;
        match mode {
            Mode::Plain => {}
            Mode::Tls => {
                let (ca_pem, cert_pem, key_pem) = tls_files();
                fs::write(d.join("ca.pem"), ca_pem).unwrap();
                fs::write(d.join("server.pem"), cert_pem).unwrap();
                fs::write(d.join("server.key"), key_pem).unwrap();
                http_extra = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    d.join("server.pem").display(),
                    d.join("server.key").display()
                );
                ca = Some(d.join("ca.pem"));
            }
            Mode::Basic => {
                let hash = bcrypt::hash(PASSWORD, 5).unwrap();
                fs::write(d.join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    d.join("htpasswd").display()
                );
            }
            Mode::Token | Mode::TokenForAnyone => {
                let t = TokenServer::start(matches!(mode, Mode::TokenForAnyone));
                fs::write(d.join("token.pem"), &t.cert_pem).unwrap();
                auth = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    t.port,
                    d.join("token.pem").display()
                );
                token = Some(t);
            }
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n  secret: berth-test-secret\n{http_extra}{auth}",
            data = d.join("data").display(),
        );
        fs::write(d.join("config.yml"), config).unwrap();
        let log = fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry {
            child,
            host,
            mode,
            dir,
            ca,
            _token: token,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&reg.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}: {}",
                reg.host,
                fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Options that reach this registry.
    pub fn options(&self) -> RegistryOptions {
        let mut o = RegistryOptions::default();
        match self.mode {
            Mode::Tls => o.ca_certs = vec![self.ca.clone().unwrap()],
            _ => o.insecure = vec![self.host.clone()],
        }
        o.retries = 1;
        o
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn tls_files() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

const SERVICE: &str = "berth-test-registry";
const ISSUER: &str = "berth-test-token-issuer";

/// The token server of the registry's bearer challenge: checks basic
/// credentials and hands out an ES256 JWT granting the scopes asked for,
/// signed with a key whose self-signed certificate the registry trusts.
pub struct TokenServer {
    pub port: u16,
    pub cert_pem: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(anyone: bool) -> TokenServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test token signer");
        let cert = params.self_signed(&key).unwrap();
        let pkcs8 = key.serialize_der();
        let cert_der = cert.der().to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rng = ring::rand::SystemRandom::new();
            let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
                &rng,
            )
            .unwrap();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        serve_token(conn, &signer, &rng, &cert_der, anyone);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        TokenServer {
            port,
            cert_pem: cert.pem(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn serve_token(
    mut conn: TcpStream,
    signer: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    cert_der: &[u8],
    anyone: bool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let creds = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let v = v.trim().strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        String::from_utf8(raw).ok()
    });
    let respond = |conn: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let anonymous = creds.is_none() && anyone;
    if creds.as_deref() != Some(&format!("{USER}:{PASSWORD}")) && !anonymous {
        respond(
            &mut conn,
            "401 Unauthorized",
            r#"{"details":"wrong user name or password"}"#,
        );
        return;
    }
    let mut access = Vec::new();
    for kv in query.split('&').filter(|_| !anonymous) {
        let Some(("scope", v)) = kv.split_once('=') else {
            continue;
        };
        let v = v
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%2F", "/");
        let parts: Vec<&str> = v.split(':').collect();
        if parts.len() == 3 {
            access.push(serde_json::json!({
                "type": parts[0],
                "name": parts[1],
                "actions": parts[2].split(',').collect::<Vec<_>>(),
            }));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": USER,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = signer.sign(rng, signing_input.as_bytes()).unwrap();
    let jwt = format!("{signing_input}.{}", b64url(sig.as_ref()));
    let body = serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300});
    respond(&mut conn, "200 OK", &body.to_string());
}

/// A layer tar with the given files (and their directories).
pub fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// An image made in memory: its manifest and every blob.
pub struct Image {
    pub manifest: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
    pub arch: String,
}

impl Image {
    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

pub fn host_arch() -> String {
    imagestore::PlatformSpec::host().architecture
}

/// An image of gzipped layers made from `layers` (uncompressed tars).
pub fn image(layers: &[Vec<u8>], arch: &str) -> Image {
    let mut blobs = Vec::new();
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for l in layers {
        let gz = gzip(l);
        diffs.push(sha256(l));
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(&gz),
            "size": gz.len(),
        }));
        blobs.push(gz);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffs},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": descs,
    }))
    .unwrap();
    blobs.push(config);
    Image {
        manifest,
        blobs,
        arch: arch.to_string(),
    }
}

fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data).unwrap();
}

fn add_blob(b: &mut tar::Builder<Vec<u8>>, data: &[u8]) {
    let d = sha256(data);
    add(b, &format!("blobs/sha256/{}", &d[7..]), data);
}

/// An OCI layout archive with each image under its name.
pub fn oci_archive(images: &[(&str, &Image)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut entries = Vec::new();
    for (name, img) in images {
        for blob in &img.blobs {
            add_blob(&mut b, blob);
        }
        add_blob(&mut b, &img.manifest);
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest(),
            "size": img.manifest.len(),
            "annotations": {"io.containerd.image.name": name},
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
    add(&mut b, "index.json", index.to_string().as_bytes());
    b.into_inner().unwrap()
}

/// An OCI layout archive with one multi-platform index named `name`.
pub fn oci_index_archive(name: &str, images: &[&Image]) -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut manifests = Vec::new();
    for img in images {
        for blob in &img.blobs {
            add_blob(&mut b, blob);
        }
        add_blob(&mut b, &img.manifest);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest(),
            "size": img.manifest.len(),
            "platform": {"os": "linux", "architecture": img.arch},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    add_blob(&mut b, &index);
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": sha256(&index),
        "size": index.len(),
        "annotations": {"io.containerd.image.name": name},
    }]});
    add(&mut b, "index.json", top.to_string().as_bytes());
    (b.into_inner().unwrap(), sha256(&index))
}

/// Drains a progress channel (after the sender side is done).
pub fn drain(mut rx: tokio::sync::mpsc::Receiver<Progress>) -> Vec<Progress> {
    let mut v = Vec::new();
    while let Ok(p) = rx.try_recv() {
        v.push(p);
    }
    v
}

/// A progress channel that never fills up during a test.
pub fn progress() -> (
    tokio::sync::mpsc::Sender<Progress>,
    tokio::sync::mpsc::Receiver<Progress>,
) {
    tokio::sync::mpsc::channel(100_000)
}

/// Every blob digest in a store.
pub fn blobs(s: &Store) -> std::collections::BTreeSet<String> {
    s.list()
        .unwrap()
        .into_iter()
        .map(|i| i.digest.to_string())
        .collect()
}

pub fn du(path: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Pseudo-random bytes that do not compress, so that sizes mean something.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
