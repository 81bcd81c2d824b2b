//! Builds and runs the tonic server: the latchkey services, the
//! grpc.health.v1 probe service, server reflection and graceful shutdown.

use crate::grpc::wire_errors::MAX_REQUEST_BYTES;
use std::{future::Future, sync::Arc};

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    app::{self, App},
    config::Settings,
    domain::catalog::Catalog,
    grpc,
    grpc::proto::{
        self,
        v1::{
            audit_service_server::AuditServiceServer,
            client_configuration_service_server::ClientConfigurationServiceServer,
            health_service_server::HealthServiceServer,
            integration_keys_service_server::IntegrationKeysServiceServer,
        },
    },
    security::sealing,
    store,
};

/// Every latchkey service, by its full gRPC name (each also has a health
/// entry of that name).
pub const SERVICE_NAMES: [&str; 4] = [
    IntegrationKeysServiceServer::<grpc::IntegrationKeys>::NAME,
    ClientConfigurationServiceServer::<grpc::ClientConfiguration>::NAME,
    HealthServiceServer::<grpc::ConfigurationHealth>::NAME,
    AuditServiceServer::<grpc::Audit>::NAME,
];

/// How often a replica on MySQL/MariaDB reads the key change log: other
/// replicas' changes reach its cache and its watchers within this (plus a
/// query).
const CHANGE_LOG_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// How often shared budgets that are full again are dropped
/// (`app::budgets::prune_shared`); the first prune runs at startup.
const BUDGET_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Connects, migrates, applies the startup catalog and serves on `listener`
/// until `shutdown` completes: `prepare` then `serve`. While `prepare` runs,
/// the same socket already answers grpc.health.v1 with NOT_SERVING for
/// every entry, so probes see "not ready" rather than a silent port.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Two handles on one socket: one for the probe-only server during
    // startup, one for the real server after it.
    let socket = listener.into_std()?;
    let early = TcpListener::from_std(socket.try_clone()?)?;
    let listener = TcpListener::from_std(socket)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    set_all(&health, ServingStatus::NotServing).await;
    let (started, on_started) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &settings.tls {
        builder = builder
            .tls_config(tls_config(tls))
            .context("invalid TLS certificate or key")?;
    }
    let probes = tokio::spawn(
        builder
            .add_service(health_service)
            .serve_with_incoming_shutdown(accepted(early, None), async {
                let _ = on_started.await;
            }),
    );
    let prepared = prepare(&settings).await;
    let _ = started.send(());
    if let Ok(Err(e)) = probes.await {
        tracing::warn!(error = %e, "startup probe server failed");
    }
    serve(prepared?, settings, listener, shutdown).await
}

/// Connects to the database, migrates it, applies the startup catalog if
/// any, and loads the grants: everything the services need before serving.
pub async fn prepare(settings: &Settings) -> anyhow::Result<Arc<App>> {
    let db_stats = Arc::new(store::QueryStats::default());
    let db = store::connect_observed(&settings.database, db_stats.clone())
        .await
        .context("cannot open the database")?;
    store::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    if let Some(path) = &settings.catalog {
        let catalog = Catalog::load(path)?;
        let actor = crate::app::audit::Actor {
            name: "serve --catalog".into(),
            peer: String::new(),
        };
        let applied = app::catalog::apply(&db, &actor, &catalog, false)
            .await
            .with_context(|| format!("cannot apply catalog {}", path.display()))?;
        for change in &applied.changes {
            tracing::info!(%change, "catalog change");
        }
        if let Some(revision) = applied.revision {
            tracing::info!(revision, "catalog applied");
        }
    }
    let master_key = match &settings.master_key {
        Some(key) => key.clone(),
        None => {
            let (key, origin) = sealing::resolve_master_key(
                &settings.database.url,
                None,
                settings.master_key_file.as_deref(),
            )?;
            origin.warn_if_development();
            Arc::new(key)
        }
    };
    tracing::info!(
        version = master_key.version(),
        keys = master_key.versions().count(),
        "master keyring loaded (the first key seals, every key opens)"
    );
    let state = Arc::new(App::new(db.clone(), db_stats, master_key, settings)?);
    state
        .verifier
        .grants
        .refresh(&db, true)
        .await
        .context("cannot load endpoint grants")?;
    Ok(state)
}

