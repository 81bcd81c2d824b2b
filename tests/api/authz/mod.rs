//! Who may call what: every RPC of every latchkey service, called by every
//! kind of caller, checked against one table written from API.md (the auth
//! table and the per-RPC "who may call" columns).
//!
//! Every cell is independent: calls that would use up or change their
//! target (Delete, Roll, Set/DeleteUserCredentials, Configure) get a fresh
//! one, and the requests are valid, so an allowed call answers OK (or the
//! one non-auth code its row names). Beyond the code, every UNAUTHENTICATED answer must
//! carry API.md's message, and every refused call to an RPC that changes
//! something must have changed nothing: the partner's view through the API,
//! the database rows and the target's credentials are compared before and
//! after. All mismatches are collected and reported together.
//!
//! This module holds the table and the test; `fixture` the callers'
//! credentials and each cell's fresh target, `calls` one valid call of each
//! RPC, and `effects` the before-and-after comparison of refused calls.

mod calls;
mod effects;
mod fixture;

use std::{collections::BTreeSet, fmt::Write as _};

use latchkey::grpc::proto::FILE_DESCRIPTOR_SET;
use prost::Message as _;
use tonic::{Code, Status};

use fixture::Fixture;

/// The client every client-scoped call is about.
const CLIENT: &str = "acme";
/// Another client, whose SYSTEM user must not reach `CLIENT`.
const OTHER_CLIENT: &str = "globex";
const SYSTEM_USER: &str = "admin";
const SYSTEM_KEY: &str = "admin-key-0123456789abcdef";
const CLIENT_USER: &str = "viewer";
const CLIENT_KEY: &str = "viewer-key-0123456789abcdef";
/// A name no user of `CLIENT` has, so the bare name is unambiguous.
const OTHER_USER: &str = "gadmin";
const OTHER_KEY: &str = "gadmin-key-0123456789abcdef";
/// A custom integration of the test catalog.
const INTEGRATION: &str = "learner-activity";
const ENDPOINT: &str = "course.v1.CourseService/GetOutline";
/// API.md: "No or unknown credential where one is needed: `UNAUTHENTICATED`,
/// message `Invalid credentials`."
const INVALID_CREDENTIALS: &str = "Invalid credentials";

/// What API.md says a caller gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    /// Passes authorization (the row's allowed code, normally OK).
    Allowed,
    /// `UNAUTHENTICATED` `Invalid credentials`.
    Unauthenticated,
    /// `PERMISSION_DENIED`.
    PermissionDenied,
}

const A: Expected = Expected::Allowed;
const U: Expected = Expected::Unauthenticated;
const D: Expected = Expected::PermissionDenied;

/// Kinds of caller, in the column order of `TABLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// No credential at all.
    NoCredential,
    /// `sid: garbage`.
    GarbageSid,
    /// `authorization: Basic` with a value that is not base64.
    GarbageBasic,
    /// A partner key that was valid (and cached) and has been revoked.
    RevokedPartnerKey,
    /// The valid partner key in `sid`.
    PartnerKey,
    /// The valid partner key as `authorization: Bearer`.
    PartnerKeyBearer,
    /// A real, valid integration key presented as a partner key (`sid: lki_...`).
    IntegrationKeyAsSid,
    /// `Basic admin:<key>`: a SYSTEM user of `CLIENT`, bare name.
    SystemUser,
    /// `Basic admin@acme:<key>`.
    SystemUserAtClient,
    /// `Basic viewer:<key>`: a CLIENT user of `CLIENT`, bare name.
    ClientUser,
    /// `Basic viewer@acme:<key>`.
    ClientUserAtClient,
    /// `Basic admin:<wrong key>`: a real user of `CLIENT`, wrong key.
    UserWithWrongKey,
    /// `Basic gadmin:<key>`: a SYSTEM user of `OTHER_CLIENT`, bare name.
    OtherClientUser,
    /// `Basic gadmin@globex:<key>`.
    OtherClientUserAtClient,
}

const CALLERS: [Caller; 14] = [
    Caller::NoCredential,
    Caller::GarbageSid,
    Caller::GarbageBasic,
    Caller::RevokedPartnerKey,
    Caller::PartnerKey,
    Caller::PartnerKeyBearer,
    Caller::IntegrationKeyAsSid,
    Caller::SystemUser,
    Caller::SystemUserAtClient,
    Caller::ClientUser,
    Caller::ClientUserAtClient,
    Caller::UserWithWrongKey,
    Caller::OtherClientUser,
    Caller::OtherClientUserAtClient,
];

