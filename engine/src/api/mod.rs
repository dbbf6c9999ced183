//! The Docker Engine API (v1.43) over axum: versioned and unversioned paths,
//! Docker's errors, hijacked streams.

pub mod attach_ws;
pub mod authz_plugins;
pub mod body;
pub mod build;
pub mod changes;
pub mod containers;
pub mod exec;
pub mod images;
pub mod json;
pub mod json_syntax;
pub mod networks;
pub mod plugins;
pub mod query;
pub mod stats;
pub mod stream;
pub mod swarm;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::daemon::Daemon;
use crate::error::ApiError;

pub const API_VERSION: &str = "1.43";
pub const MIN_API_VERSION: &str = "1.24";

pub type State = axum::extract::State<Arc<Daemon>>;

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `/v1.43/containers/json` → `/containers/json`, with the version kept in
/// an extension; a version out of range is answered here.
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v")
        && let Some((ver, tail)) = rest.split_once('/')
        && let Some(v) = parse_version(ver)
    {
        let new_path = format!("/{tail}");
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
        req.extensions_mut()
            .insert(ClientVersion(Some((v, ver.to_string()))));
        return req;
    }
    req.extensions_mut().insert(ClientVersion(None));
    req
}

/// A request path without its `/vX.Y` prefix, if it has one.
pub fn unversioned(path: &str) -> &str {
    path.strip_prefix("/v")
        .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|p| p.find('/').map(|i| &p[i..]))
        .unwrap_or(path)
}

#[derive(Clone, Debug)]
pub struct ClientVersion(pub Option<((u32, u32), String)>);

impl ClientVersion {
    /// Whether the client named an API version older than `v` (one that
    /// named none gets the current behaviour).
    pub fn before(&self, v: (u32, u32)) -> bool {
        self.0.as_ref().is_some_and(|(n, _)| *n < v)
    }
}

async fn check_version(req: Request, next: axum::middleware::Next) -> Response {
    if let Some(ClientVersion(Some((v, text)))) = req.extensions().get::<ClientVersion>().cloned() {
        let max = parse_version(API_VERSION).unwrap_or((1, 43));
        let min = parse_version(MIN_API_VERSION).unwrap_or((1, 24));
        if v > max {
            return ApiError::bad_request(format!(
                "client version {text} is too new. Maximum supported API version is {API_VERSION}"
            ))
            .into_response();
        }
        if v < min {
            return ApiError::bad_request(format!(
                "client version {text} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ))
            .into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    resp
}

async fn not_found(
    s: axum::extract::State<Arc<Daemon>>,
    method: axum::http::Method,
    uri: Uri,
) -> Result<Response, ApiError> {
    // `docker rm --link /parent/alias` puts the link's name, slashes and
    // all, in the path.
    if method == axum::http::Method::DELETE
        && let Some(link) = uri.path().strip_prefix("/containers/")
        && uri.query().is_some_and(|q| {
            q.split('&')
                .any(|kv| matches!(kv, "link=1" | "link=true" | "link=True"))
        })
    {
        let link = percent_encoding::percent_decode_str(link).decode_utf8_lossy();
        s.0.remove_link(&link).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // dockerd answers any OPTIONS (a browser's CORS preflight) with 200.
    if method == axum::http::Method::OPTIONS {
        return Ok(StatusCode::OK.into_response());
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, "page not found"))
}

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/auth", post(images::auth))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/attach/ws", get(attach_ws::attach_ws))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/{id}/export", get(containers::export))
        .route(
            "/containers/{id}/archive",
            get(containers::archive_get)
                .head(containers::archive_head)
                .put(containers::archive_put),
        )
        .route("/containers/{id}", delete(containers::remove))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save))
        .route("/images/prune", post(images::prune))
        .route("/images/search", get(images::search))
        .route(
            "/images/{*name}",
            get(images::by_name)
                .post(images::by_name_post)
                .delete(images::remove),
        )
        .route("/distribution/{*rest}", get(images::distribution))
        .route("/commit", post(images::commit))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/networks", get(networks::list))
        // dockerd lists at "/networks/" too (moby#24595).
        .route("/networks/", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/swarm", get(swarm::not_a_manager))
        .route("/swarm/init", post(swarm::unsupported))
        .route("/swarm/join", post(swarm::unsupported))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::not_a_manager))
        .route("/swarm/unlockkey", get(swarm::not_a_manager))
        .route("/swarm/unlock", post(swarm::not_a_manager))
        .route("/nodes", get(swarm::not_a_manager))
        .route(
            "/nodes/{*rest}",
            get(swarm::not_a_manager)
                .post(swarm::not_a_manager)
                .delete(swarm::not_a_manager),
        )
        .route("/services", get(swarm::not_a_manager))
        .route(
            "/services/{*rest}",
            get(swarm::not_a_manager)
                .post(swarm::not_a_manager)
                .delete(swarm::not_a_manager),
        )
        .route("/tasks", get(swarm::not_a_manager))
        .route("/tasks/{*rest}", get(swarm::not_a_manager))
        .route("/secrets", get(swarm::not_a_manager))
        .route(
            "/secrets/{*rest}",
            get(swarm::not_a_manager)
                .post(swarm::not_a_manager)
                .delete(swarm::not_a_manager),
        )
        .route("/configs", get(swarm::not_a_manager))
        .route(
            "/configs/{*rest}",
            get(swarm::not_a_manager)
                .post(swarm::not_a_manager)
                .delete(swarm::not_a_manager),
        )
        .route("/plugins", get(plugins::list))
        .route("/plugins/privileges", get(plugins::privileges))
        .route("/plugins/pull", post(plugins::pull))
        .route("/plugins/create", post(plugins::create))
        .route(
            "/plugins/{*name}",
            get(plugins::named)
                .post(plugins::named)
                .delete(plugins::named),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            d.clone(),
            authz_plugins::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(d.clone(), authorize))
        .layer(axum::middleware::from_fn(check_json))
        .layer(axum::middleware::from_fn(check_version))
        .layer(axum::middleware::from_fn(log_call))
        // JSON bodies read whole: a create that publishes every port
        // (`-p 1-65535:1-65535`) is some 6 MiB; dockerd sets no bound,
        // berth a generous one. Streamed bodies (loads, builds, archives)
        // are not read whole and not bounded by it.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(d)
}

