//! Cross-replica cache invalidation. On PostgreSQL a replica that changes a
//! key publishes its id with NOTIFY; every replica LISTENs and forgets it.
//! MySQL/MariaDB have no such channel: there the change goes to a log table
//! that every replica polls (`change_log`). SQLite is one process.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, sqlx::postgres::PgListener};

/// The NOTIFY channel of changed integration key ids.
pub const KEY_CHANGES: &str = "latchkey_key_changes";

/// Tells every replica that `key_id` changed, when the transaction `db`
/// commits (no-op on SQLite).
pub async fn publish_key_change<C: ConnectionTrait>(db: &C, key_id: &str) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => publish(db, key_id).await,
        DatabaseBackend::MySql => super::change_log::append(db, key_id).await,
        _ => Ok(()),
    }
}

/// Payloads of this prefix are heartbeats, not key ids (a key id never has
/// a colon).
const HEARTBEAT_PREFIX: &str = "heartbeat:";

/// The payload announcing that a new catalog revision (grants) committed.
const CATALOG_CHANGED: &str = "catalog:changed";

/// Tells every replica, at commit of `txn`, that the catalog (and so the
/// grants) changed (no-op on SQLite; replicas also poll the catalog).
pub async fn publish_catalog_change<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    match txn.get_database_backend() {
        DatabaseBackend::Postgres => publish(txn, CATALOG_CHANGED).await,
        DatabaseBackend::MySql => super::change_log::append(txn, CATALOG_CHANGED).await,
        _ => Ok(()),
    }
}

/// How often the change-log follower reads and prunes the log, and how long
/// one read or prune may take.
#[derive(Clone, Copy, Debug)]
pub struct LogFollowing {
    pub poll: Duration,
    pub heartbeat: Duration,
    pub prune_every: Duration,
}

/// Follows the change log (MySQL/MariaDB) at `url` until `stop` turns true,
/// polling every `poll` on a connection of its own (the request pool's
/// load cannot delay it, nor it the requests), with the same callbacks as
/// `listen_key_changes`, pruning the log every `prune_every`. A poll that
/// fails, or a poll or prune that takes longer than `heartbeat`, means
/// changes may go unheard: `flowing(false)`, then a fresh start from the
/// log's end once the database answers again (`flowing(true)`, which
/// resyncs). A prune that fails is only logged: the log is still read.
pub async fn follow_change_log(
    url: &str,
    timing: LogFollowing,
    changed: impl Fn(&str),
    catalog_changed: impl Fn(),
    flowing: impl Fn(bool),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use super::change_log::{self, LogReader};
    let LogFollowing {
        poll,
        heartbeat,
        prune_every,
    } = timing;
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        first = false;
        let start = async {
            let options = super::DbOptions {
                max_connections: 1,
                ..super::DbOptions::new(url)
            };
            let db = super::connect(&options).await?;
            let newest = change_log::newest_id(&db).await?;
            Ok::<_, DbErr>((db, newest))
        };
        let started = tokio::select! {
            _ = stop.changed() => return,
            started = within(heartbeat, "reading the key change log", start) => started,
        };
        let Some((db, newest)) = started else {
            continue;
        };
        let mut reader = LogReader::starting_after(newest);
        tracing::info!("following the key change log of other replicas");
        metrics::gauge!("latchkey_key_change_listener_up").set(1.0);
        flowing(true);
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned = tokio::time::Instant::now();
        let reason = loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            match tokio::time::timeout(heartbeat, reader.poll(&db)).await {
                Ok(Ok(payloads)) => {
                    for payload in payloads {
                        match payload.as_str() {
                            CATALOG_CHANGED => catalog_changed(),
                            key_id => changed(key_id),
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the key change log; restarting");
                    break "failed";
                }
                Err(_) => {
                    tracing::warn!(?heartbeat, "the key change log did not answer; restarting");
                    break "silent";
                }
            }
            if pruned.elapsed() >= prune_every {
                pruned = tokio::time::Instant::now();
                // Bounded like the poll: a connection gone silent during the
                // prune must not leave the follower waiting (and the cache
                // trusted) with no one listening.
                match tokio::time::timeout(heartbeat, change_log::prune(&db)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the key change log"),
                    Err(_) => {
                        tracing::warn!(
                            ?heartbeat,
                            "the key change log did not answer a prune; restarting"
                        );
                        break "silent";
                    }
                }
            }
        };
        flowing(false);
        listener_down(reason);
    }
}

