//! Partner keys: the credentials of management calls.

use entity::partner_key::{self, Column, Entity};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, prelude::*,
};

pub use partner_key::Model as PartnerKeyRow;

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    key_id: &str,
    name: &str,
    key_hash: String,
    create_time: i64,
) -> Result<(), DbErr> {
    let row = partner_key::ActiveModel {
        key_id: Set(key_id.to_owned()),
        name: Set(name.to_owned()),
        key_hash: Set(key_hash),
        create_time: Set(create_time),
        revoke_time: Set(None),
    };
    Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// The partner key `key_id`, unless it is unknown or revoked.
pub async fn find_active<C: ConnectionTrait>(
    db: &C,
    key_id: &str,
) -> Result<Option<PartnerKeyRow>, DbErr> {
    Entity::find_by_id(key_id.to_owned())
        .filter(Column::RevokeTime.is_null())
        .one(db)
        .await
}

/// Up to `limit` partner keys, revoked ones included, oldest first, after
/// the keyset position `after`.
pub async fn list_page<C: ConnectionTrait>(
    db: &C,
    after: Option<(i64, &str)>,
    limit: u64,
) -> Result<Vec<PartnerKeyRow>, DbErr> {
    list_page_query(after, limit).all(db).await
}

/// The query of `list_page`, seeking `ix_partner_keys_listing`.
pub fn list_page_query(after: Option<(i64, &str)>, limit: u64) -> Select<Entity> {
    let mut query = Entity::find()
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

/// Revokes the key; false when no active key has this id.
pub async fn revoke<C: ConnectionTrait>(db: &C, key_id: &str, now: i64) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::RevokeTime, Expr::value(now))
        .filter(Column::KeyId.eq(key_id))
        .filter(Column::RevokeTime.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
