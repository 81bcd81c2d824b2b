//! WatchKeyChanges: a RESET first, then every key and grant change, from
//! this replica and (on PostgreSQL and MySQL/MariaDB) from any other; who
//! may watch; heartbeats; hundreds of watchers; streams end at shutdown.

use std::time::Duration;

use latchkey::grpc::proto::v1::{
    DeleteIntegrationKeyRequest, IntegrationKey, RollIntegrationKeyRequest,
    UpdateIntegrationKeyRequest, WatchEventKind, WatchKeyChangesRequest, WatchKeyChangesResponse,
};
use tonic::{Code, Streaming};

use crate::helpers::*;

/// The next event, within a deadline.
async fn next_event(stream: &mut Streaming<WatchKeyChangesResponse>) -> WatchKeyChangesResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("the stream is healthy")
        .expect("the stream goes on")
}

/// The next event that is not a RESET (resets may come at any time).
async fn next_change(stream: &mut Streaming<WatchKeyChangesResponse>) -> WatchKeyChangesResponse {
    loop {
        let event = next_event(stream).await;
        if event.kind() != WatchEventKind::Reset {
            return event;
        }
    }
}

async fn watch(app: &TestApp) -> Streaming<WatchKeyChangesResponse> {
    let mut stream = app
        .keys_client()
        .await
        .watch_key_changes(app.as_partner(WatchKeyChangesRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next_event(&mut stream).await.kind(), WatchEventKind::Reset);
    stream
}

#[tokio::test]
async fn a_watcher_hears_a_reset_then_every_change_of_a_key() {
    let app = spawn_app().await;
    let mut stream = watch(&app).await;
    let mut client = app.keys_client().await;
    let (key_id, _) = app.create_key("learner-activity", None).await;

    let key = IntegrationKey {
        integration: "learner-activity".into(),
        key_id: key_id.clone(),
        display_name: "renamed".into(),
        ..Default::default()
    };
    client
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(key),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        }))
        .await
        .expect("update");
    let changed = next_change(&mut stream).await;
    assert_eq!(
        (changed.kind(), changed.key_id.as_str()),
        (WatchEventKind::KeyChanged, key_id.as_str())
    );

    client
        .roll_integration_key(app.as_partner(RollIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
            grace_period: Some(prost_types::Duration::default()),
        }))
        .await
        .expect("roll");
    assert_eq!(next_change(&mut stream).await.key_id, key_id);

    client
        .delete_integration_key(app.as_partner(DeleteIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
        }))
        .await
        .expect("delete");
    assert_eq!(next_change(&mut stream).await.key_id, key_id);
}

#[tokio::test]
async fn a_grant_change_is_an_integration_change() {
    let app = spawn_app_with(|s| s.catalog_poll_interval = Duration::from_millis(100)).await;
    let mut stream = watch(&app).await;
    // Another process applies a catalog in which learner-activity gained
    // a grant; the others are unchanged.
    let catalog = TEST_CATALOG.replace(
        r#""permissions.v1.*"]"#,
        r#""permissions.v1.*", "course.v1.CourseService/ListCourses"]"#,
    );
    assert_ne!(catalog, TEST_CATALOG);
    let parsed =
        latchkey::domain::catalog::Catalog::parse(&catalog, "watch test").expect("catalog");
    latchkey::app::catalog::apply(&app.db, &latchkey::app::audit::Actor::cli(), &parsed, false)
        .await
        .expect("apply");
    let changed = next_change(&mut stream).await;
    assert_eq!(
        (changed.kind(), changed.integration.as_str()),
        (WatchEventKind::IntegrationChanged, "learner-activity")
    );
}

#[tokio::test]
async fn only_partners_and_trusted_peers_may_watch() {
    let app = spawn_app().await;
    let refused = app
        .keys_client()
        .await
        .watch_key_changes(WatchKeyChangesRequest::default())
        .await
        .expect_err("no credential");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let trusting = spawn_app_with(|s| {
        s.trusted_peers =
            latchkey::security::callers::TrustedPeers::parse("127.0.0.1").expect("CIDR");
    })
    .await;
    let mut stream = trusting
        .keys_client()
        .await
        .watch_key_changes(WatchKeyChangesRequest::default())
        .await
        .expect("a trusted peer needs no credential")
        .into_inner();
    assert_eq!(next_event(&mut stream).await.kind(), WatchEventKind::Reset);
}

