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

use std::{
    collections::{BTreeSet, HashMap},
    fmt::{Debug, Write as _},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use entity::{client, client_setting, client_user, integration_key};
use latchkey::grpc::proto::{
    FILE_DESCRIPTOR_SET,
    v1::{
        CheckClientHealthRequest, CheckServiceHealthRequest, ClientConfiguration,
        ClientCredentials, ConfigureRequest, ConfigureSettingsRequest, CreateIntegrationKeyRequest,
        Decision, DeleteIntegrationKeyRequest, DeleteUserCredentialsRequest,
        GetClientConfigurationRequest, GetIntegrationKeyRequest, GetIntegrationRequest,
        IntegrationKey, ListAuditEventsRequest, ListIntegrationKeysRequest,
        ListIntegrationsRequest, RollIntegrationKeyRequest, Scope, SetUserCredentialsRequest,
        Setting, UpdateIntegrationKeyRequest, UserApiKey, VerifyIntegrationKeyRequest,
        VerifyUserCredentialsRequest, audit_service_client::AuditServiceClient,
        client_configuration_service_client::ClientConfigurationServiceClient,
        health_service_client::HealthServiceClient,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
};
use prost::Message as _;
use sea_orm::EntityTrait;
use tonic::{
    Code, Request, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::Channel,
};

use crate::helpers::{TestApp, create_partner_key, spawn_app, with_sid};

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
const TABLE: [(Rpc, [Expected; CALLERS.len()]); 20] = [
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

/// What one cell's call acts on when it would use it up or change it for
/// later cells, made with the partner key before the call.
#[derive(Default)]
struct Target {
    /// A fresh integration key (Delete, Roll): its id and full key.
    key: Option<(String, String)>,
    /// A fresh CLIENT user of `CLIENT` (Set/DeleteUserCredentials): its name
    /// and key.
    user: Option<(String, String)>,
}

impl Target {
    fn key_id(&self) -> String {
        self.key
            .as_ref()
            .expect("the row has a fresh key")
            .0
            .clone()
    }

    fn user(&self) -> String {
        self.user
            .as_ref()
            .expect("the row has a fresh user")
            .0
            .clone()
    }
}

/// What a mutating call could change: its target as the partner sees it
/// through the API, and every row it could touch as the database holds it
/// (no server cache in between). A refused call must leave all of it as it
/// was.
struct State {
    /// The keys the call is about, as the partner sees them: for Create all
    /// of `INTEGRATION`'s (so a new one shows), for Update, Delete and Roll
    /// the target key (none once deleted), none for calls about clients.
    keys: Vec<IntegrationKey>,
    /// `CLIENT`'s configuration as the partner sees it, for calls about
    /// clients (empty for calls about keys).
    configuration: ClientConfiguration,
    key_rows: Vec<integration_key::Model>,
    clients: Vec<client::Model>,
    setting_rows: Vec<client_setting::Model>,
    user_rows: Vec<client_user::Model>,
}

impl State {
    /// What differs in `after`, one line per changed row or field.
    fn changes(&self, after: &State) -> Vec<String> {
        let mut changes = Vec::new();
        let (old, new) = (&self.configuration, &after.configuration);
        diff(&mut changes, "API keys", &self.keys, &after.keys, |k| {
            k.key_id.clone()
        });
        diff(&mut changes, "API users", &old.users, &new.users, |u| {
            u.user.clone()
        });
        diff(
            &mut changes,
            "API settings",
            &old.settings,
            &new.settings,
            |s| s.name.clone(),
        );
        if old.update_time != new.update_time {
            changes.push(format!(
                "API configuration update_time {:?} -> {:?}",
                old.update_time, new.update_time
            ));
        }
        diff(
            &mut changes,
            "db integration_keys",
            &self.key_rows,
            &after.key_rows,
            |k| k.key_id.clone(),
        );
        diff(
            &mut changes,
            "db clients",
            &self.clients,
            &after.clients,
            |c| c.client_id.clone(),
        );
        diff(
            &mut changes,
            "db client_settings",
            &self.setting_rows,
            &after.setting_rows,
            |s| (s.client_pk, s.name.clone()),
        );
        diff(
            &mut changes,
            "db client_users",
            &self.user_rows,
            &after.user_rows,
            |u| (u.client_pk, u.user.clone()),
        );
        changes
    }
}

/// Adds to `changes` the rows of `before` and `after` that differ, matched
/// by `key`: removed, added or changed (a redacted field, such as a key
/// hash, changes with identical-looking rows), and the row count.
fn diff<T: PartialEq + Debug, K: PartialEq + Debug>(
    changes: &mut Vec<String>,
    what: &str,
    before: &[T],
    after: &[T],
    key: impl Fn(&T) -> K,
) {
    for old in before {
        match after.iter().find(|new| key(new) == key(old)) {
            None => changes.push(format!("{what}: {:?} removed", key(old))),
            Some(new) if new != old => {
                changes.push(format!(
                    "{what}: {:?} changed: {old:?} -> {new:?}",
                    key(old)
                ));
            }
            Some(_) => {}
        }
    }
    for new in after {
        if !before.iter().any(|old| key(old) == key(new)) {
            changes.push(format!("{what}: {:?} added: {new:?}", key(new)));
        }
    }
    if before.len() != after.len() {
        changes.push(format!("{what}: {} -> {} rows", before.len(), after.len()));
    }
}

/// The side-effect checks of one refused call: how many were made, and what
/// they found.
#[derive(Default)]
struct Effects {
    made: usize,
    found: Vec<String>,
}

impl Effects {
    fn check(&mut self, holds: bool, problem: impl FnOnce() -> String) {
        self.made += 1;
        if !holds {
            self.found.push(format!("side effect: {}", problem()));
        }
    }
}

/// The credentials the callers present, made once.
struct Fixture {
    app: TestApp,
    channel: Channel,
    revoked_partner_key: String,
    integration_key: String,
    /// A key that Get and Update use (neither uses it up).
    shared_key_id: String,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        let channel = app.channel().await;
        let mut config = ClientConfigurationServiceClient::new(channel.clone());
        config
            .configure(app.as_partner(configure_request(
                CLIENT,
                &[
                    (SYSTEM_USER, SYSTEM_KEY, Scope::System),
                    (CLIENT_USER, CLIENT_KEY, Scope::Client),
                ],
            )))
            .await
            .expect("configure the client");
        config
            .configure(app.as_partner(configure_request(
                OTHER_CLIENT,
                &[(OTHER_USER, OTHER_KEY, Scope::System)],
            )))
            .await
            .expect("configure the other client");
        // Prove every user's key once, so the wrong-key caller (which
        // spends the user's failure budget) cannot throttle the right key.
        for (client_id, user, api_key) in [
            (CLIENT, SYSTEM_USER, SYSTEM_KEY),
            (CLIENT, CLIENT_USER, CLIENT_KEY),
            (OTHER_CLIENT, OTHER_USER, OTHER_KEY),
        ] {
            let answer = config
                .verify_user_credentials(VerifyUserCredentialsRequest {
                    client_id: client_id.into(),
                    user: user.into(),
                    api_key: api_key.into(),
                })
                .await
                .expect("verify user")
                .into_inner();
            assert!(answer.valid, "{user}@{client_id} is set up");
        }

        // A partner key that worked (and is cached) before it was revoked.
        let revoked_partner_key = create_partner_key(&app.db, "revoked admin").await;
        IntegrationKeysServiceClient::new(channel.clone())
            .list_integrations(with_sid(
                ListIntegrationsRequest::default(),
                &revoked_partner_key,
            ))
            .await
            .expect("the second partner key works before revocation");
        assert!(
            latchkey::store::partner_keys::revoke(
                &app.db,
                &revoked_partner_key[..20],
                latchkey::domain::time::now_micros(),
            )
            .await
            .expect("revoke")
        );

        let (_, integration_key) = app.create_key(INTEGRATION, None).await;
        let (shared_key_id, _) = app.create_key(INTEGRATION, None).await;
        Self {
            app,
            channel,
            revoked_partner_key,
            integration_key,
            shared_key_id,
        }
    }

    /// Puts `caller`'s credential into `metadata`.
    fn present(&self, caller: Caller, metadata: &mut MetadataMap) {
        let basic =
            |name: &str, key: &str| format!("Basic {}", STANDARD.encode(format!("{name}:{key}")));
        let (header, value) = match caller {
            Caller::NoCredential => return,
            Caller::GarbageSid => ("sid", "garbage".to_owned()),
            Caller::GarbageBasic => ("authorization", "Basic %%%garbage%%%".to_owned()),
            Caller::RevokedPartnerKey => ("sid", self.revoked_partner_key.clone()),
            Caller::PartnerKey => ("sid", self.app.partner_key.clone()),
            Caller::PartnerKeyBearer => {
                ("authorization", format!("Bearer {}", self.app.partner_key))
            }
            Caller::IntegrationKeyAsSid => ("sid", self.integration_key.clone()),
            Caller::SystemUser => ("authorization", basic(SYSTEM_USER, SYSTEM_KEY)),
            Caller::SystemUserAtClient => (
                "authorization",
                basic(&format!("{SYSTEM_USER}@{CLIENT}"), SYSTEM_KEY),
            ),
            Caller::ClientUser => ("authorization", basic(CLIENT_USER, CLIENT_KEY)),
            Caller::ClientUserAtClient => (
                "authorization",
                basic(&format!("{CLIENT_USER}@{CLIENT}"), CLIENT_KEY),
            ),
            Caller::UserWithWrongKey => (
                "authorization",
                basic(SYSTEM_USER, "not-the-admin-key-0123456789"),
            ),
            Caller::OtherClientUser => ("authorization", basic(OTHER_USER, OTHER_KEY)),
            Caller::OtherClientUserAtClient => (
                "authorization",
                basic(&format!("{OTHER_USER}@{OTHER_CLIENT}"), OTHER_KEY),
            ),
        };
        let value: AsciiMetadataValue = value.parse().expect("ASCII credential");
        metadata.insert(header, value);
    }

    /// `message` with `caller`'s credential.
    fn req<T>(&self, caller: Caller, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.present(caller, request.metadata_mut());
        request
    }

    /// `rpc`'s fresh target, made with the partner key; `cell` makes its
    /// name unique.
    async fn target(&self, rpc: Rpc, cell: usize) -> Target {
        match rpc {
            Rpc::DeleteIntegrationKey | Rpc::RollIntegrationKey => Target {
                key: Some(self.app.create_key(INTEGRATION, None).await),
                ..Target::default()
            },
            Rpc::SetUserCredentials | Rpc::DeleteUserCredentials => {
                let (user, api_key) = (
                    format!("user-{cell}"),
                    format!("user-{cell}-key-0123456789"),
                );
                ClientConfigurationServiceClient::new(self.channel.clone())
                    .set_user_credentials(self.app.as_partner(SetUserCredentialsRequest {
                        client_id: CLIENT.into(),
                        user: user.clone(),
                        api_key: api_key.clone(),
                        scope: Scope::Client.into(),
                    }))
                    .await
                    .expect("set up a user");
                Target {
                    user: Some((user, api_key)),
                    ..Target::default()
                }
            }
            _ => Target::default(),
        }
    }

    /// What `rpc` about `target` could change (see `State`).
    async fn state(&self, rpc: Rpc, target: &Target) -> State {
        let mut keys_client = IntegrationKeysServiceClient::new(self.channel.clone());
        let mut keys = Vec::new();
        let mut configuration = ClientConfiguration::default();
        match rpc {
            Rpc::CreateIntegrationKey => {
                let mut page_token = String::new();
                loop {
                    let page = keys_client
                        .list_integration_keys(self.app.as_partner(ListIntegrationKeysRequest {
                            integration: INTEGRATION.into(),
                            page_size: 1000,
                            page_token,
                        }))
                        .await
                        .expect("list keys as the partner")
                        .into_inner();
                    keys.extend(page.keys);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
            }
            Rpc::UpdateIntegrationKey | Rpc::DeleteIntegrationKey | Rpc::RollIntegrationKey => {
                let key_id = match &target.key {
                    Some((key_id, _)) => key_id.clone(),
                    None => self.shared_key_id.clone(),
                };
                let answer = keys_client
                    .get_integration_key(self.app.as_partner(GetIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        key_id,
                    }))
                    .await;
                match answer {
                    Ok(answer) => keys.extend(answer.into_inner().key),
                    Err(status) if status.code() == Code::NotFound => {}
                    Err(status) => panic!("get the key as the partner: {status:?}"),
                }
            }
            _ => {
                configuration = ClientConfigurationServiceClient::new(self.channel.clone())
                    .get_client_configuration(self.app.as_partner(GetClientConfigurationRequest {
                        client_id: CLIENT.into(),
                    }))
                    .await
                    .expect("get the configuration as the partner")
                    .into_inner()
                    .configuration
                    .expect("configuration");
            }
        }
        // Verifications record a key's last use in the background, and a
        // key's state follows from the time: neither is a call's doing.
        for key in &mut keys {
            key.last_use_time = None;
            key.state = 0;
        }
        let db = &self.app.db;
        let mut key_rows = integration_key::Entity::find().all(db).await.expect("keys");
        for row in &mut key_rows {
            row.last_use_time = None;
        }
        State {
            keys,
            configuration,
            key_rows,
            clients: client::Entity::find().all(db).await.expect("clients"),
            setting_rows: client_setting::Entity::find()
                .all(db)
                .await
                .expect("settings"),
            user_rows: client_user::Entity::find().all(db).await.expect("users"),
        }
    }

    /// After `rpc` was refused: nothing in `before` changed, and the
    /// target is still there and still works.
    async fn unchanged(&self, rpc: Rpc, cell: usize, target: &Target, before: &State) -> Effects {
        let mut effects = Effects::default();
        let changes = before.changes(&self.state(rpc, target).await);
        effects.check(changes.is_empty(), || changes.join("; "));
        if let Some((key_id, api_key)) = &target.key {
            let decision = self.app.verify(api_key, ENDPOINT).await.decision();
            effects.check(decision == Decision::Allowed, || {
                format!("key {key_id} no longer verifies: {decision:?}")
            });
        }
        if let Some((user, api_key)) = &target.user {
            let answer = ClientConfigurationServiceClient::new(self.channel.clone())
                .verify_user_credentials(VerifyUserCredentialsRequest {
                    client_id: CLIENT.into(),
                    user: user.clone(),
                    api_key: api_key.clone(),
                })
                .await
                .map(tonic::Response::into_inner);
            effects.check(
                answer
                    .as_ref()
                    .is_ok_and(|a| a.valid && a.scope() == Scope::Client),
                || format!("{user}'s old key no longer verifies as CLIENT: {answer:?}"),
            );
        }
        if rpc == Rpc::Configure {
            let client_id = format!("fresh-{cell}");
            let answer = ClientConfigurationServiceClient::new(self.channel.clone())
                .get_client_configuration(self.app.as_partner(GetClientConfigurationRequest {
                    client_id: client_id.clone(),
                }))
                .await;
            effects.check(
                answer.as_ref().is_err_and(|s| s.code() == Code::NotFound),
                || format!("client {client_id} exists: {answer:?}"),
            );
        }
        effects
    }

    /// Calls `rpc` as `caller` with a valid request about `target`; `cell`
    /// makes fresh names unique.
    async fn call(
        &self,
        rpc: Rpc,
        caller: Caller,
        cell: usize,
        target: &Target,
    ) -> Result<(), Status> {
        let mut keys = IntegrationKeysServiceClient::new(self.channel.clone());
        let mut config = ClientConfigurationServiceClient::new(self.channel.clone());
        let mut health = HealthServiceClient::new(self.channel.clone());
        let mut audit = AuditServiceClient::new(self.channel.clone());
        match rpc {
            Rpc::CreateIntegrationKey => keys
                .create_integration_key(self.req(
                    caller,
                    CreateIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        display_name: format!("authz {cell}"),
                        expire_time: None,
                    },
                ))
                .await
                .map(drop),
            Rpc::GetIntegrationKey => keys
                .get_integration_key(self.req(
                    caller,
                    GetIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        key_id: self.shared_key_id.clone(),
                    },
                ))
                .await
                .map(drop),
            Rpc::ListIntegrationKeys => keys
                .list_integration_keys(self.req(
                    caller,
                    ListIntegrationKeysRequest {
                        integration: INTEGRATION.into(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            Rpc::DeleteIntegrationKey => keys
                .delete_integration_key(self.req(
                    caller,
                    DeleteIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        key_id: target.key_id(),
                    },
                ))
                .await
                .map(drop),
            Rpc::VerifyIntegrationKey => keys
                .verify_integration_key(self.req(
                    caller,
                    VerifyIntegrationKeyRequest {
                        api_key: self.integration_key.clone(),
                        endpoint: ENDPOINT.into(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            Rpc::UpdateIntegrationKey => keys
                .update_integration_key(self.req(
                    caller,
                    UpdateIntegrationKeyRequest {
                        key: Some(IntegrationKey {
                            integration: INTEGRATION.into(),
                            key_id: self.shared_key_id.clone(),
                            display_name: format!("authz {cell}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["display_name".into()],
                        }),
                    },
                ))
                .await
                .map(drop),
            Rpc::RollIntegrationKey => keys
                .roll_integration_key(self.req(
                    caller,
                    RollIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        key_id: target.key_id(),
                        grace_period: Some(prost_types::Duration {
                            seconds: 60,
                            nanos: 0,
                        }),
                    },
                ))
                .await
                .map(drop),
            Rpc::ListIntegrations => keys
                .list_integrations(self.req(caller, ListIntegrationsRequest::default()))
                .await
                .map(drop),
            Rpc::GetIntegration => keys
                .get_integration(self.req(
                    caller,
                    GetIntegrationRequest {
                        name: INTEGRATION.into(),
                    },
                ))
                .await
                .map(drop),
            Rpc::Configure => config
                .configure(self.req(
                    caller,
                    configure_request(
                        &format!("fresh-{cell}"),
                        &[("owner", "owner-key-0123456789abcdef", Scope::System)],
                    ),
                ))
                .await
                .map(drop),
            Rpc::ConfigureOwnClient => config
                .configure(self.req(
                    caller,
                    configure_request(
                        CLIENT,
                        &[("owner", "owner-key-0123456789abcdef", Scope::System)],
                    ),
                ))
                .await
                .map(drop),
            Rpc::ConfigureSettings => config
                .configure_settings(self.req(
                    caller,
                    ConfigureSettingsRequest {
                        client_id: CLIENT.into(),
                        settings: vec![setting("ClientSettings.Color", &format!("color-{cell}"))],
                    },
                ))
                .await
                .map(drop),
            Rpc::ConfigureSettingsCredentials => config
                .configure_settings(self.req(
                    caller,
                    ConfigureSettingsRequest {
                        client_id: CLIENT.into(),
                        settings: vec![setting(
                            "ClientCredentials.LbApiKey",
                            &format!("lb-secret-{cell}-0123456789"),
                        )],
                    },
                ))
                .await
                .map(drop),
            Rpc::SetUserCredentials => config
                .set_user_credentials(self.req(
                    caller,
                    SetUserCredentialsRequest {
                        client_id: CLIENT.into(),
                        user: target.user(),
                        api_key: "replaced-user-key-0123456789".into(),
                        scope: Scope::System.into(),
                    },
                ))
                .await
                .map(drop),
            Rpc::DeleteUserCredentials => config
                .delete_user_credentials(self.req(
                    caller,
                    DeleteUserCredentialsRequest {
                        client_id: CLIENT.into(),
                        user: target.user(),
                    },
                ))
                .await
                .map(drop),
            Rpc::GetClientConfiguration => config
                .get_client_configuration(self.req(
                    caller,
                    GetClientConfigurationRequest {
                        client_id: CLIENT.into(),
                    },
                ))
                .await
                .map(drop),
            Rpc::VerifyUserCredentials => {
                let answer = config
                    .verify_user_credentials(self.req(
                        caller,
                        VerifyUserCredentialsRequest {
                            client_id: CLIENT.into(),
                            user: CLIENT_USER.into(),
                            api_key: CLIENT_KEY.into(),
                        },
                    ))
                    .await?
                    .into_inner();
                // Whatever the caller presents, the answer is about the
                // credentials in the request.
                if answer.valid {
                    Ok(())
                } else {
                    Err(Status::internal(format!(
                        "answered OK but not valid: {answer:?}"
                    )))
                }
            }
            Rpc::CheckClientHealth => health
                .check_client_health(self.req(
                    caller,
                    CheckClientHealthRequest {
                        client_id: CLIENT.into(),
                    },
                ))
                .await
                .map(drop),
            Rpc::CheckServiceHealth => health
                .check_service_health(self.req(caller, CheckServiceHealthRequest {}))
                .await
                .map(drop),
            Rpc::ListAuditEvents => audit
                .list_audit_events(self.req(caller, ListAuditEventsRequest::default()))
                .await
                .map(drop),
        }
    }
}

fn configure_request(client_id: &str, users: &[(&str, &str, Scope)]) -> ConfigureRequest {
    ConfigureRequest {
        client_id: client_id.into(),
        client_credentials: Some(ClientCredentials {
            user_api_keys: users
                .iter()
                .map(|&(user, api_key, scope)| UserApiKey {
                    user: user.into(),
                    api_key: api_key.into(),
                    scope: scope.into(),
                })
                .collect(),
            lb_api_key_owner: "lb-owner-name-4b3a".into(),
            lb_api_key: "lb-secret-value-9f8e7d6c".into(),
        }),
        client_settings: HashMap::from([("Color".to_owned(), "blue".to_owned())]),
    }
}

fn setting(name: &str, value: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
        secret: false,
    }
}

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
