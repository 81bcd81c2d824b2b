//! IntegrationKeysService: Create, Get, List, Delete.

use std::collections::HashSet;

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, DeleteIntegrationKeyRequest, GetIntegrationKeyRequest,
    IntegrationKeyState, ListIntegrationKeysRequest,
};
use prost_types::Timestamp;
use tonic::Code;

use crate::helpers::{assert_status, bad_request_fields, spawn_app};

fn create(integration: &str) -> CreateIntegrationKeyRequest {
    CreateIntegrationKeyRequest {
        integration: integration.into(),
        ..Default::default()
    }
}

fn in_seconds(seconds: i64) -> Timestamp {
    let now = latchkey::domain::time::now_micros() / 1_000_000;
    Timestamp {
        seconds: now + seconds,
        nanos: 0,
    }
}

#[tokio::test]
async fn create_returns_the_key_once_and_get_shows_its_metadata() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let expire = in_seconds(3600);
    let created = client
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            display_name: "nightly job".into(),
            expire_time: Some(expire),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();

    let key = created.key.expect("key metadata");
    assert!(
        key.key_id.starts_with("lki_") && key.key_id.len() == 20,
        "{}",
        key.key_id
    );
    assert_eq!(key.integration, "learner-activity");
    assert_eq!(key.display_name, "nightly job");
    assert_eq!(key.expire_time, Some(expire));
    assert_eq!(key.last_use_time, None);
    assert!(!key.disabled);
    assert_eq!(key.state(), IntegrationKeyState::Active);
    assert!(key.create_time.is_some());

    // The full key: `<key_id>_<43 secret><6 checksum>`, only [A-Za-z0-9_].
    let api_key = created.api_key;
    assert_eq!(api_key.len(), 70);
    assert!(api_key.starts_with(&format!("{}_", key.key_id)));
    assert!(
        api_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    );

    let got = client
        .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key.key_id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(got, key);
    // Nothing the Get returns holds the secret.
    assert!(!format!("{got:?}").contains(&api_key[21..]));
}

#[tokio::test]
async fn create_without_optional_fields_never_expires() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let created = client
        .create_integration_key(app.as_partner(create("sandbox")))
        .await
        .expect("create")
        .into_inner();
    let key = created.key.expect("key");
    assert_eq!(key.expire_time, None);
    assert_eq!(key.display_name, "");
    assert_eq!(key.integration, "sandbox");
}

#[tokio::test]
async fn two_creates_give_different_keys() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let a = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner();
    let b = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner();
    assert_ne!(a.api_key, b.api_key);
    assert_ne!(a.key.unwrap().key_id, b.key.unwrap().key_id);
}

#[tokio::test]
async fn create_for_an_unknown_integration_is_not_found() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    assert_status(
        client
            .create_integration_key(app.as_partner(create("nope")))
            .await,
        Code::NotFound,
        "Integration 'nope' not found",
    );
}

#[tokio::test]
async fn create_for_a_builtin_integration_is_a_failed_precondition() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    assert_status(
        client
            .create_integration_key(app.as_partner(create("reports")))
            .await,
        Code::FailedPrecondition,
        "API keys are available only for custom integrations",
    );
}

#[tokio::test]
async fn create_names_every_bad_field() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;

    let cases: Vec<(CreateIntegrationKeyRequest, Vec<&str>)> = vec![
        (create(""), vec!["integration"]),
        (create(&"a".repeat(64)), vec!["integration"]),
        (create("Learner_Activity"), vec!["integration"]),
        (
            CreateIntegrationKeyRequest {
                display_name: "x".repeat(101),
                ..create("learner-activity")
            },
            vec!["display_name"],
        ),
        (
            CreateIntegrationKeyRequest {
                expire_time: Some(in_seconds(-60)),
                ..create("learner-activity")
            },
            vec!["expire_time"],
        ),
        (
            CreateIntegrationKeyRequest {
                expire_time: Some(Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                ..create("learner-activity")
            },
            vec!["expire_time"],
        ),
        (
            CreateIntegrationKeyRequest {
                integration: String::new(),
                display_name: "y".repeat(101),
                expire_time: Some(in_seconds(-1)),
                ..Default::default()
            },
            vec!["integration", "display_name", "expire_time"],
        ),
    ];
    for (request, fields) in cases {
        let got = bad_request_fields(client.create_integration_key(app.as_partner(request)).await);
        assert_eq!(got, fields);
    }
    // A 100-character display name is fine (Sunshine's limit).
    client
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            display_name: "z".repeat(100),
            ..create("learner-activity")
        }))
        .await
        .expect("100 characters are allowed");
}

