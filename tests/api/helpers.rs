//! `spawn_app()`: a fresh database, a partner key, and a real server on an
//! ephemeral port.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use latchkey::{
    app::App, config::Settings,
    grpc::proto::v1::integration_keys_service_client::IntegrationKeysServiceClient,
    security::HashParams, store,
};
use sea_orm::DatabaseConnection;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::test_db::TestDb;
use tonic::{
    Code, Request, Status,
    transport::{Channel, Endpoint},
};

/// The catalog every test app starts with.
pub const TEST_CATALOG: &str = r#"
[[integrations]]
name = "learner-activity"
kind = "custom"
description = "Learner activity API calling the course API"
endpoints = ["course.v1.CourseService/GetOutline", "permissions.v1.*"]

[[integrations]]
name = "reports"
kind = "builtin"
description = "Built-in reporting"
endpoints = ["reports.v1.*"]

[[integrations]]
name = "sandbox"
kind = "custom"
description = "No grants at all"
"#;

/// The master key every test server and command uses unless a test sets
/// its own (base64 of 32 bytes).
pub const TEST_MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc=";

/// Cheap argon2 so tests that create hundreds of keys stay quick. The
/// default (OWASP) parameters are tested on their own.
pub fn test_hash_params() -> HashParams {
    HashParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
        concurrency: 0,
        ..HashParams::default()
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The HTTP listener (Connect, seed and Sunshine routes).
    pub http_addr: SocketAddr,
    pub database_url: String,
    /// A valid partner key, accepted on every management call.
    pub partner_key: String,
    pub db: DatabaseConnection,
    /// The server's shared state: its hasher, caches and query counts.
    pub state: Arc<App>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Last, so it is dropped (and its database with it) after the rest.
    test_db: Option<TestDb>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app` with settings adjusted by `configure` first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir, None, None, configure).await
}

/// A server on the database in `dir` (created there if new). With
/// `partner_key`, that key is reused instead of creating one.
pub async fn spawn_app_in(
    dir: tempfile::TempDir,
    test_db: Option<TestDb>,
    partner_key: Option<String>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let test_db = match test_db {
        Some(test_db) => test_db,
        None => TestDb::create(dir.path()).await,
    };
    let database_url = test_db.url.clone();
    let catalog_path = dir.path().join("catalog.toml");
    std::fs::write(&catalog_path, TEST_CATALOG).expect("write catalog");

    let db = store::connect(&store::DbOptions::new(database_url.clone()))
        .await
        .expect("connect");
    store::migrate(&db).await.expect("migrate");
    let partner_key = match partner_key {
        Some(key) => key,
        None => create_partner_key(&db, "test admin").await,
    };

    let mut settings = Settings::new(database_url.clone());
    settings.client_lb_domain = Some("{client_id}.lb.example.com".into());
    settings.master_key = Some(Arc::new(
        latchkey::security::sealing::MasterKey::from_base64(TEST_MASTER_KEY).expect("test key"),
    ));
    settings.catalog = Some(catalog_path);
    settings.hash = test_hash_params();
    // RATE_LIMITED answers are held back in production; not worth waiting
    // for in tests.
    settings.rate_limited_delay = Duration::from_millis(1);
    configure(&mut settings);
    let state = latchkey::server::prepare(&settings).await.expect("prepare");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
    let http_addr = http_listener.local_addr().expect("HTTP local addr");
    let (shutdown, on_shutdown) = oneshot::channel::<()>();
    let server = tokio::spawn(latchkey::server::serve_on(
        state.clone(),
        settings,
        listener,
        Some(http_listener),
        async {
            let _ = on_shutdown.await;
        },
    ));

    let app = TestApp {
        addr,
        http_addr,
        database_url,
        partner_key,
        db,
        state,
        dir,
        shutdown: Some(shutdown),
        server: Some(server),
        test_db: Some(test_db),
    };
    app.wait_until_serving().await;
    // PostgreSQL: cached states are trusted only once the replica listener
    // is in place; tests that count statements need it there.
    eventually(Duration::from_secs(30), "the replica listener", || async {
        app.state.verifier.notifications_flowing().then_some(())
    })
    .await;
    app
}

/// Creates a partner key as `partner-keys create` does.
pub async fn create_partner_key(db: &DatabaseConnection, name: &str) -> String {
    let issued = latchkey::app::partner_keys::create(db, test_hash_params(), name)
        .await
        .expect("create partner key");
    secrecy::ExposeSecret::expose_secret(&issued.key).to_owned()
}

impl TestApp {
    /// Another server (a replica) on this app's database, with the same
    /// partner key.
    pub async fn replica(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let test_db = self.test_db.as_ref().map(TestDb::for_replica);
        spawn_app_in(dir, test_db, Some(self.partner_key.clone()), configure).await
    }

    /// Stops this server and starts another on the same database and
    /// partner key, with settings adjusted by `configure`.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let test_db = self.test_db.take();
        let partner_key = self.partner_key.clone();
        self.db
            .clone()
            .close()
            .await
            .expect("close test connection");
        let _ = self.shutdown_in_place().await;
        spawn_app_in(dir, test_db, Some(partner_key), configure).await
    }

    /// Every stored text value as the database holds it.
    pub async fn raw_database_contents(&self) -> String {
        match &self.test_db {
            Some(test_db) => test_db.raw_contents(&self.db).await,
            None => String::new(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn keys_client(&self) -> IntegrationKeysServiceClient<Channel> {
        IntegrationKeysServiceClient::new(self.channel().await)
    }

    /// `message` with this app's partner key in the `sid` header.
    pub fn as_partner<T>(&self, message: T) -> Request<T> {
        with_sid(message, &self.partner_key)
    }

    /// Polls the probe service until the server answers SERVING (the server
    /// migrates and applies the catalog before it serves).
    async fn wait_until_serving(&self) {
        use tonic_health::pb::{
            HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(channel) = Endpoint::from_shared(self.endpoint())
                .expect("endpoint")
                .connect()
                .await
            {
                let response = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if response.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server did not become ready"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server gracefully and returns what `run` returned.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown_in_place().await
    }

    /// Stops the server but keeps the database (and this app's connection).
    pub async fn shutdown_in_place(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server handle");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("server stops within 30s")
            .expect("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `message` with `authorization: Basic base64(name:key)`, as a client
/// user sends it.
pub fn basic<T>(message: T, name: &str, key: &str) -> Request<T> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut request = Request::new(message);
    let token = STANDARD.encode(format!("{name}:{key}"));
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {token}").parse().unwrap());
    request
}

pub fn with_sid<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("sid", key.parse().expect("ascii key"));
    request
}

/// Asserts a failed call's code and exact message.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

/// The fields named by a Bad request's google.rpc.BadRequest details.
#[track_caller]
pub fn bad_request_fields<T: std::fmt::Debug>(result: Result<T, Status>) -> Vec<String> {
    use tonic_types::StatusExt;
    let status = result.expect_err("call should fail");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("Bad request"), "{status:?}");
    let details = status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details");
    details
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Polls `probe` every 20 ms until it returns `Some`, or fails after
/// `within`. For things that happen in the background (batched writes,
/// catalog reloads, expiry): no fixed sleeps.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Creates a key for `integration` and returns (key id, full key).
    pub async fn create_key(
        &self,
        integration: &str,
        expire_time: Option<prost_types::Timestamp>,
    ) -> (String, String) {
        let created = self
            .keys_client()
            .await
            .create_integration_key(self.as_partner(
                latchkey::grpc::proto::v1::CreateIntegrationKeyRequest {
                    integration: integration.into(),
                    display_name: "test key".into(),
                    expire_time,
                    ..Default::default()
                },
            ))
            .await
            .expect("create key")
            .into_inner();
        (created.key.expect("key").key_id, created.api_key)
    }

    /// Deletes `key_id` of learner-activity through this server.
    pub async fn delete_key(&self, key_id: &str) {
        self.keys_client()
            .await
            .delete_integration_key(self.as_partner(
                latchkey::grpc::proto::v1::DeleteIntegrationKeyRequest {
                    integration: "learner-activity".into(),
                    key_id: key_id.into(),
                },
            ))
            .await
            .expect("delete");
    }

    /// Calls VerifyIntegrationKey (which needs no credential).
    pub async fn verify(
        &self,
        api_key: &str,
        endpoint: &str,
    ) -> latchkey::grpc::proto::v1::VerifyIntegrationKeyResponse {
        self.keys_client()
            .await
            .verify_integration_key(latchkey::grpc::proto::v1::VerifyIntegrationKeyRequest {
                api_key: api_key.into(),
                endpoint: endpoint.into(),
                ..Default::default()
            })
            .await
            .expect("verify answers OK")
            .into_inner()
    }
}

/// A timestamp `seconds` from now.
pub fn in_seconds(seconds: i64) -> prost_types::Timestamp {
    let micros = latchkey::domain::time::now_micros() + seconds * 1_000_000;
    latchkey::grpc::time::to_timestamp(micros)
}

/// A few connections for a crowd to spread over.
pub async fn channels(app: &TestApp, n: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(app.channel().await);
    }
    channels
}

/// `n` HTTP/2 connections to the server at `addr`, for crowds spread over
/// several connections as a fleet of resource servers' would be.
pub async fn connections_to(addr: &str, n: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    channels
}

/// Creates a key of learner-activity through `channel` with `partner_key`:
/// (key id, full key).
pub async fn create_learner_key(channel: &Channel, partner_key: &str) -> (String, String) {
    let created = IntegrationKeysServiceClient::new(channel.clone())
        .create_integration_key(with_sid(
            latchkey::grpc::proto::v1::CreateIntegrationKeyRequest {
                integration: "learner-activity".into(),
                ..Default::default()
            },
            partner_key,
        ))
        .await
        .unwrap()
        .into_inner();
    (created.key.unwrap().key_id, created.api_key)
}

/// Runs every call at once (each on its own task, all released by one
/// barrier) and returns the results in order.
pub async fn all_at_once<Fut>(calls: impl IntoIterator<Item = Fut>) -> Vec<Fut::Output>
where
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let calls: Vec<Fut> = calls.into_iter().collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(calls.len()));
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}

/// Sends every verify at once, spread over `channels` (`all_at_once`), and
/// returns the answers in order.
pub async fn crowd(
    channels: &[Channel],
    requests: Vec<latchkey::grpc::proto::v1::VerifyIntegrationKeyRequest>,
) -> Vec<Result<latchkey::grpc::proto::v1::VerifyIntegrationKeyResponse, Status>> {
    all_at_once(requests.into_iter().enumerate().map(|(i, request)| {
        let mut client = IntegrationKeysServiceClient::new(channels[i % channels.len()].clone());
        async move {
            client
                .verify_integration_key(request)
                .await
                .map(|r| r.into_inner())
        }
    }))
    .await
}
