//! Integration keys and partner keys: public ids and argon2id hashes only.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_create_integrations::Integrations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationKeys {
    Table,
    KeyId,
    IntegrationId,
    DisplayName,
    KeyHash,
    CreateTime,
    ExpireTime,
    LastUseTime,
    Disabled,
}

#[derive(DeriveIden)]
enum PartnerKeys {
    Table,
    KeyId,
    Name,
    KeyHash,
    CreateTime,
    RevokeTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(IntegrationKeys::Table)
                    .if_not_exists()
                    .col(string_len(IntegrationKeys::KeyId, 32).primary_key())
                    .col(big_integer(IntegrationKeys::IntegrationId))
                    .col(string_len(IntegrationKeys::DisplayName, 255))
                    .col(string_len(IntegrationKeys::KeyHash, 255))
                    .col(big_integer(IntegrationKeys::CreateTime))
                    .col(big_integer_null(IntegrationKeys::ExpireTime))
                    .col(big_integer_null(IntegrationKeys::LastUseTime))
                    .col(boolean(IntegrationKeys::Disabled).default(false))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_integration_keys_integration")
                            .from(IntegrationKeys::Table, IntegrationKeys::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            // The catalog never deletes an integration that
                            // still holds keys; the database enforces it too.
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            ))
            .await?;
        // Keyset pagination: WHERE integration_id = ? AND (create_time, key_id) > (?, ?)
        // ORDER BY create_time, key_id.
        manager
            .create_index(
                Index::create()
                    .name("ix_integration_keys_listing")
                    .table(IntegrationKeys::Table)
                    .col(IntegrationKeys::IntegrationId)
                    .col(IntegrationKeys::CreateTime)
                    .col(IntegrationKeys::KeyId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(PartnerKeys::Table)
                    .if_not_exists()
                    .col(string_len(PartnerKeys::KeyId, 32).primary_key())
                    .col(string_len(PartnerKeys::Name, 255))
                    .col(string_len(PartnerKeys::KeyHash, 255))
                    .col(big_integer(PartnerKeys::CreateTime))
                    .col(big_integer_null(PartnerKeys::RevokeTime))
                    .to_owned(),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PartnerKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(IntegrationKeys::Table).to_owned())
            .await
    }
}
