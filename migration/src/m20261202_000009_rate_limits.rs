//! Per-key rate limits: how many verifies (`rate_limit`) per window
//! (`rate_window_ms`), both absent on keys without one. Their shared token
//! buckets live in `failure_budgets` (migration 000007), under subjects of
//! their own. One column per statement: SQLite alters one thing at a time.

use sea_orm_migration::{prelude::*, schema::big_integer_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationKeys {
    Table,
    RateLimit,
    RateWindowMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [IntegrationKeys::RateLimit, IntegrationKeys::RateWindowMs] {
            manager
                .alter_table(
                    Table::alter()
                        .table(IntegrationKeys::Table)
                        .add_column(big_integer_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [IntegrationKeys::RateLimit, IntegrationKeys::RateWindowMs] {
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
