//! The HTTP listener (`--http-listen`): Connect unary JSON for every unary
//! RPC, the seeds' own routes (integration keys, client configuration) and
//! Sunshine Conversations' key API, and `GET /openapi.json`.
//!
//! Every route translates its request into a gRPC message and calls the
//! gRPC service stack in process (`gateway`), so authentication,
//! validation, throttling, audit, logs and metrics are exactly the gRPC
//! ones. Each dialect has its own error answers (`errors`).

pub mod connect;
pub mod errors;
pub mod gateway;
pub mod listeners;
pub mod openapi;
pub mod seed_clients;
pub mod seed_keys;
pub mod sunshine;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use tonic::Code;

use crate::security::callers::{TrustedPeers, forwarded_caller};
use errors::{Dialect, HttpError, answer};
use gateway::{CallContext, Gateway};

/// Largest request body any route reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The TCP peer of an HTTP connection, plain or TLS.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, listeners::PlainListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, listeners::PlainListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, listeners::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, listeners::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct HttpState {
    pub gateway: Gateway,
    pub trusted_peers: Arc<TrustedPeers>,
}

impl HttpState {
    /// Calls the unary RPC at `path` (`/pkg.Service/Method`) through the
    /// gRPC stack; a refusal comes back in `dialect`.
    pub async fn call<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        context: &CallContext,
        dialect: Dialect,
    ) -> Result<Resp, HttpError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.gateway
            .call(path, request, context)
            .await
            .map_err(|status| HttpError::new(dialect, status))
    }
}

/// Every route of the HTTP listener.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .merge(connect::routes())
        .merge(seed_keys::routes())
        .merge(seed_clients::routes())
        .merge(sunshine::routes())
        .merge(openapi::routes())
        .route("/healthz", axum::routing::get(readiness))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The dialect of a path, for answers that no route gave (404, 405).
fn dialect_of(path: &str) -> Dialect {
    if path.starts_with("/latchkey.v1.") {
        Dialect::Connect
    } else if path.starts_with("/v2/") {
        Dialect::Sunshine
    } else {
        Dialect::Seed
    }
}

/// Readiness for HTTP probes: `grpc.health.v1` Check of the whole server,
/// the very status gRPC probes see (200 SERVING, 503 otherwise).
async fn readiness(
    axum::extract::State(state): axum::extract::State<HttpState>,
    peer: ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    use axum::response::IntoResponse;
    let context = call_context(&state, &headers, peer);
    let checked: Result<tonic_health::pb::HealthCheckResponse, _> = state
        .gateway
        .call(
            "/grpc.health.v1.Health/Check",
            &tonic_health::pb::HealthCheckRequest::default(),
            &context,
        )
        .await;
    let serving = checked.is_ok_and(|c| {
        c.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    });
    let (status, word) = if serving {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    (status, axum::Json(serde_json::json!({ "status": word }))).into_response()
}

async fn not_found(request: Request) -> Response {
    let dialect = dialect_of(request.uri().path());
    let code = match dialect {
        // What a Connect client expects of a method the server lacks.
        Dialect::Connect => Code::Unimplemented,
        _ => Code::NotFound,
    };
    answer(dialect, StatusCode::NOT_FOUND, code, "Not found")
}

async fn method_not_allowed(request: Request) -> Response {
    let dialect = dialect_of(request.uri().path());
    answer(
        dialect,
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        &format!("Method {} not allowed here", request.method()),
    )
}

/// The gRPC call context of an HTTP request: its credentials, its end
/// caller (`X-Forwarded-For` believed only from `--trusted-peers`) and, for
/// Connect, its timeout.
pub fn call_context(
    state: &HttpState,
    headers: &HeaderMap,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
) -> CallContext {
    let forwarded_for = headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let caller = forwarded_caller(peer.ip(), forwarded_for, &state.trusted_peers);
    let timeout = headers
        .get("connect-timeout-ms")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .map(Duration::from_millis);
    // Marked sensitive: whatever prints a header map shows them redacted.
    let credential = |name| {
        headers
            .get(name)
            .cloned()
            .map(|mut value: http::HeaderValue| {
                value.set_sensitive(true);
                value
            })
    };
    CallContext {
        sid: credential("sid"),
        authorization: credential(header::AUTHORIZATION.as_str()),
        peer: SocketAddr::new(caller, peer.port()),
        timeout,
    }
}

/// Reads a request body of at most `MAX_BODY_BYTES`.
pub async fn read_body(body: Body, dialect: Dialect) -> Result<Bytes, HttpError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| HttpError::too_large(dialect))
}

/// Requires a JSON content type when a body is present (an empty body with
/// no content type stands for `{}`).
pub fn require_json(headers: &HeaderMap, body: &[u8], dialect: Dialect) -> Result<(), HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    match content_type {
        None if body.is_empty() => Ok(()),
        Some(value)
            if value
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) =>
        {
            Ok(())
        }
        _ => Err(HttpError::bad_request(
            dialect,
            "Content-Type must be application/json",
        )),
    }
}

/// Parses a JSON request body (empty: `{}`) into `T`. The error names the
/// place in the document, never a value from it (a value may be a secret).
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    dialect: Dialect,
) -> Result<T, HttpError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| json_error(dialect, &e))
}

/// `Bad request: ...` for a JSON body that did not parse: where, and which
/// kind of fault, but none of the document's values.
pub fn json_error(dialect: Dialect, e: &serde_json::Error) -> HttpError {
    let what = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            "the JSON document does not have the expected fields and types"
        }
    };
    HttpError::bad_request(
        dialect,
        format!("{what} (line {}, column {})", e.line(), e.column()),
    )
}

impl HttpError {
    fn too_large(dialect: Dialect) -> Self {
        Self::new(
            dialect,
            tonic::Status::invalid_argument(format!(
                "Bad request: the body is larger than {MAX_BODY_BYTES} bytes"
            )),
        )
    }
}
