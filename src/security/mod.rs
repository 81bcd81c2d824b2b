//! The machinery that keeps secrets safe and guessing expensive: argon2
//! hashing on bounded lanes, the cache of keys already proven, failure
//! budgets, the end caller those budgets are kept for, the server-wide
//! count of calls in flight, and sealing of client credentials under the
//! master key.

pub mod callers;
pub mod hasher;
pub mod in_flight;
pub mod sealing;
pub mod throttle;
pub mod verified_keys;

pub use hasher::{HashParams, Hasher};
pub use verified_keys::VerifiedKeys;
