//! Hostile input over the wire. Every RPC of every latchkey.v1 service gets
//! empty, huge and strange strings in each string field, bytes that are not
//! UTF-8 in its credential headers, messages over the server's size limit,
//! absurd page sizes, forged page tokens, unknown enum values, well-formed
//! keys nobody issued and keys of the wrong kind. Every answer must be a
//! clean status (never INTERNAL or UNKNOWN, nor a broken connection), and
//! afterwards the server must still serve a normal create + verify.
//!
//! A body that is not protobuf, or over the size limit, never reaches a
//! handler: tonic answers it, and latchkey recodes tonic's INTERNAL and
//! OUT_OF_RANGE to INVALID_ARGUMENT and RESOURCE_EXHAUSTED. A header block
//! over HTTP/2's header list limit is refused by h2 (HTTP 431, which a tonic
//! client reports as UNKNOWN): that answer is pinned exactly and reported
//! apart (`SetAside`), not counted as an offense.
//!
//! Requests go through a raw-bytes codec, so the test can also send bytes a
//! generated client would refuse to encode (an oversized or malformed body).
//! `HOSTILE_TRACE=1` prints every call's case and answer.
//!
//! The cases are split by concern, one module each, all run against one
//! server in the order below (later cases rely on the fixture key that
//! `enums` puts back): `fields` (strings in every field, oversized and
//! malformed bodies), `credentials` (hostile headers, audited refusals),
//! `pages` (page sizes and tokens), `enums` (enums, times, durations, field
//! masks, repeated entries) and `keys` (unknown and wrong-kind keys).
//! `rpcs` holds the table of RPCs and the fixture, `values` the hostile
//! values, and `wire` the raw codec and the `Barrage` that sends and judges.

mod credentials;
mod enums;
mod fields;
mod keys;
mod pages;
mod rpcs;
mod values;
mod wire;

use std::{collections::BTreeMap, time::Duration};

use latchkey::grpc::proto::v1::{
    self as pb, integration_keys_service_client::IntegrationKeysServiceClient,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{spawn_app, with_sid};
use rpcs::{fixture, rpcs};
use wire::Barrage;

/// src/server.rs sets no `max_decoding_message_size`, so the server takes
/// tonic's default: 4 MiB per request message.
const SERVER_MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A "maximal" string: large, yet several fit in one message under the limit.
const HUGE: usize = 1024 * 1024;

/// Hang detection only (a call that never answers), not a speed check.
const NO_ANSWER_AFTER: Duration = Duration::from_secs(120);

const CLIENT_ID: &str = "acme";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
const VIEWER_KEY: &str = "viewer-key-0123456789abcdef";
const OUTLINE: &str = "course.v1.CourseService/GetOutline";

/// Codes that are a clean, deliberate answer to bad input (a message over
/// the size limit has its own expectation, `TOO_BIG`).
const CLEAN: &[Code] = &[
    Code::Ok,
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::Unauthenticated,
    Code::FailedPrecondition,
];

/// A request over the size limit: RESOURCE_EXHAUSTED, naming the limit
/// (tonic says OUT_OF_RANGE; latchkey recodes it, see `wire_errors`).
const TOO_BIG: &[Code] = &[Code::ResourceExhausted];

/// Status messages that the client made up because the answer never
/// arrived as a gRPC status (a reset stream, a refused header block, a lost
/// connection): whatever their code, not a clean answer.
const TRANSPORT_FAILURES: &[&str] = &[
    "h2 protocol error",
    "transport error",
    "client not ready",
    "error trying to connect",
    "connection",
];

#[tokio::test]
async fn hostile_input_gets_clean_answers_and_leaves_the_server_healthy() {
    let app = spawn_app().await;
    let fx = fixture(&app).await;
    let mut b = Barrage::new(&app, fx);

    // Every RPC is covered by the table, and the baselines are valid.
    assert_eq!(rpcs().len(), 18);
    fields::strings_in_every_field(&mut b).await;
    credentials::hostile_credentials(&mut b).await;
    fields::oversized_messages(&mut b).await;
    pages::pages_and_tokens(&mut b).await;
    enums::enums_times_and_masks(&mut b).await;
    keys::unknown_and_wrong_kind_keys(&mut b).await;
    fields::malformed_bodies(&mut b).await;
    credentials::refusals_are_audited(&mut b).await;

    // The server is unharmed: the probe says SERVING, and a new key can be
    // created and verified.
    let status = HealthClient::new(app.channel().await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("grpc.health.v1 Check")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    let verdict = app.verify(&api_key, OUTLINE).await;
    assert_eq!(verdict.decision(), pb::Decision::Allowed, "{verdict:?}");
    assert_eq!(verdict.key_id, key_id);
    let mut keys = IntegrationKeysServiceClient::new(app.channel().await);
    keys.get_integration_key(with_sid(
        pb::GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id,
        },
        &app.partner_key,
    ))
    .await
    .expect("the new key reads back");

    eprintln!(
        "hostile: {} calls; codes seen: {:?}; longest error message: {} bytes ({})",
        b.calls, b.codes, b.longest_message.0, b.longest_message.1
    );
    for (why, answers) in &b.set_aside {
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for answer in answers {
            *codes.entry(format!("{:?}", answer.code)).or_default() += 1;
        }
        eprintln!(
            "hostile: set aside, {why:?}: {} calls answered {codes:?} below latchkey, e.g. {:?}",
            answers.len(),
            answers.first()
        );
    }
    let dump: Vec<String> = b
        .offenses
        .iter()
        .map(|o| format!("  {} | {} | {:?} | {}", o.rpc, o.case, o.code, o.message))
        .collect();
    assert!(
        b.offenses.is_empty(),
        "{} of {} hostile calls got an unclean answer (rpc | case | code | message):\n{}",
        b.offenses.len(),
        b.calls,
        dump.join("\n")
    );
}
