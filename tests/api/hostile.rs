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

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use latchkey::{
    domain::{
        ApiKey, KeyKind,
        key_format::{KEY_ID_RANDOM_LEN, KEY_LEN, SECRET_LEN, checksum},
    },
    grpc::proto::v1::{
        self as pb, client_configuration_service_client::ClientConfigurationServiceClient,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
};
use prost::{
    Message,
    bytes::{Buf, BufMut},
};
use prost_types::{Duration as PbDuration, FieldMask, Timestamp};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{TestApp, spawn_app, with_sid};

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

// ---------------------------------------------------------------------------
// A raw-bytes gRPC codec: the body is sent and received exactly as given.

#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut body = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut body);
        Ok(Some(body))
    }
}

// ---------------------------------------------------------------------------
// The RPCs, each with a baseline request whose string fields can be swapped.

/// Who an RPC accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// A partner key (IntegrationKeysService, Audit, CheckServiceHealth).
    Partner,
    /// A partner key or a user of the client (ClientConfiguration, client
    /// health).
    PartnerOrUser,
    /// No credential (the two Verify calls).
    Nothing,
}

/// The values of the fixture's objects that baseline requests refer to.
struct Fixture {
    key_id: String,
    api_key: String,
}

/// `fill(field, baseline)`: the value to put in a string field.
type Fill<'a> = &'a dyn Fn(&str, &str) -> String;

struct Rpc {
    /// `Service/Method` within `latchkey.v1`.
    name: &'static str,
    needs: Needs,
    /// The encoded request, every string field given by `fill`. With the
    /// identity fill, a valid request about the fixture's objects.
    build: fn(&Fixture, Fill) -> Vec<u8>,
}

impl Rpc {
    fn baseline(&self, fx: &Fixture) -> Vec<u8> {
        (self.build)(fx, &|_, base| base.to_owned())
    }

    /// The names of the request's string fields, in the order `build` fills
    /// them (found by building once with a recording fill).
    fn string_fields(&self, fx: &Fixture) -> Vec<String> {
        let seen = std::cell::RefCell::new(Vec::new());
        (self.build)(fx, &|field, base| {
            seen.borrow_mut().push(field.to_owned());
            base.to_owned()
        });
        seen.into_inner()
    }

    fn is_client_scoped(&self) -> bool {
        self.needs == Needs::PartnerOrUser
    }
}

