//! Token buckets shared by the replicas on one database, in
//! `failure_budgets`: the failure budgets of key ids and the per-key rate
//! limits (each under subjects of its own). Each is taken from or given back
//! to under its row lock, so concurrent replicas cannot spend one token
//! twice.

use entity::failure_budget::{self, Entity};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QuerySelect, Statement, TransactionTrait,
};

/// A bucket size and refill rate (a `security::throttle::Budget`, as the
/// store sees it).
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub burst: f64,
    pub per_second: f64,
}

impl Bucket {
    /// How long the bucket, holding `tokens`, takes to hold one whole token
    /// (at least 1 ms, at most a day): a refusal's `retry_after`.
    pub fn until_one_token(&self, tokens: f64) -> std::time::Duration {
        let secs = (1.0 - tokens).max(0.0) / self.per_second.max(1e-9);
        std::time::Duration::from_secs_f64(secs.clamp(0.001, 86_400.0))
    }

    /// `tokens` as of `then`, refilled up to `now` (both in µs).
    pub fn refilled(&self, tokens: f64, then: i64, now: i64) -> f64 {
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
    let taken = take_up_to(db, subject, bucket, now, 1).await?;
    Ok((taken.granted == 0).then_some(taken.tokens_left))
}

/// What `take_up_to` took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Taken {
    /// Whole tokens taken, 0 to the number asked for.
    pub granted: u32,
    /// Tokens left in the bucket afterwards (below 1 when `granted` is 0).
    pub tokens_left: f64,
}

/// Takes up to `want` whole tokens from `subject`'s bucket: as many as it
/// holds, none when it holds less than one.
pub async fn take_up_to(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
    want: u32,
) -> Result<Taken, DbErr> {
    let mut tries = 0;
    loop {
        tries += 1;
        ensure_row(db, subject, bucket, now).await?;
        match retrying_deadlocks(|| take_once(db, subject, bucket, now, want)).await {
            // Pruned between the insert and the read (`prune`): again.
            Err(DbErr::RecordNotFound(_)) if tries < 3 => {}
            taken => return taken,
        }
    }
}

/// Deletes the buckets untouched since `before` (µs). A bucket left alone
/// long enough to be full again is the same as none (the next take makes
/// it anew, full); without this every subject ever tried, such as a user
/// name an attacker made up, would keep a row for ever. `before` must be
/// at least the longest refill of any bucket kept here. Deletes in batches
/// through the `updated_micros` index, so it locks only old rows, a few at
/// a time; a bucket taken from meanwhile is fresh again and kept (the
/// outer condition is checked again on the row it locks).
pub async fn prune(db: &DatabaseConnection, before: i64) -> Result<u64, DbErr> {
    const BATCH: u64 = 1_000;
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::MySql => "DELETE FROM failure_budgets WHERE updated_micros < ? LIMIT ?",
        _ => {
            "DELETE FROM failure_budgets WHERE updated_micros < $1 AND subject IN \
             (SELECT subject FROM failure_budgets WHERE updated_micros < $1 LIMIT $2)"
        }
    };
    let mut pruned = 0;
    loop {
        let deleted = retrying_deadlocks(|| {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [before.into(), (BATCH as i64).into()],
            ))
        })
        .await?
        .rows_affected();
        pruned += deleted;
        if deleted < BATCH {
            return Ok(pruned);
        }
    }
}

/// Creates `subject`'s bucket, full, unless it exists: then the locked read
/// below finds a row, never a gap (InnoDB's gap locks would let two first
/// uses deadlock on their inserts).
async fn ensure_row(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::MySql => {
            "INSERT IGNORE INTO failure_budgets (subject, tokens, updated_micros) VALUES (?, ?, ?)"
        }
        _ => {
            "INSERT INTO failure_budgets (subject, tokens, updated_micros) VALUES ($1, $2, $3) \
             ON CONFLICT (subject) DO NOTHING"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [subject.into(), bucket.burst.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Runs `attempt` again (up to three times in all) when the database chose
/// it as a deadlock victim.
async fn retrying_deadlocks<T, F, Fut>(attempt: F) -> Result<T, DbErr>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if tries < 3 && e.to_string().to_ascii_lowercase().contains("deadlock") => {}
            other => return other,
        }
    }
}

async fn take_once(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
    want: u32,
) -> Result<Taken, DbErr> {
    let txn = db.begin().await?;
    let Some(row) = Entity::find_by_id(subject.to_owned())
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        txn.commit().await?;
        return Err(DbErr::RecordNotFound(format!("failure budget {subject}")));
    };
    let tokens = bucket.refilled(row.tokens, row.updated_micros, now);
    // Whole tokens only; `tokens` is at most the burst, a u32 in practice.
    let granted = tokens.floor().clamp(0.0, f64::from(want)) as u32;
    if granted == 0 {
        txn.commit().await?;
        return Ok(Taken {
            granted,
            tokens_left: tokens,
        });
    }
    let tokens_left = tokens - f64::from(granted);
    Entity::update(failure_budget::ActiveModel {
        subject: Set(row.subject),
        tokens: Set(tokens_left),
        updated_micros: Set(now),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(Taken {
        granted,
        tokens_left,
    })
}

/// Gives one token back to `subject`'s bucket (a secret that proved right,
/// or an attempt never judged).
pub async fn give_back(
    db: &DatabaseConnection,
    subject: &str,
    bucket: Bucket,
    now: i64,
) -> Result<(), DbErr> {
    retrying_deadlocks(|| give_back_once(db, subject, bucket, now)).await
}

async fn give_back_once(
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
