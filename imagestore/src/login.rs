//! `docker login`'s check: do these credentials open this registry? The
//! registry's answer to `GET /v2/` says how it wants to be asked: not at all
//! (200), with basic auth, or with a bearer token from its token server,
//! which then has to accept the credentials.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::registry::RegistryOptions;

/// Checks `username`/`password` against `registry` (`host[:port]`).
pub async fn check_login(
    registry: &str,
    username: &str,
    password: &str,
    opts: &RegistryOptions,
) -> Result<()> {
    let (client, scheme) = http_client(registry, opts).await?;
    let base = format!("{scheme}://{registry}/v2/");
    let unreachable = |e: reqwest::Error| Error::RegistryUnreachable {
        registry: registry.into(),
        source: Box::new(e),
    };
    let refused = |reason: String| Error::Unauthorized {
        registry: registry.into(),
        reference: registry.into(),
        reason,
    };
    let r = client.get(&base).send().await.map_err(unreachable)?;
    if r.status().is_success() {
        return Ok(());
    }
    if r.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(unexpected(registry, r.status()));
    }
    let challenge = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (scheme, params) = parse_challenge(&challenge);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let r = client
                .get(&base)
                .basic_auth(username, Some(password))
                .send()
                .await
                .map_err(unreachable)?;
            match r.status() {
                s if s.is_success() => Ok(()),
                reqwest::StatusCode::UNAUTHORIZED => Err(refused(
                    "401 Unauthorized: wrong username or password".into(),
                )),
                s => Err(unexpected(registry, s)),
            }
        }
        "bearer" => {
            let realm = params
                .get("realm")
                .ok_or_else(|| refused(format!("its challenge has no token realm: {challenge}")))?;
            let mut query = vec![("account", username.to_string())];
            if let Some(s) = params.get("service") {
                query.push(("service", s.clone()));
            }
            let r = client
                .get(realm)
                .query(&query)
                .basic_auth(username, Some(password))
                .send()
                .await
                .map_err(unreachable)?;
            match r.status() {
                s if s.is_success() => Ok(()),
                s @ (reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) => Err(
                    refused(format!("the token server refused the credentials ({s})")),
                ),
                s => Err(unexpected(registry, s)),
            }
        }
        _ => Err(refused(format!(
            "it asks for authentication berth does not speak: {challenge:?}"
        ))),
    }
}

/// An HTTP client for `registry` with the options' timeouts and CA
/// certificates, and the scheme it is reached over (plain HTTP, or TLS
/// with any certificate, only when the options list it as insecure).
pub(crate) async fn http_client(
    registry: &str,
    opts: &RegistryOptions,
) -> Result<(reqwest::Client, &'static str)> {
    crate::registry::install_crypto_provider();
    let transport = crate::transport::transport(registry, opts).await;
    let mut b = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.read_timeout)
        .danger_accept_invalid_certs(transport == crate::transport::Transport::HttpsUnverified);
    for p in &opts.ca_certs {
        let pem = std::fs::read(p).map_err(|source| Error::CaCertificate {
            path: p.clone(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| Error::Registry {
            registry: registry.into(),
            what: format!("reading the CA certificate {}", p.display()),
            source: Box::new(e),
        })?;
        b = b.add_root_certificate(cert);
    }
    let client = b.build().map_err(|e| Error::Registry {
        registry: registry.into(),
        what: "building the HTTP client".into(),
        source: Box::new(e),
    })?;
    Ok((client, transport.scheme()))
}

fn unexpected(registry: &str, status: reqwest::StatusCode) -> Error {
    Error::Registry {
        registry: registry.into(),
        what: format!("GET /v2/ answered {status}"),
        source: format!("unexpected status {status}").into(),
    }
}

/// `Bearer realm="https://auth",service="registry"` → ("Bearer", {realm, service}).
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (value, tail) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_string(), &v[end..]),
                None => (v.trim().to_string(), ""),
            }
        };
        params.insert(k, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="x""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (s.as_str(), p["realm"].as_str()),
            ("Basic", "Registry Realm")
        );
    }
}
