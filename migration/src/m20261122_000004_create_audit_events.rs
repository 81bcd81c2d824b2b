//! The audit trail.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    EventId,
    Time,
    Actor,
    Action,
    Target,
    Outcome,
    Peer,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(string_len_uniq(AuditEvents::EventId, 32))
                    .col(big_integer(AuditEvents::Time))
                    .col(string_len(AuditEvents::Actor, 255))
                    .col(string_len(AuditEvents::Action, 64))
                    .col(string_len(AuditEvents::Target, 255))
                    .col(string_len(AuditEvents::Outcome, 16))
                    .col(string_len(AuditEvents::Peer, 64))
                    .to_owned(),
            ))
            .await?;
        // Newest first, by keyset: ORDER BY time DESC, id DESC.
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Time)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_target_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Target)
                    .col(AuditEvents::Time)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
