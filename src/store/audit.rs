//! The audit trail: append and list, newest first.

use entity::audit_event::{self, Column, Entity};
use sea_orm::{
    ActiveValue::Set, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, prelude::*,
};

pub use audit_event::Model as AuditRow;

/// An event to append.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub time: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: entity::Outcome,
    pub peer: &'a str,
}

pub async fn insert<C: ConnectionTrait>(db: &C, event: NewEvent<'_>) -> Result<(), DbErr> {
    Entity::insert(audit_event::ActiveModel {
        event_id: Set(event.event_id.to_owned()),
        time: Set(event.time),
        actor: Set(event.actor.to_owned()),
        action: Set(event.action.to_owned()),
        target: Set(event.target.to_owned()),
        outcome: Set(event.outcome),
        peer: Set(event.peer.to_owned()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Filters of a listing.
#[derive(Default)]
pub struct EventFilter<'a> {
    pub target: Option<&'a str>,
    /// At or after.
    pub start_time: Option<i64>,
    /// Before.
    pub end_time: Option<i64>,
    /// Strictly older than this (time, id) position.
    pub before: Option<(i64, i64)>,
}

/// Up to `limit` events, newest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    filter: EventFilter<'_>,
    limit: u64,
) -> Result<Vec<AuditRow>, DbErr> {
    list_query(filter, limit).all(db).await
}

/// The query of `list`: a range on `ix_audit_events_time` (or, for a
/// target, `ix_audit_events_target_time`), read backwards.
pub fn list_query(filter: EventFilter<'_>, limit: u64) -> Select<Entity> {
    let mut query = Entity::find()
        .order_by_desc(Column::Time)
        .order_by_desc(Column::Id);
    if let Some(target) = filter.target {
        query = query.filter(Column::Target.eq(target));
    }
    if let Some(start) = filter.start_time {
        query = query.filter(Column::Time.gte(start));
    }
    if let Some(end) = filter.end_time {
        query = query.filter(Column::Time.lt(end));
    }
    if let Some((time, id)) = filter.before {
        // `time <= t` seeks; the OR only breaks ties at t.
        query = query.filter(Column::Time.lte(time)).filter(
            Condition::any()
                .add(Column::Time.lt(time))
                .add(Column::Id.lt(id)),
        );
    }
    query.limit(limit)
}
