//! The change log replicas on MySQL/MariaDB follow (PostgreSQL has
//! LISTEN/NOTIFY instead): one row per key or catalog change, written in the
//! transaction of the change, read by every replica by id and pruned after
//! an hour. Created on every backend so the schema is one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KeyChangeLog {
    Table,
    Id,
    Payload,
    CreatedMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(KeyChangeLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(KeyChangeLog::Id))
                    .col(string_len(KeyChangeLog::Payload, 64))
                    .col(big_integer(KeyChangeLog::CreatedMicros))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_key_change_log_created")
                    .table(KeyChangeLog::Table)
                    .col(KeyChangeLog::CreatedMicros)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KeyChangeLog::Table).to_owned())
            .await
    }
}
