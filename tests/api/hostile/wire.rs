//! The wire side of the hostile test: a raw-bytes codec, credential
//! headers, and the `Barrage` that sends every hostile call, judges its
//! answer and remembers it for the report.

use std::{collections::BTreeMap, str::FromStr};

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::{
    Message,
    bytes::{Buf, BufMut},
};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::Channel,
};

use super::{
    ADMIN_KEY, CLEAN, NO_ANSWER_AFTER, SERVER_MAX_MESSAGE, TOO_BIG, TRANSPORT_FAILURES, VIEWER_KEY,
    rpcs::{Fixture, Needs, Rpc},
};
use crate::helpers::TestApp;

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
// Credentials.

pub(super) fn ascii(bytes: &[u8]) -> AsciiMetadataValue {
    AsciiMetadataValue::try_from(bytes).expect("a header value (no controls)")
}

pub(super) fn metadata(headers: &[(&'static str, AsciiMetadataValue)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        map.append(*name, value.clone());
    }
    map
}

pub(super) fn basic_token(user_and_key: &[u8]) -> AsciiMetadataValue {
    ascii(format!("Basic {}", STANDARD.encode(user_and_key)).as_bytes())
}

// ---------------------------------------------------------------------------
// The barrage: sends, classifies and remembers every answer.

/// Hostile input that never reaches latchkey's handlers, answered by the
/// libraries below them with a code the rest of this test refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SetAside {
    /// A header block over the server's HTTP/2 header list limit (hyper's
    /// default, 16 KiB): h2 answers HTTP 431 without a grpc-status, which a
    /// tonic client reports as UNKNOWN; far over it, h2 sends GOAWAY
    /// ENHANCE_YOUR_CALM, which a tonic client reports as RESOURCE_EXHAUSTED.
    HeaderListTooLarge,
}

#[derive(Debug)]
pub(super) struct Offense {
    pub(super) rpc: String,
    pub(super) case: String,
    pub(super) code: Code,
    pub(super) message: String,
}

pub(super) struct Barrage<'a> {
    pub(super) app: &'a TestApp,
    pub(super) fx: Fixture,
    pub(super) partner: MetadataMap,
    /// A SYSTEM user of the fixture client (Basic).
    pub(super) admin: MetadataMap,
    /// A CLIENT user of the fixture client (Basic).
    pub(super) viewer: MetadataMap,
    pub(super) calls: usize,
    pub(super) codes: BTreeMap<String, usize>,
    pub(super) offenses: Vec<Offense>,
    /// Answers made by tonic or h2 before latchkey's code runs, with a code
    /// this test would otherwise refuse. Reported, not counted as offenses.
    pub(super) set_aside: BTreeMap<SetAside, Vec<Offense>>,
    pub(super) longest_message: (usize, String),
    pub(super) secrets: Vec<String>,
}

impl<'a> Barrage<'a> {
    /// A barrage on `app` about the objects of `fx`: the partner key and
    /// both users of the fixture client as credentials, and every secret
    /// that no answer may echo.
    pub(super) fn new(app: &'a TestApp, fx: Fixture) -> Self {
        let user = |name: &str, key: &str| {
            metadata(&[(
                "authorization",
                basic_token(format!("{name}:{key}").as_bytes()),
            )])
        };
        let secrets = vec![
            app.partner_key.clone(),
            fx.api_key.clone(),
            ADMIN_KEY.to_owned(),
            VIEWER_KEY.to_owned(),
        ];
        Barrage {
            app,
            fx,
            partner: metadata(&[("sid", ascii(app.partner_key.as_bytes()))]),
            admin: user("admin", ADMIN_KEY),
            viewer: user("viewer", VIEWER_KEY),
            calls: 0,
            codes: BTreeMap::new(),
            offenses: Vec::new(),
            set_aside: BTreeMap::new(),
            longest_message: (0, String::new()),
            secrets,
        }
    }

    /// `send` of `message`, encoded, with the partner key.
    pub(super) async fn send_as_partner(
        &mut self,
        rpc: &str,
        case: impl Into<String>,
        message: &impl Message,
        expect: &[Code],
    ) -> Option<Vec<u8>> {
        let partner = self.partner.clone();
        self.send(rpc, case, &partner, message.encode_to_vec(), expect)
            .await
    }

    /// Counts one answer with `code` for the report.
    pub(super) fn count(&mut self, code: Code) {
        self.calls += 1;
        *self.codes.entry(format!("{code:?}")).or_default() += 1;
    }

    /// Sends `body` to `rpc` with `metadata` on a connection of its own (so a
    /// call that broke its connection is blamed on itself alone) and checks
    /// the answer is in `expect` (CLEAN if empty). Returns the response body
    /// of an OK answer.
    pub(super) async fn send(
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
        self.count(code);
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
    pub(super) async fn send_set_aside(
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
    pub(super) fn credential_for(&self, rpc: &Rpc) -> MetadataMap {
        match rpc.needs {
            Needs::Nothing => MetadataMap::new(),
            Needs::Partner | Needs::PartnerOrUser => self.partner.clone(),
        }
    }

    /// Records `offense` if `ok` is false.
    pub(super) fn require(&mut self, ok: bool, rpc: &str, case: &str, what: String) {
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

pub(super) fn shorten(message: &str) -> String {
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
