//! The schema of latchkey as SeaORM migrations, run by `latchkey serve` at
//! startup and by `latchkey migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_integrations;
mod m20261122_000002_create_keys;
mod m20261122_000003_create_clients;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_integrations::Migration),
            Box::new(m20261122_000002_create_keys::Migration),
            Box::new(m20261122_000003_create_clients::Migration),
        ]
    }
}
