//! The HTTP listener over a real server, with a plain HTTP/1.1 client:
//! every route of the seed 000, seed 001 and Sunshine dialects, Connect
//! JSON, /openapi.json, and each dialect's errors.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use latchkey::grpc::proto::v1::VerifyIntegrationKeyRequest;
use serde_json::{Value, json};

use crate::helpers::*;

/// One HTTP exchange's answer.
struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

/// Sends one request; `headers` are (name, value) pairs.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    send_to(app.http_addr, method, path, headers, body).await
}

async fn send_to(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let response = client.request(request).await.expect("HTTP answer");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        content_type,
        text: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The partner key's id and the rest after `<id>_` (Sunshine's Basic pair).
fn split_key(key: &str) -> (&str, &str) {
    (&key[..20], &key[21..])
}

async fn verify_decision(app: &TestApp, api_key: &str) -> i32 {
    let mut client = app.keys_client().await;
    client
        .verify_integration_key(VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: "course.v1.CourseService/GetOutline".into(),
            caller_address: String::new(),
        })
        .await
        .expect("verify")
        .into_inner()
        .decision
}

const ALLOWED: i32 = 1;
const INVALID: i32 = 3;

#[tokio::test]
async fn seed_000_routes_create_list_get_delete_and_their_errors() {
    let app = spawn_app().await;
    let sid = ("sid", app.partner_key.as_str());
    let created = send(
        &app,
        Method::POST,
        "/integrations/learner-activity/keys",
        &[sid, JSON],
        r#"{"displayName": "seed job", "expireTime": "2999-01-01T00:00:00Z", "labels": {"team": "ops"}, "allowedNetworks": ["127.0.0.1"], "rateLimit": {"limit": 1000, "window": "60s"}}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.content_type.starts_with("application/json"));
    let body = created.json();
    let key_id = body["key"]["keyId"].as_str().expect("keyId").to_owned();
    let api_key = body["apiKey"].as_str().expect("apiKey").to_owned();
    assert!(api_key.starts_with(&format!("{key_id}_")));
    assert_eq!(body["key"]["displayName"], "seed job");
    assert_eq!(body["key"]["expireTime"], "2999-01-01T00:00:00Z");
    assert_eq!(body["key"]["state"], "INTEGRATION_KEY_STATE_ACTIVE");
    assert_eq!(body["key"]["labels"], json!({"team": "ops"}));
    assert_eq!(body["key"]["allowedNetworks"], json!(["127.0.0.1/32"]));
    assert_eq!(
        body["key"]["rateLimit"],
        json!({"limit": 1000, "window": "60s"})
    );
    assert_eq!(verify_decision(&app, &api_key).await, ALLOWED);

    // No body at all is a create with defaults; Bearer works as SID does.
    let bearer = format!("Bearer {}", app.partner_key);
    let bare = send(
        &app,
        Method::POST,
        "/integrations/learner-activity/keys",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(bare.status, StatusCode::CREATED, "{}", bare.text);
    assert!(bare.json()["key"].get("displayName").is_none());

    let listed = send(
        &app,
        Method::GET,
        "/integrations/learner-activity/keys",
        &[sid],
        "",
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    let keys = listed.json()["keys"].as_array().expect("keys").clone();
    assert!(keys.iter().any(|k| k["keyId"] == key_id.as_str()));
    assert!(!listed.text.contains(&api_key[21..]), "no secret in a list");
    let paged = send(
        &app,
        Method::GET,
        "/integrations/learner-activity/keys?pageSize=1",
        &[sid],
        "",
    )
    .await;
    assert_eq!(paged.json()["keys"].as_array().expect("keys").len(), 1);
    assert!(paged.json()["nextPageToken"].is_string());

    let path = format!("/integrations/learner-activity/keys/{key_id}");
    let got = send(&app, Method::GET, &path, &[sid], "").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["key"]["keyId"], key_id.as_str());
    assert!(got.json().get("apiKey").is_none());

    let deleted = send(&app, Method::DELETE, &path, &[sid], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(verify_decision(&app, &api_key).await, INVALID);

    // The seed's errors, with gRPC's messages.
    let gone = send(&app, Method::GET, &path, &[sid], "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.json(),
        json!({"error": 404, "message": format!("Key '{key_id}' not found")})
    );
    let again = send(&app, Method::DELETE, &path, &[sid], "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let unknown = send(&app, Method::GET, "/integrations/nope/keys", &[sid], "").await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": 404, "message": "Integration 'nope' not found"})
        )
    );
    // One character of the secret changed: a well-formed key that is not ours.
    let mut wrong = app.partner_key.clone().into_bytes();
    wrong[30] = if wrong[30] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).expect("ASCII key");
    for headers in [vec![], vec![("sid", wrong.as_str())]] {
        let refused = send(
            &app,
            Method::GET,
            "/integrations/learner-activity/keys",
            &headers,
            "",
        )
        .await;
        assert_eq!(
            (refused.status, refused.json()),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": 401, "message": "Invalid credentials"})
            )
        );
        assert!(!refused.text.contains(&wrong));
    }
    let builtin = send(
        &app,
        Method::POST,
        "/integrations/reports/keys",
        &[sid, JSON],
        "{}",
    )
    .await;
    assert_eq!(
        (builtin.status, builtin.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": 400, "message": "API keys are available only for custom integrations"})
        )
    );
    for (body, content_type) in [
        ("{not json", "application/json"),
        (r#"{"displayName": 5}"#, "application/json"),
        (r#"{"secret": "x"}"#, "application/json"),
        (r#"{"expireTime": "tomorrow"}"#, "application/json"),
        (
            &*format!(r#"{{"displayName": "{}"}}"#, "x".repeat(101)),
            "application/json",
        ),
        ("{}", "text/plain"),
        (
            r#"{"rateLimit": {"limit": 0, "window": "60s"}}"#,
            "application/json",
        ),
        (
            r#"{"rateLimit": {"limit": 5, "window": "soon"}}"#,
            "application/json",
        ),
    ] {
        let bad = send(
            &app,
            Method::POST,
            "/integrations/learner-activity/keys",
            &[sid, ("content-type", content_type)],
            body.to_owned(),
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}: {}", bad.text);
        assert_eq!(bad.json()["error"], 400);
        let message = bad.json()["message"].as_str().expect("message").to_owned();
        assert!(message.starts_with("Bad request"), "{message}");
    }
    let method = send(
        &app,
        Method::PUT,
        "/integrations/learner-activity/keys",
        &[sid],
        "",
    )
    .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.json()["error"], 405);
    let route = send(&app, Method::GET, "/no/such/route", &[sid], "").await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.json()["error"], 404);
    let huge = send(
        &app,
        Method::POST,
        "/integrations/learner-activity/keys",
        &[sid, JSON],
        vec![b' '; 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(huge.status, StatusCode::BAD_REQUEST, "{}", huge.text);
}

#[tokio::test]
async fn seed_001_routes_configure_settings_users_and_health() {
    let app = spawn_app().await;
    let sid = ("sid", app.partner_key.as_str());
    let document = json!({
        "ClientId": "acme",
        "ClientCredentials": {
            "UserApiKeys": [{"user": "ops", "api_key": "ops-key-0123456789", "scope": "SYSTEM"}],
            "LbApiKeyOwner": "lb-owner",
            "LbApiKey": "lb-secret-value"
        },
        "ClientSettings": {"LbHostOverride": "acme.lb.example.com"}
    })
    .to_string();
    let configured = send(
        &app,
        Method::POST,
        "/configure",
        &[sid, JSON],
        document.clone(),
    )
    .await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.text
    );
    let body = configured.json();
    assert_eq!(body["ClientId"], "acme");
    assert_eq!(body["Users"][0]["User"], "ops");
    assert_eq!(body["Users"][0]["Scope"], "SYSTEM");
    for secret in ["ops-key-0123456789", "lb-secret-value"] {
        assert!(!configured.text.contains(secret), "{secret} echoed");
    }
    let twice = send(&app, Method::POST, "/configure", &[sid, JSON], document).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.json()["error"], 409);

    // The client's SYSTEM user, with Basic credentials.
    let ops = basic("ops", "ops-key-0123456789");
    let user = [("authorization", ops.as_str()), JSON];
    let settings = send(
        &app,
        Method::POST,
        "/configureSettings/acme",
        &user,
        r#"{"settings": [{"name": "ClientSettings.Theme", "value": "dark"}]}"#,
    )
    .await;
    assert_eq!(settings.status, StatusCode::OK, "{}", settings.text);
    let named = settings.json()["Settings"]
        .as_array()
        .expect("Settings")
        .iter()
        .any(|s| s["Name"] == "ClientSettings.Theme" && s["Value"] == "dark");
    assert!(named, "{}", settings.text);
    let touching_keys = send(
        &app,
        Method::POST,
        "/configureSettings/acme",
        &user,
        r#"{"settings": [{"name": "ClientCredentials.UserApiKeys", "value": "x"}]}"#,
    )
    .await;
    assert_eq!(touching_keys.status, StatusCode::BAD_REQUEST);

    let set = send(
        &app,
        Method::POST,
        "/setUserCredentials/acme",
        &user,
        r#"{"user": "reader", "api_key": "reader-key-0123456789", "scope": "CLIENT"}"#,
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.json()["User"], "reader");
    assert_eq!(set.json()["Scope"], "CLIENT");
    assert!(!set.text.contains("reader-key-0123456789"));

    // A CLIENT user may read health, but not set credentials.
    let reader = basic("reader", "reader-key-0123456789");
    let health = send(
        &app,
        Method::GET,
        "/health/acme",
        &[("authorization", &reader)],
        "",
    )
    .await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    let health = health.json();
    assert_eq!(health["ClientId"], "acme");
    assert_eq!(health["LbHost"], "acme.lb.example.com");
    assert!(["HEALTHY", "DEGRADED"].contains(&health["Status"].as_str().expect("Status")));
    assert!(
        health["Diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    let denied = send(
        &app,
        Method::POST,
        "/setUserCredentials/acme",
        &[("authorization", &reader), JSON],
        r#"{"user": "x", "api_key": "x-key-0123456789", "scope": "SYSTEM"}"#,
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    assert_eq!(denied.json()["error"], 403);
    let wrong = basic("reader", "not-the-key");
    let refused = send(
        &app,
        Method::GET,
        "/health/acme",
        &[("authorization", &wrong)],
        "",
    )
    .await;
    assert_eq!(
        (refused.status, refused.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": 401, "message": "Invalid credentials"})
        )
    );
    let missing = send(
        &app,
        Method::POST,
        "/configureSettings/nobody",
        &[sid, JSON],
        r#"{"settings": [{"name": "ClientSettings.Theme", "value": "x"}]}"#,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let not_configured = send(&app, Method::GET, "/health/nobody", &[sid], "").await;
    assert_eq!(not_configured.json()["Status"], "NOT_CONFIGURED");
    let bad_scope = send(
        &app,
        Method::POST,
        "/setUserCredentials/acme",
        &[sid, JSON],
        r#"{"user": "x", "api_key": "x-key-0123456789", "scope": "ROOT"}"#,
    )
    .await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sunshine_routes_speak_the_key_api_of_zendesk_clients() {
    let app = spawn_app().await;
    let (id, secret) = split_key(&app.partner_key);
    let auth = basic(id, secret);
    let partner = [("authorization", auth.as_str()), JSON];
    let base = "/v2/apps/any-app/integrations/learner-activity/keys";
    let created = send(
        &app,
        Method::POST,
        base,
        &partner,
        r#"{"displayName": "sunshine"}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json()["key"].clone();
    let key_id = key["id"].as_str().expect("id").to_owned();
    let key_secret = key["secret"].as_str().expect("secret").to_owned();
    assert_eq!(key["displayName"], "sunshine");
    assert_eq!(
        verify_decision(&app, &format!("{key_id}_{key_secret}")).await,
        ALLOWED
    );

    let listed = send(&app, Method::GET, base, &partner, "").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        listed.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["id"] == key_id.as_str())
    );
    assert!(!listed.text.contains(&key_secret));
    let path = format!("{base}/{key_id}");
    let got = send(&app, Method::GET, &path, &partner, "").await;
    assert_eq!(
        got.json(),
        json!({"key": {"id": key_id, "displayName": "sunshine"}})
    );
    let deleted = send(&app, Method::DELETE, &path, &partner, "").await;
    assert_eq!(
        (deleted.status, deleted.json()),
        (StatusCode::OK, json!({}))
    );

    let gone = send(&app, Method::GET, &path, &partner, "").await;
    assert_eq!(
        (gone.status, gone.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"errors": [{"code": "not_found", "title": format!("Key '{key_id}' not found")}]})
        )
    );
    let wrong = basic(id, &"A".repeat(secret.len()));
    let refused = send(&app, Method::GET, base, &[("authorization", &wrong)], "").await;
    assert_eq!(
        (refused.status, refused.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "unauthorized", "title": "Invalid credentials"}]})
        )
    );
    let builtin = send(
        &app,
        Method::POST,
        "/v2/apps/a/integrations/reports/keys",
        &partner,
        "{}",
    )
    .await;
    assert_eq!(
        (builtin.status, builtin.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"code": "bad_request", "title": "API keys are available only for custom integrations"}]})
        )
    );
    let bearer = format!("Bearer {}", app.partner_key);
    let with_bearer = send(&app, Method::GET, base, &[("authorization", &bearer)], "").await;
    assert_eq!(with_bearer.status, StatusCode::OK);
    let malformed = send(&app, Method::POST, base, &partner, "[").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["errors"][0]["code"], "bad_request");
}

