//! Keys: their format, their hashing, and the cache of keys already verified.

pub mod cache;
pub mod format;
pub mod hasher;
pub mod throttle;

pub use cache::VerifiedKeys;
pub use format::{ApiKey, KeyKind, Malformed};
pub use hasher::{HashParams, Hasher};