/// Every RPC, some in two shapes where API.md gives them different rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    CreateIntegrationKey,
    GetIntegrationKey,
    ListIntegrationKeys,
    DeleteIntegrationKey,
    VerifyIntegrationKey,
    UpdateIntegrationKey,
    RollIntegrationKey,
    ListIntegrations,
    GetIntegration,
    /// Partner-only here: the test server trusts no peer.
    WatchKeyChanges,
    /// Configure a client that does not exist yet (fresh id per call).
    Configure,
    /// Configure `CLIENT` itself: a partner gets ALREADY_EXISTS (allowed),
    /// its users must still be refused.
    ConfigureOwnClient,
    /// `ClientSettings.*` only: CLIENT users may do this.
    ConfigureSettings,
    /// A `ClientCredentials.*` setting: CLIENT users may not.
    ConfigureSettingsCredentials,
    /// Gives a fresh CLIENT user of `CLIENT` a new key and SYSTEM scope.
    SetUserCredentials,
    /// Deletes a fresh CLIENT user of `CLIENT`.
    DeleteUserCredentials,
    GetClientConfiguration,
    VerifyUserCredentials,
    CheckClientHealth,
    CheckServiceHealth,
    ListAuditEvents,
}

impl Rpc {
    /// The proto service and method this row calls.
    fn method(self) -> (&'static str, &'static str) {
        use Rpc::*;
        let keys = "latchkey.v1.IntegrationKeysService";
        let config = "latchkey.v1.ClientConfigurationService";
        let health = "latchkey.v1.HealthService";
        match self {
            CreateIntegrationKey => (keys, "CreateIntegrationKey"),
            GetIntegrationKey => (keys, "GetIntegrationKey"),
            ListIntegrationKeys => (keys, "ListIntegrationKeys"),
            DeleteIntegrationKey => (keys, "DeleteIntegrationKey"),
            VerifyIntegrationKey => (keys, "VerifyIntegrationKey"),
            UpdateIntegrationKey => (keys, "UpdateIntegrationKey"),
            RollIntegrationKey => (keys, "RollIntegrationKey"),
            ListIntegrations => (keys, "ListIntegrations"),
            GetIntegration => (keys, "GetIntegration"),
            WatchKeyChanges => (keys, "WatchKeyChanges"),
            Configure | ConfigureOwnClient => (config, "Configure"),
            ConfigureSettings | ConfigureSettingsCredentials => (config, "ConfigureSettings"),
            SetUserCredentials => (config, "SetUserCredentials"),
            DeleteUserCredentials => (config, "DeleteUserCredentials"),
            GetClientConfiguration => (config, "GetClientConfiguration"),
            VerifyUserCredentials => (config, "VerifyUserCredentials"),
            CheckClientHealth => (health, "CheckClientHealth"),
            CheckServiceHealth => (health, "CheckServiceHealth"),
            ListAuditEvents => ("latchkey.v1.AuditService", "ListAuditEvents"),
        }
    }

    /// The code an allowed call answers with (the requests are valid).
    fn allowed_code(self) -> Code {
        match self {
            Rpc::ConfigureOwnClient => Code::AlreadyExists,
            _ => Code::Ok,
        }
    }

    /// Whether the call changes something when allowed; refused, it must
    /// change nothing.
    fn mutates(self) -> bool {
        use Rpc::*;
        matches!(
            self,
            CreateIntegrationKey
                | DeleteIntegrationKey
                | UpdateIntegrationKey
                | RollIntegrationKey
                | Configure
                | ConfigureOwnClient
                | ConfigureSettings
                | ConfigureSettingsCredentials
                | SetUserCredentials
                | DeleteUserCredentials
        )
    }
}

