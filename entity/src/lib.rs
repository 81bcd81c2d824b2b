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
pub mod failure_budget;
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

/// The string-valued enums stored in the tables (`DeriveActiveEnum`), so
/// no layer parses them back from text.
mod enums {
    use sea_orm::entity::prelude::*;

    /// What a client's user may do.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum Scope {
        /// Everything on their own client.
        #[sea_orm(string_value = "SYSTEM")]
        System,
        /// Read their client, change `ClientSettings.*`.
        #[sea_orm(string_value = "CLIENT")]
        Client,
    }

    /// What kind of integration: only custom ones may hold keys.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum IntegrationKind {
        #[sea_orm(string_value = "custom")]
        Custom,
        #[sea_orm(string_value = "builtin")]
        Builtin,
    }

    /// How an audited attempt ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum Outcome {
        #[sea_orm(string_value = "success")]
        Success,
        #[sea_orm(string_value = "failure")]
        Failure,
    }

    impl Scope {
        pub fn as_str(self) -> &'static str {
            match self {
                Scope::System => "SYSTEM",
                Scope::Client => "CLIENT",
            }
        }
    }

    impl IntegrationKind {
        pub fn as_str(self) -> &'static str {
            match self {
                IntegrationKind::Custom => "custom",
                IntegrationKind::Builtin => "builtin",
            }
        }

        /// The kind a catalog file names, if it is one.
        pub fn parse(s: &str) -> Option<Self> {
            match s {
                "custom" => Some(IntegrationKind::Custom),
                "builtin" => Some(IntegrationKind::Builtin),
                _ => None,
            }
        }
    }

    impl std::fmt::Display for Scope {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }
}

pub use enums::{IntegrationKind, Outcome, Scope};
