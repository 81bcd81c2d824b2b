//! The database under stress: many concurrent writers, and a database that
//! goes away and comes back.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use latchkey::grpc::proto::v1::{
    ConfigureRequest, ConfigureSettingsRequest, CreateIntegrationKeyRequest,
    DeleteIntegrationKeyRequest, ListIntegrationsRequest, Setting,
    client_configuration_service_client::ClientConfigurationServiceClient,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    helpers::{eventually, spawn_app, spawn_app_in},
    test_db::TestDb,
};

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_concurrent_writers_see_no_errors() {
    let app = Arc::new(spawn_app().await);
    ClientConfigurationServiceClient::new(app.channel().await)
        .configure(app.as_partner(ConfigureRequest {
            client_id: "acme".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let channel = app.channel().await;
    let mut writers = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        let channel = channel.clone();
        writers.push(tokio::spawn(async move {
            let mut keys =
                latchkey::grpc::proto::v1::integration_keys_service_client::IntegrationKeysServiceClient::new(
                    channel.clone(),
                );
            let mut config = ClientConfigurationServiceClient::new(channel);
            let mut errors = Vec::new();
            for round in 0..3 {
                let created = keys
                    .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
                        integration: "learner-activity".into(),
                        display_name: format!("writer {i} round {round}"),
                        expire_time: None,
                        ..Default::default()
                    }))
                    .await;
                match created {
                    Ok(created) => {
                        let key_id = created.into_inner().key.unwrap().key_id;
                        if let Err(e) = keys
                            .delete_integration_key(app.as_partner(DeleteIntegrationKeyRequest {
                                integration: "learner-activity".into(),
                                key_id,
                            }))
                            .await
                        {
                            errors.push(e);
                        }
                    }
                    Err(e) => errors.push(e),
                }
                if let Err(e) = config
                    .configure_settings(app.as_partner(ConfigureSettingsRequest {
                        client_id: "acme".into(),
                        settings: vec![Setting {
                            name: format!("ClientSettings.Writer{i}"),
                            value: format!("round {round}"),
                            secret: false,
                        }],
                    }))
                    .await
                {
                    errors.push(e);
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for writer in writers {
        errors.extend(writer.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
}

/// A TCP proxy between the server and its database that can be cut, or
/// hold new connections until released.
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    held: tokio::sync::watch::Sender<bool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let (held, holding) = tokio::sync::watch::channel(false);
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let upstream = upstream.clone();
                let mut holding = holding.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    let _ = holding.wait_for(|held| !*held).await;
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Proxy {
            addr,
            cut,
            held,
            links,
        }
    }

    /// New connections wait (the database seems to hang) until `release`.
    fn hold(&self) {
        let _ = self.held.send(true);
    }

    fn release(&self) {
        let _ = self.held.send(false);
    }

    /// The database becomes unreachable: open links die, new ones fail.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_means_unavailable_and_not_serving_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let Some(upstream) = test_db.server_address() else {
        // SQLite is a file in the process: there is no connection to lose.
        // This test runs on PostgreSQL and MariaDB (see .ci/run).
        eprintln!("not applicable to SQLite");
        return;
    };
    let proxy = Proxy::start(upstream.clone()).await;
    let proxied = test_db.url.replacen(&upstream, &proxy.addr, 1);
    let app = spawn_app_in(dir, Some(test_db), None, |s| {
        s.database.url = proxied;
        s.database.acquire_timeout = Duration::from_secs(1);
        s.readiness_interval = Duration::from_millis(200);
    })
    .await;
    let health = HealthClient::new(app.channel().await);
    let status = || {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status())
        }
    };
    let list = || async {
        let mut request = app.as_partner(ListIntegrationsRequest::default());
        // A hang would show as DEADLINE_EXCEEDED, failing the test.
        request.set_timeout(Duration::from_secs(20));
        app.keys_client().await.list_integrations(request).await
    };
    assert!(list().await.is_ok());

    proxy.cut();
    eventually(Duration::from_secs(20), "NOT_SERVING", || async {
        (status().await.ok()? == ServingStatus::NotServing).then_some(())
    })
    .await;
    let failed = list().await.expect_err("the database is unreachable");
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");

    proxy.restore();
    eventually(Duration::from_secs(20), "SERVING again", || async {
        (status().await.ok()? == ServingStatus::Serving).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "calls to succeed again",
        || async { list().await.ok() },
    )
    .await;
}

#[tokio::test]
async fn the_statement_timeout_is_set_on_every_connection() {
    use sea_orm::{ConnectionTrait, Statement};
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let mut options = latchkey::store::DbOptions::new(test_db.url.clone());
    options.statement_timeout = Duration::from_secs(7);
    let db = latchkey::store::connect(&options).await.unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => "SHOW statement_timeout",
        sea_orm::DatabaseBackend::MySql => "SELECT CAST(@@SESSION.max_statement_time AS CHAR)",
        _ => {
            eprintln!("not applicable: SQLite has no statement timeout (it has a busy timeout)");
            return;
        }
    };
    // Three transactions held at once hold three distinct connections of
    // the pool: each must have been set up with the timeout.
    use sea_orm::TransactionTrait;
    let mut transactions = Vec::new();
    for _ in 0..3 {
        transactions.push(db.begin().await.unwrap());
    }
    for transaction in &transactions {
        let row = transaction
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .unwrap();
        let value: String = row.try_get_by_index(0).unwrap();
        assert!(value == "7s" || value.starts_with('7'), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn not_serving_until_migrations_ran_and_the_database_answers() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let Some(upstream) = test_db.server_address() else {
        // SQLite opens instantly in process: there is no window to observe.
        eprintln!("not applicable to SQLite");
        return;
    };
    let proxy = Proxy::start(upstream.clone()).await;
    proxy.hold();
    let mut settings =
        latchkey::config::Settings::new(test_db.url.replacen(&upstream, &proxy.addr, 1));
    settings.database.acquire_timeout = Duration::from_secs(60);
    settings.hash = crate::helpers::test_hash_params();
    settings.master_key = Some(Arc::new(
        latchkey::security::sealing::MasterKey::from_base64(crate::helpers::TEST_MASTER_KEY)
            .unwrap(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(latchkey::server::run(settings, listener, async {
        let _ = stopped.await;
    }));

    let check = |service: &'static str| async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()
            .map(|r| r.into_inner().status())
    };
    // The database hangs: the server is up, and says it is not ready.
    for service in ["", "latchkey.v1.IntegrationKeysService"] {
        let status = eventually(Duration::from_secs(20), "a health answer", || {
            check(service)
        })
        .await;
        assert_eq!(status, ServingStatus::NotServing, "{service:?}");
    }
    proxy.release();
    eventually(Duration::from_secs(30), "SERVING once migrated", || async {
        (check("").await? == ServingStatus::Serving).then_some(())
    })
    .await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    drop(test_db);
}