/// The largest request body read whole.
const MAX_JSON_BODY: usize = 16 << 20;

/// Each call at debug level, as dockerd's "Calling GET /…", with its
/// status and how long the engine took to answer (the headers, not a
/// streamed body): where a client's time goes shows in the daemon's log.
async fn log_call(req: Request, next: axum::middleware::Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::debug!(
        "{method} {uri}: {} in {:.1} ms",
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    res
}

/// dockerd's CheckForJSON: a call that takes a JSON body must say so. A
/// web page can send a cross-site POST without asking first only as
/// text/plain or a form; refusing those keeps browsers off a tcp:// socket.
async fn check_json(req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let json_call = req.method() == axum::http::Method::POST
        && (body_matters("POST", path)
            || path == "/volumes/create"
            || path == "/auth"
            || path == "/commit"
            || path.starts_with("/exec/") && path.ends_with("/start")
            || path.starts_with("/containers/") && path.ends_with("/update")
            || path.starts_with("/plugins/") && path.ends_with("/set"));
    if json_call {
        let ct = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.trim() == "0");
        let media = ct.split(';').next().unwrap_or("").trim();
        let ok = (ct.is_empty() && empty) || media.eq_ignore_ascii_case("application/json");
        if !ok {
            return ApiError::bad_request(format!(
                "unsupported Content-Type header ({ct}): must be 'application/json'"
            ))
            .into_response();
        }
    }
    next.run(req).await
}

/// The engine's objects as the policy needs them.
impl crate::authz::Objects for Daemon {
    fn container_owner(&self, key: &str) -> Option<Option<String>> {
        self.find(key).ok().map(|e| e.owner.clone())
    }

    fn exec_container(&self, exec_id: &str) -> Option<String> {
        self.execs.get(exec_id).map(|x| x.container_id.clone())
    }

    fn protected_paths(&self) -> Vec<std::path::PathBuf> {
        let mut out = vec![
            self.cfg.data_root.clone(),
            self.cfg.exec_root.clone(),
            self.cfg.lifecycled.clone(),
        ];
        // lifecycled keeps its shims' sockets beside its own.
        out.extend(self.cfg.lifecycled.parent().map(|p| p.to_path_buf()));
        for h in &self.cfg.hosts {
            if let Ok(crate::hosts::Host::Unix(p)) = crate::hosts::parse(h) {
                out.push(p);
            }
        }
        out
    }
}

/// Calls whose bodies can ask for the host (and so are read before the
/// handler is).
fn body_matters(method: &str, path: &str) -> bool {
    method == "POST"
        && (path == "/containers/create"
            || path == "/networks/create"
            || path == "/volumes/create"
            || (path.starts_with("/containers/") && path.ends_with("/exec"))
            || (path.starts_with("/networks/")
                && (path.ends_with("/connect") || path.ends_with("/disconnect"))))
}

/// The policy's decision on each call (see `authz`), before any handler.
async fn authorize(
    axum::extract::State(d): State,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::authz::{Call, Identity, Role};
    let live = d.live();
    let policy = &live.authorization;
    let id = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Identity>>()
        .map_or(Identity::Anonymous, |c| c.0.clone());
    let role = policy.role_of(&id);
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let (req, body) =
        if body_matters(&method, &path) && (role != Role::Admin || policy.audit_log.is_some()) {
            let (parts, b) = req.into_parts();
            let bytes = match axum::body::to_bytes(b, MAX_JSON_BODY).await {
                Ok(b) => b,
                Err(e) => {
                    return ApiError::bad_request(format!("reading the request body: {e}"))
                        .into_response();
                }
            };
            // Judged on what the handler will read: a body the policy cannot
            // parse is refused, never waved through.
            let v: Option<serde_json::Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        return ApiError::bad_request(format!("invalid JSON body: {e}"))
                            .into_response();
                    }
                }
            };
            (Request::from_parts(parts, axum::body::Body::from(bytes)), v)
        } else {
            (req, None)
        };
    let query = axum::extract::Query::<query::Params>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let call = Call {
        method: &method,
        path: &path,
        query: &query,
        body: body.as_ref(),
    };
    match policy.check(role, &id.owner_key(), &call, d.as_ref()) {
        Err(denial) => {
            tracing::warn!(
                "{id} ({role:?}): {method} {path} refused by rule {}",
                denial.rule
            );
            policy.audit(&id, role, &method, &path, "denied", denial.rule);
            return ApiError::forbidden(denial.message).into_response();
        }
        Ok(())
            if policy.is_privileged(
                &path,
                body.as_ref(),
                &crate::authz::Objects::protected_paths(d.as_ref()),
            ) =>
        {
            policy.audit(&id, role, &method, &path, "allowed", "privileged");
        }
        Ok(()) => {}
    }
    let mut req = req;
    req.extensions_mut().insert(Owner(id.owner_key()));
    next.run(req).await
}

/// Who is calling, for the handlers that record it (a container's owner).
#[derive(Clone, Debug)]
pub struct Owner(pub String);
