//! Faults injected from outside, between a real replica and its database: a
//! TCP proxy that silences the replica's LISTEN connection (PostgreSQL) or
//! change-log follower (MySQL/MariaDB) without closing it, or holds back
//! PostgreSQL's answer to a COMMIT. Two real server
//! processes on one database; one-hour cache TTLs, so only the mechanisms
//! under test can explain a quick refusal.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use latchkey::grpc::proto::v1::{
    CheckServiceHealthRequest, CreateIntegrationKeyRequest, Decision, DeleteIntegrationKeyRequest,
    health_service_client::HealthServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tonic::transport::Channel;

use crate::{
    cli::latchkey,
    helpers::{eventually, with_sid},
    replicas::decision,
    secrets::ServeProcess,
    test_db::TestDb,
};

/// A TCP proxy that can misbehave on demand: silence every connection, or
/// (to PostgreSQL) only the LISTEN connection or the answers to COMMITs. It
/// reads the client's bytes to tell a LISTEN connection (it sends `LISTEN`)
/// from pool connections, and to see a `COMMIT` go by.
#[derive(Clone)]
pub(crate) struct FaultProxy {
    pub(crate) addr: SocketAddr,
    /// While true, every connection forwards nothing either way (and stays
    /// open): a stalled network path.
    pub(crate) silence_all: Arc<AtomicBool>,
    /// While true, listener connections forward nothing either way (and
    /// stay open).
    silence_listeners: Arc<AtomicBool>,
    /// While true, a prune of the MySQL/MariaDB change log is not passed on
    /// (nor anything after it on that connection), which stays open: the
    /// follower's connection goes silent in the middle of a prune.
    silence_prunes: Arc<AtomicBool>,
    /// Milliseconds the database's answer to a COMMIT is held back (0: none).
    commit_delay_ms: Arc<AtomicU64>,
    /// COMMIT answers held back so far.
    delayed_commits: Arc<AtomicU64>,
}

