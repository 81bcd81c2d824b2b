//! VerifyIntegrationKey: every decision, grants, the cache, eviction,
//! throttling and batched last-use times.

use std::time::Duration;

use latchkey::{
    app::{audit::Actor, catalog},
    domain::catalog::Catalog,
    domain::{ApiKey, KeyKind, key_format::checksum},
    grpc::proto::v1::{
        Decision, DeleteIntegrationKeyRequest, GetIntegrationKeyRequest, IntegrationKey,
        UpdateIntegrationKeyRequest, VerifyIntegrationKeyRequest,
    },
    security::throttle::{Budget, ThrottleSettings},
};
use prost_types::FieldMask;

use crate::helpers::{
    TEST_CATALOG, TestApp, bad_request_fields, channels, crowd, eventually, in_seconds, spawn_app,
    spawn_app_with,
};

const OUTLINE: &str = "course.v1.CourseService/GetOutline";
const PERMISSION_CHECK: &str = "permissions.v1.PermissionService/Check";

/// The same key id with a different (well-formed, checksummed) secret.
fn wrong_secret(api_key: &str) -> String {
    let body = format!("{}_{}", &api_key[..20], "W".repeat(43));
    let sum = checksum(body.as_bytes());
    format!("{body}{sum}")
}

async fn set_disabled(app: &TestApp, key_id: &str, disabled: bool) {
    app.keys_client()
        .await
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id: key_id.into(),
                disabled,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        }))
        .await
        .expect("update");
}

#[tokio::test]
async fn allowed_for_exact_and_prefix_grants_with_the_key_identified() {
    let app = spawn_app().await;
    let expire = in_seconds(3600);
    let (key_id, api_key) = app.create_key("learner-activity", Some(expire)).await;
    for endpoint in [
        OUTLINE,
        PERMISSION_CHECK,
        "/course.v1.CourseService/GetOutline",
    ] {
        let verdict = app.verify(&api_key, endpoint).await;
        assert_eq!(verdict.decision(), Decision::Allowed, "{endpoint}");
        assert_eq!(verdict.integration, "learner-activity");
        assert_eq!(verdict.key_id, key_id);
        assert_eq!(verdict.expire_time, Some(expire));
    }
}

#[tokio::test]
async fn endpoints_without_a_matching_grant_are_denied() {
    let app = spawn_app().await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    for endpoint in [
        "course.v1.CourseService/DeleteCourse",
        "course.v1.CourseService/GetOutlineX",
        "permissions.v2.PermissionService/Check",
        "course.v1.CourseService",
    ] {
        let verdict = app.verify(&api_key, endpoint).await;
        assert_eq!(
            verdict.decision(),
            Decision::EndpointNotGranted,
            "{endpoint}"
        );
        // The secret was proven, so the key is identified.
        assert_eq!(verdict.key_id, key_id);
        assert_eq!(verdict.integration, "learner-activity");
        assert_eq!(verdict.expire_time, None);
    }
    // No grants at all: deny by default.
    let (_, sandbox_key) = app.create_key("sandbox", None).await;
    assert_eq!(
        app.verify(&sandbox_key, OUTLINE).await.decision(),
        Decision::EndpointNotGranted
    );
}

#[tokio::test]
async fn malformed_and_invalid_keys_reveal_nothing() {
    let app = spawn_app().await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    let partner_shaped = ApiKey::generate(KeyKind::Partner).unwrap();
    let mut typo = api_key.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    for malformed in [
        "",
        "garbage",
        &typo,
        partner_shaped.expose_secret(),
        &format!("{api_key}x"),
    ] {
        let verdict = app.verify(malformed, OUTLINE).await;
        assert_eq!(verdict.decision(), Decision::Malformed, "{malformed:?}");
        assert!(verdict.key_id.is_empty() && verdict.integration.is_empty());
    }

    let unknown = ApiKey::generate(KeyKind::Integration).unwrap();
    for invalid in [unknown.expose_secret().to_owned(), wrong_secret(&api_key)] {
        let verdict = app.verify(&invalid, OUTLINE).await;
        assert_eq!(verdict.decision(), Decision::Invalid);
        assert!(verdict.key_id.is_empty() && verdict.integration.is_empty());
        assert_eq!(verdict.expire_time, None);
    }
}

