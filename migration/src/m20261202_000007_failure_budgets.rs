//! Failure budgets shared by the replicas on one database, so N replicas do
//! not give an attacker N budgets for one key id.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FailureBudgets {
    Table,
    Subject,
    Tokens,
    UpdatedMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(FailureBudgets::Table)
                    .if_not_exists()
                    .col(string_len(FailureBudgets::Subject, 255).primary_key())
                    .col(double(FailureBudgets::Tokens))
                    .col(big_integer(FailureBudgets::UpdatedMicros))
                    .to_owned(),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FailureBudgets::Table).to_owned())
            .await
    }
}
