//! Clients, their users (argon2id hashes only) and their settings (secrets
//! sealed under the master key).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    ClientId,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum ClientUsers {
    Table,
    Id,
    ClientPk,
    User,
    KeyHash,
    Scope,
    ShortKey,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum ClientSettings {
    Table,
    Id,
    ClientPk,
    Name,
    Value,
    Secret,
    KeyVersion,
    UpdateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(Clients::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Clients::Id))
                    .col(string_len_uniq(Clients::ClientId, 64))
                    .col(big_integer(Clients::CreateTime))
                    .col(big_integer(Clients::UpdateTime))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(ClientUsers::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ClientUsers::Id))
                    .col(big_integer(ClientUsers::ClientPk))
                    .col(string_len(ClientUsers::User, 128))
                    .col(string_len(ClientUsers::KeyHash, 255))
                    .col(string_len(ClientUsers::Scope, 16))
                    .col(boolean(ClientUsers::ShortKey).default(false))
                    .col(big_integer(ClientUsers::CreateTime))
                    .col(big_integer(ClientUsers::UpdateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_client_users_client")
                            .from(ClientUsers::Table, ClientUsers::ClientPk)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_client_users_client_user")
                    .table(ClientUsers::Table)
                    .col(ClientUsers::ClientPk)
                    .col(ClientUsers::User)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Finding which clients have a user of a given name (Basic names
        // without `@client`).
        manager
            .create_index(
                Index::create()
                    .name("ix_client_users_user")
                    .table(ClientUsers::Table)
                    .col(ClientUsers::User)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(crate::exact_strings(
                manager,
                Table::create()
                    .table(ClientSettings::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ClientSettings::Id))
                    .col(big_integer(ClientSettings::ClientPk))
                    .col(string_len(ClientSettings::Name, 128))
                    .col(text(ClientSettings::Value))
                    .col(boolean(ClientSettings::Secret).default(false))
                    .col(string_len_null(ClientSettings::KeyVersion, 32))
                    .col(big_integer(ClientSettings::UpdateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_client_settings_client")
                            .from(ClientSettings::Table, ClientSettings::ClientPk)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_client_settings_client_name")
                    .table(ClientSettings::Table)
                    .col(ClientSettings::ClientPk)
                    .col(ClientSettings::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ClientSettings::Table.into_iden(),
            ClientUsers::Table.into_iden(),
            Clients::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
