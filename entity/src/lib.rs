//! SeaORM entities of latchkey. Entities only: no queries, no business rules.
//!
//! Times are stored as `i64` microseconds since the Unix epoch: the same type
//! and ordering on SQLite, PostgreSQL and MySQL (whose `TIMESTAMP` ends in
//! 2038), and a cheap keyset-pagination column.

pub mod audit_event;
pub mod catalog_revision;
pub mod client;
pub mod client_setting;
pub mod client_user;
pub mod endpoint_grant;
pub mod integration;
pub mod integration_key;
pub mod partner_key;

/// Writes `<redacted>` for a hash in a `Debug` impl, so a stored hash never
/// reaches a log through `{:?}`.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
