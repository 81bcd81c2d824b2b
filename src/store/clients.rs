//! Clients, their users and their settings.

use entity::{client, client_setting, client_user};
use sea_orm::{
    ActiveValue::Set, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, prelude::*,
};

pub use client::Model as ClientRow;
pub use client_setting::Model as SettingRow;
pub use client_user::Model as UserRow;

pub async fn find<C: ConnectionTrait>(db: &C, client_id: &str) -> Result<Option<ClientRow>, DbErr> {
    client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await
}

/// Creates the client and returns its row. A concurrent create of the same
/// id fails on the unique index.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    client_id: &str,
    now: i64,
) -> Result<ClientRow, DbErr> {
    client::Entity::insert(client::ActiveModel {
        client_id: Set(client_id.to_owned()),
        create_time: Set(now),
        update_time: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    find(db, client_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("client '{client_id}' just created")))
}

/// Marks the client as changed at `now`.
pub async fn touch<C: ConnectionTrait>(db: &C, client_pk: i64, now: i64) -> Result<(), DbErr> {
    client::Entity::update_many()
        .col_expr(client::Column::UpdateTime, Expr::value(now))
        .filter(client::Column::Id.eq(client_pk))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn users<C: ConnectionTrait>(db: &C, client_pk: i64) -> Result<Vec<UserRow>, DbErr> {
    client_user::Entity::find()
        .filter(client_user::Column::ClientPk.eq(client_pk))
        .order_by_asc(client_user::Column::User)
        .all(db)
        .await
}

pub async fn find_user<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
    user: &str,
) -> Result<Option<UserRow>, DbErr> {
    client_user::Entity::find()
        .filter(client_user::Column::ClientPk.eq(client_pk))
        .filter(client_user::Column::User.eq(user))
        .one(db)
        .await
}

/// The oldest user called `user` of any client (by the client's row id),
/// if there is one.
pub async fn oldest_user_named<C: ConnectionTrait>(
    db: &C,
    user: &str,
) -> Result<Option<UserRow>, DbErr> {
    client_user::Entity::find()
        .filter(client_user::Column::User.eq(user))
        .order_by_asc(client_user::Column::ClientPk)
        .one(db)
        .await
}

/// A user to add or replace.
pub struct NewUser<'a> {
    pub user: &'a str,
    pub key_hash: String,
    pub scope: entity::Scope,
    pub short_key: bool,
}

/// Adds the user or replaces their key and scope; returns the stored row.
pub async fn upsert_user<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
    new: NewUser<'_>,
    now: i64,
) -> Result<UserRow, DbErr> {
    match find_user(db, client_pk, new.user).await? {
        Some(existing) => {
            client_user::Entity::update_many()
                .col_expr(client_user::Column::KeyHash, Expr::value(new.key_hash))
                .col_expr(client_user::Column::Scope, Expr::value(new.scope))
                .col_expr(client_user::Column::ShortKey, Expr::value(new.short_key))
                .col_expr(client_user::Column::UpdateTime, Expr::value(now))
                .filter(client_user::Column::Id.eq(existing.id))
                .exec(db)
                .await?;
        }
        None => {
            client_user::Entity::insert(client_user::ActiveModel {
                client_pk: Set(client_pk),
                user: Set(new.user.to_owned()),
                key_hash: Set(new.key_hash),
                scope: Set(new.scope),
                short_key: Set(new.short_key),
                create_time: Set(now),
                update_time: Set(now),
                ..Default::default()
            })
            .exec_without_returning(db)
            .await?;
        }
    }
    find_user(db, client_pk, new.user)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("user '{}' just written", new.user)))
}

/// Removes the user; false when there was none.
pub async fn delete_user<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
    user: &str,
) -> Result<bool, DbErr> {
    let result = client_user::Entity::delete_many()
        .filter(client_user::Column::ClientPk.eq(client_pk))
        .filter(client_user::Column::User.eq(user))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

pub async fn settings<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
) -> Result<Vec<SettingRow>, DbErr> {
    client_setting::Entity::find()
        .filter(client_setting::Column::ClientPk.eq(client_pk))
        .order_by_asc(client_setting::Column::Name)
        .all(db)
        .await
}

/// A setting value as stored: plain, or sealed with the key `key_version`.
pub struct StoredValue {
    pub value: String,
    pub secret: bool,
    pub key_version: Option<String>,
}

