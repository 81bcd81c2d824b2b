//! Time as stored: i64 microseconds since the Unix epoch.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// The last instant a `google.protobuf.Timestamp` can carry
/// (9999-12-31T23:59:59.999999Z): no stored time may lie beyond it, or the
/// row could no longer be sent (Connect's JSON refuses it outright).
pub const LATEST_MICROS: i64 = latchkey_client::time::MAX_TIMESTAMP_SECONDS * 1_000_000 + 999_999;

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The latest second something happened in, shared by concurrent callers
/// that each want to act once a second (note a key's use, refresh an entry's
/// last use). Read before it is written: hits within the same second only
/// read the shared cache line.
#[derive(Debug, Default)]
pub struct LatestSecond(AtomicU64);

impl LatestSecond {
    pub fn new(second: u64) -> Self {
        Self(AtomicU64::new(second))
    }

    /// The latest second recorded.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Records `second`; true when it is later than any recorded before (so
    /// exactly one caller per second sees true).
    pub fn advance_to(&self, second: u64) -> bool {
        self.get() < second && self.0.fetch_max(second, Ordering::Relaxed) < second
    }
}

#[cfg(test)]
mod tests {
    use super::LatestSecond;

    #[test]
    fn a_second_is_claimed_once_and_never_goes_back() {
        let mark = LatestSecond::new(5);
        assert!(!mark.advance_to(5));
        assert!(mark.advance_to(6));
        assert!(!mark.advance_to(6));
        assert!(!mark.advance_to(4));
        assert_eq!(mark.get(), 6);
    }
}