#[tokio::test]
async fn get_and_delete_report_unknown_integrations_and_keys() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let created = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner();
    let key_id = created.key.unwrap().key_id;
    let missing = "lki_0000000000000000";

    let get = |integration: &str, key_id: &str| GetIntegrationKeyRequest {
        integration: integration.into(),
        key_id: key_id.into(),
    };
    assert_status(
        client
            .get_integration_key(app.as_partner(get("nope", &key_id)))
            .await,
        Code::NotFound,
        "Integration 'nope' not found",
    );
    assert_status(
        client
            .get_integration_key(app.as_partner(get("learner-activity", missing)))
            .await,
        Code::NotFound,
        &format!("Key '{missing}' not found"),
    );
    // A key of another integration is not found under this one.
    assert_status(
        client
            .get_integration_key(app.as_partner(get("sandbox", &key_id)))
            .await,
        Code::NotFound,
        &format!("Key '{key_id}' not found"),
    );

    let delete = |integration: &str, key_id: &str| DeleteIntegrationKeyRequest {
        integration: integration.into(),
        key_id: key_id.into(),
    };
    assert_status(
        client
            .delete_integration_key(app.as_partner(delete("nope", &key_id)))
            .await,
        Code::NotFound,
        "Integration 'nope' not found",
    );
    assert_status(
        client
            .delete_integration_key(app.as_partner(delete("learner-activity", missing)))
            .await,
        Code::NotFound,
        &format!("Key '{missing}' not found"),
    );
    assert_status(
        client
            .delete_integration_key(app.as_partner(delete("sandbox", &key_id)))
            .await,
        Code::NotFound,
        &format!("Key '{key_id}' not found"),
    );
}

#[tokio::test]
async fn a_full_key_passed_as_key_id_is_refused_without_echoing_it() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let created = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner();
    let result = client
        .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: created.api_key.clone(),
        }))
        .await;
    let status = result.as_ref().expect_err("must fail").clone();
    assert!(!format!("{status:?}").contains(&created.api_key[21..]));
    assert_eq!(bad_request_fields(result), vec!["key_id"]);

    for (integration, key_id, fields) in [
        ("", "", vec!["integration", "key_id"]),
        ("learner-activity", "lki_short", vec!["key_id"]),
        ("learner-activity", "lkp_0000000000000000", vec!["key_id"]),
    ] {
        let got = bad_request_fields(
            client
                .delete_integration_key(app.as_partner(DeleteIntegrationKeyRequest {
                    integration: integration.into(),
                    key_id: key_id.into(),
                }))
                .await,
        );
        assert_eq!(got, fields);
    }
}