/// Sets (or replaces) a setting.
pub async fn upsert_setting<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
    name: &str,
    stored: StoredValue,
    now: i64,
) -> Result<(), DbErr> {
    let existing = client_setting::Entity::find()
        .filter(client_setting::Column::ClientPk.eq(client_pk))
        .filter(client_setting::Column::Name.eq(name))
        .one(db)
        .await?;
    match existing {
        Some(row) => {
            client_setting::Entity::update_many()
                .col_expr(client_setting::Column::Value, Expr::value(stored.value))
                .col_expr(client_setting::Column::Secret, Expr::value(stored.secret))
                .col_expr(
                    client_setting::Column::KeyVersion,
                    Expr::value(stored.key_version),
                )
                .col_expr(client_setting::Column::UpdateTime, Expr::value(now))
                .filter(client_setting::Column::Id.eq(row.id))
                .exec(db)
                .await?;
        }
        None => {
            client_setting::Entity::insert(client_setting::ActiveModel {
                client_pk: Set(client_pk),
                name: Set(name.to_owned()),
                value: Set(stored.value),
                secret: Set(stored.secret),
                key_version: Set(stored.key_version),
                update_time: Set(now),
                ..Default::default()
            })
            .exec_without_returning(db)
            .await?;
        }
    }
    Ok(())
}

/// Clears a setting (no error when it was not set).
pub async fn delete_setting<C: ConnectionTrait>(
    db: &C,
    client_pk: i64,
    name: &str,
) -> Result<(), DbErr> {
    client_setting::Entity::delete_many()
        .filter(client_setting::Column::ClientPk.eq(client_pk))
        .filter(client_setting::Column::Name.eq(name))
        .exec(db)
        .await?;
    Ok(())
}

/// Every sealed setting of every client, with its client id (for master key
/// rotation).
pub async fn all_secret_settings<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<(SettingRow, String)>, DbErr> {
    let rows = client_setting::Entity::find()
        .filter(client_setting::Column::Secret.eq(true))
        .order_by_asc(client_setting::Column::Id)
        .all(db)
        .await?;
    with_client_ids(db, rows).await
}

/// Up to `limit` secret settings not sealed under `version`, oldest first,
/// locked until `txn` ends (FOR UPDATE; SQLite's write transaction locks),
/// each with its client's id: one batch of a master key rotation.
pub async fn secret_settings_to_reseal<C: ConnectionTrait>(
    txn: &C,
    version: &str,
    limit: u64,
) -> Result<Vec<(SettingRow, String)>, DbErr> {
    let rows = client_setting::Entity::find()
        .filter(client_setting::Column::Secret.eq(true))
        .filter(
            Condition::any()
                .add(client_setting::Column::KeyVersion.is_null())
                .add(client_setting::Column::KeyVersion.ne(version)),
        )
        .order_by_asc(client_setting::Column::Id)
        .limit(limit)
        .lock_exclusive()
        .all(txn)
        .await?;
    with_client_ids(txn, rows).await
}

/// Each setting with the id of its client (the associated data its value is
/// sealed under).
async fn with_client_ids<C: ConnectionTrait>(
    db: &C,
    rows: Vec<SettingRow>,
) -> Result<Vec<(SettingRow, String)>, DbErr> {
    let pks: Vec<i64> = rows.iter().map(|r| r.client_pk).collect();
    let clients: std::collections::HashMap<i64, String> = client::Entity::find()
        .filter(client::Column::Id.is_in(pks))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.client_id))
        .collect();
    rows.into_iter()
        .map(|row| {
            let client_id = clients
                .get(&row.client_pk)
                .cloned()
                .ok_or_else(|| DbErr::RecordNotFound(format!("client of setting {}", row.id)))?;
            Ok((row, client_id))
        })
        .collect()
}

/// Replaces a sealed value (rotation).
pub async fn reseal_setting<C: ConnectionTrait>(
    db: &C,
    setting_id: i64,
    value: String,
    key_version: &str,
) -> Result<(), DbErr> {
    client_setting::Entity::update_many()
        .col_expr(client_setting::Column::Value, Expr::value(value))
        .col_expr(client_setting::Column::KeyVersion, Expr::value(key_version))
        .filter(client_setting::Column::Id.eq(setting_id))
        .exec(db)
        .await?;
    Ok(())
}
