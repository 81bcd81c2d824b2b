//! The Rust SDK's guard layer, in front of a real second tonic server.

use latchkey_client::{RequireIntegrationKeyLayer, VerifiedCaller};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};
use tower::Layer;

use crate::helpers::spawn_app;

/// A resource server's service. grpc.health.v1.Health stands in for any
/// tonic service: `Check` answers with the caller the guard verified in the
/// `x-caller` response header.
struct Resource;

#[tonic::async_trait]
impl Health for Resource {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let caller = request
            .extensions()
            .get::<VerifiedCaller>()
            .cloned()
            .ok_or_else(|| tonic::Status::internal("the guard did not run"))?;
        let mut response = tonic::Response::new(HealthCheckResponse { status: 1 });
        let who = format!("{}:{}", caller.integration, caller.key_id);
        response
            .metadata_mut()
            .insert("x-caller", who.parse().expect("ascii"));
        Ok(response)
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, tonic::Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Ok(tonic::Response::new(tokio_stream::empty()))
    }
}

/// Starts the resource server guarded by latchkey at `latchkey`, and returns
/// a client channel to it.
async fn resource_server(latchkey: Channel) -> Channel {
    let addr = guarded_resource_server(latchkey).await;
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Starts the resource server guarded by latchkey at `latchkey` (with the
/// guard's defaults), and returns its address.
pub(crate) async fn guarded_resource_server(latchkey: Channel) -> std::net::SocketAddr {
    serve_guarded(RequireIntegrationKeyLayer::new(latchkey)).await
}

/// A client of the resource server behind `guard`.
async fn guarded_client(guard: RequireIntegrationKeyLayer) -> HealthClient<Channel> {
    let addr = serve_guarded(guard).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

/// Starts the resource server behind `guard`, and returns its address.
async fn serve_guarded(guard: RequireIntegrationKeyLayer) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(guard.layer(HealthServer::new(Resource)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// Grants learner-activity the resource server's method.
pub(crate) async fn grant_health_check(app: &crate::helpers::TestApp) {
    let catalog = crate::helpers::TEST_CATALOG.replace(
        "\"permissions.v1.*\"",
        "\"permissions.v1.*\", \"grpc.health.v1.Health/Check\"",
    );
    let parsed = latchkey::domain::catalog::Catalog::parse(&catalog, "with-health").unwrap();
    latchkey::app::catalog::apply(&app.db, &latchkey::app::audit::Actor::cli(), &parsed, false)
        .await
        .unwrap();
    app.state
        .verifier
        .grants
        .refresh(&app.db, true)
        .await
        .unwrap();
}

pub(crate) fn call(key: Option<&str>) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest::default());
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn the_guard_admits_granted_keys_and_rejects_the_rest() {
    let app = spawn_app().await;
    grant_health_check(&app).await;

    let (granted_id, granted) = app.create_key("learner-activity", None).await;
    let (_, not_granted) = app.create_key("sandbox", None).await;
    let mut client = HealthClient::new(resource_server(app.channel().await).await);

    let caller = |response: tonic::Response<HealthCheckResponse>| {
        response
            .metadata()
            .get("x-caller")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let through = client
        .check(call(Some(&granted)))
        .await
        .expect("let through");
    assert_eq!(caller(through), format!("learner-activity:{granted_id}"));
    // Served again from the guard's cache.
    let again = client
        .check(call(Some(&granted)))
        .await
        .expect("let through");
    assert_eq!(caller(again), format!("learner-activity:{granted_id}"));

    let denied = client.check(call(Some(&not_granted))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A key restricted to networks the caller is not in: PERMISSION_DENIED.
    let elsewhere = app
        .keys_client()
        .await
        .create_integration_key(app.as_partner(
            latchkey::grpc::proto::v1::CreateIntegrationKeyRequest {
                integration: "learner-activity".into(),
                allowed_networks: vec!["192.0.2.0/24".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key;
    let outside = client.check(call(Some(&elsewhere))).await.unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    for key in [None, Some("garbage"), Some(&granted[..60])] {
        let rejected = client.check(call(key)).await.unwrap_err();
        assert_eq!(rejected.code(), Code::Unauthenticated, "{key:?}");
    }
    // A deleted key is rejected once the guard's short cache lapses.
    app.delete_key(&granted_id).await;
    crate::helpers::eventually(
        std::time::Duration::from_secs(15),
        "the guard to notice the delete",
        || async {
            let mut client = client.clone();
            // Until the cache lapses the call still goes through.
            let outcome = client.check(call(Some(&granted))).await;
            outcome
                .err()
                .filter(|status| status.code() == Code::Unauthenticated)
                .map(drop)
        },
    )
    .await;
}

const HEALTH_CHECK: &str = "grpc.health.v1.Health/Check";

/// Polls (10 s at most) until the guarded server refuses `key`
/// `UNAUTHENTICATED`.
async fn until_refused_unauthenticated(client: &HealthClient<Channel>, key: &str, what: &str) {
    crate::helpers::eventually(std::time::Duration::from_secs(10), what, || async {
        let mut client = client.clone();
        client
            .check(call(Some(key)))
            .await
            .err()
            .filter(|status| status.code() == Code::Unauthenticated)
            .map(drop)
    })
    .await;
}

/// Makes `guard` start watching (its first call does), waits until its
/// stream is up, and then has it cache an allowed verdict for `key`: a
/// verdict cached before the stream's first RESET would be dropped by it.
async fn wait_until_watching(
    guard: &RequireIntegrationKeyLayer,
    client: &mut HealthClient<Channel>,
    key: &str,
) {
    client.check(call(Some(key))).await.expect("allowed");
    crate::helpers::eventually(
        std::time::Duration::from_secs(20),
        "the guard's change stream to be up",
        || async { guard.change_stream_up().then_some(()) },
    )
    .await;
    client
        .check(call(Some(key)))
        .await
        .expect("allowed, and cached");
}

/// A watching guard with an hour-long cache: only latchkey's change stream
/// can make it drop a verdict within the test's deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_watching_guard_evicts_a_deleted_key_at_once() {
    let app = spawn_app().await;
    grant_health_check(&app).await;
    let (key_id, key) = app.create_key("learner-activity", None).await;
    let guard = RequireIntegrationKeyLayer::new(app.channel().await)
        .with_cache_ttl(std::time::Duration::from_secs(3600))
        .watching_changes(Some(app.partner_key.clone()));
    let mut client = guarded_client(guard.clone()).await;
    wait_until_watching(&guard, &mut client, &key).await;

    // The Sunshine form of the same key: Basic <key id>:<rest>.
    let mut basic = Request::new(HealthCheckRequest::default());
    let pair = format!("{key_id}:{}", &key[key_id.len() + 1..]);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair);
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {encoded}").parse().unwrap());
    client
        .check(basic)
        .await
        .expect("Basic <key id>:<rest> is the same key");

    app.delete_key(&key_id).await;
    until_refused_unauthenticated(&client, &key, "the guard to hear of the delete").await;
}

/// A watching guard with an hour-long cache whose connection to latchkey
/// stalls (a proxy stops forwarding, the sockets stay open): the missing
/// heartbeats tell it the stream is down, so a key deleted meanwhile is not
/// served from the cache for the hour.
#[tokio::test(flavor = "multi_thread")]
async fn a_watching_guard_notices_a_stalled_stream_and_stops_trusting_its_cache() {
    let app = spawn_app().await;
    grant_health_check(&app).await;
    let (key_id, key) = app.create_key("learner-activity", None).await;
    let proxy = crate::faults::FaultProxy::start(app.addr).await;
    let through_proxy = tonic::transport::Endpoint::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let guard = RequireIntegrationKeyLayer::new(through_proxy)
        .with_cache_ttl(std::time::Duration::from_secs(3600))
        .with_heartbeat(std::time::Duration::from_secs(1))
        .with_verify_timeout(std::time::Duration::from_secs(1))
        .watching_changes(Some(app.partner_key.clone()));
    let mut client = guarded_client(guard.clone()).await;
    wait_until_watching(&guard, &mut client, &key).await;

    proxy
        .silence_all
        .store(true, std::sync::atomic::Ordering::SeqCst);
    app.delete_key(&key_id).await;
    // The delete's KEY_CHANGED cannot pass the proxy: only noticing the
    // silence makes the guard ask latchkey again (and, latchkey being
    // unreachable through the proxy, refuse UNAVAILABLE).
    let refused = crate::helpers::eventually(
        std::time::Duration::from_secs(20),
        "the guard to notice the stalled stream",
        || async {
            let mut client = client.clone();
            client.check(call(Some(&key))).await.err()
        },
    )
    .await;
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(!guard.change_stream_up());
}

/// Two replicas: a key deleted through one is refused by a guard that
/// watches the other (its cache TTL an hour), through the replicas'
/// announcements and the other's change stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_deleted_on_one_replica_is_refused_by_a_guard_watching_another() {
    let app = spawn_app().await;
    if app.database_url.starts_with("sqlite") {
        eprintln!("not applicable: needs PostgreSQL or MySQL/MariaDB");
        return;
    }
    let replica = app.replica(|_| {}).await;
    // Granted once both run (a replica applies the test catalog as it
    // starts); the replica hears of it as of any catalog change.
    grant_health_check(&app).await;
    let (key_id, key) = app.create_key("learner-activity", None).await;
    let on_replica = replica.keys_client().await;
    crate::helpers::eventually(
        std::time::Duration::from_secs(20),
        "the replica to hear of the grant",
        || async {
            let decision = crate::replicas::decision_for(&on_replica, &key, HEALTH_CHECK).await;
            (decision == latchkey::grpc::proto::v1::Decision::Allowed).then_some(())
        },
    )
    .await;
    let guard = RequireIntegrationKeyLayer::new(replica.channel().await)
        .with_cache_ttl(std::time::Duration::from_secs(3600))
        .watching_changes(Some(replica.partner_key.clone()));
    let mut client = guarded_client(guard.clone()).await;
    wait_until_watching(&guard, &mut client, &key).await;

    let deleted_at = std::time::Instant::now();
    app.delete_key(&key_id).await;
    until_refused_unauthenticated(
        &client,
        &key,
        "the guard on the other replica to hear of the delete",
    )
    .await;
    eprintln!(
        "deleted on one replica, refused by the other's guard after {:?}",
        deleted_at.elapsed()
    );
}

/// A key with a rate limit: the guard caches nothing for it (its TTL is an
/// hour here), so latchkey counts every call and the third of a limit of
/// two is refused with retry info.
#[tokio::test]
async fn the_guard_never_caches_a_rate_limited_key() {
    use latchkey::grpc::proto::v1::{CreateIntegrationKeyRequest, RateLimit};
    let app = spawn_app().await;
    grant_health_check(&app).await;
    let key = app
        .keys_client()
        .await
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            rate_limit: Some(RateLimit {
                limit: 2,
                window: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .api_key;
    let guard = RequireIntegrationKeyLayer::new(app.channel().await)
        .with_cache_ttl(std::time::Duration::from_secs(3600));
    let mut client = guarded_client(guard).await;
    for _ in 0..2 {
        client
            .check(call(Some(&key)))
            .await
            .expect("within the limit");
    }
    let status = client.check(call(Some(&key))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    use tonic_types::StatusExt;
    let retry = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo");
    // Two an hour: the next in up to half an hour.
    assert!(retry > std::time::Duration::from_secs(60), "{retry:?}");
}

#[tokio::test]
async fn the_guard_fails_closed_when_latchkey_is_unreachable() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let latchkey = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = HealthClient::new(resource_server(latchkey).await);
    let key = latchkey::domain::ApiKey::generate(latchkey::domain::KeyKind::Integration).unwrap();
    let status = client
        .check(call(Some(key.expose_secret())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test]
async fn the_client_offers_plain_methods_and_typed_errors() {
    use latchkey_client::{Client, ClientError, pb::Decision};
    let app = spawn_app().await;
    let client = Client::builder(app.endpoint())
        .partner_key(app.partner_key.clone())
        .connect()
        .await
        .unwrap();
    let created = client
        .create_integration_key("learner-activity", "sdk", None)
        .await
        .unwrap();
    let key = created.key.unwrap();
    let listed = client
        .list_integration_keys("learner-activity", 0, "")
        .await
        .unwrap();
    assert_eq!(listed.keys, vec![key.clone()]);
    assert_eq!(
        client
            .get_integration_key("learner-activity", &key.key_id)
            .await
            .unwrap(),
        key
    );
    let verdict = client
        .verify_integration_key(&created.api_key, "course.v1.CourseService/GetOutline")
        .await
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Allowed);
    client
        .delete_integration_key("learner-activity", &key.key_id)
        .await
        .unwrap();

    match client.get_integration("nope").await {
        Err(ClientError::NotFound(message)) => assert_eq!(message, "Integration 'nope' not found"),
        other => panic!("{other:?}"),
    }
    match client.create_integration_key("", "", None).await {
        Err(ClientError::InvalidArgument { violations, .. }) => {
            assert_eq!(violations[0].0, "integration")
        }
        other => panic!("{other:?}"),
    }
    let anonymous = Client::builder(app.endpoint()).connect().await.unwrap();
    assert!(matches!(
        anonymous.get_integration("learner-activity").await,
        Err(ClientError::Unauthenticated(_))
    ));
}
