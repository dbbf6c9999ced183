//! Errors as the Docker API reports them: `{"message": …}` with the status the
//! API specifies (404 no such …, 409 conflict, 400 bad parameter, 500).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    pub fn not_modified() -> Self {
        Self::new(StatusCode::NOT_MODIFIED, "")
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// An OS error as Go words it ("no such file or directory"), where a
/// message dockerd builds from one is matched: the docker CLI reads some
/// of them (a run whose error says "no such file or directory" exits 127).
pub fn go_os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = nix::errno::Errno::from_raw(n).desc();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// lifecycled's answers, in the API's terms.
impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Unavailable from the channel itself (it carries the transport's
        // error) is lifecycled out of reach; from lifecycled's answer it is
        // something lifecycled could not reach (a registry), said as is.
        let unreachable = s.code() == Code::Unavailable && std::error::Error::source(&s).is_some();
        let message = if unreachable {
            format!("berth-lifecycled is unavailable: {}", s.message())
        } else {
            s.message().to_string()
        };
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        // 501 and 503 are answers (no swarm here, a driver that keeps no
        // logs), not failures of ours.
        let answer = matches!(
            self.status,
            StatusCode::NOT_IMPLEMENTED | StatusCode::SERVICE_UNAVAILABLE
        );
        if self.status.is_server_error() && !answer {
            tracing::error!("{}", self.message);
        }
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            // dockerd's encoder ends the body with a newline.
            serde_json::json!({ "message": self.message }).to_string() + "\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_gos() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_os_error(&e), "no such file or directory");
        let other = std::io::Error::other("plain");
        assert_eq!(go_os_error(&other), "plain");
    }

    #[test]
    fn an_unreachable_registry_is_not_an_unreachable_lifecycled() {
        let answered = ApiError::from(tonic::Status::unavailable(
            "registry 127.0.0.1:1 is unreachable",
        ));
        assert_eq!(answered.message, "registry 127.0.0.1:1 is unreachable");
        assert_eq!(answered.status, StatusCode::INTERNAL_SERVER_ERROR);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let mut transport = tonic::Status::unavailable("error trying to connect");
        transport.set_source(std::sync::Arc::new(refused));
        assert_eq!(
            ApiError::from(transport).message,
            "berth-lifecycled is unavailable: error trying to connect"
        );
    }
}
