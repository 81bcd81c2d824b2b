//! The HTTP dialects' error answers, each from the status the one domain
//! error maps to (`grpc::status`), so every dialect gives the same message:
//! - Connect: `{"code": "not_found", "message": ...}` with Connect's HTTP
//!   status per code, and the status details (e.g. `google.rpc.BadRequest`);
//! - the seed routes: `{"error": <HTTP status>, "message": ...}`;
//! - Sunshine: `{"errors": [{"code": "not_found", "title": ...}]}`.
//!
//! Messages are the gRPC ones, which never carry a secret.

use axum::response::{IntoResponse, Response};
use base64::Engine;
use tonic::{Code, Status, codegen::http::StatusCode};
use tonic_types::StatusExt;

/// Which dialect an HTTP route speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Connect,
    Seed,
    Sunshine,
}

/// An error answer in one dialect.
#[derive(Debug)]
pub struct HttpError {
    pub dialect: Dialect,
    pub status: Status,
}

impl HttpError {
    pub fn new(dialect: Dialect, status: Status) -> Self {
        Self { dialect, status }
    }

    /// A malformed request: `Bad request: <why>`.
    pub fn bad_request(dialect: Dialect, why: impl std::fmt::Display) -> Self {
        Self::new(
            dialect,
            Status::invalid_argument(format!("Bad request: {why}")),
        )
    }
}

/// The HTTP status of a gRPC code, as Connect maps it (the seed and
/// Sunshine routes use the same table).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Connect's name of a gRPC code.
pub fn connect_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Sunshine's error code of an HTTP status.
fn sunshine_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::NOT_IMPLEMENTED => "not_implemented",
        _ => "internal_server_error",
    }
}

/// An error answer with an explicit HTTP status (routing and body errors,
/// which have no gRPC status of their own).
pub fn answer(dialect: Dialect, http: StatusCode, code: Code, message: &str) -> Response {
    let body = match dialect {
        Dialect::Connect => serde_json::json!({"code": connect_code(code), "message": message}),
        Dialect::Seed => serde_json::json!({"error": http.as_u16(), "message": message}),
        Dialect::Sunshine => {
            serde_json::json!({"errors": [{"code": sunshine_code(http), "title": message}]})
        }
    };
    (http, axum::Json(body)).into_response()
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let code = self.status.code();
        let http = http_status(code);
        let message = self.status.message();
        let mut response = match self.dialect {
            Dialect::Connect => {
                let mut body = serde_json::json!({"code": connect_code(code), "message": message});
                let details = connect_details(&self.status);
                if !details.is_empty() {
                    body["details"] = serde_json::Value::Array(details);
                }
                (http, axum::Json(body)).into_response()
            }
            dialect => answer(dialect, http, code, message),
        };
        if let Some(retry) = self.status.get_details_retry_info()
            && let Some(delay) = retry.retry_delay
        {
            // Whole seconds, rounded up: "0" would invite a retry at once.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// `google.rpc.Status`, as gRPC carries it in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// The status details as Connect's `details`: `{"type", "value"}` with the
/// message's full name and its encoding in base64.
fn connect_details(status: &Status) -> Vec<serde_json::Value> {
    let Ok(rpc) = <RpcStatus as prost::Message>::decode(status.details()) else {
        return Vec::new();
    };
    rpc.details
        .iter()
        .map(|any| {
            let kind = any.type_url.rsplit('/').next().unwrap_or(&any.type_url);
            serde_json::json!({
                "type": kind,
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            })
        })
        .collect()
}
