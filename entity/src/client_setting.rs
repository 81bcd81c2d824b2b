//! A client setting. `ClientCredentials.*` values are sealed (AES-256-GCM)
//! and carry the version of the master key that sealed them.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_settings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub client_pk: i64,
    /// Bucket-prefixed: `ClientCredentials.<Name>` or `ClientSettings.<Name>`.
    pub name: String,
    /// Plain text, or for secrets base64(nonce || ciphertext).
    #[sea_orm(column_type = "Text")]
    pub value: String,
    pub secret: bool,
    /// Fingerprint of the master key that sealed a secret value.
    pub key_version: Option<String>,
    pub update_time: i64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("client_setting::Model");
        s.field("id", &self.id)
            .field("client_pk", &self.client_pk)
            .field("name", &self.name);
        if self.secret {
            s.field("value", &crate::Redacted);
        } else {
            s.field("value", &self.value);
        }
        s.field("key_version", &self.key_version).finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