#[tokio::test]
async fn connect_json_serves_every_unary_rpc_with_connect_errors() {
    let app = spawn_app().await;
    let sid = ("sid", app.partner_key.as_str());
    let created = send(
        &app,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/CreateIntegrationKey",
        &[sid, JSON, ("connect-protocol-version", "1")],
        r#"{"integration": "learner-activity", "displayName": "connect"}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let api_key = created.json()["apiKey"]
        .as_str()
        .expect("apiKey")
        .to_owned();
    let verified = send(
        &app,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/VerifyIntegrationKey",
        &[JSON],
        json!({"api_key": api_key, "endpoint": "course.v1.CourseService/GetOutline"}).to_string(),
    )
    .await;
    assert_eq!(
        verified.json()["decision"],
        "DECISION_ALLOWED",
        "{}",
        verified.text
    );
    // A service beside IntegrationKeysService, with an empty request.
    let service = send(
        &app,
        Method::POST,
        "/latchkey.v1.HealthService/CheckServiceHealth",
        &[sid, JSON],
        "{}",
    )
    .await;
    assert_eq!(service.status, StatusCode::OK, "{}", service.text);
    assert!(service.json()["diagnostics"].is_array());

    let missing = send(
        &app,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/ListIntegrationKeys",
        &[sid, JSON],
        r#"{"integration": "nope"}"#,
    )
    .await;
    assert_eq!(
        (missing.status, missing.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"code": "not_found", "message": "Integration 'nope' not found"})
        )
    );
    let anonymous = send(
        &app,
        Method::POST,
        "/latchkey.v1.AuditService/ListAuditEvents",
        &[JSON],
        "{}",
    )
    .await;
    assert_eq!(
        (anonymous.status, anonymous.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"code": "unauthenticated", "message": "Invalid credentials"})
        )
    );
    // Field violations travel as Connect details (google.rpc.BadRequest).
    let invalid = send(
        &app,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/VerifyIntegrationKey",
        &[JSON],
        r#"{"apiKey": "x", "endpoint": ""}"#,
    )
    .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json()["code"], "invalid_argument");
    assert_eq!(
        invalid.json()["details"][0]["type"],
        "google.rpc.BadRequest"
    );
    for (body, content_type) in [
        ("{", "application/json"),
        (r#"{"nope": 1}"#, "application/json"),
        ("{}", "application/proto"),
    ] {
        let bad = send(
            &app,
            Method::POST,
            "/latchkey.v1.IntegrationKeysService/ListIntegrations",
            &[sid, ("content-type", content_type)],
            body,
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(bad.json()["code"], "invalid_argument");
    }
    let unknown = send(
        &app,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/Nope",
        &[sid, JSON],
        "{}",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["code"], "unimplemented");
    let get = send(
        &app,
        Method::GET,
        "/latchkey.v1.IntegrationKeysService/ListIntegrations",
        &[sid],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn openapi_document_describes_the_seed_and_sunshine_routes() {
    let app = spawn_app().await;
    let answer = send(&app, Method::GET, "/openapi.json", &[], "").await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    assert!(
        document["openapi"]
            .as_str()
            .expect("openapi")
            .starts_with("3.1")
    );
    for path in [
        "/integrations/{integration}/keys",
        "/integrations/{integration}/keys/{key_id}",
        "/configure",
        "/configureSettings/{client_id}",
        "/setUserCredentials/{client_id}",
        "/health/{client_id}",
        "/v2/apps/{appId}/integrations/{integrationId}/keys",
        "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
}

/// The HTTP routes are throttled exactly as gRPC: 300 wrong partner-key
/// secrets for one key id in flight at once, through Sunshine's Basic
/// form, cost at most the key id's burst in argon2.
#[tokio::test]
async fn a_crowd_of_wrong_secrets_over_http_costs_at_most_the_burst() {
    let app = spawn_app().await;
    let (id, secret) = split_key(&app.partner_key);
    let runs = || {
        let counts = app.state.hasher.counts();
        counts.honest_runs + counts.suspect_runs
    };
    let before = runs();
    let wrong = basic(id, &"B".repeat(secret.len()));
    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (addr, wrong) = (app.http_addr, wrong.clone());
        crowd.spawn(async move {
            send_to(
                addr,
                Method::GET,
                "/v2/apps/a/integrations/learner-activity/keys",
                &[("authorization", &wrong)],
                "",
            )
            .await
        });
    }
    let answers = crowd.join_all().await;
    for answer in &answers {
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&answer.status),
            "{} {}",
            answer.status,
            answer.text
        );
        assert!(answer.json()["errors"][0]["code"].is_string());
    }
    let argon2_runs = runs() - before;
    let burst = u64::from(
        latchkey::security::throttle::ThrottleSettings::default()
            .per_key
            .burst,
    );
    assert!(
        argon2_runs <= burst + 1,
        "{argon2_runs} argon2 runs for one key id (burst {burst})"
    );
}

/// The peer of a refused seed call, as its audit event records it.
async fn refused_call_peer(app: &TestApp, forwarded_for: &str) -> String {
    let refused = send(
        app,
        Method::GET,
        "/integrations/learner-activity/keys",
        &[("x-forwarded-for", forwarded_for)],
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let events = latchkey::grpc::proto::v1::audit_service_client::AuditServiceClient::new(
        app.channel().await,
    )
    .list_audit_events(app.as_partner(latchkey::grpc::proto::v1::ListAuditEventsRequest::default()))
    .await
    .expect("audit events")
    .into_inner()
    .events;
    let refusal = events
        .iter()
        .find(|e| e.outcome == latchkey::grpc::proto::v1::AuditOutcome::Failure as i32)
        .expect("the refusal is audited");
    refusal.peer.clone()
}

#[tokio::test]
async fn x_forwarded_for_names_the_caller_only_from_trusted_peers() {
    let untrusting = spawn_app().await;
    assert_eq!(
        refused_call_peer(&untrusting, "198.51.100.7").await,
        "127.0.0.1"
    );
    let trusting = spawn_app_with(|s| {
        s.trusted_peers =
            latchkey::security::callers::TrustedPeers::parse("127.0.0.1").expect("CIDR");
    })
    .await;
    assert_eq!(
        refused_call_peer(&trusting, "203.0.113.1, 198.51.100.7").await,
        "198.51.100.7"
    );
}

#[tokio::test]
async fn healthz_is_the_readiness_grpc_probes_see() {
    let app = spawn_app().await;
    let ready = send(&app, Method::GET, "/healthz", &[], "").await;
    assert_eq!(
        (ready.status, ready.json()),
        (StatusCode::OK, json!({"status": "SERVING"}))
    );
}

/// A server process at trace level, driven over every HTTP dialect with
/// keys, user API keys and credentials: none of them is in its log.
#[tokio::test(flavor = "multi_thread")]
async fn http_calls_log_no_secret_at_trace_level() {
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("reserve a port")
        .local_addr()
        .expect("port")
        .port();
    let http_listen = format!("127.0.0.1:{http_port}");
    let (_dir, _db, server, _addr, partner_key) =
        crate::operations::start(&["--http-listen", &http_listen]).await;
    let http: std::net::SocketAddr = http_listen.parse().expect("address");
    let ready = || async {
        let answer = send_to(http, Method::GET, "/healthz", &[], "").await;
        (answer.status == StatusCode::OK).then_some(())
    };
    eventually(
        std::time::Duration::from_secs(30),
        "the HTTP listener",
        ready,
    )
    .await;

    let sid = ("sid", partner_key.as_str());
    let seed = send_to(
        http,
        Method::POST,
        "/integrations/learner-activity/keys",
        &[sid, JSON],
        "{}",
    )
    .await;
    let api_key = seed.json()["apiKey"].as_str().expect("apiKey").to_owned();
    let (id, rest) = split_key(&partner_key);
    let sunshine_auth = basic(id, rest);
    let sunshine = send_to(
        http,
        Method::POST,
        "/v2/apps/a/integrations/learner-activity/keys",
        &[("authorization", &sunshine_auth), JSON],
        "{}",
    )
    .await;
    let sunshine_secret = sunshine.json()["key"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let user_key = "http-user-key-5e4d3c2b1a09";
    let lb_key = "http-lb-key-0f1e2d3c4b5a";
    let configured = send_to(
        http,
        Method::POST,
        "/configure",
        &[sid, JSON],
        json!({
            "ClientId": "acme",
            "ClientCredentials": {
                "UserApiKeys": [{"user": "ops", "api_key": user_key, "scope": "SYSTEM"}],
                "LbApiKeyOwner": "owner",
                "LbApiKey": lb_key
            }
        })
        .to_string(),
    )
    .await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.text
    );
    let wrong_user = basic("ops", "not-the-user-key-123456");
    let wrong_partner = basic(id, &"C".repeat(rest.len()));
    for (path, auth) in [
        ("/health/acme", &wrong_user),
        (
            "/v2/apps/a/integrations/learner-activity/keys",
            &wrong_partner,
        ),
    ] {
        let refused = send_to(http, Method::GET, path, &[("authorization", auth)], "").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    let verified = send_to(
        http,
        Method::POST,
        "/latchkey.v1.IntegrationKeysService/VerifyIntegrationKey",
        &[JSON],
        json!({"apiKey": api_key, "endpoint": "course.v1.CourseService/GetOutline"}).to_string(),
    )
    .await;
    assert_eq!(verified.json()["decision"], "DECISION_ALLOWED");

    // The whole log, up to the server's last line, is scanned.
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        log.lines().filter(|l| l.contains("call finished")).count() >= 7,
        "every HTTP call is a logged call"
    );
    for secret in [
        partner_key.as_str(),
        &partner_key[21..],
        &api_key,
        &api_key[21..],
        &sunshine_secret,
        user_key,
        lb_key,
        "not-the-user-key-123456",
        &"C".repeat(rest.len()),
    ] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
}
