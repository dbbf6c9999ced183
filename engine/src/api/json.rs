//! JSON answers as dockerd writes them: Go's `json.Encoder` ends each
//! value with a newline, and clients that compare bodies or lengths see it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON body with dockerd's trailing newline.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(mut body) => {
                body.push(b'\n');
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Err(e) => crate::error::ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the answer: {e}"),
            )
            .into_response(),
        }
    }
}
