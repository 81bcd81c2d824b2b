//! Protobuf timestamps against the clock, in microseconds since the epoch.
//! The server reads request timestamps with the same `from_timestamp`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in microseconds since the epoch.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The last second a protobuf timestamp can carry: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A protobuf timestamp in microseconds; `None` when it is out of the range
/// protobuf allows (0001-01-01 to 9999-12-31) or its nanos are invalid.
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<i64> {
    const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    if !(0..1_000_000_000).contains(&ts.nanos)
        || !(MIN_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds)
    {
        return None;
    }
    Some(ts.seconds * 1_000_000 + i64::from(ts.nanos) / 1_000)
}

/// A time as a protobuf timestamp (times before the epoch as the epoch).
pub(crate) fn to_timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_round_trip_and_reject_out_of_range() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000);
        assert_eq!(
            from_timestamp(&to_timestamp(t)),
            Some(1_700_000_000_123_456)
        );
        let bad_nanos = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&bad_nanos), None);
        let too_late = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(from_timestamp(&too_late), None);
        assert!(now_micros() > 1_700_000_000_000_000);
    }
}
