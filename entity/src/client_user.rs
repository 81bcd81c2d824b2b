//! A user of a client: an argon2id hash of their API key and their scope.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub client_pk: i64,
    pub user: String,
    /// argon2id PHC string of the user's API key. Never leaves the store.
    pub key_hash: String,
    /// `SYSTEM` or `CLIENT`.
    pub scope: crate::Scope,
    /// Whether the key was shorter than 16 characters when set (only the
    /// hash is kept, so this is recorded then).
    pub short_key: bool,
    pub create_time: i64,
    pub update_time: i64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("client_user::Model")
            .field("id", &self.id)
            .field("client_pk", &self.client_pk)
            .field("user", &self.user)
            .field("key_hash", &crate::Redacted)
            .field("scope", &self.scope)
            .field("short_key", &self.short_key)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
