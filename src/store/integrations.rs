//! Integrations and their endpoint grants.

use std::collections::BTreeMap;

use entity::{endpoint_grant, integration};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, prelude::*,
};

pub use crate::domain::catalog::{Integration, IntegrationKind};

/// An integration without its grants: what key management needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationRef {
    pub id: i64,
    pub name: String,
    pub kind: IntegrationKind,
}

/// The integration called `name`, without its grants (one query).
pub async fn find_ref_by_name<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<IntegrationRef>, DbErr> {
    let Some(row) = row_by_name(db, name).await? else {
        return Ok(None);
    };
    Ok(Some(IntegrationRef {
        kind: row.kind,
        id: row.id,
        name: row.name,
    }))
}

/// The integration called `name`, with its grants.
pub async fn find_by_name<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<Integration>, DbErr> {
    let Some(row) = row_by_name(db, name).await? else {
        return Ok(None);
    };
    Ok(with_grants(db, vec![row]).await?.pop())
}

async fn row_by_name<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<integration::Model>, DbErr> {
    integration::Entity::find()
        .filter(integration::Column::Name.eq(name))
        .one(db)
        .await
}

/// Up to `limit` integrations by name, starting after `after`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Integration>, DbErr> {
    let rows = list_query(after, limit).all(db).await?;
    with_grants(db, rows).await
}

/// The integrations of `list`: a range on the unique name index.
pub fn list_query(after: Option<&str>, limit: u64) -> Select<integration::Entity> {
    let mut query = integration::Entity::find().order_by_asc(integration::Column::Name);
    if let Some(after) = after {
        query = query.filter(integration::Column::Name.gt(after));
    }
    query.limit(limit)
}

/// Every integration with its grants, by name (the catalog reconciles these).
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<Integration>, DbErr> {
    let rows = integration::Entity::find()
        .order_by_asc(integration::Column::Name)
        .all(db)
        .await?;
    with_grants(db, rows).await
}

/// Loads the grants of `rows` in one query.
async fn with_grants<C: ConnectionTrait>(
    db: &C,
    rows: Vec<integration::Model>,
) -> Result<Vec<Integration>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut grants: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for grant in endpoint_grant::Entity::find()
        .filter(endpoint_grant::Column::IntegrationId.is_in(ids))
        .order_by_asc(endpoint_grant::Column::Endpoint)
        .all(db)
        .await?
    {
        grants
            .entry(grant.integration_id)
            .or_default()
            .push(grant.endpoint);
    }
    rows.into_iter()
        .map(|row| {
            let kind = row.kind;
            Ok(Integration {
                endpoints: grants.remove(&row.id).unwrap_or_default(),
                id: row.id,
                name: row.name,
                kind,
                description: row.description,
            })
        })
        .collect()
}
