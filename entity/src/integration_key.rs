//! An integration key: its public id and the argon2id hash of the full key.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: String,
    pub integration_id: i64,
    pub display_name: String,
    /// argon2id PHC string of the whole key. Never leaves the store.
    pub key_hash: String,
    pub create_time: i64,
    pub expire_time: Option<i64>,
    pub last_use_time: Option<i64>,
    pub disabled: bool,
    /// Labels as a JSON object; `None` on keys made without any.
    pub labels: Option<String>,
    /// Allowed caller networks as a JSON array of CIDRs; `None`: anyone.
    pub allowed_networks: Option<String>,
    /// Allowed verifies per `rate_window_ms`; both `None`: no rate limit.
    pub rate_limit: Option<i64>,
    pub rate_window_ms: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("integration_key::Model")
            .field("key_id", &self.key_id)
            .field("integration_id", &self.integration_id)
            .field("display_name", &self.display_name)
            .field("key_hash", &crate::Redacted)
            .field("create_time", &self.create_time)
            .field("expire_time", &self.expire_time)
            .field("last_use_time", &self.last_use_time)
            .field("disabled", &self.disabled)
            .field("labels", &self.labels)
            .field("allowed_networks", &self.allowed_networks)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window_ms", &self.rate_window_ms)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::integration::Entity",
        from = "Column::IntegrationId",
        to = "super::integration::Column::Id"
    )]
    Integration,
}

impl Related<super::integration::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Integration.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
