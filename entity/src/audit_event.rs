//! One audited change: who, what, when, to what, and how it ended. Never a
//! secret.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub event_id: String,
    pub time: i64,
    /// A key id, `user@client`, or `cli`.
    pub actor: String,
    /// e.g. `integration_key.create`.
    pub action: String,
    pub target: String,
    /// `success` or `failure`.
    pub outcome: crate::Outcome,
    pub peer: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
