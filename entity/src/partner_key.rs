//! A partner key: the admin credential of every management call.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "partner_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: String,
    pub name: String,
    /// argon2id PHC string of the whole key. Never leaves the store.
    pub key_hash: String,
    pub create_time: i64,
    /// Set once the key is revoked; a revoked key never authenticates again.
    pub revoke_time: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("partner_key::Model")
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("key_hash", &crate::Redacted)
            .field("create_time", &self.create_time)
            .field("revoke_time", &self.revoke_time)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
