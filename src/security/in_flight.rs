//! The server-wide count of calls in flight (see `grpc::limits`, which
//! sheds calls past its maximum) and one call's place in it. A call that is
//! only waiting out a deliberate delay, a RATE_LIMITED answer held back,
//! leaves its place first (`leave`): held-back answers are what a guessing
//! crowd gets, and they must not fill the places of the calls being served.

use std::{
    cell::RefCell,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Calls in flight, against their maximum. A counter, not a semaphore: no
/// call ever waits for a place, so taking one is a single atomic add and
/// giving it back a single subtract (a semaphore's release also takes its
/// waiters' lock, on every call).
pub struct InFlight {
    in_flight: AtomicUsize,
    max: usize,
}

/// One call's place among the calls in flight, given back on drop.
pub struct Place(Arc<InFlight>);

impl InFlight {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            max: max.max(1),
        })
    }

    /// A place, unless `max` calls hold one already.
    pub fn try_enter(self: &Arc<Self>) -> Option<Place> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) < self.max {
            Some(Place(self.clone()))
        } else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }

    /// Calls holding a place now.
    #[cfg(test)]
    fn current(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

tokio::task_local! {
    /// The place of the call being polled, if it holds one.
    static PLACE: RefCell<Option<Place>>;
}

/// Runs `call` holding `place` (none for calls that are never shed); code
/// it runs can give the place up early with `leave`. The place is given
/// back when `call` ends, if not before.
pub fn holding<F: Future>(place: Option<Place>, call: F) -> impl Future<Output = F::Output> {
    PLACE.scope(RefCell::new(place), call)
}

/// Gives up the place of the call being run, if it holds one (`holding`):
/// for a call that from now on only waits.
pub fn leave() {
    let _ = PLACE.try_with(|place| drop(place.borrow_mut().take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_stop_at_the_maximum_and_come_back_on_drop() {
        let in_flight = InFlight::new(2);
        let first = in_flight.try_enter().expect("first");
        let second = in_flight.try_enter().expect("second");
        assert!(in_flight.try_enter().is_none(), "a third is over the limit");
        // A refusal takes no place of its own.
        assert_eq!(in_flight.current(), 2);
        drop(first);
        let third = in_flight.try_enter().expect("a place was given back");
        drop((second, third));
        assert_eq!(in_flight.current(), 0);
    }

    #[tokio::test]
    async fn a_call_that_leaves_gives_its_place_back_before_it_ends() {
        let in_flight = InFlight::new(1);
        let place = in_flight.try_enter();
        let probe = in_flight.clone();
        holding(place, async move {
            assert_eq!(probe.current(), 1);
            leave();
            assert_eq!(probe.current(), 0, "left");
            leave(); // twice: nothing more
            assert!(probe.try_enter().is_some(), "the place is free");
        })
        .await;
        assert_eq!(in_flight.current(), 0);
        // Outside any call, leaving does nothing.
        leave();
    }
}
