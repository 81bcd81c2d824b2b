//! Key restrictions: labels (a JSON object) and allowed caller networks (a
//! JSON array of CIDRs), both absent on keys made before them. One column
//! per statement: SQLite alters one thing at a time.

use sea_orm_migration::{prelude::*, schema::text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationKeys {
    Table,
    Labels,
    AllowedNetworks,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [IntegrationKeys::Labels, IntegrationKeys::AllowedNetworks] {
            manager
                .alter_table(
                    Table::alter()
                        .table(IntegrationKeys::Table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [IntegrationKeys::Labels, IntegrationKeys::AllowedNetworks] {
            manager
                .alter_table(
                    Table::alter()
                        .table(IntegrationKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
