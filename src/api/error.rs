//! The one mapping from engine errors to HTTP, as moby's errdefs: the kind decides
//! the status, the body is `{"message": ...}`.

use axum::body::Body;
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;

use crate::error::{Error, ErrorKind};

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn render(err: &Error) -> Response<Body> {
    let status = status_of(err.kind());
    if status == StatusCode::NOT_MODIFIED {
        return Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap_or_default();
    }
    if status.is_server_error() {
        tracing::warn!(error = %err, "request failed");
    }
    let body = serde_json::json!({ "message": err.message() }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

impl IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        render(&self)
    }
}

/// Unknown routes, and known routes with another method, as dockerd answers them.
pub async fn page_not_found() -> Response<Body> {
    render(&Error::not_found("page not found"))
}