/// An app whose own background work issues no statement for an hour, so a
/// test can count the statements its calls cost.
async fn spawn_app_without_background_statements() -> TestApp {
    spawn_app_with(|s| {
        s.catalog_poll_interval = Duration::from_secs(3600);
        s.usage_flush_interval = Duration::from_secs(3600);
        // PostgreSQL: the listener's heartbeats are statements too.
        s.notify_heartbeat = Duration::from_secs(3600);
    })
    .await
}

#[tokio::test]
async fn malformed_keys_cost_neither_database_nor_argon2() {
    let app = spawn_app_without_background_statements().await;
    let statements = app.state.db_stats.statements();
    let runs = app.state.hasher.runs();
    for _ in 0..20 {
        assert_eq!(
            app.verify("lki_notakey", OUTLINE).await.decision(),
            Decision::Malformed
        );
    }
    assert_eq!(app.state.db_stats.statements(), statements);
    assert_eq!(app.state.hasher.runs(), runs);
}

#[tokio::test]
async fn a_warm_key_costs_neither_database_nor_argon2() {
    let app = spawn_app_without_background_statements().await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    let runs_before_first = app.state.hasher.runs();
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    assert_eq!(
        app.state.hasher.runs(),
        runs_before_first + 1,
        "one argon2 to warm"
    );

    let statements = app.state.db_stats.statements();
    let runs = app.state.hasher.runs();
    for endpoint in [OUTLINE, PERMISSION_CHECK, "course.v1.CourseService/Nope"] {
        for _ in 0..10 {
            app.verify(&api_key, endpoint).await;
        }
    }
    assert_eq!(app.state.db_stats.statements(), statements, "no database");
    assert_eq!(app.state.hasher.runs(), runs, "no argon2");
}

/// The verified-key cache with a crowd in flight: 300 verifies of three warm
/// keys at once cost no statement and no argon2; then, with a wrong secret
/// for the same key ids in every other call, no wrong secret is ever allowed
/// and no right key stops being.
#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_warm_verifies_in_flight_cost_neither_database_nor_argon2() {
    let app = spawn_app_without_background_statements().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (_, api_key) = app.create_key("learner-activity", None).await;
        assert_eq!(
            app.verify(&api_key, OUTLINE).await.decision(),
            Decision::Allowed
        );
        keys.push(api_key);
    }
    let request = |api_key: &str| VerifyIntegrationKeyRequest {
        api_key: api_key.into(),
        endpoint: OUTLINE.into(),
        caller_address: String::new(),
    };
    let channels = channels(&app, 4).await;

    let statements = app.state.db_stats.statements();
    let runs = app.state.hasher.runs();
    let warm = (0..300).map(|i| request(&keys[i % 3])).collect();
    for answer in crowd(&channels, warm).await {
        assert_eq!(answer.expect("verify").decision(), Decision::Allowed);
    }
    assert_eq!(app.state.db_stats.statements(), statements, "no database");
    assert_eq!(app.state.hasher.runs(), runs, "no argon2");

    let mixed = (0..300)
        .map(|i| {
            let key = &keys[i % 3];
            if i % 2 == 0 {
                request(key)
            } else {
                request(&wrong_secret(key))
            }
        })
        .collect();
    for (i, answer) in crowd(&channels, mixed).await.into_iter().enumerate() {
        let answer = answer.expect("verify");
        if i % 2 == 0 {
            assert_eq!(answer.decision(), Decision::Allowed, "call {i}");
        } else {
            assert!(
                matches!(answer.decision(), Decision::Invalid | Decision::RateLimited),
                "call {i}: {:?}",
                answer.decision()
            );
        }
    }
}

#[tokio::test]
async fn endpoint_must_be_present_and_bounded() {
    let app = spawn_app().await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    let mut client = app.keys_client().await;
    for endpoint in [String::new(), "/".into(), "a".repeat(256)] {
        let result = client
            .verify_integration_key(VerifyIntegrationKeyRequest {
                api_key: api_key.clone(),
                endpoint,
                ..Default::default()
            })
            .await;
        assert_eq!(bad_request_fields(result), ["endpoint"]);
    }
}

#[tokio::test]
async fn delete_takes_effect_on_the_next_verify() {
    let app = spawn_app().await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    app.keys_client()
        .await
        .delete_integration_key(app.as_partner(DeleteIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id,
        }))
        .await
        .expect("delete");
    let verdict = app.verify(&api_key, OUTLINE).await;
    assert_eq!(verdict.decision(), Decision::Invalid);
    assert!(verdict.key_id.is_empty());
}

