//! Per-key rate limits: set by Create and Update, returned by Get and by an
//! ALLOWED verify, enforced for hundreds of verifies in flight at once, on
//! one replica and across three, without a database round trip per verify.

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, Decision, GetIntegrationKeyRequest, IntegrationKey, RateLimit,
    UpdateIntegrationKeyRequest, VerifyIntegrationKeyRequest, VerifyIntegrationKeyResponse,
};
use tonic::Status;

use crate::helpers::*;

const OUTLINE: &str = "course.v1.CourseService/GetOutline";

fn per_hour(limit: u32) -> RateLimit {
    RateLimit {
        limit,
        window: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
    }
}

async fn create_limited(app: &TestApp, rate_limit: RateLimit) -> (String, String) {
    let created = app
        .keys_client()
        .await
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            rate_limit: Some(rate_limit),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    let key = created.key.expect("key");
    assert_eq!(key.rate_limit, Some(rate_limit));
    (key.key_id, created.api_key)
}

async fn set_rate_limit(
    app: &TestApp,
    key_id: &str,
    rate_limit: Option<RateLimit>,
) -> Result<IntegrationKey, Status> {
    app.keys_client()
        .await
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id: key_id.into(),
                rate_limit,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["rate_limit".into()],
            }),
        }))
        .await
        .map(|r| r.into_inner().key.expect("key"))
}

