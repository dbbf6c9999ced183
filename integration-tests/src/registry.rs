//! A Debian `docker-registry` (distribution 2.8) on a free loopback port,
//! storing into a temporary directory, killed by pid on drop; plain HTTP,
//! or TLS with a self-signed certificate nobody trusts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Registry {
    /// `127.0.0.1:PORT`
    pub host: String,
    _dir: TempDir,
    child: Child,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(None, false)
    }

    /// A registry that takes only this user (htpasswd basic auth).
    pub fn start_with_user(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)), false)
    }

    /// A registry over TLS whose certificate (for 127.0.0.1) signs itself:
    /// what an insecure registry mostly is.
    pub fn start_tls_with_user(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)), true)
    }

    fn start_with(user: Option<(&str, &str)>, tls: bool) -> Registry {
        assert!(
            std::path::Path::new("/usr/bin/docker-registry").exists(),
            "this test needs Debian's docker-registry (scripts/deps installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry")
            .tempdir()
            .expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((u, p)) = user {
            // distribution takes bcrypt hashes only.
            let hash = bcrypt::hash(p, 5).expect("hashing the password");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{u}:{hash}\n")).expect("writing htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let mut tls_conf = String::new();
        if tls {
            let key = rcgen::KeyPair::generate().expect("key");
            let params =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
            let cert = params.self_signed(&key).expect("a self-signed certificate");
            let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert_path, cert.pem()).expect("writing the certificate");
            std::fs::write(&key_path, key.serialize_pem()).expect("writing the key");
            tls_conf = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {host}\n  secret: berth-integration-test\n{tls_conf}{auth}",
            dir.path().join("data").display()
        );
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("writing the registry config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let r = Registry {
            host,
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&r.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
