//! Failure budgets that hold across replicas. Each replica first spends its
//! own budget (`security::throttle`, no I/O); an attempt it grants and that
//! is about to cost argon2 then takes a token from the budget the replicas
//! share in the database. So N replicas give an attacker one budget per key
//! id, not N; and a cached verify, or a refusal a replica decides alone,
//! costs no database round trip. SQLite is one process: there the local
//! budget is the only one.

use std::time::Duration;

use sea_orm::{DatabaseBackend, DatabaseConnection};

use crate::{
    domain::{key_restrictions::MAX_RATE_WINDOW, time::now_micros},
    error::Error,
    security::{
        hasher::HashError,
        throttle::{Budget, Reservation},
    },
    store::{self, budgets::Bucket},
};

/// Drops the shared buckets left alone long enough to be full again (see
/// `store::budgets::prune`): the longest refill of any kind kept there, a
/// failure budget (`failure_budget`) or a key's rate limit (its window, at
/// most `MAX_RATE_WINDOW`), and an hour more. Nothing to do on SQLite.
pub async fn prune_shared(db: &DatabaseConnection, failure_budget: Budget) -> Result<u64, Error> {
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        return Ok(0);
    }
    let longest = failure_budget.full_refill().max(MAX_RATE_WINDOW);
    let keep_micros =
        i64::try_from((longest + Duration::from_secs(3600)).as_micros()).unwrap_or(i64::MAX);
    let before = now_micros().saturating_sub(keep_micros);
    Ok(store::budgets::prune(db, before).await?)
}

pub struct SharedBudgets {
    db: DatabaseConnection,
    bucket: Bucket,
    enabled: bool,
}

impl SharedBudgets {
    /// Budgets of `budget` per subject, shared through `db` unless it is
    /// SQLite.
    pub fn new(db: DatabaseConnection, budget: Budget) -> Self {
        let enabled = db.get_database_backend() != DatabaseBackend::Sqlite;
        Self {
            db,
            bucket: Bucket {
                burst: f64::from(budget.burst),
                per_second: budget.per_second.max(1e-9),
            },
            enabled,
        }
    }

    /// Takes a token for an attempt on `subject` that is about to reach
    /// argon2: `Ok(None)` when it may, `Ok(Some(retry_after))` when the
    /// shared budget is spent.
    pub async fn take(&self, subject: &str) -> Result<Option<Duration>, Error> {
        if !self.enabled {
            return Ok(None);
        }
        match store::budgets::take(&self.db, subject, self.bucket, now_micros()).await? {
            None => Ok(None),
            Some(tokens) => {
                metrics::counter!("latchkey_shared_budget_refusals_total").increment(1);
                Ok(Some(self.bucket.until_one_token(tokens)))
            }
        }
    }

    /// Runs `check` (an argon2 check, given this replica's `reservation`)
    /// under a shared token for `subject`. When the shared budget is spent,
    /// `check` does not run, the local reservation stays spent (as for any
    /// failure) and the answer is `Err(retry_after)`; when the shared budget
    /// cannot be read, the attempt was never judged and the local tokens go
    /// back. The shared token goes back unless the check ran and failed.
    pub async fn checked<'r, F, Fut>(
        &self,
        subject: String,
        reservation: Reservation<'r>,
        check: F,
    ) -> Result<Result<bool, Duration>, Error>
    where
        F: FnOnce(Reservation<'r>) -> Fut,
        Fut: Future<Output = Result<bool, HashError>>,
    {
        match self.take(&subject).await {
            Err(e) => {
                reservation.not_checked();
                return Err(e);
            }
            Ok(Some(retry_after)) => return Ok(Err(retry_after)),
            Ok(None) => {}
        }
        let result = check(reservation).await;
        if self.enabled && !matches!(result, Ok(false)) {
            self.give_back(subject).await;
        }
        Ok(Ok(result?))
    }

    /// Gives `subject`'s token back (the secret proved right, or was never
    /// judged), before the answer: a replica's next check then sees it. In
    /// a task of its own, so a caller that goes away cannot stop it halfway;
    /// a failure only costs a token until the bucket refills.
    async fn give_back(&self, subject: String) {
        let (db, bucket) = (self.db.clone(), self.bucket);
        let given = tokio::spawn(async move {
            store::budgets::give_back(&db, &subject, bucket, now_micros()).await
        })
        .await;
        match given {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot give a shared failure token back"),
            Err(e) => tracing::warn!(error = %e, "shared failure token task"),
        }
    }
}
