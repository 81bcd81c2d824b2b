//! The server-wide in-flight limit: past `max_in_flight` calls at once, a
//! call is answered RESOURCE_EXHAUSTED at once (with RetryInfo) instead of
//! queueing. Shedding early keeps latency bounded for the calls that are
//! admitted and memory bounded for any crowd. grpc.health.v1 probes are
//! never shed: an overloaded replica is busy, not dead, and a probe that
//! failed for load would get it restarted at the worst moment.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::codegen::http;

use crate::{
    error::OVERLOADED_RETRY_AFTER,
    grpc::status::resource_exhausted,
    security::in_flight::{self, InFlight},
};

/// Builds [`InFlightLimit`] services that share one count of calls.
#[derive(Clone)]
pub struct InFlightLimitLayer {
    in_flight: Arc<InFlight>,
}

impl InFlightLimitLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: InFlight::new(max_in_flight),
        }
    }
}

impl<S> tower::Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            in_flight: self.in_flight.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    in_flight: Arc<InFlight>,
}

/// Calls that are never shed and hold no place: health probes. (A watch
/// stream does take a place, but only until it is answered and its events
/// start to flow: the place bounds the unauthenticated attempts, not the
/// subscribed guards.)
fn is_probe(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

impl<S, B, RB> tower::Service<http::Request<B>> for InFlightLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let place = if is_probe(request.uri().path()) {
            None
        } else {
            let Some(place) = self.in_flight.try_enter() else {
                metrics::counter!("latchkey_calls_shed_total").increment(1);
                let status = resource_exhausted(
                    "Server busy: too many calls in flight; retry shortly",
                    OVERLOADED_RETRY_AFTER,
                );
                return Box::pin(async move { Ok(status.into_http()) });
            };
            Some(place)
        };
        // The call holds its place until it ends or leaves it
        // (`in_flight::leave`, for a held-back answer).
        Box::pin(in_flight::holding(place, self.inner.call(request)))
    }
}
