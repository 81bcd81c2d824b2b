//! Which endpoints each integration may call, as a snapshot shared by every
//! verification and reloaded when a new catalog revision appears (applied by
//! this process or any other), so grant changes reach warm keys too.

use std::{collections::BTreeMap, sync::Arc};

use sea_orm::{ConnectionTrait, DbErr};

use crate::store;

/// One integration's name and grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationGrants {
    pub name: String,
    pub endpoints: Vec<String>,
}

impl IntegrationGrants {
    /// Whether a grant matches `endpoint`: exactly, or as a prefix pattern
    /// ending in `*`. Deny by default.
    pub fn allows(&self, endpoint: &str) -> bool {
        self.endpoints
            .iter()
            .any(|grant| match grant.strip_suffix('*') {
                Some(prefix) => endpoint.starts_with(prefix),
                None => grant == endpoint,
            })
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    /// The catalog revision this snapshot reflects (0: none applied).
    pub revision: i64,
    pub by_integration_id: BTreeMap<i64, IntegrationGrants>,
}

/// The current grants snapshot.
#[derive(Default)]
pub struct GrantBook {
    /// Swapped whole on reload; read without a lock or a reference count
    /// by every verify.
    current: arc_swap::ArcSwap<Snapshot>,
}

impl GrantBook {
    /// The current snapshot, as a guard for a short synchronous read (the
    /// verify hot path); not to be held across an await.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Reloads from the database if the catalog revision changed (or always,
    /// with `force`). Returns whether it reloaded.
    pub async fn refresh<C: ConnectionTrait>(&self, db: &C, force: bool) -> Result<bool, DbErr> {
        Ok(self.reload(db, force).await?.is_some())
    }

    /// `refresh`, naming the integrations whose grants the reload changed
    /// (added, removed, or with other endpoints); `None` when it did not
    /// reload.
    pub async fn reload<C: ConnectionTrait>(
        &self,
        db: &C,
        force: bool,
    ) -> Result<Option<Vec<String>>, DbErr> {
        let revision = store::catalog::latest_revision(db)
            .await?
            .map_or(0, |r| r.id);
        // A reference of its own: the database is read while it is held.
        let before = self.current.load_full();
        if !force && revision == before.revision {
            return Ok(None);
        }
        let by_integration_id: BTreeMap<i64, IntegrationGrants> = store::integrations::all(db)
            .await?
            .into_iter()
            .map(|i| {
                (
                    i.id,
                    IntegrationGrants {
                        name: i.name,
                        endpoints: i.endpoints,
                    },
                )
            })
            .collect();
        let grants_of = |snapshot: &BTreeMap<i64, IntegrationGrants>| {
            snapshot
                .values()
                .map(|i| (i.name.clone(), i.endpoints.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let (old, new) = (
            grants_of(&before.by_integration_id),
            grants_of(&by_integration_id),
        );
        let changed = old
            .keys()
            .chain(new.keys())
            .filter(|name| old.get(*name) != new.get(*name))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.current.store(Arc::new(Snapshot {
            revision,
            by_integration_id,
        }));
        Ok(Some(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_grants() {
        let grants = IntegrationGrants {
            name: "x".into(),
            endpoints: vec![
                "course.v1.CourseService/GetOutline".into(),
                "permissions.v1.*".into(),
            ],
        };
        assert!(grants.allows("course.v1.CourseService/GetOutline"));
        assert!(!grants.allows("course.v1.CourseService/GetOutlines"));
        assert!(!grants.allows("course.v1.CourseService/DeleteCourse"));
        assert!(grants.allows("permissions.v1.PermissionService/Check"));
        assert!(!grants.allows("permissions.v2.PermissionService/Check"));
        let none = IntegrationGrants {
            name: "y".into(),
            endpoints: vec![],
        };
        assert!(!none.allows("anything/At"));
    }
}
