//! Failure budgets shared by the replicas on one database: token buckets in
//! `failure_budgets`, each taken from or given back to under its row lock,
//! so concurrent replicas cannot spend one token twice.

use entity::failure_budget::{self, Entity};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, QuerySelect, SqlErr, TransactionTrait,
};

/// A bucket size and refill rate (a `security::throttle::Budget`, as the
/// store sees it).
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub burst: f64,
    pub per_second: f64,
}

impl Bucket {
    /// `tokens` as of `then`, refilled up to `now`.
    fn refilled(&self, tokens: f64, then: i64, now: i64) -> f64 {
        let elapsed = now.saturating_sub(then).max(0) as f64 / 1e6;
        (tokens + elapsed * self.per_second).min(self.burst)
    }
}

/// Takes one token from `subject`'s bucket. `Ok(None)`: taken; `Ok(Some(t))`:
/// fewer than one token left (`t`), nothing taken.
pub async fn take(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
) -> Result<Option<f64>, DbErr> {
    // A first use by two replicas at once: one insert loses the unique race
    // and the take is retried on the winner's row.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match take_once(db, subject, bucket, now).await {
            Err(e)
                if attempts < 3
                    && matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            other => return other,
        }
    }
}

async fn take_once(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
) -> Result<Option<f64>, DbErr> {
    let txn = db.begin().await?;
    let row = Entity::find_by_id(subject.to_owned())
        .lock_exclusive()
        .one(&txn)
        .await?;
    let tokens = match &row {
        Some(row) => bucket.refilled(row.tokens, row.updated_micros, now),
        None => bucket.burst,
    };
    if tokens < 1.0 {
        txn.commit().await?;
        return Ok(Some(tokens));
    }
    let model = failure_budget::ActiveModel {
        subject: Set(subject.to_owned()),
        tokens: Set(tokens - 1.0),
        updated_micros: Set(now),
    };
    if row.is_some() {
        Entity::update(model).exec(&txn).await?;
    } else {
        Entity::insert(model).exec_without_returning(&txn).await?;
    }
    txn.commit().await?;
    Ok(None)
}

/// Gives one token back to `subject`'s bucket (a secret that proved right,
/// or an attempt never judged).
pub async fn give_back(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    if let Some(row) = Entity::find_by_id(subject.to_owned())
        .lock_exclusive()
        .one(&txn)
        .await?
    {
        let tokens = (bucket.refilled(row.tokens, row.updated_micros, now) + 1.0).min(bucket.burst);
        Entity::update(failure_budget::ActiveModel {
            subject: Set(row.subject),
            tokens: Set(tokens),
            updated_micros: Set(now),
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await
}
