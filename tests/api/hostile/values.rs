//! Hostile values: odd and maximal strings, keys nobody issued, random
//! bytes and timestamps out of range.

use latchkey::domain::key_format::{KEY_ID_RANDOM_LEN, KEY_LEN, SECRET_LEN, checksum};
use prost_types::Timestamp;

use super::HUGE;

/// Strings that are odd but small: several fit in one request.
pub(super) fn small_hostile_strings() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("nul", "learner\0activity".into()),
        ("only-nul", "\0".into()),
        (
            "control-chars",
            "\u{1}\u{7}\u{8}\t\n\r\u{1b}[31m\u{7f}\u{85}".into(),
        ),
        ("emoji", "🔑🦀👩‍👩‍👧‍👦".into()),
        (
            "rtl-marks",
            "\u{202e}lki_evil\u{202c}\u{200f}\u{2067}x\u{2069}".into(),
        ),
        ("bom-zero-width", "\u{feff}\u{200b}learner-activity".into()),
        ("sql", "' OR 1=1; DROP TABLE integration_keys; --".into()),
        ("format", "%s%n%x{0}{}\\u0000${jndi:x}".into()),
        ("256-ascii", "a".repeat(256)),
        ("64-two-byte-chars", "é".repeat(64)),
        ("64k", "k".repeat(64 * 1024)),
    ]
}

/// Maximal strings: one such field still fits under the message limit.
pub(super) fn huge_hostile_strings() -> Vec<(&'static str, String)> {
    let mixed_unit = "\0\u{1}🔑\u{202e}é\u{200f}";
    vec![
        ("1MiB-ascii", "A".repeat(HUGE)),
        ("1MiB-mixed", mixed_unit.repeat(HUGE / mixed_unit.len())),
    ]
}

/// A well-formed key (right shape and checksum) of `prefix` that nobody
/// issued.
pub(super) fn well_formed_key(prefix: &str, id_random: &str, secret: &str) -> String {
    assert_eq!(id_random.len(), KEY_ID_RANDOM_LEN);
    assert_eq!(secret.len(), SECRET_LEN);
    let body = format!("{prefix}_{id_random}_{secret}");
    let key = format!("{body}{}", checksum(body.as_bytes()));
    assert_eq!(key.len(), KEY_LEN);
    key
}

pub(super) fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    getrandom::fill(&mut bytes).expect("random");
    bytes
}

/// The same "random" bytes every run (xorshift), so a body that must not
/// parse never parses by chance.
pub(super) fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

pub(super) fn timestamp(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

pub(super) fn hostile_timestamps() -> Vec<(&'static str, Timestamp)> {
    vec![
        ("i64-max-seconds", timestamp(i64::MAX, 0)),
        ("i64-min-seconds", timestamp(i64::MIN, 0)),
        ("negative-nanos", timestamp(4_000_000_000, -1)),
        ("nanos-overflow", timestamp(4_000_000_000, i32::MAX)),
        ("epoch", timestamp(0, 0)),
        ("year-9999-end", timestamp(253_402_300_799, 999_999_999)),
        ("year-10000", timestamp(253_402_300_800, 0)),
    ]
}
