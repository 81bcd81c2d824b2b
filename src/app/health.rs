//! CheckServiceHealth: whether this replica can do its work (database,
//! migrations, catalog, replica notifications), as diagnostics.

use std::time::Instant;

use migration::{Migrator, MigratorTrait};

use crate::{
    app::App,
    domain::clients::{Check, Diagnostic},
    store,
};

/// The diagnostics of this replica; `catalog` names the applied revision's
/// time with `describe_time` (the transport's notation).
pub async fn service_diagnostics(
    app: &App,
    describe_time: impl Fn(i64) -> String,
) -> Vec<Diagnostic> {
    let db = &app.db;
    let mut diagnostics = Vec::new();

    let started = Instant::now();
    let reachable = db.ping().await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let is_reachable = reachable.is_ok();
    diagnostics.push(match reachable {
        Ok(()) => pass("database", format!("reachable in {millis:.1} ms")),
        Err(e) => fail("database", format!("unreachable after {millis:.1} ms: {e}")),
    });
    if is_reachable {
        diagnostics.push(match Migrator::get_pending_migrations(db).await {
            Ok(pending) if pending.is_empty() => pass(
                "migrations",
                format!("{} migrations applied", Migrator::migrations().len()),
            ),
            Ok(pending) => fail(
                "migrations",
                format!("{} migration(s) pending", pending.len()),
            ),
            Err(e) => fail("migrations", format!("cannot read migration state: {e}")),
        });
        diagnostics.push(match store::catalog::latest_revision(db).await {
            Ok(Some(revision)) => pass(
                "catalog",
                format!(
                    "revision {} applied at {}",
                    revision.id,
                    describe_time(revision.applied_time)
                ),
            ),
            Ok(None) => Diagnostic {
                name: "catalog",
                status: Check::Warn,
                detail: "no catalog applied: there are no integrations".into(),
            },
            Err(e) => fail("catalog", format!("cannot read the catalog revision: {e}")),
        });
    }
    diagnostics.push(replica_notifications(app));
    diagnostics
}

/// How soon a change made on another replica reaches this one's cache.
fn replica_notifications(app: &App) -> Diagnostic {
    let verifier = &app.verifier;
    let name = "replica_notifications";
    let (how, down) = match app.db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => (
            "listening, with heartbeats",
            "the listener is down or silent",
        ),
        sea_orm::DatabaseBackend::MySql => (
            "following the key change log, each poll bounded by the heartbeat",
            "the key change log follower is down or its connection silent",
        ),
        _ => {
            return pass(
                name,
                format!(
                    "not on this backend: changes made by other processes are seen within \
                     the verify cache TTL ({} s)",
                    verifier.state_ttl().as_secs()
                ),
            );
        }
    };
    if verifier.notifications_flowing() {
        pass(name, how.into())
    } else {
        fail(
            name,
            format!("{down}: cached key states are re-read on every verify until it is back"),
        )
    }
}

fn pass(name: &'static str, detail: String) -> Diagnostic {
    Diagnostic {
        name,
        status: Check::Pass,
        detail,
    }
}

fn fail(name: &'static str, detail: String) -> Diagnostic {
    Diagnostic {
        name,
        status: Check::Fail,
        detail,
    }
}
