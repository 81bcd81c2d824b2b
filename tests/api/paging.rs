//! Keyset paging that can seek: a walk through a large listing returns
//! every row once, in order (ties in time included), and each List query's
//! plan is an index range on every backend (`EXPLAIN`), so a page deep in a
//! listing costs what the first one does. Speed itself is measured by
//! `latchkey bench` (`list-deep`), not here.

use latchkey::{
    app::audit::Actor,
    domain::{ApiKey, KeyKind, catalog::Catalog},
    grpc::proto::v1::ListIntegrationKeysRequest,
    store::{
        self,
        audit::EventFilter,
        integration_keys::{IntegrationKeyRow, NewIntegrationKey},
    },
};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, QueryTrait, Statement, TransactionTrait,
};

use crate::helpers::spawn_app;

/// Keys seeded into one integration: three per microsecond, so pages end
/// inside runs of equal create times.
const SEEDED: usize = 1_200;

#[tokio::test]
async fn a_walk_through_a_large_listing_returns_every_key_once_in_order() {
    let app = spawn_app().await;
    let mut seeded = seed_keys(&app.db, "learner-activity", SEEDED).await;
    seeded.sort_by(|a, b| (a.create_time, &a.key_id).cmp(&(b.create_time, &b.key_id)));

    let mut keys = app.keys_client().await;
    let mut walked = Vec::new();
    let mut token = String::new();
    loop {
        let page = keys
            .list_integration_keys(app.as_partner(ListIntegrationKeysRequest {
                integration: "learner-activity".into(),
                page_size: 97,
                page_token: token,
            }))
            .await
            .unwrap()
            .into_inner();
        walked.extend(page.keys.into_iter().map(|k| k.key_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<_> = seeded.iter().map(|k| k.key_id.clone()).collect();
    assert_eq!(walked.len(), SEEDED);
    assert_eq!(walked, expected);
}

#[tokio::test]
async fn every_list_query_is_an_index_range() {
    let app = spawn_app().await;
    let db = &app.db;
    let seeded = seed_keys(db, "learner-activity", SEEDED).await;
    seed_partner_keys_and_events(db, 600).await;
    seed_integrations(db, 300).await;
    let integration = store::integrations::find_ref_by_name(db, "learner-activity")
        .await
        .unwrap()
        .unwrap();
    analyze(db).await;
    let middle = &seeded[SEEDED / 2];
    let position = Some((middle.create_time, middle.key_id.as_str()));
    let events = store::audit::list(db, EventFilter::default(), 300)
        .await
        .unwrap();
    let event = events.last().unwrap();
    let before = Some((event.time, event.id));
    let partner_keys = store::partner_keys::list_page(db, None, 300).await.unwrap();
    let partner_key = partner_keys.last().unwrap();
    let partner_position = Some((partner_key.create_time, partner_key.key_id.as_str()));

    let plans = [
        (
            "ix_integration_keys_listing",
            store::integration_keys::list_page_query(integration.id, position, 51)
                .build(db.get_database_backend()),
        ),
        (
            "ix_partner_keys_listing",
            store::partner_keys::list_page_query(partner_position, 51)
                .build(db.get_database_backend()),
        ),
        (
            "ix_audit_events_time",
            store::audit::list_query(
                EventFilter {
                    before,
                    ..Default::default()
                },
                51,
            )
            .build(db.get_database_backend()),
        ),
        (
            "ix_audit_events_target_time",
            store::audit::list_query(
                EventFilter {
                    target: Some("seeded"),
                    before,
                    ..Default::default()
                },
                51,
            )
            .build(db.get_database_backend()),
        ),
        (
            "integrations",
            store::integrations::list_query(Some("seeded-150"), 51)
                .build(db.get_database_backend()),
        ),
    ];
    for (index, statement) in plans {
        let plan = explain(db, &statement).await;
        println!("{index}: {plan}");
        assert_index_range(db.get_database_backend(), index, &plan, &statement.sql);
        if db.get_database_backend() == DatabaseBackend::MySql {
            // MariaDB's EXPLAIN labels a seek on an index prefix `ref` even
            // when it runs as a range; its handler counters tell: a page
            // from the middle reads about a page of index entries, not the
            // half before it.
            let read = index_entries_read(db, &statement).await;
            println!("{index}: {read} index entries read");
            assert!(read <= 60, "{index}: {read} entries read for 51 rows");
        }
    }
}

/// MySQL/MariaDB: how many index entries running `statement` reads
/// (`Handler_read_key` + `Handler_read_next` + `Handler_read_prev`).
async fn index_entries_read(db: &DatabaseConnection, statement: &Statement) -> u64 {
    async fn counters(txn: &sea_orm::DatabaseTransaction) -> u64 {
        let rows = txn
            .query_all_raw(Statement::from_string(
                DatabaseBackend::MySql,
                "SHOW SESSION STATUS WHERE Variable_name IN \
                 ('Handler_read_key', 'Handler_read_next', 'Handler_read_prev')",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                row.try_get::<String>("", "Value")
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    }
    // One transaction: one connection, whose session counters these are.
    let txn = db.begin().await.unwrap();
    let before = counters(&txn).await;
    txn.query_all_raw(statement.clone()).await.unwrap();
    let after = counters(&txn).await;
    txn.rollback().await.unwrap();
    // SHOW STATUS itself reads no index.
    after - before
}

/// Inserts `count` keys into `integration` in bulk (no argon2: the hash is
/// a placeholder no key matches).
async fn seed_keys(
    db: &DatabaseConnection,
    integration: &str,
    count: usize,
) -> Vec<IntegrationKeyRow> {
    let integration = store::integrations::find_ref_by_name(db, integration)
        .await
        .unwrap()
        .unwrap();
    let base = latchkey::domain::time::now_micros();
    let ids: Vec<String> = (0..count)
        .map(|_| {
            ApiKey::generate(KeyKind::Integration)
                .unwrap()
                .key_id()
                .to_owned()
        })
        .collect();
    let keys: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, key_id)| NewIntegrationKey {
            key_id,
            integration_id: integration.id,
            display_name: "seeded",
            key_hash: "seeded: no key matches this".into(),
            create_time: base + (i / 3) as i64,
            expire_time: None,
            labels: None,
            allowed_networks: None,
            rate_limit: None,
        })
        .collect();
    store::integration_keys::insert_many(db, keys)
        .await
        .unwrap();
    store::integration_keys::list_page(db, integration.id, None, count as u64 + 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.display_name == "seeded")
        .collect()
}

async fn seed_partner_keys_and_events(db: &DatabaseConnection, count: usize) {
    let txn = db.begin().await.unwrap();
    let base = latchkey::domain::time::now_micros();
    for i in 0..count {
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        store::partner_keys::insert(&txn, key.key_id(), "seeded", "x".into(), base + i as i64)
            .await
            .unwrap();
        // A target a tenth of the events name: the target index pays.
        let target = if i % 10 == 0 { "seeded" } else { "other" };
        latchkey::app::audit::record(
            &txn,
            &Actor::cli(),
            latchkey::app::audit::Action::PartnerKeyCreate,
            target,
            true,
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
}

async fn seed_integrations(db: &DatabaseConnection, count: usize) {
    let mut catalog = String::from(crate::helpers::TEST_CATALOG);
    for i in 0..count {
        catalog.push_str(&format!(
            "\n[[integrations]]\nname = \"seeded-{i:03}\"\nkind = \"custom\"\ndescription = \"seeded\"\n"
        ));
    }
    let catalog = Catalog::parse(&catalog, "seeded").unwrap();
    latchkey::app::catalog::apply(db, &Actor::cli(), &catalog, false)
        .await
        .unwrap();
}

/// Table statistics, as a database in use has them (a planner without
/// them guesses).
async fn analyze(db: &DatabaseConnection) {
    let tables = [
        "integration_keys",
        "partner_keys",
        "audit_events",
        "integrations",
    ];
    match db.get_database_backend() {
        DatabaseBackend::MySql => {
            for table in tables {
                db.query_all_raw(Statement::from_string(
                    DatabaseBackend::MySql,
                    format!("ANALYZE TABLE {table}"),
                ))
                .await
                .unwrap();
            }
        }
        _ => {
            db.execute_unprepared("ANALYZE").await.unwrap();
        }
    }
}

/// The backend's plan of `statement`, as one line per row.
async fn explain(db: &DatabaseConnection, statement: &Statement) -> String {
    let backend = db.get_database_backend();
    let prefix = match backend {
        DatabaseBackend::Sqlite => "EXPLAIN QUERY PLAN",
        _ => "EXPLAIN",
    };
    let explained = Statement::from_sql_and_values(
        backend,
        format!("{prefix} {}", statement.sql),
        statement.values.clone().map(|v| v.0).unwrap_or_default(),
    );
    let txn = db.begin().await.unwrap();
    if backend == DatabaseBackend::Postgres {
        // A test table is small enough that a sequential scan would win;
        // what matters is that the index range is possible at all.
        // (A bitmap scan would also read the whole range, then sort.)
        txn.execute_unprepared("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
            .await
            .unwrap();
    }
    let rows = txn.query_all_raw(explained).await.unwrap();
    txn.rollback().await.unwrap();
    rows.iter()
        .map(|row| match backend {
            DatabaseBackend::Sqlite => row.try_get::<String>("", "detail").unwrap(),
            DatabaseBackend::Postgres => row.try_get::<String>("", "QUERY PLAN").unwrap(),
            _ => format!(
                "table={} type={} key={}",
                row.try_get::<Option<String>>("", "table")
                    .unwrap()
                    .unwrap_or_default(),
                row.try_get::<Option<String>>("", "type")
                    .unwrap()
                    .unwrap_or_default(),
                row.try_get::<Option<String>>("", "key")
                    .unwrap()
                    .unwrap_or_default(),
            ),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `plan` reads `index` as a range (no scan from the start, no sort). For
/// integrations the index is the unique one on the name, whatever each
/// backend calls it.
#[track_caller]
fn assert_index_range(backend: DatabaseBackend, index: &str, plan: &str, sql: &str) {
    let named = |plan: &str| index == "integrations" || plan.contains(index);
    match backend {
        DatabaseBackend::Sqlite => {
            assert!(plan.contains("SEARCH") && named(plan), "{plan}\n{sql}");
            assert!(!plan.contains("TEMP B-TREE"), "sorts: {plan}\n{sql}");
            // The range on the time column, not only the equality before it.
            assert!(
                plan.contains(">?") || plan.contains("<?"),
                "no range: {plan}\n{sql}"
            );
        }
        DatabaseBackend::Postgres => {
            assert!(plan.contains("Index") && named(plan), "{plan}\n{sql}");
            assert!(!plan.contains("Sort"), "sorts: {plan}\n{sql}");
            assert!(plan.contains("Index Cond"), "no range: {plan}\n{sql}");
            assert!(
                plan.contains(">=") || plan.contains("<=") || plan.contains("> "),
                "no range: {plan}\n{sql}"
            );
        }
        _ => {
            // `range`, or `ref` on the listing index (see
            // `index_entries_read`), never a full scan.
            assert!(
                (plan.contains("type=range") || plan.contains("type=ref")) && named(plan),
                "{plan}\n{sql}"
            );
        }
    }
}