/// (allowed, rate limited) among `answers`; every RATE_LIMITED answer says
/// when to retry and names the proven key.
fn count(answers: &[Result<VerifyIntegrationKeyResponse, Status>]) -> (usize, usize) {
    let (mut allowed, mut limited) = (0, 0);
    for answer in answers {
        let answer = answer.as_ref().expect("verify answers OK");
        match answer.decision() {
            Decision::Allowed => allowed += 1,
            Decision::RateLimited => {
                let retry_after = answer.retry_after.expect("RATE_LIMITED has retry_after");
                assert!(retry_after.seconds > 0 || retry_after.nanos > 0);
                assert!(!answer.key_id.is_empty(), "the key was proven");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (allowed, limited)
}

fn verifies(api_key: &str, n: usize) -> Vec<VerifyIntegrationKeyRequest> {
    (0..n)
        .map(|_| VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: OUTLINE.into(),
            caller_address: String::new(),
        })
        .collect()
}

#[tokio::test]
async fn a_key_past_its_limit_is_rate_limited_until_the_limit_changes() {
    let app = spawn_app().await;
    let (key_id, api_key) = create_limited(&app, per_hour(5)).await;
    let got = app
        .keys_client()
        .await
        .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(got.rate_limit, Some(per_hour(5)));

    for _ in 0..5 {
        let allowed = app.verify(&api_key, OUTLINE).await;
        assert_eq!(allowed.decision(), Decision::Allowed);
        // A guard must know not to cache this verdict.
        assert_eq!(allowed.rate_limit, Some(per_hour(5)));
    }
    let limited = app.verify(&api_key, OUTLINE).await;
    assert_eq!(limited.decision(), Decision::RateLimited);
    assert_eq!(limited.key_id, key_id);
    assert_eq!(limited.rate_limit, None, "the limit only with ALLOWED");
    // 5 per hour: a token every 12 minutes.
    let retry_after = limited.retry_after.expect("retry_after");
    assert!(
        (600..=720).contains(&retry_after.seconds),
        "{retry_after:?}"
    );
    // Refusals that are not about the limit do not spend it.
    assert_eq!(
        app.verify(&api_key, "reports.v1.ReportService/Get")
            .await
            .decision(),
        Decision::EndpointNotGranted
    );

    // Spent tokens stay spent when the limit changes...
    let updated = set_rate_limit(&app, &key_id, Some(per_hour(50)))
        .await
        .expect("update");
    assert_eq!(updated.rate_limit, Some(per_hour(50)));
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::RateLimited
    );
    // ...and clearing the limit allows the key again at once.
    let cleared = set_rate_limit(&app, &key_id, None).await.expect("clear");
    assert_eq!(cleared.rate_limit, None);
    let allowed = app.verify(&api_key, OUTLINE).await;
    assert_eq!(allowed.decision(), Decision::Allowed);
    assert_eq!(allowed.rate_limit, None);
}

#[tokio::test]
async fn bad_rate_limits_are_named_field_violations() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let window = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    let cases = [
        (
            RateLimit {
                limit: 0,
                window: window(60, 0),
            },
            "rate_limit.limit",
        ),
        (
            RateLimit {
                limit: 1_000_001,
                window: window(60, 0),
            },
            "rate_limit.limit",
        ),
        (
            RateLimit {
                limit: 10,
                window: None,
            },
            "rate_limit.window",
        ),
        (
            RateLimit {
                limit: 10,
                window: window(0, 500_000_000),
            },
            "rate_limit.window",
        ),
        (
            RateLimit {
                limit: 10,
                window: window(86_401, 0),
            },
            "rate_limit.window",
        ),
        (
            RateLimit {
                limit: 10,
                window: window(-5, 0),
            },
            "rate_limit.window",
        ),
    ];
    for (rate_limit, field) in cases {
        let result = client
            .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
                integration: "learner-activity".into(),
                rate_limit: Some(rate_limit),
                ..Default::default()
            }))
            .await;
        assert_eq!(bad_request_fields(result), vec![field], "{rate_limit:?}");
    }
    let (key_id, _) = app.create_key("learner-activity", None).await;
    let result = set_rate_limit(
        &app,
        &key_id,
        Some(RateLimit {
            limit: 0,
            window: window(60, 0),
        }),
    )
    .await;
    assert_eq!(bad_request_fields(result), vec!["key.rate_limit.limit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_verifies_in_flight_at_once_get_the_limit_and_no_more() {
    let app = spawn_app().await;
    let (_, api_key) = create_limited(&app, per_hour(100)).await;
    let channels = channels(&app, 4).await;
    let answers = crowd(&channels, verifies(&api_key, 300)).await;
    let (allowed, limited) = count(&answers);
    eprintln!("300 at once, limit 100: {allowed} ALLOWED, {limited} RATE_LIMITED");
    // The bucket refills by 100 an hour: at most a token more during the test.
    assert!((100..=101).contains(&allowed), "{allowed} allowed");
    assert_eq!(allowed + limited, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_rate_limited_key_does_not_cost_a_database_round_trip_per_verify() {
    let app = spawn_app().await;
    // Leases of 3,200 / 32 = 100 tokens: 300 verifies need three or four.
    let (_, api_key) = create_limited(&app, per_hour(3200)).await;
    // Proven and cached first: what remains is the rate limit's own cost.
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    let channels = channels(&app, 4).await;
    let statements = app.state.db_stats.statements();
    let answers = crowd(&channels, verifies(&api_key, 300)).await;
    let statements = app.state.db_stats.statements() - statements;
    let (allowed, _) = count(&answers);
    eprintln!("300 verifies of a limited key: {statements} database statements");
    assert_eq!(allowed, 300);
    // A handful of short transactions, never one per verify; none on
    // SQLite, where the bucket is this process's.
    assert!(statements <= 30, "{statements} statements for 300 verifies");
    if !app.database_url.starts_with("sqlite") {
        assert!(statements > 0, "the leases are counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_count_one_rate_limit_within_ten_percent() {
    let first = spawn_app().await;
    if first.database_url.starts_with("sqlite") {
        // One SQLite database is one process: its limits are local.
        eprintln!("not applicable: shared rate limits need PostgreSQL or MySQL/MariaDB");
        return;
    }
    let replicas = [first.replica(|_| {}).await, first.replica(|_| {}).await];
    let (_, api_key) = create_limited(&first, per_hour(100)).await;
    // Round-robin: connection i goes to replica i % 3.
    let mut channels = Vec::new();
    for _ in 0..4 {
        for app in [&first, &replicas[0], &replicas[1]] {
            channels.push(app.channel().await);
        }
    }
    let answers = crowd(&channels, verifies(&api_key, 300)).await;
    let (allowed, limited) = count(&answers);
    eprintln!("300 at once over 3 replicas, limit 100: {allowed} ALLOWED, {limited} RATE_LIMITED");
    assert!((90..=110).contains(&allowed), "{allowed} allowed");
    assert_eq!(allowed + limited, 300);
    // Each replica alone would have allowed 100: the limit is shared. A
    // second wave, once the first has been answered, is refused everywhere.
    let answers = crowd(&channels, verifies(&api_key, 30)).await;
    let (allowed_later, _) = count(&answers);
    assert!(
        allowed + allowed_later <= 110,
        "{allowed} + {allowed_later} allowed"
    );
}