#[tokio::test]
async fn watch_streams_end_when_the_server_shuts_down() {
    let app = spawn_app().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(watch(&app).await);
    }
    // Shutdown would otherwise wait its whole grace period for them.
    tokio::time::timeout(Duration::from_secs(20), app.shutdown())
        .await
        .expect("shutdown does not wait for watchers")
        .expect("clean shutdown");
    for mut stream in streams {
        let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends");
        assert!(!matches!(end, Ok(Some(_))), "no more events: {end:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_another_replica_reaches_the_watcher() {
    let app = spawn_app().await;
    if app.database_url.starts_with("sqlite") {
        // Replicas announce changes through PostgreSQL's NOTIFY or the
        // MySQL/MariaDB change log; SQLite is one process. This test runs
        // in .ci/run's PostgreSQL and MariaDB passes.
        eprintln!("not applicable: needs PostgreSQL or MySQL/MariaDB");
        return;
    }
    let replica = app.replica(|_| {}).await;
    let mut stream = watch(&app).await;
    let (key_id, _) = replica.create_key("learner-activity", None).await;
    replica
        .keys_client()
        .await
        .delete_integration_key(replica.as_partner(DeleteIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
        }))
        .await
        .expect("delete on the replica");
    let changed = next_change(&mut stream).await;
    assert_eq!(
        (changed.kind(), changed.key_id.as_str()),
        (WatchEventKind::KeyChanged, key_id.as_str())
    );
}

#[tokio::test]
async fn a_quiet_stream_sends_the_heartbeats_it_was_asked_for() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let mut stream = client
        .watch_key_changes(app.as_partner(WatchKeyChangesRequest {
            heartbeat_interval: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        }))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next_event(&mut stream).await.kind(), WatchEventKind::Reset);
    for _ in 0..2 {
        assert_eq!(
            next_event(&mut stream).await.kind(),
            WatchEventKind::Heartbeat
        );
    }
    // A change still comes as itself.
    let (key_id, _) = app.create_key("learner-activity", None).await;
    app.delete_key(&key_id).await;
    let changed = loop {
        let event = next_change(&mut stream).await;
        if event.kind() != WatchEventKind::Heartbeat {
            break event;
        }
    };
    assert_eq!(changed.key_id, key_id);

    for bad in [
        prost_types::Duration {
            seconds: 0,
            nanos: 500_000_000,
        },
        prost_types::Duration {
            seconds: 301,
            nanos: 0,
        },
    ] {
        let result = client
            .watch_key_changes(app.as_partner(WatchKeyChangesRequest {
                heartbeat_interval: Some(bad),
            }))
            .await;
        assert_eq!(bad_request_fields(result), vec!["heartbeat_interval"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_watchers_all_hear_a_delete() {
    let app = spawn_app().await;
    let channels = channels(&app, 4).await;
    let mut streams = Vec::new();
    for i in 0..300 {
        let mut client = latchkey::grpc::proto::v1::integration_keys_service_client::IntegrationKeysServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let mut stream = client
            .watch_key_changes(app.as_partner(WatchKeyChangesRequest::default()))
            .await
            .expect("watch")
            .into_inner();
        assert_eq!(next_event(&mut stream).await.kind(), WatchEventKind::Reset);
        streams.push(stream);
    }
    let (key_id, _) = app.create_key("learner-activity", None).await;
    app.delete_key(&key_id).await;
    let heard: Vec<_> = streams
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { next_change(&mut stream).await }))
        .collect();
    for event in heard {
        let event = event.await.expect("task");
        assert_eq!(
            (event.kind(), event.key_id.as_str()),
            (WatchEventKind::KeyChanged, key_id.as_str())
        );
    }
}
