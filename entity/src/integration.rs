//! An integration of the catalog.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// `custom` or `builtin`.
    pub kind: crate::IntegrationKind,
    pub description: String,
    pub create_time: i64,
    pub update_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::endpoint_grant::Entity")]
    EndpointGrant,
    #[sea_orm(has_many = "super::integration_key::Entity")]
    IntegrationKey,
}

impl Related<super::endpoint_grant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EndpointGrant.def()
    }
}

impl Related<super::integration_key::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::IntegrationKey.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