#[tokio::test]
async fn delete_removes_the_key_for_good() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let keep = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner()
        .key
        .unwrap();
    let doomed = client
        .create_integration_key(app.as_partner(create("learner-activity")))
        .await
        .expect("create")
        .into_inner()
        .key
        .unwrap();
    let reference = DeleteIntegrationKeyRequest {
        integration: "learner-activity".into(),
        key_id: doomed.key_id.clone(),
    };
    client
        .delete_integration_key(app.as_partner(reference.clone()))
        .await
        .expect("delete");

    assert_status(
        client
            .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
                integration: "learner-activity".into(),
                key_id: doomed.key_id.clone(),
            }))
            .await,
        Code::NotFound,
        &format!("Key '{}' not found", doomed.key_id),
    );
    assert_status(
        client
            .delete_integration_key(app.as_partner(reference))
            .await,
        Code::NotFound,
        &format!("Key '{}' not found", doomed.key_id),
    );
    let listed = client
        .list_integration_keys(app.as_partner(ListIntegrationKeysRequest {
            integration: "learner-activity".into(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<_> = listed.keys.into_iter().map(|k| k.key_id).collect();
    assert_eq!(ids, vec![keep.key_id]);
}

#[tokio::test]
async fn list_pages_through_hundreds_of_keys_in_a_stable_order() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    const TOTAL: usize = 260;
    let mut created = Vec::with_capacity(TOTAL);
    for _ in 0..TOTAL {
        let key = client
            .create_integration_key(app.as_partner(create("learner-activity")))
            .await
            .expect("create")
            .into_inner()
            .key
            .unwrap();
        created.push(key);
    }
    // A key in another integration never shows up in this list.
    client
        .create_integration_key(app.as_partner(create("sandbox")))
        .await
        .expect("create");

    let list = |page_size: i32, page_token: String| ListIntegrationKeysRequest {
        integration: "learner-activity".into(),
        page_size,
        page_token,
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_integration_keys(app.as_partner(list(40, token)))
            .await
            .expect("list page")
            .into_inner();
        pages += 1;
        assert!(page.keys.len() <= 40);
        seen.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 100, "paging does not terminate");
    }
    assert_eq!(pages, TOTAL.div_ceil(40));
    assert_eq!(seen.len(), TOTAL);
    let unique: HashSet<_> = seen.iter().map(|k| k.key_id.clone()).collect();
    assert_eq!(unique.len(), TOTAL);
    // Creation time, then key id.
    let order = |k: &latchkey::grpc::proto::v1::IntegrationKey| {
        let t = k.create_time.unwrap();
        (t.seconds, t.nanos, k.key_id.clone())
    };
    assert!(seen.windows(2).all(|w| order(&w[0]) < order(&w[1])));
    let mut expected = created.clone();
    expected.sort_by_key(order);
    assert_eq!(seen, expected);

    // Page size 0 means 50; more than 1000 means 1000 (here: everything).
    let default_page = client
        .list_integration_keys(app.as_partner(list(0, String::new())))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(default_page.keys.len(), 50);
    assert!(!default_page.next_page_token.is_empty());
    let huge_page = client
        .list_integration_keys(app.as_partner(list(5000, String::new())))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(huge_page.keys.len(), TOTAL);
    assert!(huge_page.next_page_token.is_empty());

    // A page size of exactly the remaining count has no next page.
    let exact = client
        .list_integration_keys(app.as_partner(list(TOTAL as i32, String::new())))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(exact.keys.len(), TOTAL);
    assert!(exact.next_page_token.is_empty());

    // A token is only good for the list it came from.
    let other = client
        .list_integration_keys(app.as_partner(ListIntegrationKeysRequest {
            integration: "sandbox".into(),
            page_size: 1,
            page_token: default_page.next_page_token.clone(),
        }))
        .await;
    assert_eq!(bad_request_fields(other), vec!["page_token"]);
}

#[tokio::test]
async fn list_rejects_bad_arguments_and_unknown_integrations() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let request =
        |integration: &str, page_size: i32, page_token: &str| ListIntegrationKeysRequest {
            integration: integration.into(),
            page_size,
            page_token: page_token.into(),
        };
    for (req, fields) in [
        (request("learner-activity", -1, ""), vec!["page_size"]),
        (
            request("learner-activity", 10, "not a token"),
            vec!["page_token"],
        ),
        (request("learner-activity", 10, "bGtp"), vec!["page_token"]),
        (
            request("", -5, "%%"),
            vec!["integration", "page_size", "page_token"],
        ),
    ] {
        assert_eq!(
            bad_request_fields(client.list_integration_keys(app.as_partner(req)).await),
            fields
        );
    }
    assert_status(
        client
            .list_integration_keys(app.as_partner(request("nope", 0, "")))
            .await,
        Code::NotFound,
        "Integration 'nope' not found",
    );
    let empty = client
        .list_integration_keys(app.as_partner(request("sandbox", 0, "")))
        .await
        .expect("list")
        .into_inner();
    assert!(empty.keys.is_empty() && empty.next_page_token.is_empty());
}
