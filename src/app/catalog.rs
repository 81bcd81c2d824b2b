//! Applying the catalog: reconcile integrations and grants to a file in one
//! transaction, record the revision and its audit event, and tell replicas.

use sea_orm::{DatabaseConnection, DbErr};

use crate::{
    app::audit::{self, Action, Actor},
    domain::catalog::{Catalog, CatalogError, Change, diff},
    store,
};

/// What `apply` did (or, for a dry run, would do).
#[derive(Debug)]
pub struct Applied {
    pub changes: Vec<Change>,
    /// The revision recorded; `None` for a dry run or when the catalog was
    /// already the latest revision.
    pub revision: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("audit trail: {0}")]
    Audit(String),
}

/// Reconciles the database to `catalog` in one transaction. Nothing changes
/// when it fails or when `dry_run` is set. Replicas starting together with
/// the same `--catalog` race; the loser of a unique-index race retries on
/// the winner's committed state.
/// `actor` (the command line, or `serve --catalog`) is recorded with the
/// revision, in the same transaction.
pub async fn apply(
    db: &DatabaseConnection,
    actor: &Actor,
    catalog: &Catalog,
    dry_run: bool,
) -> Result<Applied, ApplyError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        match apply_once(db, actor, catalog, dry_run).await {
            Err(ApplyError::Db(e))
                if attempt < ATTEMPTS
                    && matches!(
                        e.sql_err(),
                        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                    ) =>
            {
                tracing::info!("catalog applied concurrently by another process; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn apply_once(
    db: &DatabaseConnection,
    actor: &Actor,
    catalog: &Catalog,
    dry_run: bool,
) -> Result<Applied, ApplyError> {
    let txn = store::begin_write(db).await?;
    let current = store::catalog::load_current(&txn).await?;
    let changes = diff(&current, catalog)?;
    if dry_run {
        txn.rollback().await?;
        return Ok(Applied {
            changes,
            revision: None,
        });
    }
    let now = crate::domain::time::now_micros();
    store::catalog::apply_changes(&txn, &changes, now).await?;
    let digest = catalog.digest();
    let latest = store::catalog::latest_revision(&txn).await?;
    let revision = if changes.is_empty() && latest.as_ref().is_some_and(|r| r.digest == digest) {
        None
    } else {
        let summary = changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        Some(store::catalog::record_revision(&txn, &digest, &summary, now).await?)
    };
    if let Some(revision) = revision {
        let target = format!("catalog revision {revision}");
        audit::record(&txn, actor, Action::CatalogApply, &target, true)
            .await
            .map_err(|e| ApplyError::Audit(e.to_string()))?;
        // Delivered with the commit: replicas reload grants at once.
        store::notify::publish_catalog_change(&txn).await?;
    }
    txn.commit().await?;
    Ok(Applied { changes, revision })
}
