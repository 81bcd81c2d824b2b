//! Integrations, their endpoint grants, and the catalog revisions that set them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Integrations {
    Table,
    Id,
    Name,
    Kind,
    Description,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum EndpointGrants {
    Table,
    Id,
    IntegrationId,
    Endpoint,
}

#[derive(DeriveIden)]
enum CatalogRevisions {
    Table,
    Id,
    Digest,
    AppliedTime,
    Summary,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(Integrations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Integrations::Id))
                    .col(string_len_uniq(Integrations::Name, 63))
                    .col(string_len(Integrations::Kind, 16))
                    .col(text(Integrations::Description))
                    .col(big_integer(Integrations::CreateTime))
                    .col(big_integer(Integrations::UpdateTime))
                    .to_owned(),
            ))
            .await?;

        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(EndpointGrants::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EndpointGrants::Id))
                    .col(big_integer(EndpointGrants::IntegrationId))
                    .col(string_len(EndpointGrants::Endpoint, 255))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_endpoint_grants_integration")
                            .from(EndpointGrants::Table, EndpointGrants::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_endpoint_grants_integration_endpoint")
                    .table(EndpointGrants::Table)
                    .col(EndpointGrants::IntegrationId)
                    .col(EndpointGrants::Endpoint)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(CatalogRevisions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CatalogRevisions::Id))
                    .col(string_len(CatalogRevisions::Digest, 64))
                    .col(big_integer(CatalogRevisions::AppliedTime))
                    .col(text(CatalogRevisions::Summary))
                    .to_owned(),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CatalogRevisions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EndpointGrants::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Integrations::Table).to_owned())
            .await
    }
}
