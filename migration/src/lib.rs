//! The schema of latchkey as SeaORM migrations, run by `latchkey serve` at
//! startup and by `latchkey migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_integrations;
mod m20261122_000002_create_keys;
mod m20261122_000003_create_clients;
mod m20261122_000004_create_audit_events;
mod m20261202_000005_exact_names_without_pad;
mod m20261202_000006_partner_keys_listing;
mod m20261202_000007_failure_budgets;
mod m20261202_000008_key_restrictions;
mod m20261202_000009_rate_limits;
mod m20261202_000010_key_change_log;
mod m20261204_000011_failure_budgets_by_age;

pub struct Migrator;

/// MySQL/MariaDB compare strings case-insensitively by default; key ids are
/// base62 and names are exact, so every table compares bytes, as SQLite and
/// PostgreSQL do. (Other backends would reject the table options.)
/// `utf8mb4_bin` still pads spaces; migration 000005 converts every table
/// to a collation without padding.
pub(crate) fn exact_strings(
    manager: &SchemaManager,
    mut table: TableCreateStatement,
) -> TableCreateStatement {
    if manager.get_database_backend() == sea_orm::DbBackend::MySql {
        table.character_set("utf8mb4").collate("utf8mb4_bin");
    }
    table
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_integrations::Migration),
            Box::new(m20261122_000002_create_keys::Migration),
            Box::new(m20261122_000003_create_clients::Migration),
            Box::new(m20261122_000004_create_audit_events::Migration),
            Box::new(m20261202_000005_exact_names_without_pad::Migration),
            Box::new(m20261202_000006_partner_keys_listing::Migration),
            Box::new(m20261202_000007_failure_budgets::Migration),
            Box::new(m20261202_000008_key_restrictions::Migration),
            Box::new(m20261202_000009_rate_limits::Migration),
            Box::new(m20261202_000010_key_change_log::Migration),
            Box::new(m20261204_000011_failure_budgets_by_age::Migration),
        ]
    }
}
