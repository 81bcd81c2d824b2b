//! Pure rules and types: no I/O, no database, no transport. Everything
//! above (store, security, app, the transports) builds on these.

pub mod catalog;
pub mod clients;
pub mod key_format;
pub mod key_restrictions;
pub mod time;

pub use key_format::{ApiKey, KeyKind, Malformed};