#[tokio::test]
async fn disable_and_enable_take_effect_on_the_next_verify() {
    let app = spawn_app().await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    set_disabled(&app, &key_id, true).await;
    let verdict = app.verify(&api_key, OUTLINE).await;
    assert_eq!(verdict.decision(), Decision::Disabled);
    assert_eq!(verdict.key_id, key_id, "proven, so identified");
    // Still disabled on later (cached) verifies.
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Disabled
    );
    set_disabled(&app, &key_id, false).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn a_key_expires_while_warm() {
    let app = spawn_app().await;
    let (key_id, api_key) = app
        .create_key("learner-activity", Some(in_seconds(1)))
        .await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    let verdict = eventually(Duration::from_secs(10), "expiry", || async {
        let verdict = app.verify(&api_key, OUTLINE).await;
        (verdict.decision() != Decision::Allowed).then_some(verdict)
    })
    .await;
    assert_eq!(verdict.decision(), Decision::Expired);
    assert_eq!(verdict.key_id, key_id);
}

#[tokio::test]
async fn shortening_the_expiry_of_a_warm_key_takes_effect() {
    let app = spawn_app().await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    app.keys_client()
        .await
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id,
                expire_time: Some(in_seconds(1)),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["expire_time".into()],
            }),
        }))
        .await
        .expect("update");
    eventually(Duration::from_secs(10), "expiry", || async {
        (app.verify(&api_key, OUTLINE).await.decision() == Decision::Expired).then_some(())
    })
    .await;
}

#[tokio::test]
async fn catalog_changes_reach_warm_keys() {
    let app = spawn_app().await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );

    // Another process (here: the test, on its own connection) applies a
    // catalog without the GetOutline grant.
    let narrowed = TEST_CATALOG.replace("\"course.v1.CourseService/GetOutline\", ", "");
    let catalog = Catalog::parse(&narrowed, "narrowed").unwrap();
    catalog::apply(&app.db, &Actor::cli(), &catalog, false)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the grant removal", || async {
        (app.verify(&api_key, OUTLINE).await.decision() == Decision::EndpointNotGranted)
            .then_some(())
    })
    .await;
    assert_eq!(
        app.verify(&api_key, PERMISSION_CHECK).await.decision(),
        Decision::Allowed
    );

    // And a grant added back (as a prefix) is picked up too.
    let widened = TEST_CATALOG.replace(
        "\"course.v1.CourseService/GetOutline\"",
        "\"course.v1.CourseService/*\"",
    );
    catalog::apply(
        &app.db,
        &Actor::cli(),
        &Catalog::parse(&widened, "widened").unwrap(),
        false,
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the new prefix grant", || async {
        (app.verify(&api_key, "course.v1.CourseService/ListCourses")
            .await
            .decision()
            == Decision::Allowed)
            .then_some(())
    })
    .await;
}

fn throttle(per_key: u32, per_peer: u32, per_second: f64) -> ThrottleSettings {
    ThrottleSettings {
        per_key: Budget {
            burst: per_key,
            per_second,
        },
        per_peer: Budget {
            burst: per_peer,
            per_second,
        },
    }
}

#[tokio::test]
async fn wrong_secrets_are_throttled_per_key_id_without_argon2_and_recover() {
    // Three failures per key id, one forgiven every 5 s: slow enough that
    // the budget cannot refill between the steps below on a busy machine.
    let app = spawn_app_with(|s| s.verifier.throttle = throttle(3, 1000, 0.2)).await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    let (_, other_key) = app.create_key("learner-activity", None).await;
    let bad = wrong_secret(&api_key);
    for _ in 0..3 {
        assert_eq!(
            app.verify(&bad, OUTLINE).await.decision(),
            Decision::Invalid
        );
    }
    let runs = app.state.hasher.runs();
    let limited = app.verify(&bad, OUTLINE).await;
    assert_eq!(limited.decision(), Decision::RateLimited);
    assert!(limited.key_id.is_empty());
    // While limited, even the right secret is refused without argon2 work
    // (it is not cached yet), and other keys are unaffected.
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::RateLimited
    );
    assert_eq!(
        app.state.hasher.runs(),
        runs,
        "no argon2 while rate limited"
    );
    assert_eq!(
        app.verify(&other_key, OUTLINE).await.decision(),
        Decision::Allowed
    );

    // The budget recovers.
    eventually(Duration::from_secs(30), "the budget to recover", || async {
        (app.verify(&api_key, OUTLINE).await.decision() == Decision::Allowed).then_some(())
    })
    .await;
}