/// Serves every service on `listener` until `shutdown` completes. On shutdown
/// every health entry turns NOT_SERVING first, then in-flight calls drain,
/// pending key uses are written and the pool closes.
pub async fn serve(
    state: Arc<App>,
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let http = match settings.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for HTTP on {addr}"))?,
        ),
        None => None,
    };
    serve_on(state, settings, listener, http, shutdown).await
}

/// `serve`, with the HTTP listener (if any) already bound.
pub async fn serve_on(
    state: Arc<App>,
    settings: Settings,
    listener: TcpListener,
    http_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = state.db.clone();
    let (stop_background, stopped) = tokio::sync::watch::channel(false);
    // Woken by a replica notification that a catalog revision committed.
    let catalog_changed = Arc::new(tokio::sync::Notify::new());
    let background = tokio::spawn(background_work(
        state.clone(),
        settings.clone(),
        catalog_changed.clone(),
        stopped,
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    set_all(&health, ServingStatus::Serving).await;

    let reflection_v1 = reflection().build_v1()?;
    // grpcurl before 1.8.8 and many other tools only speak v1alpha.
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "latchkey serving");
    if state.db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        // Until the listener is in place, changes made elsewhere go unheard.
        state.verifier.set_notifications_flowing(false);
    }
    let key_changes = tokio::spawn({
        let state = state.clone();
        let stop = stop_background.subscribe();
        let url = settings.database.url.clone();
        let heartbeat = settings.notify_heartbeat;
        let prune_every = settings.change_log_prune_interval;
        let catalog_changed = catalog_changed.clone();
        async move {
            let changed = |key_id: &str| state.verifier.forget(key_id);
            let catalog_changed = || catalog_changed.notify_one();
            let flowing = |flowing| state.verifier.set_notifications_flowing(flowing);
            match state.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    store::notify::listen_key_changes(
                        &url,
                        &state.db,
                        heartbeat,
                        changed,
                        catalog_changed,
                        flowing,
                        stop,
                    )
                    .await;
                }
                sea_orm::DatabaseBackend::MySql => {
                    store::notify::follow_change_log(
                        &url,
                        store::notify::LogFollowing {
                            poll: CHANGE_LOG_POLL,
                            heartbeat,
                            prune_every,
                        },
                        changed,
                        catalog_changed,
                        flowing,
                        stop,
                    )
                    .await;
                }
                _ => {}
            }
        }
    });
    let budgets_pruned = tokio::spawn(prune_shared_budgets(
        state.clone(),
        settings.verifier.throttle.per_key,
        stop_background.subscribe(),
    ));
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readiness = tokio::spawn(follow_database(
        state.clone(),
        health.clone(),
        Readiness {
            interval: settings.readiness_interval,
            // A ping may first wait for a pooled connection, as long as any
            // call may: only past that is the database counted silent.
            ping_timeout: settings
                .database
                .acquire_timeout
                .max(settings.readiness_interval),
        },
        draining.clone(),
        stop_background.subscribe(),
    ));
    let drain_health = health.clone();
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let limits = settings.limits;
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(tls) = &settings.tls {
        builder = builder
            .tls_config(tls_config(tls))
            .context("invalid TLS certificate or key")?;
    }
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            IntegrationKeysServiceServer::new(grpc::IntegrationKeys::new(state.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            ClientConfigurationServiceServer::new(grpc::ClientConfiguration::new(state.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            HealthServiceServer::new(grpc::ConfigurationHealth::new(state.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            AuditServiceServer::new(grpc::Audit::new(state.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        );
    // One in-flight budget for gRPC and HTTP calls together.
    let in_flight = crate::grpc::limits::InFlightLimitLayer::new(limits.max_in_flight);
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let http = http_listener
        .map(|http_listener| {
            let stack = tower::Layer::layer(
                &crate::grpc::call_layer::CallLayer,
                tower::Layer::layer(&in_flight, routes.clone()),
            );
            serve_http(
                http_listener,
                settings.tls.as_ref(),
                crate::http::HttpState {
                    gateway: crate::http::gateway::Gateway::new(stack),
                    trusted_peers: Arc::new(settings.trusted_peers.clone()),
                },
                http_stopped,
            )
        })
        .transpose()?;
    let watchers = state.verifier.changes.clone();
    let serving = builder
        .layer(crate::grpc::call_layer::CallLayer)
        .layer(in_flight)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            accepted(listener, Some(limits.keepalive_interval)),
            async move {
                shutdown.await;
                // Watch streams would hold the drain open: they end first.
                watchers.close();
                draining.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!("shutting down: not serving, draining in-flight calls");
                set_all(&drain_health, ServingStatus::NotServing).await;
                let _ = stop_http.send(true);
                let _ = signalled.send(());
            },
        );
    // Draining is bounded: after the grace period the server stops anyway.
    let grace = settings.shutdown_grace;
    tokio::select! {
        served = serving => served?,
        () = async {
            if on_signal.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "grace period over: abandoning calls still in flight");
        }
    }

    if let Some(http) = http {
        // Stopped accepting with the gRPC listener; its calls drain within
        // the same grace period.
        match tokio::time::timeout(grace, http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP listener failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP listener task failed"),
            Err(_) => tracing::warn!(?grace, "grace period over: abandoning HTTP calls"),
        }
    }
    // Each step below waits on the database at most one grace period more:
    // one that went silent must not keep the process from exiting.
    let _ = stop_background.send(true);
    for task in [background, readiness, key_changes, budgets_pruned] {
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "background task failed"),
            Err(_) => tracing::warn!(?grace, "a background task did not stop in time; left"),
        }
    }
    // Uses noted since the last flush are not lost on a clean shutdown.
    match tokio::time::timeout(grace, state.verifier.usage.flush(&db)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record last key uses"),
        Err(_) => tracing::warn!(
            ?grace,
            "the database did not take the last key uses in time"
        ),
    }
    drop(state);
    match tokio::time::timeout(grace, db.close()).await {
        Ok(closed) => closed.context("cannot close the database pool")?,
        Err(_) => tracing::warn!(?grace, "the database pool did not close in time; left"),
    }
    tracing::info!("latchkey stopped");
    Ok(())
}

/// Serves the HTTP routes on `listener` (with TLS when `tls` is set) until
/// `stop` turns true, then drains them.
fn serve_http(
    listener: TcpListener,
    tls: Option<&crate::config::TlsSettings>,
    state: crate::http::HttpState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr = listener.local_addr()?;
    let app = crate::http::router(state);
    Ok(match tls {
        Some(tls) => {
            let acceptor = crate::http::listeners::acceptor(tls).context("HTTP listener TLS")?;
            tracing::info!(%addr, "latchkey serving HTTPS");
            spawn_http(
                crate::http::listeners::TlsListener::new(listener, acceptor)?,
                app,
                stop,
            )
        }
        None => {
            tracing::info!(%addr, "latchkey serving HTTP");
            spawn_http(crate::http::listeners::PlainListener(listener), app, stop)
        }
    })
}

fn spawn_http<L>(
    listener: L,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    crate::http::Peer:
        for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = app.into_make_service_with_connect_info::<crate::http::Peer>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
    })
}

