//! A failure budget shared by every replica on the database: the token
//! bucket of one key id (or client user), refilled lazily when next used.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "failure_budgets")]
pub struct Model {
    /// What the budget is for: `ik:<key id>`, `pk:<key id>` or
    /// `cu:<client id>:<user>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject: String,
    /// Failures still allowed as of `updated_micros`.
    pub tokens: f64,
    pub updated_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