#[tokio::test]
async fn failures_are_throttled_per_peer_across_key_ids() {
    let app = spawn_app_with(|s| s.verifier.throttle = throttle(1000, 4, 0.2)).await;
    let (_, api_key) = app.create_key("learner-activity", None).await;
    // Warm before the attack: a cached key keeps working throughout.
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    for _ in 0..4 {
        let unknown = ApiKey::generate(KeyKind::Integration).unwrap();
        assert_eq!(
            app.verify(unknown.expose_secret(), OUTLINE)
                .await
                .decision(),
            Decision::Invalid
        );
    }
    // The peer's budget is spent. It may be a resource server relaying
    // honest callers too, so a key id with a clean record is still checked
    // (once: that attempt dirties it, in the suspect lane); a key id that
    // has failed is refused.
    let fresh = ApiKey::generate(KeyKind::Integration).unwrap();
    assert_eq!(
        app.verify(fresh.expose_secret(), OUTLINE).await.decision(),
        Decision::Invalid
    );
    let again = app.verify(fresh.expose_secret(), OUTLINE).await;
    assert_eq!(again.decision(), Decision::RateLimited);
    assert!(
        again.retry_after.is_some(),
        "RATE_LIMITED says when to retry"
    );
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    eventually(
        Duration::from_secs(30),
        "the peer budget to recover",
        || async {
            (app.verify(fresh.expose_secret(), OUTLINE).await.decision() == Decision::Invalid)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn last_use_time_is_recorded_in_batches() {
    let app = spawn_app_with(|s| s.usage_flush_interval = Duration::from_millis(200)).await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    let get = || async {
        app.keys_client()
            .await
            .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
                integration: "learner-activity".into(),
                key_id: key_id.clone(),
            }))
            .await
            .expect("get")
            .into_inner()
            .key
            .expect("key")
    };
    assert_eq!(get().await.last_use_time, None);
    // A denied call is not a use.
    app.verify(&api_key, "course.v1.CourseService/Nope").await;
    let before = latchkey::domain::time::now_micros();
    for _ in 0..5 {
        assert_eq!(
            app.verify(&api_key, OUTLINE).await.decision(),
            Decision::Allowed
        );
    }
    let used = eventually(Duration::from_secs(10), "last_use_time", || async {
        get().await.last_use_time
    })
    .await;
    let used = latchkey::grpc::time::from_timestamp(&used).unwrap();
    assert!(used >= before, "the allowed verifies, not the denied one");
    assert!(used <= latchkey::domain::time::now_micros());
}

#[tokio::test]
async fn pending_uses_are_written_on_shutdown() {
    let mut app = spawn_app_with(|s| s.usage_flush_interval = Duration::from_secs(3600)).await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    app.shutdown_in_place().await.expect("shutdown");
    let row = latchkey::store::integration_keys::find_by_id(&app.db, &key_id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.last_use_time.is_some());
}

#[tokio::test]
async fn changes_made_elsewhere_are_seen_after_the_state_ttl_without_argon2() {
    // State trusted for 1 ms: every verify re-reads the row. One wrong
    // secret exhausts the key id's budget.
    let app = spawn_app_with(|s| {
        s.verifier.cache_ttl = Duration::from_millis(1);
        s.verifier.throttle = throttle(1, 1000, 0.001);
    })
    .await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    assert_eq!(
        app.verify(&wrong_secret(&api_key), OUTLINE)
            .await
            .decision(),
        Decision::Invalid
    );
    let runs = app.state.hasher.runs();
    // The key id is now rate limited, yet its proven holder is not locked
    // out: the re-read needs no argon2.
    for _ in 0..3 {
        assert_eq!(
            app.verify(&api_key, OUTLINE).await.decision(),
            Decision::Allowed
        );
    }
    assert_eq!(app.state.hasher.runs(), runs);

    // Another replica (here: straight in the database, no eviction here)
    // deletes the key: seen on the next verify after the state TTL.
    let integration = latchkey::store::integrations::find_by_name(&app.db, "learner-activity")
        .await
        .unwrap()
        .unwrap();
    assert!(
        latchkey::store::integration_keys::delete(&app.db, integration.id, &key_id)
            .await
            .unwrap()
    );
    eventually(
        Duration::from_secs(10),
        "the out-of-band delete",
        || async {
            (app.verify(&api_key, OUTLINE).await.decision() == Decision::Invalid).then_some(())
        },
    )
    .await;
}