/// Periodic work beside the calls: reload grants when the catalog revision
/// changes, and write batched `last_use_time`s. Runs until `stop` turns true.
async fn background_work(
    state: Arc<App>,
    settings: Settings,
    catalog_changed: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // First ticks one period from now: grants were just loaded by `prepare`.
    let start = tokio::time::Instant::now();
    let mut catalog_tick = tokio::time::interval_at(
        start + settings.catalog_poll_interval,
        settings.catalog_poll_interval,
    );
    let mut usage_tick = tokio::time::interval_at(
        start + settings.usage_flush_interval,
        settings.usage_flush_interval,
    );
    for tick in [&mut catalog_tick, &mut usage_tick] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = catalog_changed.notified() => reload_grants(&state).await,
            _ = catalog_tick.tick() => reload_grants(&state).await,
            _ = usage_tick.tick() => {
                if let Err(e) = state.verifier.usage.flush(&state.db).await {
                    tracing::warn!(error = %e, "cannot record last key uses; will retry");
                }
            }
        }
    }
}

/// Drops the shared budgets that are full again (`app::budgets::
/// prune_shared`) at startup and every `BUDGET_PRUNE_INTERVAL`. A task of
/// its own: a long prune (millions of rows after an attack) must not hold
/// back grant reloads or usage flushes.
async fn prune_shared_budgets(
    state: Arc<App>,
    failure_budget: crate::security::throttle::Budget,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(BUDGET_PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = stop.changed() => return,
            pruned = crate::app::budgets::prune_shared(&state.db, failure_budget) => match pruned {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "shared budgets full again, dropped"),
                Err(e) => tracing::warn!(error = %e, "cannot prune shared budgets; will retry"),
            },
        }
    }
}