fn rpcs() -> Vec<Rpc> {
    vec![
        Rpc {
            name: "IntegrationKeysService/CreateIntegrationKey",
            needs: Needs::Partner,
            build: |_, f| {
                pb::CreateIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    display_name: f("display_name", "hostile test"),
                    expire_time: None,
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/GetIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::GetIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", &fx.key_id),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/ListIntegrationKeys",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListIntegrationKeysRequest {
                    integration: f("integration", "learner-activity"),
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/DeleteIntegrationKey",
            needs: Needs::Partner,
            // An id nobody holds: a hostile value in the other field must
            // not delete the fixture's key by accident.
            build: |_, f| {
                pb::DeleteIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", "lki_0000000000000000"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/VerifyIntegrationKey",
            needs: Needs::Nothing,
            build: |fx, f| {
                pb::VerifyIntegrationKeyRequest {
                    api_key: f("api_key", &fx.api_key),
                    endpoint: f("endpoint", OUTLINE),
                    ..Default::default()
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/UpdateIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::UpdateIntegrationKeyRequest {
                    key: Some(pb::IntegrationKey {
                        key_id: f("key.key_id", &fx.key_id),
                        integration: f("key.integration", "learner-activity"),
                        display_name: f("key.display_name", "renamed"),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec![f("update_mask.paths[0]", "display_name")],
                    }),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/RollIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::RollIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", &fx.key_id),
                    grace_period: None,
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/ListIntegrations",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListIntegrationsRequest {
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/GetIntegration",
            needs: Needs::Partner,
            build: |_, f| {
                pb::GetIntegrationRequest {
                    name: f("name", "learner-activity"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/Configure",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                // A new client id each time, so that a request whose hostile
                // values are acceptable creates a client (storing them)
                // rather than stopping at ALREADY_EXISTS.
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let fresh = format!("hostile-{}", NEXT.fetch_add(1, Ordering::Relaxed));
                pb::ConfigureRequest {
                    client_id: f("client_id", &fresh),
                    client_credentials: Some(pb::ClientCredentials {
                        user_api_keys: vec![pb::UserApiKey {
                            user: f("client_credentials.user_api_keys[0].user", "root"),
                            api_key: f(
                                "client_credentials.user_api_keys[0].api_key",
                                "root-key-0123456789abcdef",
                            ),
                            scope: pb::Scope::System.into(),
                        }],
                        lb_api_key_owner: f("client_credentials.lb_api_key_owner", "owner"),
                        lb_api_key: f("client_credentials.lb_api_key", "lb-secret"),
                    }),
                    client_settings: [(
                        f("client_settings.<key>", "Color"),
                        f("client_settings.<value>", "blue"),
                    )]
                    .into(),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/ConfigureSettings",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::ConfigureSettingsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    settings: vec![pb::Setting {
                        name: f("settings[0].name", "ClientSettings.Color"),
                        value: f("settings[0].value", "red"),
                        secret: false,
                    }],
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/SetUserCredentials",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::SetUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "hostile-user"),
                    api_key: f("api_key", "hostile-user-key-0123456789"),
                    scope: pb::Scope::Client.into(),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/DeleteUserCredentials",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::DeleteUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "hostile-user"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/GetClientConfiguration",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::GetClientConfigurationRequest {
                    client_id: f("client_id", CLIENT_ID),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/VerifyUserCredentials",
            needs: Needs::Nothing,
            build: |_, f| {
                pb::VerifyUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "admin"),
                    api_key: f("api_key", ADMIN_KEY),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "HealthService/CheckClientHealth",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::CheckClientHealthRequest {
                    client_id: f("client_id", CLIENT_ID),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "HealthService/CheckServiceHealth",
            needs: Needs::Partner,
            build: |_, _| pb::CheckServiceHealthRequest {}.encode_to_vec(),
        },
        Rpc {
            name: "AuditService/ListAuditEvents",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListAuditEventsRequest {
                    target: f("target", ""),
                    start_time: None,
                    end_time: None,
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
    ]
}

// ---------------------------------------------------------------------------
// Hostile values.

/// Strings that are odd but small: several fit in one request.
fn small_hostile_strings() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("nul", "learner\0activity".into()),
        ("only-nul", "\0".into()),
        (
            "control-chars",
            "\u{1}\u{7}\u{8}\t\n\r\u{1b}[31m\u{7f}\u{85}".into(),
        ),
        ("emoji", "🔑🦀👩‍👩‍👧‍👦".into()),
        (
            "rtl-marks",
            "\u{202e}lki_evil\u{202c}\u{200f}\u{2067}x\u{2069}".into(),
        ),
        ("bom-zero-width", "\u{feff}\u{200b}learner-activity".into()),
        ("sql", "' OR 1=1; DROP TABLE integration_keys; --".into()),
        ("format", "%s%n%x{0}{}\\u0000${jndi:x}".into()),
        ("256-ascii", "a".repeat(256)),
        ("64-two-byte-chars", "é".repeat(64)),
        ("64k", "k".repeat(64 * 1024)),
    ]
}

/// Maximal strings: one such field still fits under the message limit.
fn huge_hostile_strings() -> Vec<(&'static str, String)> {
    let mixed_unit = "\0\u{1}🔑\u{202e}é\u{200f}";
    vec![
        ("1MiB-ascii", "A".repeat(HUGE)),
        ("1MiB-mixed", mixed_unit.repeat(HUGE / mixed_unit.len())),
    ]
}

/// A well-formed key (right shape and checksum) of `prefix` that nobody
/// issued.
fn well_formed_key(prefix: &str, id_random: &str, secret: &str) -> String {
    assert_eq!(id_random.len(), KEY_ID_RANDOM_LEN);
    assert_eq!(secret.len(), SECRET_LEN);
    let body = format!("{prefix}_{id_random}_{secret}");
    let key = format!("{body}{}", checksum(body.as_bytes()));
    assert_eq!(key.len(), KEY_LEN);
    key
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    getrandom::fill(&mut bytes).expect("random");
    bytes
}

/// The same "random" bytes every run (xorshift), so a body that must not
/// parse never parses by chance.
fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

fn timestamp(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn hostile_timestamps() -> Vec<(&'static str, Timestamp)> {
    vec![
        ("i64-max-seconds", timestamp(i64::MAX, 0)),
        ("i64-min-seconds", timestamp(i64::MIN, 0)),
        ("negative-nanos", timestamp(4_000_000_000, -1)),
        ("nanos-overflow", timestamp(4_000_000_000, i32::MAX)),
        ("epoch", timestamp(0, 0)),
        ("year-9999-end", timestamp(253_402_300_799, 999_999_999)),
        ("year-10000", timestamp(253_402_300_800, 0)),
    ]
}

// ---------------------------------------------------------------------------
// Credentials.

fn ascii(bytes: &[u8]) -> AsciiMetadataValue {
    AsciiMetadataValue::try_from(bytes).expect("a header value (no controls)")
}

fn metadata(headers: &[(&'static str, AsciiMetadataValue)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        map.append(*name, value.clone());
    }
    map
}

fn basic_token(user_and_key: &[u8]) -> AsciiMetadataValue {
    ascii(format!("Basic {}", STANDARD.encode(user_and_key)).as_bytes())
}

// ---------------------------------------------------------------------------
// The barrage: sends, classifies and remembers every answer.

/// Hostile input that never reaches latchkey's handlers, answered by the
/// libraries below them with a code the rest of this test refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SetAside {
    /// A header block over the server's HTTP/2 header list limit (hyper's
    /// default, 16 KiB): h2 answers HTTP 431 without a grpc-status, which a
    /// tonic client reports as UNKNOWN; far over it, h2 sends GOAWAY
    /// ENHANCE_YOUR_CALM, which a tonic client reports as RESOURCE_EXHAUSTED.
    HeaderListTooLarge,
}

#[derive(Debug)]
struct Offense {
    rpc: String,
    case: String,
    code: Code,
    message: String,
}

struct Barrage<'a> {
    app: &'a TestApp,
    fx: Fixture,
    partner: MetadataMap,
    /// A SYSTEM user of the fixture client (Basic).
    admin: MetadataMap,
    /// A CLIENT user of the fixture client (Basic).
    viewer: MetadataMap,
    calls: usize,
    codes: BTreeMap<String, usize>,
    offenses: Vec<Offense>,
    /// Answers made by tonic or h2 before latchkey's code runs, with a code
    /// this test would otherwise refuse. Reported, not counted as offenses.
    set_aside: BTreeMap<SetAside, Vec<Offense>>,
    longest_message: (usize, String),
    secrets: Vec<String>,
}

impl<'a> Barrage<'a> {
    /// Sends `body` to `rpc` with `metadata` on a connection of its own (so a
    /// call that broke its connection is blamed on itself alone) and checks
    /// the answer is in `expect` (CLEAN if empty). Returns the response body
    /// of an OK answer.
    async fn send(
        &mut self,
        rpc: &str,
        case: impl Into<String>,
        metadata: &MetadataMap,
        body: Vec<u8>,
        expect: &[Code],
    ) -> Option<Vec<u8>> {
        let case = case.into();
        let (code, message, response) = self.exchange(rpc, &case, metadata, body).await;
        let expect = if expect.is_empty() { CLEAN } else { expect };
        let echoed = self
            .secrets
            .iter()
            .any(|secret| !secret.is_empty() && message.contains(secret.as_str()));
        let transport = TRANSPORT_FAILURES
            .iter()
            .any(|prefix| message.starts_with(prefix));
        let unnamed_limit = expect == TOO_BIG
            && code != Code::Ok
            && !message.contains(&SERVER_MAX_MESSAGE.to_string());
        let problem = if echoed {
            Some("the message echoes a secret".to_owned())
        } else if transport {
            Some("no gRPC status reached the client".to_owned())
        } else if !expect.contains(&code) {
            Some(format!("expected one of {expect:?}"))
        } else if unnamed_limit {
            Some("the message does not name the size limit".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.offenses.push(Offense {
                rpc: rpc.to_owned(),
                case: format!("{case} ({problem})"),
                code,
                message: shorten(&message),
            });
        }
        response
    }

    /// One call on a connection of its own, counted; its code, message and
    /// (if OK) response body.
    async fn exchange(
        &mut self,
        rpc: &str,
        case: &str,
        metadata: &MetadataMap,
        body: Vec<u8>,
    ) -> (Code, String, Option<Vec<u8>>) {
        self.calls += 1;
        let outcome = match tokio::time::timeout(
            NO_ANSWER_AFTER,
            raw_call(self.app, rpc, metadata.clone(), body),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(Status::deadline_exceeded("no answer (hang detection)")),
        };
        let (code, message, response) = match outcome {
            Ok(response) => (Code::Ok, String::new(), Some(response)),
            Err(status) => (status.code(), status.message().to_owned(), None),
        };
        *self.codes.entry(format!("{code:?}")).or_default() += 1;
        if std::env::var_os("HOSTILE_TRACE").is_some() {
            eprintln!("TRACE | {rpc} | {case} | {code:?} | {}", shorten(&message));
        }
        if message.len() > self.longest_message.0 {
            self.longest_message = (message.len(), format!("{rpc} / {case}"));
        }
        (code, message, response)
    }

    /// A call that latchkey's own code never sees, answered by a library
    /// below it (see `SetAside`): the answer must be exactly one of
    /// `accepted` (a code and the start of its message), and is set aside
    /// for the report instead of counted as an offense.
    async fn send_set_aside(
        &mut self,
        why: SetAside,
        rpc: &str,
        case: &str,
        metadata: &MetadataMap,
        body: Vec<u8>,
        accepted: &[(Code, &str)],
    ) {
        let (code, message, _) = self.exchange(rpc, case, metadata, body).await;
        let offense = Offense {
            rpc: rpc.to_owned(),
            case: case.to_owned(),
            code,
            message: shorten(&message),
        };
        if accepted
            .iter()
            .any(|(c, start)| *c == code && message.starts_with(start))
        {
            self.set_aside.entry(why).or_default().push(offense);
        } else {
            self.offenses.push(Offense {
                case: format!("{case} (expected one of {accepted:?})"),
                ..offense
            });
        }
    }

    /// The credential an RPC needs: the partner key, or none.
    fn credential_for(&self, rpc: &Rpc) -> MetadataMap {
        match rpc.needs {
            Needs::Nothing => MetadataMap::new(),
            Needs::Partner | Needs::PartnerOrUser => self.partner.clone(),
        }
    }

    /// Records `offense` if `ok` is false.
    fn require(&mut self, ok: bool, rpc: &str, case: &str, what: String) {
        if !ok {
            self.offenses.push(Offense {
                rpc: rpc.to_owned(),
                case: case.to_owned(),
                code: Code::Ok,
                message: what,
            });
        }
    }
}

fn shorten(message: &str) -> String {
    if message.len() <= 300 {
        return message.to_owned();
    }
    let mut end = 300;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &message[..end], message.len())
}

async fn raw_call(
    app: &TestApp,
    rpc: &str,
    metadata: MetadataMap,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let channel: Channel = app.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("client not ready: {e}")))?;
    let path = PathAndQuery::from_str(&format!("/latchkey.v1.{rpc}")).expect("path");
    let mut request = Request::new(body);
    *request.metadata_mut() = metadata;
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

// ---------------------------------------------------------------------------
// Set-up: a key, a configured client, a few events.

async fn fixture(app: &TestApp) -> Fixture {
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    // A second key, so a one-key page of learner-activity has a next page.
    app.create_key("learner-activity", None).await;
    app.create_key("sandbox", None).await;
    ClientConfigurationServiceClient::new(app.channel().await)
        .configure(app.as_partner(pb::ConfigureRequest {
            client_id: CLIENT_ID.into(),
            client_credentials: Some(pb::ClientCredentials {
                user_api_keys: vec![
                    pb::UserApiKey {
                        user: "admin".into(),
                        api_key: ADMIN_KEY.into(),
                        scope: pb::Scope::System.into(),
                    },
                    pb::UserApiKey {
                        user: "viewer".into(),
                        api_key: VIEWER_KEY.into(),
                        scope: pb::Scope::Client.into(),
                    },
                ],
                lb_api_key_owner: "owner".into(),
                lb_api_key: "lb-secret-value".into(),
            }),
            client_settings: Default::default(),
        }))
        .await
        .expect("configure the fixture client");
    Fixture { key_id, api_key }
}

// ---------------------------------------------------------------------------
// The cases.

/// Every string field of every RPC: each hostile string alone in each field
/// (the rest valid, so the value travels as deep as it can), and each small
/// one in all fields at once. Client-scoped RPCs get it all three times: as
/// the partner, as a SYSTEM user and as a CLIENT user of the client (Basic),
/// since users are authenticated before the request is validated, and a
/// CLIENT user is refused (and audited) with the raw request in hand.
async fn strings_in_every_field(b: &mut Barrage<'_>) {
    let small = small_hostile_strings();
    let huge = huge_hostile_strings();
    for rpc in rpcs() {
        let mut callers = vec![("", b.credential_for(&rpc))];
        if rpc.is_client_scoped() {
            callers.push((" as user", b.admin.clone()));
            callers.push((" as CLIENT user", b.viewer.clone()));
        }
        let fields = rpc.string_fields(&b.fx);
        for (who, credential) in &callers {
            for (label, value) in small.iter().chain(&huge) {
                for field in &fields {
                    let body = (rpc.build)(&b.fx, &|f, base| {
                        if f == field {
                            value.clone()
                        } else {
                            base.to_owned()
                        }
                    });
                    let case = format!("{field} = {label}{who}");
                    b.send(rpc.name, case, credential, body, &[]).await;
                }
            }
            if fields.len() > 1 {
                for (label, value) in &small {
                    let body = (rpc.build)(&b.fx, &|_, _| value.clone());
                    let case = format!("every string field = {label}{who}");
                    b.send(rpc.name, case, credential, body, &[]).await;
                }
            }
        }
    }
}

/// Credential headers that are not UTF-8, not base64, not a key, or a key
/// of the wrong kind, on every RPC.
async fn hostile_credentials(b: &mut Barrage<'_>) {
    let partner = b.app.partner_key.clone();
    let mut tampered = partner.clone().into_bytes();
    tampered[30] = 0xff;
    let admin_no_colon = format!("admin{ADMIN_KEY}");
    let cases: Vec<(&str, MetadataMap)> = vec![
        (
            "sid: binary, not UTF-8",
            metadata(&[("sid", ascii(b"lkp_\xff\xfe\xfd\x80\xc3\x28\xe2\x82"))]),
        ),
        (
            "sid: the partner key with one byte 0xff",
            metadata(&[("sid", ascii(&tampered))]),
        ),
        ("sid: empty", metadata(&[("sid", ascii(b""))])),
        (
            "sid: 8 KiB",
            metadata(&[("sid", ascii("A".repeat(8 * 1024).as_bytes()))]),
        ),
        (
            "sid: the integration key (wrong kind)",
            metadata(&[("sid", ascii(b.fx.api_key.as_bytes()))]),
        ),
        (
            "two sid headers: bad then good",
            metadata(&[
                ("sid", ascii(b"garbage")),
                ("sid", ascii(partner.as_bytes())),
            ]),
        ),
        ("sid-bin: the partner key as a binary header", {
            let mut map = MetadataMap::new();
            map.insert_bin(
                "sid-bin",
                BinaryMetadataValue::from_bytes(partner.as_bytes()),
            );
            map
        }),
        (
            "authorization: Bearer + binary",
            metadata(&[("authorization", ascii(b"Bearer \xff\xfe\x80\x81"))]),
        ),
        (
            "authorization: Bearer + the integration key (wrong kind)",
            metadata(&[(
                "authorization",
                ascii(format!("Bearer {}", b.fx.api_key).as_bytes()),
            )]),
        ),
        (
            "authorization: Bearer alone",
            metadata(&[("authorization", ascii(b"Bearer"))]),
        ),
        (
            "authorization: Basic + raw binary",
            metadata(&[("authorization", ascii(b"Basic \xc3\x28\xff:\xfe"))]),
        ),
        (
            "authorization: Basic base64(invalid UTF-8)",
            metadata(&[("authorization", basic_token(b"\xff\xfe\xc3\x28:\x80\x81"))]),
        ),
        (
            "authorization: Basic base64(user without a colon)",
            metadata(&[("authorization", basic_token(admin_no_colon.as_bytes()))]),
        ),
        (
            "authorization: Basic base64(\":\")",
            metadata(&[("authorization", basic_token(b":"))]),
        ),
        (
            "authorization: Basic base64(NUL user:key)",
            metadata(&[("authorization", basic_token(b"ad\0min:\0"))]),
        ),
        (
            "authorization: Basic base64(1 KiB user@acme:key)",
            metadata(&[(
                "authorization",
                basic_token(format!("{}@acme:{ADMIN_KEY}", "u".repeat(1024)).as_bytes()),
            )]),
        ),
        (
            "authorization: Basic base64(admin@<NUL client>:key)",
            metadata(&[(
                "authorization",
                basic_token(format!("admin@ac\0me:{ADMIN_KEY}").as_bytes()),
            )]),
        ),
        (
            "authorization: Basic base64(admin:<integration key>)",
            metadata(&[(
                "authorization",
                basic_token(format!("admin:{}", b.fx.api_key).as_bytes()),
            )]),
        ),
        (
            "authorization: Basic + not base64",
            metadata(&[("authorization", ascii(b"Basic !!!not*base64==="))]),
        ),
        (
            "authorization: Basic alone",
            metadata(&[("authorization", ascii(b"Basic"))]),
        ),
        (
            "authorization: Digest",
            metadata(&[("authorization", ascii(b"Digest username=\"admin\""))]),
        ),
    ];
    for rpc in rpcs() {
        let body = rpc.baseline(&b.fx);
        for (case, credential) in &cases {
            // Nothing here is a valid credential: calls that need one are
            // refused as the contract says; the rest answer normally.
            let expect: &[Code] = match rpc.needs {
                Needs::Nothing => &[Code::Ok],
                _ if case.starts_with("two sid") => &[Code::Unauthenticated, Code::Ok],
                _ => &[Code::Unauthenticated],
            };
            b.send(rpc.name, *case, credential, body.clone(), expect)
                .await;
        }
        // A valid credential next to a garbage one still works: `sid` wins.
        let mut both = b.credential_for(&rpc);
        both.insert("authorization", ascii(b"Basic \xff\xfe"));
        b.send(
            rpc.name,
            "valid sid + binary authorization",
            &both,
            body.clone(),
            &[],
        )
        .await;
        // Header blocks over the server's HTTP/2 limit never reach tonic.
        for (case, size, accepted) in [
            (
                "sid: 20 KiB (over the 16 KiB header list limit)",
                20 * 1024,
                (
                    Code::Unknown,
                    "grpc-status header missing, mapped from HTTP status code 431",
                ),
            ),
            (
                "sid: 64 KiB (far over the header list limit)",
                64 * 1024,
                (Code::ResourceExhausted, "h2 protocol error"),
            ),
        ] {
            let credential = metadata(&[("sid", ascii("A".repeat(size).as_bytes()))]);
            b.send_set_aside(
                SetAside::HeaderListTooLarge,
                rpc.name,
                case,
                &credential,
                body.clone(),
                &[accepted],
            )
            .await;
        }
    }
}

/// Messages over the server's limit are RESOURCE_EXHAUSTED; a message of
/// exactly the limit is read (and then judged on its content).
async fn oversized_messages(b: &mut Barrage<'_>) {
    for rpc in rpcs() {
        let credential = b.credential_for(&rpc);
        let baseline = rpc.baseline(&b.fx);
        let fields = rpc.string_fields(&b.fx);
        // The first string field made big enough to pass the limit.
        if let Some(field) = fields.first() {
            let body = (rpc.build)(&b.fx, &|f, base| {
                if f == field {
                    "x".repeat(SERVER_MAX_MESSAGE + 1)
                } else {
                    base.to_owned()
                }
            });
            assert!(body.len() > SERVER_MAX_MESSAGE);
            let case = format!("{field} = limit + 1 bytes");
            b.send(rpc.name, case, &credential, body, TOO_BIG).await;
        }
        // The baseline plus an unknown field: one byte over, and exactly at
        // the limit.
        for (label, size, expect) in [
            ("limit + 1", SERVER_MAX_MESSAGE + 1, TOO_BIG),
            ("limit + 1 MiB", SERVER_MAX_MESSAGE + HUGE, TOO_BIG),
            ("exactly the limit", SERVER_MAX_MESSAGE, &[][..]),
        ] {
            let body = with_unknown_field(&baseline, size);
            assert_eq!(body.len(), size);
            let case = format!("unknown field, message of {label}");
            b.send(rpc.name, case, &credential, body, expect).await;
        }
    }
    // The same through generated clients, which encode it themselves once
    // their own encoding limit is raised.
    let mut keys = IntegrationKeysServiceClient::new(b.app.channel().await)
        .max_encoding_message_size(usize::MAX);
    let status = keys
        .create_integration_key(b.app.as_partner(pb::CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            display_name: "d".repeat(SERVER_MAX_MESSAGE + 1024),
            expire_time: None,
        }))
        .await
        .expect_err("an oversized message");
    b.calls += 1;
    *b.codes.entry(format!("{:?}", status.code())).or_default() += 1;
    b.require(
        TOO_BIG.contains(&status.code())
            && status.message().contains(&SERVER_MAX_MESSAGE.to_string()),
        "IntegrationKeysService/CreateIntegrationKey",
        "generated client, display_name of limit + 1 KiB",
        format!("expected {TOO_BIG:?} naming the limit, got {status:?}"),
    );
    let mut config = ClientConfigurationServiceClient::new(b.app.channel().await)
        .max_encoding_message_size(usize::MAX);
    let status = config
        .verify_user_credentials(pb::VerifyUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user: "admin".into(),
            api_key: "k".repeat(SERVER_MAX_MESSAGE + 1024),
        })
        .await
        .expect_err("an oversized message");
    b.calls += 1;
    *b.codes.entry(format!("{:?}", status.code())).or_default() += 1;
    b.require(
        TOO_BIG.contains(&status.code())
            && status.message().contains(&SERVER_MAX_MESSAGE.to_string()),
        "ClientConfigurationService/VerifyUserCredentials",
        "generated client, api_key of limit + 1 KiB",
        format!("expected {TOO_BIG:?} naming the limit, got {status:?}"),
    );
}

/// `message` followed by an unknown length-delimited field (number 1000)
/// whose payload makes the whole exactly `total` bytes.
fn with_unknown_field(message: &[u8], total: usize) -> Vec<u8> {
    use prost::encoding::{encode_varint, encoded_len_varint};
    const TAG: u64 = (1000 << 3) | 2;
    let fixed = message.len() + encoded_len_varint(TAG);
    let payload = (0..=total - fixed)
        .rev()
        .find(|&p| fixed + encoded_len_varint(p as u64) + p == total)
        .expect("a payload length that makes the total");
    let mut body = message.to_vec();
    encode_varint(TAG, &mut body);
    encode_varint(payload as u64, &mut body);
    body.resize(total, b'u');
    body
}

/// Page sizes of i32::MAX and below zero, and page tokens that are random,
/// tampered, from another list, or huge, on every List call.
async fn pages_and_tokens(b: &mut Barrage<'_>) {
    let partner = b.partner.clone();
    let list_keys = |integration: &str, page_size: i32, page_token: &str| {
        pb::ListIntegrationKeysRequest {
            integration: integration.into(),
            page_size,
            page_token: page_token.into(),
        }
        .encode_to_vec()
    };
    let list_integrations = |page_size: i32, page_token: &str| {
        pb::ListIntegrationsRequest {
            page_size,
            page_token: page_token.into(),
        }
        .encode_to_vec()
    };
    let list_audit = |page_size: i32, page_token: &str| {
        pb::ListAuditEventsRequest {
            page_size,
            page_token: page_token.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    const KEYS: &str = "IntegrationKeysService/ListIntegrationKeys";
    const INTEGRATIONS: &str = "IntegrationKeysService/ListIntegrations";
    const AUDIT: &str = "AuditService/ListAuditEvents";

    for (label, size) in [
        ("i32::MAX", i32::MAX),
        ("1001", 1001),
        ("1", 1),
        ("-1", -1),
        ("i32::MIN", i32::MIN),
    ] {
        let expect: &[Code] = if size < 0 {
            &[Code::InvalidArgument]
        } else {
            &[Code::Ok]
        };
        let case = format!("page_size = {label}");
        for (rpc, body) in [
            (KEYS, list_keys("learner-activity", size, "")),
            (INTEGRATIONS, list_integrations(size, "")),
            (AUDIT, list_audit(size, "")),
        ] {
            b.send(rpc, case.clone(), &partner, body, expect).await;
        }
    }

    // Real tokens, one from each list.
    let token_of = |response: Option<Vec<u8>>, what: &str| -> String {
        let body = response.unwrap_or_else(|| panic!("{what}: a first page"));
        // Every List response has next_page_token as field 2.
        #[derive(Clone, PartialEq, Message)]
        struct Page {
            #[prost(string, tag = "2")]
            next_page_token: String,
        }
        let token = Page::decode(body.as_slice())
            .expect("a page")
            .next_page_token;
        assert!(!token.is_empty(), "{what}: a next page");
        token
    };
    let keys_token = token_of(
        b.send(
            KEYS,
            "page_size = 1 (real)",
            &partner,
            list_keys("learner-activity", 1, ""),
            &[Code::Ok],
        )
        .await,
        "ListIntegrationKeys",
    );
    let integrations_token = token_of(
        b.send(
            INTEGRATIONS,
            "page_size = 1 (real)",
            &partner,
            list_integrations(1, ""),
            &[Code::Ok],
        )
        .await,
        "ListIntegrations",
    );
    let audit_token = token_of(
        b.send(
            AUDIT,
            "page_size = 1 (real)",
            &partner,
            list_audit(1, ""),
            &[Code::Ok],
        )
        .await,
        "ListAuditEvents",
    );
    let decoded_keys_token =
        String::from_utf8(URL_SAFE_NO_PAD.decode(&keys_token).expect("base64")).expect("utf-8");

    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let mut parts: Vec<&str> = decoded_keys_token.split('\n').collect();
    assert_eq!(parts.len(), 4, "kind, integration, create time, key id");
    parts[2] = "99999999999999999999999";
    let tampered_time = parts.join("\n");
    let key_id_like = format!("lki_{}", "A".repeat(KEY_ID_RANDOM_LEN));
    let mut tokens: Vec<(String, String)> = vec![
        (
            "random base64url".into(),
            URL_SAFE_NO_PAD.encode(random_bytes(48)),
        ),
        (
            "random base64 with padding".into(),
            STANDARD.encode(random_bytes(47)),
        ),
        ("not base64".into(), "!!!*%%%\0\u{202e}🔑".into()),
        ("only separators".into(), b64("\n\n\n")),
        (
            "invalid UTF-8 inside".into(),
            URL_SAFE_NO_PAD.encode(b"k\n\xff\xfe\n1\nlki_x"),
        ),
        (
            "the keys token with a tampered time".into(),
            b64(&tampered_time),
        ),
        (
            "keys token, another integration".into(),
            b64(&format!("k\nsandbox\n1\n{key_id_like}")),
        ),
        (
            "keys token, i64::MIN time".into(),
            b64(&format!("k\nlearner-activity\n{}\n{key_id_like}", i64::MIN)),
        ),
        (
            "keys token, i64::MAX time".into(),
            b64(&format!("k\nlearner-activity\n{}\n{key_id_like}", i64::MAX)),
        ),
        (
            "keys token, NUL key id".into(),
            b64("k\nlearner-activity\n1\nlki_\0AAAAAAAAAAAAAAA"),
        ),
        (
            "keys token, an extra part".into(),
            b64(&format!("{decoded_keys_token}\nextra")),
        ),
        (
            "integrations token, NUL name".into(),
            b64("i\nlearner\0activity"),
        ),
        (
            "integrations token, emoji name".into(),
            b64("i\n🔑\u{202e}"),
        ),
        ("integrations token, empty name".into(), b64("i\n")),
        (
            "integrations token, 1 MiB name".into(),
            b64(&format!("i\n{}", "z".repeat(HUGE))),
        ),
        ("audit token, NaN".into(), b64("a\nNaN\n1")),
        (
            "audit token, extremes".into(),
            b64(&format!("a\n{}\n{}", i64::MAX, i64::MIN)),
        ),
        (
            "audit token, overflow".into(),
            b64("a\n99999999999999999999\n1"),
        ),
        ("audit token, float".into(), b64("a\n1e3\n-0.5")),
        ("1 MiB of base64 characters".into(), "A".repeat(HUGE)),
        (
            "1 MiB random base64url".into(),
            URL_SAFE_NO_PAD.encode(random_bytes(HUGE * 3 / 4)),
        ),
    ];
    tokens.push(("a real ListIntegrationKeys token".into(), keys_token));
    tokens.push(("a real ListIntegrations token".into(), integrations_token));
    tokens.push(("a real ListAuditEvents token".into(), audit_token));
    for (label, token) in &tokens {
        let case = format!("page_token = {label}");
        for (rpc, body) in [
            (KEYS, list_keys("learner-activity", 0, token)),
            (KEYS, list_keys("sandbox", 0, token)),
            (INTEGRATIONS, list_integrations(0, token)),
            (AUDIT, list_audit(0, token)),
        ] {
            b.send(
                rpc,
                case.clone(),
                &partner,
                body,
                &[Code::Ok, Code::InvalidArgument],
            )
            .await;
        }
    }
}

/// Enum values no proto defines, and timestamps and durations out of range.
async fn enums_times_and_masks(b: &mut Barrage<'_>) {
    let partner = b.partner.clone();
    for scope in [99, -1, i32::MIN, i32::MAX, 0] {
        let case = format!("scope = {scope}");
        let configure = pb::ConfigureRequest {
            client_id: format!("enum-{}", scope.unsigned_abs()),
            client_credentials: Some(pb::ClientCredentials {
                user_api_keys: vec![pb::UserApiKey {
                    user: "root".into(),
                    api_key: "root-key-0123456789abcdef".into(),
                    scope,
                }],
                ..Default::default()
            }),
            client_settings: Default::default(),
        };
        b.send(
            "ClientConfigurationService/Configure",
            case.clone(),
            &partner,
            configure.encode_to_vec(),
            &[Code::InvalidArgument],
        )
        .await;
        let set = pb::SetUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user: "enum-user".into(),
            api_key: "enum-user-key-0123456789".into(),
            scope,
        };
        b.send(
            "ClientConfigurationService/SetUserCredentials",
            case.clone(),
            &partner,
            set.encode_to_vec(),
            &[Code::InvalidArgument],
        )
        .await;
    }
    // Output-only enum and bool fields of IntegrationKey, sent in an update.
    for state in [99, -1, i32::MIN] {
        let update = pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                key_id: b.fx.key_id.clone(),
                integration: "learner-activity".into(),
                display_name: "still here".into(),
                state,
                create_time: Some(timestamp(i64::MIN, -5)),
                last_use_time: Some(timestamp(i64::MAX, i32::MAX)),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into()],
            }),
        };
        b.send(
            "IntegrationKeysService/UpdateIntegrationKey",
            format!("key.state = {state}, output-only times out of range"),
            &partner,
            update.encode_to_vec(),
            &[Code::Ok],
        )
        .await;
    }

    for (label, ts) in hostile_timestamps() {
        let case = format!("expire_time = {label}");
        let create = pb::CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            display_name: "times".into(),
            expire_time: Some(ts),
        };
        b.send(
            "IntegrationKeysService/CreateIntegrationKey",
            case.clone(),
            &partner,
            create.encode_to_vec(),
            &[],
        )
        .await;
        let update = pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                key_id: b.fx.key_id.clone(),
                integration: "learner-activity".into(),
                expire_time: Some(ts),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["expire_time".into()],
            }),
        };
        b.send(
            "IntegrationKeysService/UpdateIntegrationKey",
            case.clone(),
            &partner,
            update.encode_to_vec(),
            &[],
        )
        .await;
        for (field, audit) in [
            (
                "start_time",
                pb::ListAuditEventsRequest {
                    start_time: Some(ts),
                    ..Default::default()
                },
            ),
            (
                "end_time",
                pb::ListAuditEventsRequest {
                    end_time: Some(ts),
                    ..Default::default()
                },
            ),
            (
                "start_time = end_time",
                pb::ListAuditEventsRequest {
                    start_time: Some(ts),
                    end_time: Some(ts),
                    ..Default::default()
                },
            ),
        ] {
            b.send(
                "AuditService/ListAuditEvents",
                format!("{field} = {label}"),
                &partner,
                audit.encode_to_vec(),
                &[],
            )
            .await;
        }
    }
    // Put the fixture key back to "never expires" for the later cases.
    let reset = pb::UpdateIntegrationKeyRequest {
        key: Some(pb::IntegrationKey {
            key_id: b.fx.key_id.clone(),
            integration: "learner-activity".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["expire_time".into(), "disabled".into()],
        }),
    };
    b.send(
        "IntegrationKeysService/UpdateIntegrationKey",
        "reset the fixture key",
        &partner,
        reset.encode_to_vec(),
        &[Code::Ok],
    )
    .await;

    for (label, grace) in [
        (
            "i64::MAX seconds",
            PbDuration {
                seconds: i64::MAX,
                nanos: 999_999_999,
            },
        ),
        (
            "i64::MIN seconds",
            PbDuration {
                seconds: i64::MIN,
                nanos: 0,
            },
        ),
        (
            "-1 second",
            PbDuration {
                seconds: -1,
                nanos: 0,
            },
        ),
        (
            "negative nanos",
            PbDuration {
                seconds: 0,
                nanos: -1,
            },
        ),
        (
            "nanos overflow",
            PbDuration {
                seconds: 0,
                nanos: i32::MAX,
            },
        ),
        (
            "10000 years",
            PbDuration {
                seconds: 315_576_000_000,
                nanos: 0,
            },
        ),
    ] {
        // An id nobody holds: a grace period that is accepted must not roll
        // the fixture key.
        let roll = pb::RollIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: "lki_0000000000000000".into(),
            grace_period: Some(grace),
        };
        b.send(
            "IntegrationKeysService/RollIntegrationKey",
            format!("grace_period = {label}"),
            &partner,
            roll.encode_to_vec(),
            &[Code::InvalidArgument, Code::NotFound],
        )
        .await;
    }

    for (label, paths) in [
        ("no paths", vec![]),
        ("empty path", vec![String::new()]),
        ("NUL path", vec!["display_name\0".to_owned()]),
        ("wildcard", vec!["*".to_owned()]),
        ("nested path", vec!["key.display_name".to_owned()]),
        (
            "output-only field",
            vec!["state".to_owned(), "key_id".to_owned()],
        ),
        ("1 MiB path", vec!["p".repeat(HUGE)]),
        (
            "10000 repeated paths",
            vec!["display_name".to_owned(); 10_000],
        ),
        (
            "10000 unknown paths",
            (0..10_000).map(|i| format!("p{i}")).collect(),
        ),
    ] {
        let update = pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                key_id: b.fx.key_id.clone(),
                integration: "learner-activity".into(),
                display_name: "masked".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask { paths }),
        };
        b.send(
            "IntegrationKeysService/UpdateIntegrationKey",
            format!("update_mask = {label}"),
            &partner,
            update.encode_to_vec(),
            &[],
        )
        .await;
    }

    // Many repeated entries.
    let many_settings = pb::ConfigureSettingsRequest {
        client_id: CLIENT_ID.into(),
        settings: (0..10_000)
            .map(|i| pb::Setting {
                name: format!("ClientSettings.S{i}"),
                value: "v".into(),
                secret: true,
            })
            .collect(),
    };
    b.send(
        "ClientConfigurationService/ConfigureSettings",
        "10000 settings",
        &partner,
        many_settings.encode_to_vec(),
        &[],
    )
    .await;
    let many_users = pb::ConfigureRequest {
        client_id: "many-users".into(),
        client_credentials: Some(pb::ClientCredentials {
            user_api_keys: (0..2_000)
                .map(|i| pb::UserApiKey {
                    user: format!("u{}", i % 1_000),
                    api_key: "k".into(),
                    scope: pb::Scope::Client.into(),
                })
                .collect(),
            ..Default::default()
        }),
        client_settings: Default::default(),
    };
    b.send(
        "ClientConfigurationService/Configure",
        "2000 users, each listed twice",
        &partner,
        many_users.encode_to_vec(),
        &[Code::InvalidArgument],
    )
    .await;
}