impl FaultProxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            silence_all: Arc::default(),
            silence_listeners: Arc::default(),
            silence_prunes: Arc::default(),
            commit_delay_ms: Arc::default(),
            delayed_commits: Arc::default(),
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                shared.clone().relay(client, server);
            }
        });
        proxy
    }

    fn relay(self, client: TcpStream, server: TcpStream) {
        let is_listener = Arc::new(AtomicBool::new(false));
        let commit_pending = Arc::new(AtomicBool::new(false));
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let upstream = {
            let (proxy, is_listener, commit_pending) =
                (self.clone(), is_listener.clone(), commit_pending.clone());
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    // PostgreSQL's LISTEN connection, or the MySQL/MariaDB
                    // change-log follower's (only it reads the log).
                    if contains(chunk, b"LISTEN") || contains(chunk, b"FROM key_change_log") {
                        is_listener.store(true, Ordering::SeqCst);
                    }
                    if contains(chunk, b"COMMIT") {
                        commit_pending.store(true, Ordering::SeqCst);
                    }
                    proxy.hold_if_silenced(&is_listener).await;
                    if contains(chunk, b"DELETE FROM key_change_log") {
                        while proxy.silence_prunes.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    if server_write.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            }
        };
        let downstream = {
            let proxy = self.clone();
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    proxy.hold_if_silenced(&is_listener).await;
                    // The first answer after a COMMIT is the COMMIT's.
                    let after_commit = commit_pending.swap(false, Ordering::SeqCst);
                    let delay = proxy.commit_delay_ms.load(Ordering::SeqCst);
                    if after_commit && delay > 0 {
                        proxy.delayed_commits.fetch_add(1, Ordering::SeqCst);
                        // The injected fault: the commit's answer is late.
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        };
        tokio::spawn(upstream);
        tokio::spawn(downstream);
    }

    /// The injected fault: a silenced connection forwards nothing.
    async fn hold_if_silenced(&self, is_listener: &AtomicBool) {
        while self.silence_all.load(Ordering::SeqCst)
            || (is_listener.load(Ordering::SeqCst) && self.silence_listeners.load(Ordering::SeqCst))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Two replicas on one PostgreSQL: `a` direct, `b` through `proxy`, or the
/// other way round with `proxy_a`.
struct Replicas {
    _dir: tempfile::TempDir,
    _db: TestDb,
    a: ServeProcess,
    b: ServeProcess,
    on_a: IntegrationKeysServiceClient<Channel>,
    on_b: IntegrationKeysServiceClient<Channel>,
    channel_b: Channel,
    partner_key: String,
    proxy: FaultProxy,
}

/// `None` when the tests do not run on PostgreSQL (.ci/run's PostgreSQL pass
/// runs these).
async fn replicas(proxy_a: bool, extra: &[&str]) -> Option<Replicas> {
    replicas_on(&["postgres"], proxy_a, extra).await
}

/// `replicas` on any of `backends` (URL schemes); `None` on the others.
async fn replicas_on(backends: &[&str], proxy_a: bool, extra: &[&str]) -> Option<Replicas> {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(dir.path()).await;
    if !backends.iter().any(|scheme| db.url.starts_with(scheme)) {
        eprintln!("not applicable: needs one of {backends:?}");
        return None;
    }
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, crate::helpers::TEST_CATALOG).unwrap();
    let created = latchkey(&db.url, &["partner-keys", "create", "--name", "ops"]);
    let partner_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    // postgres://user@host:port/name -> the same through the proxy.
    let (scheme_user, rest) = db.url.rsplit_once('@').unwrap();
    let (host_port, name) = rest.split_once('/').unwrap();
    let proxy = FaultProxy::start(host_port.parse().unwrap()).await;
    let proxied = format!("{scheme_user}@{}/{name}", proxy.addr);
    let mut args = vec!["--verify-cache-ttl", "3600"];
    args.extend_from_slice(extra);
    let (url_a, url_b) = if proxy_a {
        (proxied.as_str(), db.url.as_str())
    } else {
        (db.url.as_str(), proxied.as_str())
    };
    let catalog = catalog.to_str().unwrap();
    let mut a = ServeProcess::start_with(url_a, catalog, &args);
    let mut b = ServeProcess::start_with(url_b, catalog, &args);
    let (addr_a, addr_b) = (a.wait_for_addr().await, b.wait_for_addr().await);
    let channel = |addr: String| async move {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    let channel_b = channel(addr_b).await;
    Some(Replicas {
        _dir: dir,
        _db: db,
        a,
        b,
        on_a: IntegrationKeysServiceClient::new(channel(addr_a).await),
        on_b: IntegrationKeysServiceClient::new(channel_b.clone()),
        channel_b,
        partner_key,
        proxy,
    })
}

impl Replicas {
    async fn create(&self) -> (String, String) {
        let created = self
            .on_a
            .clone()
            .create_integration_key(with_sid(
                CreateIntegrationKeyRequest {
                    integration: "learner-activity".into(),
                    ..Default::default()
                },
                &self.partner_key,
            ))
            .await
            .unwrap()
            .into_inner();
        (created.key.unwrap().key_id, created.api_key)
    }

    fn delete_request(&self, key_id: &str) -> tonic::Request<DeleteIntegrationKeyRequest> {
        with_sid(
            DeleteIntegrationKeyRequest {
                integration: "learner-activity".into(),
                key_id: key_id.into(),
            },
            &self.partner_key,
        )
    }

    /// B's `replica_notifications` diagnostic: true for PASS.
    async fn b_hears_notifications(&self) -> bool {
        let report = HealthServiceClient::new(self.channel_b.clone())
            .check_service_health(with_sid(CheckServiceHealthRequest {}, &self.partner_key))
            .await
            .unwrap()
            .into_inner();
        let diagnostic = report
            .diagnostics
            .iter()
            .find(|d| d.name == "replica_notifications")
            .expect("replica_notifications diagnostic");
        diagnostic.status() == latchkey::grpc::proto::v1::DiagnosticStatus::Pass
    }

    /// Waits (up to 30 s) until B's `replica_notifications` diagnostic
    /// says `hears`.
    async fn until_b_hears(&self, hears: bool, what: &str) {
        eventually(Duration::from_secs(30), what, || async {
            (self.b_hears_notifications().await == hears).then_some(())
        })
        .await;
    }

    async fn stop(self) {
        for replica in [self.a, self.b] {
            let (status, _) = replica.terminate().await;
            assert!(status.success());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_gone_silent_means_not_serving_and_a_bounded_exit() {
    // Every connection of B's to the database goes silent: sockets open,
    // no byte either way (a dropped route, a stalled proxy).
    let Some(r) = replicas(false, &["--shutdown-grace", "2"]).await else {
        return;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(r.channel_b.clone());
    let serving = async |health: &mut tonic_health::pb::health_client::HealthClient<Channel>| {
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status()
            == tonic_health::pb::health_check_response::ServingStatus::Serving
    };
    assert!(serving(&mut health).await);
    r.proxy.silence_all.store(true, Ordering::SeqCst);
    // A call that needs the database, stuck on it meanwhile.
    let stuck = tokio::spawn({
        let mut on_b = r.on_b.clone();
        let request = r.delete_request("lki_aaaaaaaaaaaaaaaaaaaa");
        async move { on_b.delete_integration_key(request).await.map(|_| ()) }
    });
    eventually(Duration::from_secs(30), "B to stop serving", || {
        let mut health = health.clone();
        async move { (!serving(&mut health).await).then_some(()) }
    })
    .await;
    // SIGTERM: B exits 0, whatever it still waits for from the database.
    let Replicas { a, b, .. } = r;
    let (status, _) = b.terminate().await;
    assert!(status.success(), "{status:?}");
    stuck.abort();
    let (status, _) = a.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_listener_is_noticed_by_its_heartbeat_and_deletes_are_refused() {
    // PostgreSQL's LISTEN connection, or MySQL/MariaDB's change-log follower.
    let Some(r) = replicas_on(&["postgres", "mysql"], false, &["--notify-heartbeat", "2"]).await
    else {
        return;
    };
    r.until_b_hears(true, "B to listen").await;
    let (deleted_id, deleted_key) = r.create().await;
    let (_, kept_key) = r.create().await;
    assert_eq!(decision(&r.on_b, &deleted_key).await, Decision::Allowed);
    assert_eq!(decision(&r.on_b, &kept_key).await, Decision::Allowed);

    // B's LISTEN connection goes silent; the socket stays open.
    r.proxy.silence_listeners.store(true, Ordering::SeqCst);
    r.on_a
        .clone()
        .delete_integration_key(r.delete_request(&deleted_id))
        .await
        .unwrap();
    let deleted_at = Instant::now();
    eventually(
        Duration::from_secs(20),
        "B to refuse the deleted key",
        || async { (decision(&r.on_b, &deleted_key).await == Decision::Invalid).then_some(()) },
    )
    .await;
    eprintln!(
        "silent listener: the deleted key was refused on B {:.1} s after the delete (heartbeat 2 s)",
        deleted_at.elapsed().as_secs_f64()
    );
    // B says so, and keeps serving from the database meanwhile.
    assert!(!r.b_hears_notifications().await);
    assert_eq!(decision(&r.on_b, &kept_key).await, Decision::Allowed);
    // A crowd while B trusts nothing it cached: 300 verifies at once, half
    // for each key, each answered from the database: every deleted one
    // refused (its id is unknown now, so past the failure budget's burst
    // the refusal is RATE_LIMITED), every kept one allowed, none failed.
    let crowd = crate::helpers::all_at_once((0..300).map(|i| {
        let client = r.on_b.clone();
        let key = if i % 2 == 0 { &deleted_key } else { &kept_key }.clone();
        async move { decision(&client, &key).await }
    }))
    .await;
    let (deleted, kept): (Vec<_>, Vec<_>) = crowd.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    assert!(
        deleted
            .iter()
            .all(|(_, d)| matches!(**d, Decision::Invalid | Decision::RateLimited)),
        "a deleted key allowed in the crowd: {deleted:?}"
    );
    assert!(
        kept.iter().all(|(_, d)| **d == Decision::Allowed),
        "a kept key refused in the crowd: {kept:?}"
    );

    // The listener comes back: B listens again.
    r.proxy.silence_listeners.store(false, Ordering::SeqCst);
    r.until_b_hears(true, "B to listen again").await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_log_prune_gone_silent_is_noticed_and_the_reader_restarts() {
    // MySQL/MariaDB: the follower prunes the log on its own connection. A
    // prune that never answers must not leave the replica trusting its
    // cache with no one reading the log.
    let Some(r) = replicas_on(
        &["mysql"],
        false,
        &[
            "--notify-heartbeat",
            "2",
            "--change-log-prune-interval",
            "1",
        ],
    )
    .await
    else {
        return;
    };
    r.until_b_hears(true, "B to follow the log").await;
    let (_, kept_key) = r.create().await;
    assert_eq!(decision(&r.on_b, &kept_key).await, Decision::Allowed);

    // B's next prune goes unanswered; its reads before it were answered.
    r.proxy.silence_prunes.store(true, Ordering::SeqCst);
    r.until_b_hears(false, "B to notice the silent prune").await;
    // Meanwhile B serves from the database, and hears of deletes.
    assert_eq!(decision(&r.on_b, &kept_key).await, Decision::Allowed);
    let (deleted_id, deleted_key) = r.create().await;
    assert_eq!(decision(&r.on_b, &deleted_key).await, Decision::Allowed);
    r.on_a
        .clone()
        .delete_integration_key(r.delete_request(&deleted_id))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "B to refuse the deleted key",
        || async { (decision(&r.on_b, &deleted_key).await == Decision::Invalid).then_some(()) },
    )
    .await;

    // Prunes are answered again: B follows the log again, and stays.
    r.proxy.silence_prunes.store(false, Ordering::SeqCst);
    r.until_b_hears(true, "B to follow the log again").await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_whose_caller_leaves_after_the_commit_is_refused_on_both_replicas() {
    // A reaches the database through the proxy.
    let Some(r) = replicas(true, &[]).await else {
        return;
    };
    let (key_id, api_key) = r.create().await;
    assert_eq!(decision(&r.on_a, &api_key).await, Decision::Allowed);
    assert_eq!(decision(&r.on_b, &api_key).await, Decision::Allowed);

    // The database's answer to the COMMIT reaches A 3 s late; the caller's
    // deadline is 1 s, so it is gone before A learns the delete committed.
    r.proxy.commit_delay_ms.store(3000, Ordering::SeqCst);
    let mut request = r.delete_request(&key_id);
    request.set_timeout(Duration::from_secs(1));
    let answer = r.on_a.clone().delete_integration_key(request).await;
    let status = answer.expect_err("the caller gave up before the answer");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{status:?}"
    );
    assert!(r.proxy.delayed_commits.load(Ordering::SeqCst) >= 1);
    r.proxy.commit_delay_ms.store(0, Ordering::SeqCst);

    for (name, replica) in [("A", &r.on_a), ("B", &r.on_b)] {
        eventually(
            Duration::from_secs(20),
            &format!("{name} to refuse the deleted key"),
            || async { (decision(replica, &api_key).await == Decision::Invalid).then_some(()) },
        )
        .await;
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_change_reaches_other_replicas_through_the_notification() {
    // Both replicas poll the catalog only once an hour: only the
    // notification committed with the catalog can explain a quick change.
    let Some(r) = replicas(false, &["--catalog-poll-interval", "3600"]).await else {
        return;
    };
    r.until_b_hears(true, "B to listen").await;
    let (_, api_key) = r.create().await;
    assert_eq!(decision(&r.on_b, &api_key).await, Decision::Allowed);
    let narrower = r._dir.path().join("narrower.toml");
    std::fs::write(
        &narrower,
        crate::helpers::TEST_CATALOG.replace(
            "\"course.v1.CourseService/GetOutline\", \"permissions.v1.*\"",
            "\"permissions.v1.*\"",
        ),
    )
    .unwrap();
    let applied = latchkey(
        &r._db.url,
        &["catalog", "apply", narrower.to_str().unwrap()],
    );
    assert!(applied.status.success(), "{applied:?}");
    eventually(
        Duration::from_secs(10),
        "B to see the removed grant",
        || async {
            (decision(&r.on_b, &api_key).await == Decision::EndpointNotGranted).then_some(())
        },
    )
    .await;
    r.stop().await;
}

/// A rate-limited key on a replica whose database path stalls: the replica
/// cannot lease from the shared bucket, so it counts the key's limit on its
/// own and keeps answering (a limited key is neither refused wholesale nor
/// made to wait on the database per verify).
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_cut_off_from_the_shared_bucket_counts_a_rate_limit_alone() {
    // A long listener heartbeat: B's cached key state stays trusted while
    // its database is silenced, so only the rate limit touches it.
    let Some(r) = replicas(false, &["--notify-heartbeat", "600"]).await else {
        return;
    };
    r.until_b_hears(true, "B to listen").await;
    let limited_key = || async {
        r.on_a
            .clone()
            .create_integration_key(with_sid(
                CreateIntegrationKeyRequest {
                    integration: "learner-activity".into(),
                    rate_limit: Some(latchkey::grpc::proto::v1::RateLimit {
                        limit: 5,
                        window: Some(prost_types::Duration {
                            seconds: 3600,
                            nanos: 0,
                        }),
                    }),
                    ..Default::default()
                },
                &r.partner_key,
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
    };
    // Two keys, one for single calls and one for a crowd; each proven and
    // cached on B, one token spent from its shared bucket.
    let (api_key, crowd_key) = (limited_key().await, limited_key().await);
    for key in [&api_key, &crowd_key] {
        assert_eq!(decision(&r.on_b, key).await, Decision::Allowed);
    }

    r.proxy.silence_all.store(true, Ordering::SeqCst);
    let mut decisions = Vec::new();
    for _ in 0..6 {
        decisions.push(decision(&r.on_b, &api_key).await);
    }
    // B's own bucket holds the whole limit: five, then refused.
    assert_eq!(
        decisions,
        [[Decision::Allowed; 5].as_slice(), &[Decision::RateLimited]].concat()
    );
    // 300 at once, still cut off: the same five. The fallback is one bucket
    // per key, not one per call that found the database silent.
    let crowd = crate::helpers::all_at_once((0..300).map(|_| {
        let (client, key) = (r.on_b.clone(), crowd_key.clone());
        async move { decision(&client, &key).await }
    }))
    .await;
    let allowed = crowd.iter().filter(|d| **d == Decision::Allowed).count();
    let limited = crowd
        .iter()
        .filter(|d| **d == Decision::RateLimited)
        .count();
    assert_eq!(
        (allowed, limited),
        (5, 295),
        "a crowd cut off from the shared bucket"
    );
    r.proxy.silence_all.store(false, Ordering::SeqCst);
    r.stop().await;
}