/// Listens for key changes until `stop` turns true, calling `changed` with
/// each key id, `catalog_changed` when a catalog revision committed, and
/// `flowing(true)` once a listener is in place (changes
/// published before it were missed: resync), `flowing(false)` as soon as it
/// is known not to be (a broken connection, or silence).
///
/// Silence is detected with a heartbeat: every `heartbeat / 3` this replica
/// publishes a heartbeat through `db` (not the listening connection) and
/// expects to hear it back. A listening connection that stays open while
/// nothing arrives on it (a dead NAT entry, a failed-over host) is thus
/// noticed within `heartbeat` (after two thirds of it without a word),
/// dropped and replaced.
pub async fn listen_key_changes(
    url: &str,
    db: &sea_orm::DatabaseConnection,
    heartbeat: Duration,
    changed: impl Fn(&str),
    catalog_changed: impl Fn(),
    flowing: impl Fn(bool),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let beat = format!("{HEARTBEAT_PREFIX}{:016x}", rand_token());
    let mut first = true;
    loop {
        if !first {
            // Do not spin against a database that refuses us.
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        first = false;
        let connect = async {
            let mut listener = PgListener::connect(url).await?;
            listener.listen(KEY_CHANGES).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            _ = stop.changed() => return,
            connected = within(heartbeat, "listening for key changes", connect) => connected,
        };
        let Some(mut listener) = connected else {
            continue;
        };
        tracing::info!("listening for key changes from other replicas");
        metrics::gauge!("latchkey_key_change_listener_up").set(1.0);
        flowing(true);
        let mut last_heard = tokio::time::Instant::now();
        let period = heartbeat / 3;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {
                    // Checked every third of `heartbeat`: giving up after
                    // two thirds of silence notices it within `heartbeat`.
                    if last_heard.elapsed() > heartbeat - heartbeat / 3 {
                        tracing::warn!(?heartbeat, "key change listener is silent; reconnecting");
                        break "silent";
                    }
                    if let Err(e) = publish(db, &beat).await {
                        tracing::warn!(error = %e, "cannot send the key change heartbeat");
                    }
                }
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        last_heard = tokio::time::Instant::now();
                        match notification.payload() {
                            CATALOG_CHANGED => catalog_changed(),
                            beat if beat.starts_with(HEARTBEAT_PREFIX) => {}
                            key_id => changed(key_id),
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("key change listener disconnected; reconnecting");
                        break "disconnected";
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "key change listener failed; reconnecting");
                        break "failed";
                    }
                }
            }
        };
        flowing(false);
        listener_down(reason);
    }
}

/// What `start` gives, if it succeeds within `heartbeat`; else logs why
/// not (`what` names the attempt) and counts a failed connect.
async fn within<T, E: std::fmt::Display>(
    heartbeat: Duration,
    what: &str,
    start: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(heartbeat, start).await {
        Ok(Ok(started)) => return Some(started),
        Ok(Err(e)) => tracing::warn!(error = %e, "{what} failed; retrying"),
        Err(_) => tracing::warn!(?heartbeat, "{what} timed out; retrying"),
    }
    listener_down("connect");
    None
}

fn listener_down(reason: &'static str) {
    metrics::gauge!("latchkey_key_change_listener_up").set(0.0);
    metrics::counter!("latchkey_key_change_listener_failures_total", "reason" => reason)
        .increment(1);
}

async fn publish<C: ConnectionTrait>(db: &C, payload: &str) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [KEY_CHANGES.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

/// A random token naming this replica's heartbeats.
fn rand_token() -> u64 {
    let mut bytes = [0u8; 8];
    // Without OS randomness, the heartbeats of two replicas may share a
    // name; each still hears its own.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
