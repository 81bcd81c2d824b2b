//! Names compare byte for byte on MySQL/MariaDB too: `utf8mb4_bin` is a PAD
//! SPACE collation, under which `'admin' = 'admin '`. Every table is
//! converted to the binary collation without padding (MariaDB
//! `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`), in place, so existing
//! databases get it too. SQLite and PostgreSQL already compare bytes.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let db = manager.get_connection();
        let version: String = db
            .query_one_raw(Statement::from_string(
                DbBackend::MySql,
                "SELECT VERSION() AS v",
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("SELECT VERSION() returned nothing".into()))?
            .try_get("", "v")?;
        let collation = if version.to_ascii_lowercase().contains("mariadb") {
            "utf8mb4_nopad_bin"
        } else {
            "utf8mb4_0900_bin"
        };
        let tables = db
            .query_all_raw(Statement::from_string(
                DbBackend::MySql,
                "SELECT table_name AS t FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' \
                 AND table_name <> 'seaql_migrations'",
            ))
            .await?;
        for row in tables {
            let table: String = row.try_get("", "t")?;
            // Names come from information_schema, not from input; quoted.
            let table = table.replace('`', "``");
            db.execute_unprepared(&format!(
                "ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Going back to PAD SPACE would make distinct names collide.
        Ok(())
    }
}
