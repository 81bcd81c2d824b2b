//! An index on when each shared budget was last touched, so the periodic
//! prune of buckets that are full again (`store::budgets::prune`) reads and
//! locks only the old rows, not the whole table the verifies are using.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FailureBudgets {
    Table,
    UpdatedMicros,
}

const INDEX: &str = "idx_failure_budgets_updated_micros";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(FailureBudgets::Table)
                    .col(FailureBudgets::UpdatedMicros)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(FailureBudgets::Table)
                    .to_owned(),
            )
            .await
    }
}
