//! Integration keys: metadata and argon2id hashes, never the keys themselves.

use entity::integration_key::{self, Column, Entity};
use sea_orm::{
    ActiveValue::Set, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, prelude::*,
};

pub use integration_key::Model as IntegrationKeyRow;

/// A key to insert.
pub struct NewIntegrationKey<'a> {
    pub key_id: &'a str,
    pub integration_id: i64,
    pub display_name: &'a str,
    pub key_hash: String,
    pub create_time: i64,
    pub expire_time: Option<i64>,
    /// Stored forms (`domain::key_restrictions`); `None`: none.
    pub labels: Option<String>,
    pub allowed_networks: Option<String>,
    /// (`rate_limit`, `rate_window_ms`), see `RateLimit::to_columns`.
    pub rate_limit: Option<(i64, i64)>,
}

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    key: NewIntegrationKey<'_>,
) -> Result<IntegrationKeyRow, DbErr> {
    let row = integration_key::ActiveModel {
        key_id: Set(key.key_id.to_owned()),
        integration_id: Set(key.integration_id),
        display_name: Set(key.display_name.to_owned()),
        key_hash: Set(key.key_hash),
        create_time: Set(key.create_time),
        expire_time: Set(key.expire_time),
        last_use_time: Set(None),
        disabled: Set(false),
        labels: Set(key.labels.clone()),
        allowed_networks: Set(key.allowed_networks.clone()),
        rate_limit: Set(key.rate_limit.map(|(limit, _)| limit)),
        rate_window_ms: Set(key.rate_limit.map(|(_, window)| window)),
    };
    Entity::insert(row.clone())
        .exec_without_returning(db)
        .await?;
    // Built from what was inserted: no read-back, which SQLite, PostgreSQL and
    // MySQL would each do differently.
    Ok(IntegrationKeyRow {
        key_id: key.key_id.to_owned(),
        integration_id: key.integration_id,
        display_name: key.display_name.to_owned(),
        key_hash: String::new(),
        create_time: key.create_time,
        expire_time: key.expire_time,
        last_use_time: None,
        disabled: false,
        labels: key.labels,
        allowed_networks: key.allowed_networks,
        rate_limit: key.rate_limit.map(|(limit, _)| limit),
        rate_window_ms: key.rate_limit.map(|(_, window)| window),
    })
}

/// The key `key_id` of the integration `integration_id`.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    key_id: &str,
) -> Result<Option<IntegrationKeyRow>, DbErr> {
    Entity::find_by_id(key_id.to_owned())
        .filter(Column::IntegrationId.eq(integration_id))
        .one(db)
        .await
}

/// `find`, with the row locked until the transaction `txn` ends (FOR UPDATE
/// on PostgreSQL and MySQL; SQLite's write transactions lock the database).
pub async fn find_for_update<C: ConnectionTrait>(
    txn: &C,
    integration_id: i64,
    key_id: &str,
) -> Result<Option<IntegrationKeyRow>, DbErr> {
    Entity::find_by_id(key_id.to_owned())
        .filter(Column::IntegrationId.eq(integration_id))
        .lock_exclusive()
        .one(txn)
        .await
}

/// Up to `limit` keys of the integration, ordered by (create_time, key_id),
/// strictly after `after`. Keyset pagination: as fast on the last page as on
/// the first.
pub async fn list_page<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    after: Option<(i64, &str)>,
    limit: u64,
) -> Result<Vec<IntegrationKeyRow>, DbErr> {
    list_page_query(integration_id, after, limit).all(db).await
}

/// The query of `list_page`. The keyset condition leads with
/// `create_time >= t`, which every backend turns into a range on
/// `ix_integration_keys_listing` (integration_id, create_time, key_id), so
/// a page deep in the listing costs what the first does; the `OR` after it
/// only breaks ties at `t`. (The plain `create_time > t OR (create_time = t
/// AND key_id > k)` cannot seek: SQLite scanned from the start.)
pub fn list_page_query(
    integration_id: i64,
    after: Option<(i64, &str)>,
    limit: u64,
) -> Select<Entity> {
    let mut query = Entity::find()
        .filter(Column::IntegrationId.eq(integration_id))
        .order_by_asc(Column::CreateTime)
        .order_by_asc(Column::KeyId);
    if let Some((create_time, key_id)) = after {
        query = query.filter(super::after_keyset(
            Column::CreateTime,
            create_time,
            Column::KeyId,
            key_id,
        ));
    }
    query.limit(limit)
}

