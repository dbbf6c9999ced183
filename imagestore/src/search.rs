//! `docker search`: a registry index's v1 search (`GET /v1/search?q=…&n=…`),
//! which Docker Hub's index answers and most self-hosted registries do not.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::registry::RegistryOptions;

/// One repository an index found.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub star_count: i64,
    pub is_official: bool,
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// The repositories `index` (`host[:port]`) finds for `term`, at most
/// `limit` of them (the index's own default when 0), asked with basic
/// credentials when a username is given.
pub async fn search(
    index: &str,
    term: &str,
    limit: u32,
    username: &str,
    password: &str,
    opts: &RegistryOptions,
) -> Result<Vec<SearchResult>> {
    // The index goes into the URL: a host[:port] and nothing riding along
    // (user info, a path, a query).
    crate::reference::validate_host(index).map_err(|reason| Error::InvalidReference {
        reference: index.to_string(),
        reason: format!("index {reason}"),
    })?;
    let (client, scheme) = crate::login::http_client(index, opts).await?;
    let mut query = vec![("q", term.to_string())];
    if limit > 0 {
        query.push(("n", limit.to_string()));
    }
    let mut req = client
        .get(format!("{scheme}://{index}/v1/search"))
        .query(&query);
    if !username.is_empty() {
        req = req.basic_auth(username, Some(password));
    }
    let r = req.send().await.map_err(|e| Error::RegistryUnreachable {
        registry: index.into(),
        source: Box::new(e),
    })?;
    let status = r.status();
    if !status.is_success() {
        return Err(Error::Registry {
            registry: index.into(),
            what: format!("GET /v1/search answered {status}"),
            source: format!("unexpected status code {}", status.as_u16()).into(),
        });
    }
    let read = |source: Box<dyn std::error::Error + Send + Sync>| Error::Registry {
        registry: index.into(),
        what: "reading its search results".into(),
        source,
    };
    let body = r.bytes().await.map_err(|e| read(Box::new(e)))?;
    let page: Page = serde_json::from_slice(&body).map_err(|e| read(Box::new(e)))?;
    Ok(page.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_index_that_is_no_host_is_refused_before_any_request() {
        let opts = RegistryOptions::default();
        for bad in ["a.com?x=1", "u@127.0.0.1:1", "a.com/x", "a.com:port"] {
            let e = search(bad, "t", 0, "", "", &opts).await.unwrap_err();
            assert!(matches!(e, Error::InvalidReference { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn a_page_of_results_reads_with_missing_fields_as_defaults() {
        let page: Page = serde_json::from_str(
            r#"{"num_results": 2, "query": "bus", "results": [
                {"name": "busybox", "description": "tiny", "star_count": 3, "is_official": true},
                {"name": "user/bus"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.results.len(), 2);
        assert!(page.results[0].is_official && !page.results[0].is_automated);
        assert_eq!(page.results[1].star_count, 0);
    }
}
