//! Operating a real `latchkey serve` process: Prometheus metrics, and
//! SIGTERM while under load.

use std::{
    io::{Read, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, VerifyIntegrationKeyRequest,
    integration_keys_service_client::IntegrationKeysServiceClient,
};

use crate::{cli::latchkey, helpers::with_sid, secrets::ServeProcess, test_db::TestDb};

/// When each call started, and how it ended.
/// Each call's start, its end, and how it ended.
type Outcomes = Arc<Mutex<Vec<(Instant, Instant, Result<(), tonic::Status>)>>>;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// A `latchkey serve` process on a fresh database with the test catalog
/// (`<dir>/catalog.toml`) and a partner key made by the CLI: the directory,
/// database, process, address and partner key.
pub async fn start(extra: &[&str]) -> (tempfile::TempDir, TestDb, ServeProcess, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, crate::helpers::TEST_CATALOG).unwrap();
    let created = latchkey(&test_db.url, &["partner-keys", "create", "--name", "ops"]);
    assert!(created.status.success());
    let partner_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let mut server = ServeProcess::start_with(&test_db.url, catalog.to_str().unwrap(), extra);
    let addr = server.wait_for_addr().await;
    (dir, test_db, server, addr, partner_key)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_metrics_count_calls_decisions_cache_argon2_and_db() {
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let (_dir, _db, server, addr, partner_key) = start(&["--metrics-listen", &metrics_addr]).await;
    let mut client = IntegrationKeysServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let api_key = client
        .create_integration_key(with_sid(
            CreateIntegrationKeyRequest {
                integration: "learner-activity".into(),
                ..Default::default()
            },
            &partner_key,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key;
    for _ in 0..3 {
        client
            .verify_integration_key(VerifyIntegrationKeyRequest {
                api_key: api_key.clone(),
                endpoint: "course.v1.CourseService/GetOutline".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let _ = client
        .create_integration_key(CreateIntegrationKeyRequest::default())
        .await
        .unwrap_err();

    let body = crate::helpers::eventually(Duration::from_secs(10), "a scrape", || async {
        scrape(port).filter(|b| b.contains("latchkey_verify_decisions_total"))
    })
    .await;
    for needle in [
        "latchkey_calls_total{method=\"latchkey.v1.IntegrationKeysService/CreateIntegrationKey\",code=\"OK\"} 1",
        "latchkey_calls_total{method=\"latchkey.v1.IntegrationKeysService/CreateIntegrationKey\",code=\"UNAUTHENTICATED\"} 1",
        "latchkey_calls_total{method=\"latchkey.v1.IntegrationKeysService/VerifyIntegrationKey\",code=\"OK\"} 3",
        "latchkey_verify_decisions_total{decision=\"allowed\"} 3",
        "latchkey_verify_cache_total{result=\"hit\"} 2",
        "latchkey_verify_cache_total{result=\"miss\"} 1",
        "latchkey_argon2_queue_depth",
        "latchkey_argon2_wait_seconds_bucket",
        "latchkey_db_statement_duration_seconds_bucket",
        "latchkey_call_duration_seconds_bucket",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    assert!(!body.contains(&api_key[21..]));
    let (status, _) = server.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_lets_started_calls_finish_and_exits_0() {
    // Real (OWASP) argon2 so creates take long enough to be in flight.
    let (_dir, _db, server, addr, partner_key) =
        start(&["--argon2-memory-kib", "19456", "--argon2-iterations", "2"]).await;
    let endpoint = format!("http://{addr}");
    let outcomes: Outcomes = Arc::default();
    let mut callers = Vec::new();
    for _ in 0..16 {
        let endpoint = endpoint.clone();
        let partner_key = partner_key.clone();
        let outcomes = outcomes.clone();
        callers.push(tokio::spawn(async move {
            // Before the signal: a caller that cannot connect is a failure.
            let mut client = IntegrationKeysServiceClient::connect(endpoint)
                .await
                .expect("connect before the signal");
            for _ in 0..200 {
                let started = Instant::now();
                let result = client
                    .create_integration_key(with_sid(
                        CreateIntegrationKeyRequest {
                            integration: "learner-activity".into(),
                            ..Default::default()
                        },
                        &partner_key,
                    ))
                    .await
                    .map(drop);
                let failed = result.is_err();
                outcomes
                    .lock()
                    .unwrap()
                    .push((started, Instant::now(), result));
                if failed {
                    return;
                }
            }
        }));
    }
    // Under load: wait until some creates have completed.
    crate::helpers::eventually(Duration::from_secs(30), "load", || async {
        (outcomes.lock().unwrap().len() >= 16).then_some(())
    })
    .await;
    let signalled = Instant::now();
    server.signal_term();
    for caller in callers {
        caller.await.expect("a caller panicked");
    }
    let (status, log) = server.terminate_after_signal().await;
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(log.contains("latchkey stopped"));

    let outcomes = outcomes.lock().unwrap();
    // A call sent in the instant of the signal may race the listener's
    // close; anything sent clearly before it must have succeeded.
    let margin = Duration::from_millis(20);
    let started_before: Vec<_> = outcomes
        .iter()
        .filter(|(started, _, _)| *started + margin < signalled)
        .collect();
    assert!(started_before.len() >= 16);
    // The drain is what is tested: some of them were still running when the
    // signal came, and finished after it.
    let drained = started_before
        .iter()
        .filter(|(_, ended, result)| *ended > signalled && result.is_ok())
        .count();
    assert!(drained > 0, "no call was in flight at the signal");
    for (_, _, result) in started_before {
        assert!(
            result.is_ok(),
            "a call started before SIGTERM failed: {result:?}"
        );
    }
}
