//! Data access over SeaORM: plain async functions over a connection, no tonic
//! types. Each submodule owns one table (or one closely related group).

pub mod audit;
pub mod budgets;
pub mod catalog;
pub mod change_log;
pub mod clients;
pub mod integration_keys;
pub mod integrations;
pub mod notify;
pub mod partner_keys;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// How to reach the database. `Debug` hides a password in the URL.
#[derive(Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Longest a single statement may run (PostgreSQL, MySQL/MariaDB).
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// `scheme://user:password@host/...` with the password replaced.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // `url` percent-encodes what it is given; the marker is put in
            // afterwards so it reads as one.
            if parsed.set_password(Some("REDACTED")).is_err() {
                return "<a database URL with a password>".into();
            }
            parsed.as_str().replacen(":REDACTED@", ":<redacted>@", 1)
        }
        Ok(_) => url.to_owned(),
        // Not a URL: show it only if it cannot hold a password.
        Err(_) if !url.contains('@') => url.to_owned(),
        Err(_) => "<a database URL with a password>".into(),
    }
}

impl DbOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// How many statements a pool ran (durations go to the metrics), fed by
/// SeaORM's metric callback.
#[derive(Debug, Default)]
pub struct QueryStats {
    statements: AtomicU64,
}

impl QueryStats {
    /// Statements run so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
}

/// Opens a pool (see `connect`) whose every statement is counted in `stats`.
pub async fn connect_observed(
    options: &DbOptions,
    stats: Arc<QueryStats>,
) -> Result<DatabaseConnection, DbErr> {
    let mut db = connect(options).await?;
    db.set_metric_callback(move |info| {
        stats.statements.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(
            "latchkey_db_statement_duration_seconds",
            "outcome" => if info.failed { "error" } else { "ok" }
        )
        .record(info.elapsed.as_secs_f64());
    });
    Ok(db)
}

/// Opens a pool. SQLite gets WAL, `synchronous=FULL` (an acknowledged
/// commit survives power loss, not only a crash), a busy timeout and
/// foreign keys, so readers never block the writer and writers wait their
/// turn instead of failing.
pub async fn connect(options: &DbOptions) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(options.url.clone());
    let timeout = options.statement_timeout;
    opts.map_sqlx_postgres_opts(move |o| {
        o.options([("statement_timeout", format!("{}ms", timeout.as_millis()))])
    })
    .map_sqlx_mysql_pool_opts(move |pool| {
        // Per connection, as the pool opens it (a session variable).
        pool.after_connect(move |conn, _| {
            Box::pin(async move {
                use sea_orm::sqlx::{AssertSqlSafe, Executor, raw_sql};
                // MariaDB names it max_statement_time (seconds), MySQL
                // max_execution_time (milliseconds, SELECTs only).
                let mariadb = format!("SET SESSION max_statement_time = {}", timeout.as_secs_f64());
                // Safe: built from a number, not from input.
                if conn.execute(raw_sql(AssertSqlSafe(mariadb))).await.is_err() {
                    let mysql = format!("SET SESSION max_execution_time = {}", timeout.as_millis());
                    conn.execute(raw_sql(AssertSqlSafe(mysql))).await?;
                }
                Ok(())
            })
        })
    });
    // An embedded database cannot drop a connection: a ping on every
    // acquire would only cost a round trip to the connection's thread (two
    // context switches), three times per create.
    opts.map_sqlx_sqlite_pool_opts(|pool| pool.test_before_acquire(false));
    opts.max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_timeout(options.acquire_timeout)
        // SQL statements carry no secrets (only hashes as bind parameters,
        // which sqlx does not log), but they are noise at info level.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(opts).await
}

/// Brings the schema up to date.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock up
/// front (`BEGIN IMMEDIATE`), so two writers never deadlock upgrading a read
/// lock; other backends ignore the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// The keyset condition "after (t, k)" in (a, b) order, written so that
/// every backend can seek an index on (.., a, b): `a >= t` is the range the
/// index serves; `a > t OR b > k` only breaks ties at `t`.
pub fn after_keyset<A, B>(a: A, t: i64, b: B, k: &str) -> sea_orm::Condition
where
    A: sea_orm::ColumnTrait,
    B: sea_orm::ColumnTrait,
{
    sea_orm::Condition::all()
        .add(a.gte(t))
        .add(sea_orm::Condition::any().add(a.gt(t)).add(b.gt(k)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_the_database_password() {
        let options = super::DbOptions::new("postgres://app:s3cret@db:5432/latchkey");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app:<redacted>@db:5432/latchkey"),
            "{shown}"
        );
        let plain = format!(
            "{:?}",
            super::DbOptions::new("sqlite://latchkey.db?mode=rwc")
        );
        assert!(plain.contains("sqlite://latchkey.db?mode=rwc"), "{plain}");
    }
}
