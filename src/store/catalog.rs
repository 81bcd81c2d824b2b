//! Applying catalog changes and recording catalog revisions.

use entity::{catalog_revision, endpoint_grant, integration};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, prelude::*,
};

use super::{integration_keys, integrations};
use crate::domain::catalog::{Change, CurrentIntegration};

/// Every integration with its grants and key count.
pub async fn load_current<C: ConnectionTrait>(db: &C) -> Result<Vec<CurrentIntegration>, DbErr> {
    let mut current = Vec::new();
    for integration in integrations::all(db).await? {
        let key_count = integration_keys::count_for_integration(db, integration.id).await?;
        current.push(CurrentIntegration {
            integration,
            key_count,
        });
    }
    Ok(current)
}

/// Applies `changes` in order.
pub async fn apply_changes<C: ConnectionTrait>(
    db: &C,
    changes: &[Change],
    now: i64,
) -> Result<(), DbErr> {
    for change in changes {
        match change {
            Change::AddIntegration {
                name,
                kind,
                description,
            } => {
                integration::Entity::insert(integration::ActiveModel {
                    name: Set(name.clone()),
                    kind: Set(*kind),
                    description: Set(description.clone()),
                    create_time: Set(now),
                    update_time: Set(now),
                    ..Default::default()
                })
                .exec_without_returning(db)
                .await?;
            }
            Change::UpdateIntegration {
                name,
                kind,
                description,
            } => {
                integration::Entity::update_many()
                    .col_expr(integration::Column::Kind, Expr::value(*kind))
                    .col_expr(
                        integration::Column::Description,
                        Expr::value(description.clone()),
                    )
                    .col_expr(integration::Column::UpdateTime, Expr::value(now))
                    .filter(integration::Column::Name.eq(name.as_str()))
                    .exec(db)
                    .await?;
            }
            Change::RemoveIntegration { name } => {
                let id = integration_id(db, name).await?;
                endpoint_grant::Entity::delete_many()
                    .filter(endpoint_grant::Column::IntegrationId.eq(id))
                    .exec(db)
                    .await?;
                integration::Entity::delete_by_id(id).exec(db).await?;
            }
            Change::AddGrant {
                integration,
                endpoint,
            } => {
                let id = integration_id(db, integration).await?;
                endpoint_grant::Entity::insert(endpoint_grant::ActiveModel {
                    integration_id: Set(id),
                    endpoint: Set(endpoint.clone()),
                    ..Default::default()
                })
                .exec_without_returning(db)
                .await?;
            }
            Change::RemoveGrant {
                integration,
                endpoint,
            } => {
                let id = integration_id(db, integration).await?;
                endpoint_grant::Entity::delete_many()
                    .filter(endpoint_grant::Column::IntegrationId.eq(id))
                    .filter(endpoint_grant::Column::Endpoint.eq(endpoint.as_str()))
                    .exec(db)
                    .await?;
            }
        }
    }
    Ok(())
}

async fn integration_id<C: ConnectionTrait>(db: &C, name: &str) -> Result<i64, DbErr> {
    integration::Entity::find()
        .filter(integration::Column::Name.eq(name))
        .one(db)
        .await?
        .map(|row| row.id)
        .ok_or_else(|| DbErr::RecordNotFound(format!("integration '{name}'")))
}

/// The most recently applied catalog revision.
pub async fn latest_revision<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<catalog_revision::Model>, DbErr> {
    catalog_revision::Entity::find()
        .order_by_desc(catalog_revision::Column::Id)
        .one(db)
        .await
}

/// Records an applied revision and returns its number.
pub async fn record_revision<C: ConnectionTrait>(
    db: &C,
    digest: &str,
    summary: &str,
    now: i64,
) -> Result<i64, DbErr> {
    catalog_revision::Entity::insert(catalog_revision::ActiveModel {
        digest: Set(digest.to_owned()),
        applied_time: Set(now),
        summary: Set(summary.to_owned()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    // Read back the newest row rather than rely on a backend's RETURNING or
    // last-insert-id; the write transaction is held, so the newest row is ours.
    latest_revision(db)
        .await?
        .map(|r| r.id)
        .ok_or_else(|| DbErr::RecordNotFound("catalog revision just inserted".into()))
}
