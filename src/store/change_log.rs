//! Cross-replica change announcements on MySQL/MariaDB, which have no
//! LISTEN/NOTIFY: a change writes a row to `key_change_log` inside its own
//! transaction (so it is announced exactly when it commits), and every
//! replica polls the log by id a few times a second.
//!
//! Ids are handed out at insert, not at commit: a transaction that took id
//! 10 may commit after one that took id 11. So a replica that has read up to
//! 11 keeps asking for 10 for a while (`GAP_WAIT`) before deciding it was
//! rolled back. Rows are pruned after an hour.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

use crate::domain::time::now_micros;

/// How long an id below the newest one read may still show up (its
/// transaction not yet committed) before it is taken for rolled back.
const GAP_WAIT: Duration = Duration::from_secs(30);

/// Gaps wider than this are not tracked id by id (ids jumped, e.g. after a
/// server restart): their late commits would go unheard, which the log says.
const MAX_TRACKED_GAP: i64 = 1000;

/// Rows read per poll.
const PAGE: u64 = 1000;

/// How long rows are kept: far longer than any poll interval or gap wait.
const KEEP_MICROS: i64 = 3_600_000_000;

/// Records `payload` (a key id, or the catalog's marker) in the log, as
/// part of the transaction `txn`.
pub async fn append<C: ConnectionTrait>(txn: &C, payload: &str) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::MySql,
        "INSERT INTO key_change_log (payload, created_micros) VALUES (?, ?)",
        [payload.into(), now_micros().into()],
    ))
    .await?;
    Ok(())
}

/// The newest id in the log (0 when empty): where a new follower starts.
pub async fn newest_id<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::MySql,
            "SELECT COALESCE(MAX(id), 0) AS newest FROM key_change_log",
        ))
        .await?;
    match row {
        Some(row) => row.try_get::<i64>("", "newest"),
        None => Ok(0),
    }
}

/// Deletes rows older than an hour. Sent as plain text each time, not as
/// a prepared statement: once a minute needs no statement kept on the
/// connection, and every prune then shows on the wire as what it is (the
/// fault tests silence a connection in the middle of one). The cutoff is a
/// number computed here, never input.
pub async fn prune<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let cutoff = now_micros() - KEEP_MICROS;
    db.execute_unprepared(&format!(
        "DELETE FROM key_change_log WHERE created_micros < {cutoff}"
    ))
    .await?;
    Ok(())
}

/// A replica's place in the log.
pub struct LogReader {
    /// The newest id read.
    newest: i64,
    /// Ids below `newest` not read yet, and since when they are missing.
    missing: BTreeMap<i64, Instant>,
}

impl LogReader {
    /// A reader that hears what is appended after id `newest`.
    pub fn starting_after(newest: i64) -> Self {
        Self {
            newest,
            missing: BTreeMap::new(),
        }
    }

    /// Reads what was committed since the last poll: new rows, and rows
    /// that filled a gap. Returns their payloads in the order read.
    pub async fn poll<C: ConnectionTrait>(&mut self, db: &C) -> Result<Vec<String>, DbErr> {
        let now = Instant::now();
        let mut payloads = Vec::new();
        if !self.missing.is_empty() {
            let ids: Vec<i64> = self.missing.keys().take(100).copied().collect();
            let marks = vec!["?"; ids.len()].join(", ");
            let sql = format!("SELECT id, payload FROM key_change_log WHERE id IN ({marks})");
            let values: Vec<Value> = ids.iter().map(|id| (*id).into()).collect();
            for (id, payload) in query(db, &sql, values).await? {
                if self.missing.remove(&id).is_some() {
                    payloads.push(payload);
                }
            }
        }
        let sql =
            format!("SELECT id, payload FROM key_change_log WHERE id > ? ORDER BY id LIMIT {PAGE}");
        let rows = query(db, &sql, vec![self.newest.into()]).await?;
        payloads.extend(self.accept_new(rows, now));
        self.missing
            .retain(|_, since| now.duration_since(*since) < GAP_WAIT);
        Ok(payloads)
    }

    /// Takes rows newer than `newest` (in id order), noting the ids skipped.
    fn accept_new(&mut self, rows: Vec<(i64, String)>, now: Instant) -> Vec<String> {
        let mut payloads = Vec::with_capacity(rows.len());
        for (id, payload) in rows {
            if id <= self.newest {
                continue;
            }
            if id - self.newest > MAX_TRACKED_GAP {
                tracing::warn!(
                    from = self.newest,
                    to = id,
                    "key change log ids jumped; changes committed late in the gap go unheard"
                );
            } else {
                for gap in self.newest + 1..id {
                    self.missing.entry(gap).or_insert(now);
                }
            }
            self.newest = id;
            payloads.push(payload);
        }
        payloads
    }
}

async fn query<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<(i64, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::MySql,
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "payload")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[i64]) -> Vec<(i64, String)> {
        ids.iter().map(|id| (*id, format!("k{id}"))).collect()
    }

    #[test]
    fn skipped_ids_are_remembered_until_they_show_up_or_time_out() {
        let mut reader = LogReader::starting_after(5);
        let now = Instant::now();
        assert_eq!(
            reader.accept_new(rows(&[4, 6, 9]), now),
            vec!["k6".to_owned(), "k9".to_owned()]
        );
        assert_eq!(reader.missing.keys().copied().collect::<Vec<_>>(), [7, 8]);
        assert!(reader.accept_new(rows(&[9]), now).is_empty(), "read once");
        // A jump too wide to track is taken as is.
        reader.accept_new(rows(&[5000]), now);
        assert_eq!(reader.newest, 5000);
        assert_eq!(reader.missing.len(), 2);
    }
}
