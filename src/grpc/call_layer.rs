//! The call layer: one span, one log event and the call metrics per gRPC
//! call, the called method in the request's extensions, and tonic's
//! decoding errors given the caller's codes.

use tonic::codegen::http;

/// A tower layer that gives every call one span (method, caller, gRPC code,
/// latency), a `debug` event when it finishes, and call metrics. It also
/// gives tonic's request-decoding errors the caller's codes
/// (`wire_errors::recode`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallLayer;

impl<S> tower::Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct CallService<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for CallService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        use tracing::Instrument;
        let method = known_method(request.uri().path());
        request.extensions_mut().insert(CalledMethod(method));
        let span = call_span(method);
        // Only a span someone records pays for naming the caller.
        if !span.is_disabled() {
            let caller = crate::app::auth::claimed_caller(request.headers());
            span.record("caller", caller.as_deref().unwrap_or("-"));
        }
        let started = std::time::Instant::now();
        let future = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let mut result = future.await;
            if let Ok(response) = &mut result {
                crate::grpc::wire_errors::recode(response.headers_mut());
            }
            let code = match &result {
                Ok(response) => grpc_code(response.headers()),
                Err(_) => "UNKNOWN",
            };
            let elapsed = started.elapsed();
            span.record("code", code);
            span.record("latency_us", elapsed.as_micros() as u64);
            tracing::debug!(parent: &span, "call finished");
            metrics::counter!("latchkey_calls_total", "method" => method, "code" => code)
                .increment(1);
            metrics::histogram!("latchkey_call_duration_seconds", "method" => method)
                .record(elapsed.as_secs_f64());
            result
        })
    }
}

/// Methods on the hot path that log nothing of their own at `info`: their
/// span is made at `debug`, so at the default level a call costs no span
/// (its `debug` "call finished" event and metrics are unchanged).
const HOT_METHODS: [&str; 2] = [
    "latchkey.v1.IntegrationKeysService/VerifyIntegrationKey",
    "grpc.health.v1.Health/Check",
];

/// The span of one call: `info` (so the events of a change carry the method
/// and caller), `debug` for the hot methods.
fn call_span(method: &'static str) -> tracing::Span {
    if HOT_METHODS.contains(&method) {
        tracing::debug_span!(
            "call",
            method,
            caller = tracing::field::Empty,
            code = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        )
    } else {
        tracing::info_span!(
            "call",
            method,
            caller = tracing::field::Empty,
            code = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        )
    }
}

/// The called method's full name (`pkg.Service/Method`, or `unknown`), in
/// every request's extensions, for handlers that need to name the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalledMethod(pub &'static str);

/// The method path for labels and logs, if it is one we serve (bounded
/// cardinality: anything else is `unknown`).
fn known_method(path: &str) -> &'static str {
    const METHODS: &[&str] = &[
        "/latchkey.v1.IntegrationKeysService/CreateIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/GetIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/ListIntegrationKeys",
        "/latchkey.v1.IntegrationKeysService/DeleteIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/VerifyIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/UpdateIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/RollIntegrationKey",
        "/latchkey.v1.IntegrationKeysService/ListIntegrations",
        "/latchkey.v1.IntegrationKeysService/GetIntegration",
        "/latchkey.v1.ClientConfigurationService/Configure",
        "/latchkey.v1.ClientConfigurationService/ConfigureSettings",
        "/latchkey.v1.ClientConfigurationService/SetUserCredentials",
        "/latchkey.v1.ClientConfigurationService/DeleteUserCredentials",
        "/latchkey.v1.ClientConfigurationService/GetClientConfiguration",
        "/latchkey.v1.ClientConfigurationService/VerifyUserCredentials",
        "/latchkey.v1.HealthService/CheckClientHealth",
        "/latchkey.v1.HealthService/CheckServiceHealth",
        "/latchkey.v1.AuditService/ListAuditEvents",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];
    METHODS
        .iter()
        .find(|m| **m == path)
        .map_or("unknown", |m| &m[1..])
}

/// The gRPC status of a response whose status came with the headers (every
/// error latchkey answers); a plain success carries it in the trailers.
fn grpc_code(headers: &http::HeaderMap) -> &'static str {
    use tonic::Code;
    let Some(value) = headers.get("grpc-status") else {
        return "OK";
    };
    match Code::from_bytes(value.as_bytes()) {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
