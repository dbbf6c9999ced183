//! How a registry is reached. A registry listed as insecure is one dockerd
//! reaches over TLS without checking its certificate when it speaks TLS
//! (a self-signed or expired certificate: what `insecure-registries` is
//! mostly for), and over plain HTTP when it does not. dockerd tries TLS
//! first; berth asks plain HTTP first and ends on the same one: a TLS port
//! answers a plain request at once (a 400, or an alert), where a plain port
//! may sit on a TLS hello until a timeout.

use crate::registry::RegistryOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TLS with the certificate checked: every registry not listed.
    Https,
    /// TLS, any certificate: a listed registry that speaks TLS.
    HttpsUnverified,
    /// Plain HTTP: a listed registry that does not.
    Http,
}

impl Transport {
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Https | Transport::HttpsUnverified => "https",
        }
    }
}

/// The transport for `registry` (`host[:port]`), asking it when the
/// options list it as insecure.
pub(crate) async fn transport(registry: &str, opts: &RegistryOptions) -> Transport {
    if !opts.insecure.iter().any(|h| h == registry) {
        return Transport::Https;
    }
    crate::registry::install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let Ok(client) = client else {
        return Transport::Http;
    };
    let answer = client.get(format!("http://{registry}/v2/")).send().await;
    let t = read_probe(answer.as_ref().map(|r| r.status().as_u16()), |e| {
        e.is_connect() || e.is_timeout()
    });
    tracing::debug!(registry, transport = ?t, "an insecure registry's transport");
    t
}

/// The probe's answer read: a plain answer other than the 400 a TLS port
/// gives a plain request is plain HTTP; a failure to connect says nothing
/// either way, and leaves plain HTTP (dockerd's last try, whose error it
/// reports); any other failure is a port that does not speak HTTP.
fn read_probe<E>(answer: Result<u16, &E>, unreachable: impl Fn(&E) -> bool) -> Transport {
    match answer {
        Ok(400) => Transport::HttpsUnverified,
        Ok(_) => Transport::Http,
        Err(e) if unreachable(e) => Transport::Http,
        Err(_) => Transport::HttpsUnverified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reads_as_dockerds_fallback_ends() {
        let read = |a: Result<u16, &bool>| read_probe(a, |unreachable: &bool| *unreachable);
        assert_eq!(read(Ok(200)), Transport::Http);
        assert_eq!(read(Ok(401)), Transport::Http);
        assert_eq!(read(Ok(404)), Transport::Http);
        assert_eq!(read(Ok(400)), Transport::HttpsUnverified);
        assert_eq!(read(Err(&true)), Transport::Http);
        assert_eq!(read(Err(&false)), Transport::HttpsUnverified);
    }

    #[tokio::test]
    async fn a_registry_not_listed_is_never_asked() {
        // Nothing listens on port 1: a probe would answer Http.
        let opts = RegistryOptions::default();
        assert_eq!(transport("127.0.0.1:1", &opts).await, Transport::Https);
        let opts = RegistryOptions {
            insecure: vec!["127.0.0.1:1".into()],
            ..RegistryOptions::default()
        };
        assert_eq!(transport("127.0.0.1:1", &opts).await, Transport::Http);
    }
}
