//! The server-wide in-flight limit: past `max_in_flight` calls at once, a
//! call is answered RESOURCE_EXHAUSTED at once (with RetryInfo) instead of
//! queueing. Shedding early keeps latency bounded for the calls that are
//! admitted and memory bounded for any crowd. grpc.health.v1 probes are
//! never shed: an overloaded replica is busy, not dead, and a probe that
//! failed for load would get it restarted at the worst moment.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tonic::codegen::http;

use crate::{error::OVERLOADED_RETRY_AFTER, grpc::status::resource_exhausted};

/// Builds [`InFlightLimit`] services that share one budget of calls.
#[derive(Clone)]
pub struct InFlightLimitLayer {
    permits: Arc<Permits>,
}

impl InFlightLimitLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Permits {
                in_flight: AtomicUsize::new(0),
                max: max_in_flight.max(1),
            }),
        }
    }
}

/// Calls in flight, against their maximum. A counter, not a semaphore: no
/// call ever waits for a permit, so taking one is a single atomic add and
/// giving it back a single subtract (a semaphore's release also takes its
/// waiters' lock, on every call).
struct Permits {
    in_flight: AtomicUsize,
    max: usize,
}

/// One call's place among the calls in flight, given back on drop.
struct Permit(Arc<Permits>);

impl Permits {
    fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) < self.max {
            Some(Permit(self.clone()))
        } else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> tower::Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    permits: Arc<Permits>,
}

/// Calls that are never shed, and hold no permit: probes, and watch
/// streams (long-lived and idle, they are not load; a permit each would let
/// subscribed guards starve calls).
fn is_probe(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path == "/latchkey.v1.IntegrationKeysService/WatchKeyChanges"
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
        let permit = if is_probe(request.uri().path()) {
            None
        } else {
            let Some(permit) = self.permits.try_acquire() else {
                metrics::counter!("latchkey_calls_shed_total").increment(1);
                let status = resource_exhausted(
                    "Server busy: too many calls in flight; retry shortly",
                    OVERLOADED_RETRY_AFTER,
                );
                return Box::pin(async move { Ok(status.into_http()) });
            };
            Some(permit)
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_maximum_and_come_back_on_drop() {
        let permits = Arc::new(Permits {
            in_flight: AtomicUsize::new(0),
            max: 2,
        });
        let first = permits.try_acquire().expect("first");
        let second = permits.try_acquire().expect("second");
        assert!(permits.try_acquire().is_none(), "a third is over the limit");
        // A refusal takes no place of its own.
        assert_eq!(permits.in_flight.load(Ordering::SeqCst), 2);
        drop(first);
        let third = permits.try_acquire().expect("a place was given back");
        drop((second, third));
        assert_eq!(permits.in_flight.load(Ordering::SeqCst), 0);
    }
}
