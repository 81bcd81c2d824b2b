//! The database a test runs on: SQLite by default, or a freshly created
//! PostgreSQL or MariaDB/MySQL database with `LATCHKEY_TEST_BACKEND=postgres`
//! (server URL in `LATCHKEY_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432`) or `=mysql`
//! (`LATCHKEY_TEST_MYSQL_URL`, e.g. `mysql://root@127.0.0.1:3306`). Each test
//! gets its own uniquely named database, dropped when the test ends.

use std::path::Path;

use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection,
    sea_query::{Alias, Query},
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres { server: String },
    MySql { server: String },
}

fn backend() -> Backend {
    let server = |var: &str| {
        std::env::var(var)
            .unwrap_or_else(|_| panic!("LATCHKEY_TEST_BACKEND needs {var} (a server URL)"))
            .trim_end_matches('/')
            .to_owned()
    };
    match std::env::var("LATCHKEY_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres {
            server: server("LATCHKEY_TEST_POSTGRES_URL"),
        },
        Ok("mysql") => Backend::MySql {
            server: server("LATCHKEY_TEST_MYSQL_URL"),
        },
        Ok(other) => panic!("unknown LATCHKEY_TEST_BACKEND {other:?}: sqlite, postgres or mysql"),
    }
}

pub struct TestDb {
    pub url: String,
    backend: Backend,
    /// The created database (server backends only), dropped with `self`.
    name: Option<String>,
    sqlite_file: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A new empty database; SQLite files go in `dir`.
    pub async fn create(dir: &Path) -> TestDb {
        let backend = backend();
        let name = format!(
            "latchkey_test_{}_{:08x}",
            std::process::id(),
            u32::from_le_bytes(random_bytes())
        );
        match &backend {
            Backend::Sqlite => {
                let file = dir.join("latchkey.db");
                TestDb {
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    backend,
                    name: None,
                    sqlite_file: Some(file),
                }
            }
            Backend::Postgres { server } | Backend::MySql { server } => {
                let admin = admin_url(&backend);
                let db = Database::connect(&admin)
                    .await
                    .expect("connect to the test server");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                db.close().await.expect("close");
                TestDb {
                    url: format!("{server}/{name}"),
                    backend,
                    name: Some(name),
                    sqlite_file: None,
                }
            }
        }
    }

    /// `host:port` of the database server (none for SQLite).
    pub fn server_address(&self) -> Option<String> {
        self.name.as_ref()?;
        let after_scheme = self.url.split_once("://")?.1;
        let authority = after_scheme.split('/').next()?;
        Some(authority.rsplit('@').next()?.to_owned())
    }

    /// Every stored text value, as stored: the SQLite files' bytes, or on a
    /// server every text column of every table.
    pub async fn raw_contents(&self, db: &DatabaseConnection) -> String {
        if let Some(file) = &self.sqlite_file {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(more) = std::fs::read(format!("{}{suffix}", file.display())) {
                    bytes.extend(more);
                }
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        let tables: [(&str, &[&str]); 8] = [
            ("integrations", &["name", "kind", "description"]),
            ("endpoint_grants", &["endpoint"]),
            ("catalog_revisions", &["digest", "summary"]),
            ("integration_keys", &["key_id", "display_name", "key_hash"]),
            ("partner_keys", &["key_id", "name", "key_hash"]),
            ("clients", &["client_id"]),
            ("client_users", &["user", "key_hash", "scope"]),
            ("client_settings", &["name", "value", "key_version"]),
        ];
        let mut out = String::new();
        for (table, columns) in tables {
            let query = Query::select()
                .columns(columns.iter().map(|c| Alias::new(*c)))
                .from(Alias::new(table))
                .to_owned();
            let rows = db
                .query_all_raw(db.get_database_backend().build(&query))
                .await
                .expect("dump table");
            for row in rows {
                for i in 0..columns.len() {
                    let value: Option<String> = row.try_get_by_index(i).expect("text column");
                    out.push_str(&value.unwrap_or_default());
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl TestDb {
    /// The same database for another replica: this handle never drops it
    /// (the original does).
    pub fn for_replica(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend.clone(),
            name: None,
            sqlite_file: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let sql = match self.backend {
            // FORCE: the server under test may still be closing its pool.
            Backend::Postgres { .. } => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        let admin = admin_url(&self.backend);
        // Drop runs inside the test's runtime; use a runtime of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(db) = Database::connect(&admin).await {
                    if let Err(e) = db.execute_unprepared(&sql).await {
                        eprintln!("cannot drop test database {name}: {e}");
                    }
                    let _ = db.close().await;
                }
            });
        })
        .join();
    }
}

fn admin_url(backend: &Backend) -> String {
    match backend {
        Backend::Postgres { server } => format!("{server}/postgres"),
        Backend::MySql { server } => server.clone(),
        Backend::Sqlite => String::new(),
    }
}

fn random_bytes() -> [u8; 4] {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("random");
    bytes
}