/// Keys with a valid checksum but an id nobody issued, and keys of the
/// wrong kind.
async fn unknown_and_wrong_kind_keys(b: &mut Barrage<'_>) {
    let partner = b.partner.clone();
    let fixture_key = b.fx.api_key.clone();
    let fixture_id = b.fx.key_id.clone();
    let partner_key = b.app.partner_key.clone();
    let unknown = well_formed_key(
        "lki",
        &"Z".repeat(KEY_ID_RANDOM_LEN),
        &"s".repeat(SECRET_LEN),
    );
    let random = ApiKey::generate(KeyKind::Integration)
        .expect("random")
        .expose_secret()
        .to_owned();
    let wrong_secret = well_formed_key("lki", &b.fx.key_id[4..], &"W".repeat(SECRET_LEN));
    for key in [&unknown, &random, &wrong_secret] {
        assert!(ApiKey::parse(KeyKind::Integration, key.clone()).is_ok());
    }
    let verify = |api_key: &str| {
        pb::VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: OUTLINE.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    const VERIFY: &str = "IntegrationKeysService/VerifyIntegrationKey";
    for (label, key, decisions) in [
        (
            "a well-formed key nobody issued",
            unknown.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "a freshly generated key nobody issued",
            random.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "the fixture's key id with a forged secret",
            wrong_secret.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "the partner key (wrong kind)",
            partner_key.as_str(),
            &[pb::Decision::Malformed][..],
        ),
        (
            "an integration key with one checksum character changed",
            &format!(
                "{}{}",
                &fixture_key[..KEY_LEN - 1],
                if fixture_key.ends_with('0') { '1' } else { '0' }
            ),
            &[pb::Decision::Malformed][..],
        ),
        (
            "the key with its prefix swapped to lkp",
            &format!("lkp{}", &fixture_key[3..]),
            &[pb::Decision::Malformed][..],
        ),
        (
            "the key id alone",
            fixture_id.as_str(),
            &[pb::Decision::Malformed][..],
        ),
    ] {
        let answer = b
            .send(VERIFY, label, &MetadataMap::new(), verify(key), &[Code::Ok])
            .await;
        if let Some(body) = answer {
            let response = pb::VerifyIntegrationKeyResponse::decode(body.as_slice())
                .expect("a VerifyIntegrationKeyResponse");
            let decision = response.decision();
            b.require(
                decisions.contains(&decision)
                    && response.key_id.is_empty()
                    && response.integration.is_empty(),
                VERIFY,
                label,
                format!("expected a decision in {decisions:?} naming no key, got {response:?}"),
            );
        }
    }
    // The partner key checked as a client user's key.
    let answer = b
        .send(
            "ClientConfigurationService/VerifyUserCredentials",
            "the partner key as a user's api_key",
            &MetadataMap::new(),
            pb::VerifyUserCredentialsRequest {
                client_id: CLIENT_ID.into(),
                user: "admin".into(),
                api_key: b.app.partner_key.clone(),
            }
            .encode_to_vec(),
            &[Code::Ok],
        )
        .await;
    if let Some(body) = answer {
        let response = pb::VerifyUserCredentialsResponse::decode(body.as_slice()).expect("decode");
        b.require(
            !response.valid,
            "ClientConfigurationService/VerifyUserCredentials",
            "the partner key as a user's api_key",
            format!("expected valid = false, got {response:?}"),
        );
    }

    // The ids of those keys in the management calls.
    let unknown_id = unknown[..20].to_owned();
    let partner_id = partner_key[..20].to_owned();
    for (label, integration, key_id, expect) in [
        (
            "an id nobody issued",
            "learner-activity",
            unknown_id.as_str(),
            Code::NotFound,
        ),
        (
            "the fixture key under another integration",
            "sandbox",
            fixture_id.as_str(),
            Code::NotFound,
        ),
        (
            "the partner key's id",
            "learner-activity",
            partner_id.as_str(),
            Code::InvalidArgument,
        ),
        (
            "a whole key instead of its id",
            "learner-activity",
            fixture_key.as_str(),
            Code::InvalidArgument,
        ),
        (
            "an unknown integration",
            "no-such-integration",
            fixture_id.as_str(),
            Code::NotFound,
        ),
    ] {
        let (i, k) = (integration.to_owned(), key_id.to_owned());
        let get = pb::GetIntegrationKeyRequest {
            integration: i.clone(),
            key_id: k.clone(),
        };
        let delete = pb::DeleteIntegrationKeyRequest {
            integration: i.clone(),
            key_id: k.clone(),
        };
        let update = pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                integration: i.clone(),
                key_id: k.clone(),
                disabled: true,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        };
        let roll = pb::RollIntegrationKeyRequest {
            integration: i,
            key_id: k,
            grace_period: None,
        };
        for (rpc, body) in [
            (
                "IntegrationKeysService/GetIntegrationKey",
                get.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/UpdateIntegrationKey",
                update.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/RollIntegrationKey",
                roll.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/DeleteIntegrationKey",
                delete.encode_to_vec(),
            ),
        ] {
            b.send(rpc, label, &partner, body, &[expect]).await;
        }
    }
    // The fixture key is still there and usable.
    let answer = b
        .send(
            VERIFY,
            "the fixture key after the barrage of ids",
            &MetadataMap::new(),
            verify(&fixture_key),
            &[Code::Ok],
        )
        .await;
    if let Some(body) = answer {
        let decision = pb::VerifyIntegrationKeyResponse::decode(body.as_slice())
            .expect("decode")
            .decision();
        b.require(
            decision == pb::Decision::Allowed,
            VERIFY,
            "the fixture key after the barrage of ids",
            format!("expected ALLOWED, got {decision:?}"),
        );
    }
}