/// The expected-permissions table, from API.md:
/// - partner key (`sid` or Bearer): every management call;
/// - a client's user: that client's configuration and health only —
///   ConfigureSettings (CLIENT users `ClientSettings.*` only),
///   Set/DeleteUserCredentials (SYSTEM only), GetClientConfiguration and
///   CheckClientHealth (any user); everything else is partner-only;
/// - VerifyIntegrationKey and VerifyUserCredentials: anyone;
/// - no or unknown credential where one is needed: UNAUTHENTICATED; a valid
///   credential that may not do this (any valid user key on a partner-only
///   call, another client's user on this client): PERMISSION_DENIED.
///
/// A = allowed, U = UNAUTHENTICATED, D = PERMISSION_DENIED.
#[rustfmt::skip]
const TABLE: [(Rpc, [Expected; CALLERS.len()]); 21] = [
    //                                    no    sid   Basic revok partn bear  lki   sys   sys@  cli   cli@  wrong other othr@
    //                                    cred  garb  garb  partn sid   partn sid   user  acme  user  acme  key   user  globx
    (Rpc::CreateIntegrationKey,          [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::GetIntegrationKey,             [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::ListIntegrationKeys,           [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::DeleteIntegrationKey,          [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::VerifyIntegrationKey,          [A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A]),
    (Rpc::UpdateIntegrationKey,          [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::RollIntegrationKey,            [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::ListIntegrations,              [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::GetIntegration,                [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::WatchKeyChanges,               [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::Configure,                     [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::ConfigureOwnClient,            [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::ConfigureSettings,             [U,    U,    U,    U,    A,    A,    U,    A,    A,    A,    A,    U,    D,    D]),
    (Rpc::ConfigureSettingsCredentials,  [U,    U,    U,    U,    A,    A,    U,    A,    A,    D,    D,    U,    D,    D]),
    (Rpc::SetUserCredentials,            [U,    U,    U,    U,    A,    A,    U,    A,    A,    D,    D,    U,    D,    D]),
    (Rpc::DeleteUserCredentials,         [U,    U,    U,    U,    A,    A,    U,    A,    A,    D,    D,    U,    D,    D]),
    (Rpc::GetClientConfiguration,        [U,    U,    U,    U,    A,    A,    U,    A,    A,    A,    A,    U,    D,    D]),
    (Rpc::VerifyUserCredentials,         [A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A,    A]),
    (Rpc::CheckClientHealth,             [U,    U,    U,    U,    A,    A,    U,    A,    A,    A,    A,    U,    D,    D]),
    (Rpc::CheckServiceHealth,            [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
    (Rpc::ListAuditEvents,               [U,    U,    U,    U,    A,    A,    U,    D,    D,    D,    D,    U,    D,    D]),
];

/// Every `service/method` of the latchkey.v1 services, from the descriptor
/// set the server is built with.
fn latchkey_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set");
    set.file
        .iter()
        .filter(|file| file.package() == "latchkey.v1")
        .flat_map(|file| {
            file.service.iter().flat_map(|service| {
                service
                    .method
                    .iter()
                    .map(move |method| format!("latchkey.v1.{}/{}", service.name(), method.name()))
            })
        })
        .collect()
}

/// A call's outcome in the table's terms; `None` when it fits none of them
/// (an allowed call that did not answer the row's allowed code).
fn classify(rpc: Rpc, outcome: &Result<(), Status>) -> Option<Expected> {
    let code = outcome.as_ref().map_or_else(Status::code, |()| Code::Ok);
    match code {
        Code::Unauthenticated => Some(Expected::Unauthenticated),
        Code::PermissionDenied => Some(Expected::PermissionDenied),
        code if code == rpc.allowed_code() => Some(Expected::Allowed),
        _ => None,
    }
}

#[tokio::test]
async fn every_rpc_against_every_kind_of_caller() {
    // The table covers every RPC of every latchkey service, once per shape.
    let covered: BTreeSet<String> = TABLE
        .iter()
        .map(|(rpc, _)| {
            let (service, method) = rpc.method();
            format!("{service}/{method}")
        })
        .collect();
    assert_eq!(covered, latchkey_methods(), "the table covers every RPC");
    let rows: Vec<Rpc> = TABLE.iter().map(|(rpc, _)| *rpc).collect();
    for (i, rpc) in rows.iter().enumerate() {
        assert!(!rows[..i].contains(rpc), "{rpc:?} is in the table twice");
    }

    let fixture = Fixture::new().await;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    let mut messages_checked = 0;
    let (mut refused_mutations, mut effect_checks) = (0, 0);
    for (rpc, row) in TABLE {
        for (caller, expected) in CALLERS.into_iter().zip(row) {
            let cell = cells;
            cells += 1;
            let target = fixture.target(rpc, cell).await;
            let before = if rpc.mutates() && expected != Expected::Allowed {
                Some(fixture.state(rpc, &target).await)
            } else {
                None
            };
            let outcome = fixture.call(rpc, caller, cell, &target).await;
            let (code, message) = match &outcome {
                Ok(()) => (Code::Ok, String::new()),
                Err(status) => (status.code(), status.message().to_owned()),
            };
            // Each problem found with this cell, in the report's last column.
            let mut problems = Vec::new();
            if classify(rpc, &outcome) != Some(expected) {
                problems.push(format!("{message:?}"));
            }
            if expected == Expected::Unauthenticated && code == Code::Unauthenticated {
                messages_checked += 1;
                if message != INVALID_CREDENTIALS {
                    problems.push(format!(
                        "message {message:?}, API.md says {INVALID_CREDENTIALS:?}"
                    ));
                }
            }
            if let Some(before) = before {
                let effects = fixture.unchanged(rpc, cell, &target, &before).await;
                refused_mutations += 1;
                effect_checks += effects.made;
                problems.extend(effects.found);
            }
            for problem in problems {
                mismatches.push((rpc, caller, expected, code, problem));
            }
        }
    }
    assert_eq!(cells, TABLE.len() * CALLERS.len());
    let summary = format!(
        "{cells} cells; {messages_checked} UNAUTHENTICATED messages checked; \
         {effect_checks} side-effect checks after {refused_mutations} refused mutating calls"
    );
    println!("{summary}");

    let mut report = String::new();
    let mut line = |rpc: &str, caller: &str, expected: &str, got: &str, problem: &str| {
        let _ = writeln!(
            report,
            "  {rpc:<30} {caller:<24} {expected:<17} {got:<17} {problem}"
        );
    };
    line("rpc", "caller", "expected", "got", "problem");
    for (rpc, caller, expected, code, problem) in &mismatches {
        line(
            &format!("{rpc:?}"),
            &format!("{caller:?}"),
            &format!("{expected:?}"),
            &format!("{code:?}"),
            problem,
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} problems with (rpc, caller) cells ({summary}):\n{report}",
        mismatches.len(),
    );
}
