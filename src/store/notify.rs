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
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [KEY_CHANGES.into(), key_id.into()],
    ))
    .await?;
    Ok(())
}

/// Listens for key changes until `stop` turns true, calling `changed` with
/// each key id. After every (re)connection `resynced` is called: changes
/// published while disconnected were missed.
pub async fn listen_key_changes(
    url: &str,
    changed: impl Fn(&str),
    resynced: impl Fn(),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let listener = async {
            let mut listener = PgListener::connect(url).await?;
            listener.listen(KEY_CHANGES).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.changed() => return,
            connected = listener => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for key changes; retrying");
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            }
        };
        resynced();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => changed(notification.payload()),
                    // The connection dropped: reconnect and resync.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "key change listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
