//! Cross-replica cache invalidation on PostgreSQL: a replica that changes a
//! key publishes its id with NOTIFY; every replica LISTENs and forgets it.
//! Other backends have no such channel: their replicas rely on the verify
//! cache's state TTL instead.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, sqlx::postgres::PgListener};

/// The NOTIFY channel of changed integration key ids.
pub const KEY_CHANGES: &str = "latchkey_key_changes";

/// Tells every replica that `key_id` changed (no-op except on PostgreSQL).
pub async fn publish_key_change<C: ConnectionTrait>(db: &C, key_id: &str) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    publish(db, key_id).await
}

/// Payloads of this prefix are heartbeats, not key ids (a key id never has
/// a colon).
const HEARTBEAT_PREFIX: &str = "heartbeat:";

/// The payload announcing that a new catalog revision (grants) committed.
const CATALOG_CHANGED: &str = "catalog:changed";

/// Tells every replica, at commit of `txn`, that the catalog (and so the
/// grants) changed (no-op except on PostgreSQL; replicas also poll).
pub async fn publish_catalog_change<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    publish(txn, CATALOG_CHANGED).await
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
        let mut listener = tokio::select! {
            _ = stop.changed() => return,
            connected = tokio::time::timeout(heartbeat, connect) => match connected {
                Ok(Ok(listener)) => listener,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for key changes; retrying");
                    listener_down("connect");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(?heartbeat, "listening for key changes timed out; retrying");
                    listener_down("connect");
                    continue;
                }
            }
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