/// Reloads the grants if a new catalog revision committed (here or in any
/// process), and tells watchers which integrations' grants changed.
async fn reload_grants(state: &App) {
    match state.verifier.grants.reload(&state.db, false).await {
        Ok(Some(changed)) => {
            tracing::info!(
                changed = changed.len(),
                "endpoint grants reloaded for a new catalog revision"
            );
            for integration in changed {
                state
                    .verifier
                    .changes
                    .publish(crate::app::key_changes::KeyChange::Integration(integration));
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check the catalog revision; will retry"),
    }
}

/// How readiness checks the database: a ping every `interval`, counted as
/// no answer after `ping_timeout`.
struct Readiness {
    interval: std::time::Duration,
    ping_timeout: std::time::Duration,
}

/// Readiness follows the database: every health entry turns NOT_SERVING
/// while the database does not answer, and SERVING again once it does.
async fn follow_database(
    state: Arc<App>,
    health: HealthReporter,
    readiness: Readiness,
    draining: Arc<std::sync::atomic::AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Readiness {
        interval,
        ping_timeout,
    } = readiness;
    let mut serving = true;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // A database that went silent (a dropped route, a stalled proxy)
        // never answers a ping: past `ping_timeout` it counts as unreachable.
        let answers = match tokio::time::timeout(ping_timeout, state.db.ping()).await {
            Ok(answered) => answered.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer to a ping within {ping_timeout:?}")),
        };
        if draining.load(std::sync::atomic::Ordering::SeqCst) {
            // Shutting down: NOT_SERVING stays.
            return;
        }
        match (serving, answers) {
            (true, Err(e)) => {
                tracing::error!(error = %e, "database unreachable: not serving");
                set_all(&health, ServingStatus::NotServing).await;
                serving = false;
            }
            (false, Ok(())) => {
                tracing::info!("database reachable again: serving");
                set_all(&health, ServingStatus::Serving).await;
                serving = true;
            }
            _ => {}
        }
    }
}

/// Reflection over every service served, both reflection versions included,
/// so `grpcurl list` shows the same whichever version it speaks.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

fn tls_config(tls: &crate::config::TlsSettings) -> tonic::transport::ServerTlsConfig {
    let mut config = tonic::transport::ServerTlsConfig::new().identity(
        tonic::transport::Identity::from_pem(&tls.cert_pem, tls.key_pem.expose_secret()),
    );
    if let Some(ca) = &tls.client_ca_pem {
        config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
    }
    config
}

/// Sets the overall (`""`) and every per-service health entry.
async fn set_all(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The accepted connections of `listener`: Nagle's algorithm off (a small
/// answer must not wait ~40 ms for the client's delayed ACK) and, with
/// `keepalive`, TCP keepalive probes that reap connections whose peer
/// vanished without a FIN (a dead NAT entry, a powered-off host). The
/// builder's own `tcp_nodelay` / `tcp_keepalive` apply only to listeners
/// tonic binds itself, not to `serve_with_incoming`.
fn accepted(
    listener: tokio::net::TcpListener,
    keepalive: Option<std::time::Duration>,
) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(keepalive)
}
