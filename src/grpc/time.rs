//! Stored times (i64 microseconds since the Unix epoch) as sent:
//! `google.protobuf.Timestamp` / `Duration`.

/// A stored time as a protobuf timestamp.
pub fn to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A protobuf timestamp as a stored time; `None` when it is not a valid
/// timestamp (the SDK's reading, so client and server agree).
pub use latchkey_client::time::from_timestamp;

/// A protobuf duration in microseconds; `None` when it is negative or invalid
/// (past protobuf's bound of about 10,000 years).
pub fn duration_micros(d: &prost_types::Duration) -> Option<i64> {
    const MAX_SECONDS: i64 = 315_576_000_000;
    if !(0..=MAX_SECONDS).contains(&d.seconds) || !(0..1_000_000_000).contains(&d.nanos) {
        return None;
    }
    d.seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(d.nanos) / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let micros = 1_790_000_000_123_456;
        assert_eq!(from_timestamp(&to_timestamp(micros)), Some(micros));
        assert_eq!(from_timestamp(&to_timestamp(-1)), Some(-1));
    }

    #[test]
    fn invalid_timestamps_are_rejected() {
        let bad_nanos = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&bad_nanos), None);
        let too_late = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(from_timestamp(&too_late), None);
    }
}
