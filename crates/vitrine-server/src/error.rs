//! Every error as JSON with the status its kind calls for:
//! `{"error": {"kind": "bad_input", "message": "...", "field": "k"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vitrine_engine::ErrorKind;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable kind.
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

/// The JSON body of an error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// bad_input, unauthorized, not_found, conflict, too_large, unprocessable, busy, corrupt,
    /// unavailable, unsupported, internal.
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// A 400 naming the field at fault.
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_input",
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// Any status, with a kind.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// 503: the server is at its limit for this kind of work; try again.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<vitrine_engine::Error> for ApiError {
    fn from(e: vitrine_engine::Error) -> ApiError {
        let kind = e.kind();
        let status = match kind {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Corrupt | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, kind.name(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Rejections of axum's extractors (malformed JSON, wrong content type, body too large) as
/// JSON errors too.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as J;
        let (status, kind) = match &r {
            J::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            J::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "bad_input"),
            J::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_input"),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            _ => (r.status(), "bad_input"),
        };
        ApiError::new(status, kind, r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_input", r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> ApiError {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_input"
        };
        ApiError::new(status, kind, e.body_text())
    }
}