/// Bodies that are not a valid protobuf encoding of the request. tonic's
/// codec answers INTERNAL for a request it cannot parse (gRPC's status code
/// table says so); these are reported separately, and must be that clean
/// codec answer, not a crash.
async fn malformed_bodies(b: &mut Barrage<'_>) {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        // Field 1, length-delimited, 4 bytes that are not UTF-8.
        (
            "invalid UTF-8 in string field 1",
            vec![0x0a, 4, 0xff, 0xfe, 0xc3, 0x28],
        ),
        ("truncated varint", vec![0x08, 0xff, 0xff]),
        ("length past the end", vec![0x0a, 0x7f, b'a']),
        ("field number 0", vec![0x02, 0x01, b'a']),
        ("wire type 7", vec![0x0f, 0x00]),
        ("an unmatched end-group", vec![0x0c]),
        (
            "10-byte varint overflow",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ),
        ("pseudo-random bytes", pseudo_random_bytes(256)),
    ];
    for rpc in rpcs() {
        let credential = b.credential_for(&rpc);
        let has_fields = !rpc.string_fields(&b.fx).is_empty();
        for (label, body) in &bodies {
            if !has_fields && label.starts_with("invalid UTF-8") {
                // CheckServiceHealthRequest has no field 1: an unknown
                // field, skipped, so this one parses.
                b.send(rpc.name, *label, &credential, body.clone(), &[Code::Ok])
                    .await;
                continue;
            }
            // tonic answers INTERNAL; latchkey recodes it (wire_errors).
            b.send(
                rpc.name,
                *label,
                &credential,
                body.clone(),
                &[Code::InvalidArgument],
            )
            .await;
        }
    }
}