/// Inserts many keys in statements of up to 500 rows: seeding for the
/// benchmark and the paging tests, which need large listings fast.
pub async fn insert_many<C: ConnectionTrait>(
    db: &C,
    keys: Vec<NewIntegrationKey<'_>>,
) -> Result<(), DbErr> {
    for chunk in keys.chunks(500) {
        let rows = chunk.iter().map(|key| integration_key::ActiveModel {
            key_id: Set(key.key_id.to_owned()),
            integration_id: Set(key.integration_id),
            display_name: Set(key.display_name.to_owned()),
            key_hash: Set(key.key_hash.clone()),
            create_time: Set(key.create_time),
            expire_time: Set(key.expire_time),
            last_use_time: Set(None),
            disabled: Set(false),
            labels: Set(key.labels.clone()),
            allowed_networks: Set(key.allowed_networks.clone()),
            rate_limit: Set(key.rate_limit.map(|(limit, _)| limit)),
            rate_window_ms: Set(key.rate_limit.map(|(_, window)| window)),
        });
        Entity::insert_many(rows).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Deletes the key; false when there was no such key in the integration.
pub async fn delete<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    key_id: &str,
) -> Result<bool, DbErr> {
    let result = Entity::delete_many()
        .filter(Column::KeyId.eq(key_id))
        .filter(Column::IntegrationId.eq(integration_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// How many keys each integration holds (the catalog refuses to remove an
/// integration that still holds keys).
pub async fn count_for_integration<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::IntegrationId.eq(integration_id))
        .count(db)
        .await
}

/// The key `key_id`, whatever its integration (for verification).
pub async fn find_by_id<C: ConnectionTrait>(
    db: &C,
    key_id: &str,
) -> Result<Option<IntegrationKeyRow>, DbErr> {
    Entity::find_by_id(key_id.to_owned()).one(db).await
}

/// Moves `last_use_time` forward to `time` (never back).
pub async fn record_use<C: ConnectionTrait>(db: &C, key_id: &str, time: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastUseTime, Expr::value(time))
        .filter(Column::KeyId.eq(key_id))
        .filter(
            Condition::any()
                .add(Column::LastUseTime.is_null())
                .add(Column::LastUseTime.lt(time)),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// The changes UpdateIntegrationKey may make; `None` leaves a field alone.
#[derive(Default)]
pub struct KeyChanges {
    pub display_name: Option<String>,
    /// `Some(None)` clears the expiry.
    pub expire_time: Option<Option<i64>>,
    pub disabled: Option<bool>,
    /// Stored forms; `Some(None)` clears.
    pub labels: Option<Option<String>>,
    pub allowed_networks: Option<Option<String>>,
    /// Stored form (`rate_limit`, `rate_window_ms`); `Some(None)` clears.
    pub rate_limit: Option<Option<(i64, i64)>>,
}

/// Applies `changes`; false when there is no such key in the integration.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    key_id: &str,
    changes: KeyChanges,
) -> Result<bool, DbErr> {
    let mut query = Entity::update_many()
        .filter(Column::KeyId.eq(key_id))
        .filter(Column::IntegrationId.eq(integration_id));
    let mut any = false;
    if let Some(display_name) = changes.display_name {
        query = query.col_expr(Column::DisplayName, Expr::value(display_name));
        any = true;
    }
    if let Some(expire_time) = changes.expire_time {
        query = query.col_expr(Column::ExpireTime, Expr::value(expire_time));
        any = true;
    }
    if let Some(disabled) = changes.disabled {
        query = query.col_expr(Column::Disabled, Expr::value(disabled));
        any = true;
    }
    if let Some(labels) = changes.labels {
        query = query.col_expr(Column::Labels, Expr::value(labels));
        any = true;
    }
    if let Some(networks) = changes.allowed_networks {
        query = query.col_expr(Column::AllowedNetworks, Expr::value(networks));
        any = true;
    }
    if let Some(rate_limit) = changes.rate_limit {
        query = query
            .col_expr(Column::RateLimit, Expr::value(rate_limit.map(|(l, _)| l)))
            .col_expr(
                Column::RateWindowMs,
                Expr::value(rate_limit.map(|(_, w)| w)),
            );
        any = true;
    }
    if any {
        query.exec(db).await?;
    }
    // MySQL reports 0 affected rows when nothing changes; existence is what
    // the caller asks about, so check it separately.
    Ok(find(db, integration_id, key_id).await?.is_some())
}
