//! `partner-keys list` pages by keyset, oldest first: an index on
//! (create_time, key_id) lets every backend seek to a page.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PartnerKeys {
    Table,
    CreateTime,
    KeyId,
}

const INDEX: &str = "ix_partner_keys_listing";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(PartnerKeys::Table)
                    .col(PartnerKeys::CreateTime)
                    .col(PartnerKeys::KeyId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(PartnerKeys::Table)
                    .to_owned(),
            )
            .await
    }
}
