//! The scale scenarios, on a server of their own whose listing holds
//! `--deep-keys` keys seeded in bulk through the store (no argon2: their
//! hash is a placeholder no key matches): the first page of that listing,
//! its last page (page 10,000 of a million, at 100 a page), unknown key ids
//! and first verifies against that table. The server runs with failure
//! budgets too large to bind, as for `verify-unknown`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use latchkey::{
    domain::{ApiKey, KeyKind, time::now_micros},
    grpc::page_token,
    store::{self, integration_keys::NewIntegrationKey},
};
use sea_orm::TransactionTrait;

use super::{
    calls::{self, KeyPool},
    load::scenario,
    own_server::{BENCH_INTEGRATION, OwnServer, Probe, UNTHROTTLED},
    report::ScenarioResult,
};

/// Keys per page in the listing scenarios.
const PAGE: i32 = 100;
/// Keys generated and inserted per round while seeding.
const SEED_ROUND: u64 = 10_000;

/// Where and how big.
pub struct Scale {
    pub keys: u64,
    /// An empty database for the server; `None`: a temporary SQLite file.
    pub database_url: Option<String>,
}

/// Runs the scale scenarios on a server of their own.
pub async fn run(
    scale: &Scale,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Vec<ScenarioResult>> {
    if scale.keys < 2 * PAGE as u64 {
        bail!("--deep-keys must be at least {}", 2 * PAGE);
    }
    eprintln!("bench: starting a server for the scale scenarios");
    let server = OwnServer::start_on(scale.database_url.as_deref(), &UNTHROTTLED).await?;
    let last_page_token = seed(&server.database_url, scale.keys).await?;
    let (target, probe) = server.observe().await?;
    let mut results = Vec::with_capacity(5);
    let first_page = calls::list_page(&target, String::new(), PAGE);
    results.push(measure(&probe, "list-first-page", concurrency, duration, first_page).await);
    let last_page = calls::list_page(&target, last_page_token, PAGE);
    results.push(measure(&probe, "list-deep-page", concurrency, duration, last_page).await);
    let real = Arc::new(vec![target.create().await.context("create")?]);
    let unknown = calls::verify_rejected(&target, &real, calls::unknown_key);
    results.push(
        measure(
            &probe,
            "verify-unknown-at-scale",
            concurrency,
            duration,
            unknown,
        )
        .await,
    );
    let made: KeyPool = Arc::new(Mutex::new(Vec::new()));
    let create = calls::creating_into(&target, &made);
    results.push(measure(&probe, "create-at-scale", concurrency, duration, create).await);
    let first_verify = calls::verify_fresh(&target, &made);
    results.push(
        measure(
            &probe,
            "verify-miss-at-scale",
            concurrency,
            duration,
            first_verify,
        )
        .await,
    );
    server.stop().await;
    Ok(results)
}

/// Runs `call` as the scenario `name`, with the server's argon2 runs.
async fn measure<F, Fut>(
    probe: &Probe,
    name: &str,
    concurrency: usize,
    duration: Duration,
    call: F,
) -> ScenarioResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    eprintln!("bench: {name}");
    probe
        .measure(scenario(name, concurrency, duration, call))
        .await
}

/// Inserts `keys` keys into the bench integration, one creation time each,
/// and returns the token of the last page of the listing.
async fn seed(database_url: &str, keys: u64) -> anyhow::Result<String> {
    eprintln!("bench: seeding {keys} keys through the store");
    let started = Instant::now();
    let db = latchkey::app::open_database(database_url)
        .await
        .context("cannot open the scale database")?;
    let integration = store::integrations::find_ref_by_name(&db, BENCH_INTEGRATION)
        .await?
        .context("the bench integration is missing")?;
    let base = now_micros() - keys as i64;
    // The position the last page starts after: the key at index keys - PAGE - 1.
    let before_last = keys - PAGE as u64 - 1;
    let mut position = None;
    let txn = db.begin().await?;
    let mut done = 0;
    while done < keys {
        let round = SEED_ROUND.min(keys - done);
        let ids = (0..round)
            .map(|_| ApiKey::generate(KeyKind::Integration).map(|k| k.key_id().to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = ids
            .iter()
            .enumerate()
            .map(|(i, key_id)| NewIntegrationKey {
                key_id,
                integration_id: integration.id,
                display_name: "seeded",
                key_hash: "seeded: no key matches this".into(),
                create_time: base + (done + i as u64) as i64,
                expire_time: None,
                labels: None,
                allowed_networks: None,
                rate_limit: None,
            })
            .collect();
        if (done..done + round).contains(&before_last) {
            let i = (before_last - done) as usize;
            position = Some((base + before_last as i64, ids[i].clone()));
        }
        store::integration_keys::insert_many(&txn, rows).await?;
        done += round;
    }
    txn.commit().await?;
    db.close().await?;
    eprintln!(
        "bench: seeded {keys} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (create_time, key_id) = position.context("no position for the last page")?;
    Ok(page_token::integration_keys(
        BENCH_INTEGRATION,
        create_time,
        &key_id,
    ))
}