/// A refusal is audited even when the request's values are hostile: the
/// event's target is raw input then (`<user>@<client>`), and must not make
/// the event unstorable.
async fn refusals_are_audited(b: &mut Barrage<'_>) {
    const SET: &str = "ClientConfigurationService/SetUserCredentials";
    const AUDIT: &str = "AuditService/ListAuditEvents";
    let viewer = b.viewer.clone();
    let partner = b.partner.clone();
    for (label, user) in [
        ("NUL", "nul\0user".to_owned()),
        ("1 MiB", "u".repeat(HUGE)),
        ("1 MiB of emoji", "🔑".repeat(HUGE / 4)),
    ] {
        let case = format!("a CLIENT user's refused call, user = {label}");
        let set = pb::SetUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user,
            api_key: "x".into(),
            scope: pb::Scope::System.into(),
        };
        b.send(
            SET,
            case.clone(),
            &viewer,
            set.encode_to_vec(),
            &[Code::PermissionDenied],
        )
        .await;
        let newest = pb::ListAuditEventsRequest {
            page_size: 1,
            ..Default::default()
        };
        let answer = b
            .send(
                AUDIT,
                format!("the newest event after: {case}"),
                &partner,
                newest.encode_to_vec(),
                &[Code::Ok],
            )
            .await;
        let event = answer.and_then(|body| {
            pb::ListAuditEventsResponse::decode(body.as_slice())
                .expect("a ListAuditEventsResponse")
                .events
                .into_iter()
                .next()
        });
        let audited = event.as_ref().is_some_and(|e| {
            e.action == "client.user.set"
                && e.actor == "viewer@acme"
                && e.outcome() == pb::AuditOutcome::Failure
                && (e.target.ends_with("@acme") || e.target.chars().count() == 255)
        });
        b.require(
            audited,
            SET,
            &case,
            shorten(&format!(
                "the refusal is not the newest audit event: {event:?}"
            )),
        );
    }
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_input_gets_clean_answers_and_leaves_the_server_healthy() {
    let app = spawn_app().await;
    let fx = fixture(&app).await;
    let admin = metadata(&[(
        "authorization",
        basic_token(format!("admin:{ADMIN_KEY}").as_bytes()),
    )]);
    let viewer = metadata(&[(
        "authorization",
        basic_token(format!("viewer:{VIEWER_KEY}").as_bytes()),
    )]);
    let partner = metadata(&[("sid", ascii(app.partner_key.as_bytes()))]);
    let secrets = vec![
        app.partner_key.clone(),
        fx.api_key.clone(),
        ADMIN_KEY.to_owned(),
        VIEWER_KEY.to_owned(),
    ];
    let mut b = Barrage {
        app: &app,
        fx,
        partner,
        admin,
        viewer,
        calls: 0,
        codes: BTreeMap::new(),
        offenses: Vec::new(),
        set_aside: BTreeMap::new(),
        longest_message: (0, String::new()),
        secrets,
    };

    // Every RPC is covered by the table, and the baselines are valid.
    assert_eq!(rpcs().len(), 18);
    strings_in_every_field(&mut b).await;
    hostile_credentials(&mut b).await;
    oversized_messages(&mut b).await;
    pages_and_tokens(&mut b).await;
    enums_times_and_masks(&mut b).await;
    unknown_and_wrong_kind_keys(&mut b).await;
    malformed_bodies(&mut b).await;
    refusals_are_audited(&mut b).await;

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
