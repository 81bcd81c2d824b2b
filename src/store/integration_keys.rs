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

/// Up to `limit` keys of the integration, ordered by (create_time, key_id),
/// strictly after `after`. Keyset pagination: as fast on the last page as on
/// the first.
pub async fn list_page<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    after: Option<(i64, &str)>,
    limit: u64,
) -> Result<Vec<IntegrationKeyRow>, DbErr> {
    let mut query = Entity::find()
        .filter(Column::IntegrationId.eq(integration_id))
        .order_by_asc(Column::CreateTime)
        .order_by_asc(Column::KeyId);
    if let Some((create_time, key_id)) = after {
        query = query.filter(
            Condition::any()
                .add(Column::CreateTime.gt(create_time))
                .add(
                    Condition::all()
                        .add(Column::CreateTime.eq(create_time))
                        .add(Column::KeyId.gt(key_id)),
                ),
        );
    }
    query.limit(limit).all(db).await
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
