//! The call layer: one span, one log event and the call metrics per gRPC
//! call, the called method in the request's extensions, and tonic's
//! decoding errors given the caller's codes.

use tonic::{Code, codegen::http};

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
        request.extensions_mut().insert(CalledMethod(method.name));
        let span = call_span(method.name);
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
                Err(_) => Code::Unknown,
            };
            let elapsed = started.elapsed();
            span.record("code", code.name());
            span.record("latency_us", elapsed.as_micros() as u64);
            tracing::debug!(parent: &span, "call finished");
            call_metrics::record(method, code, elapsed);
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

/// Every method we serve, by path. A method's place here is its index in
/// `call_metrics`.
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
    "/latchkey.v1.IntegrationKeysService/WatchKeyChanges",
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

/// A called method: one we serve, or `unknown` (bounded label cardinality).
#[derive(Clone, Copy, Debug)]
struct Method {
    /// Index in `METHODS`; `METHODS.len()` for `unknown`.
    index: usize,
    name: &'static str,
}

/// The method path for labels and logs, if it is one we serve (anything
/// else is `unknown`).
fn known_method(path: &str) -> Method {
    METHODS.iter().position(|m| *m == path).map_or(
        Method {
            index: METHODS.len(),
            name: "unknown",
        },
        |index| Method {
            index,
            name: &METHODS[index][1..],
        },
    )
}

/// The gRPC status of a response whose status came with the headers (every
/// error latchkey answers); a plain success carries it in the trailers.
fn grpc_code(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .map_or(Code::Ok, |value| Code::from_bytes(value.as_bytes()))
}

/// The upper-case name of a gRPC code, as logs and metrics label it.
trait CodeName {
    fn name(self) -> &'static str;
}

impl CodeName for Code {
    fn name(self) -> &'static str {
        match self {
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
}

/// The call metrics, with their handles registered once per method and
/// code: a call then costs two atomic updates instead of two registry
/// lookups (each hashing its labels into a freshly allocated key).
mod call_metrics {
    use std::{sync::OnceLock, time::Duration};

    use metrics::{Counter, Histogram};
    use tonic::Code;

    use super::{CodeName, METHODS, Method};

    /// gRPC codes are 0..=16.
    const CODES: usize = 17;

    struct MethodMetrics {
        duration: Histogram,
        calls: [OnceLock<Counter>; CODES],
    }

    /// One entry per method in `METHODS`, and one for `unknown`. Built at the
    /// first call, after `telemetry::install_metrics` (which `serve` runs
    /// before it listens).
    static TABLE: OnceLock<Vec<MethodMetrics>> = OnceLock::new();

    pub(super) fn record(method: Method, code: Code, elapsed: Duration) {
        let table = TABLE.get_or_init(|| {
            (0..=METHODS.len())
                .map(|index| {
                    let name = METHODS.get(index).map_or("unknown", |m| &m[1..]);
                    MethodMetrics {
                        duration: metrics::histogram!("latchkey_call_duration_seconds", "method" => name),
                        calls: Default::default(),
                    }
                })
                .collect()
        });
        let Some(entry) = table.get(method.index) else {
            return;
        };
        entry.duration.record(elapsed.as_secs_f64());
        if let Some(calls) = entry.calls.get(code as usize) {
            calls
                .get_or_init(|| {
                    metrics::counter!("latchkey_calls_total", "method" => method.name, "code" => code.name())
                })
                .increment(1);
        }
    }
}
