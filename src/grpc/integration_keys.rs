//! `latchkey.v1.IntegrationKeysService`: decode -> authenticate -> `app`
//! call -> encode.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use tonic::Request;

use super::{credentials, page_token, peer_of, validate, validate::Violations};
use crate::{
    app::{
        auth,
        integration_keys::{
            self as keys, Integration, IntegrationKey, IntegrationKeyRow, IntegrationKind, Issued,
            KeyChanges, NewKey,
        },
        key_changes::KeyChange,
        verification::{Decision, MAX_ENDPOINT_LEN, Verdict},
    },
    domain::{
        KeyKind,
        key_restrictions::{self, RateLimit, RateLimitProblem},
        time::now_micros,
    },
    error::Error,
    grpc::{
        proto::v1::{self as pb, integration_keys_service_server::IntegrationKeysService},
        time::{duration_micros, to_timestamp},
    },
};

service!(IntegrationKeys);

impl IntegrationKeys {
    async fn create(
        &self,
        request: Request<pb::CreateIntegrationKeyRequest>,
    ) -> Result<pb::CreateIntegrationKeyResponse, Error> {
        let who = auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let valid = validate_create(&req, now_micros())?;
        let new = NewKey {
            integration: &req.integration,
            display_name: &req.display_name,
            expire_time: valid.expire_time,
            labels: valid.labels,
            allowed_networks: valid.allowed_networks,
            rate_limit: valid.rate_limit,
        };
        let issued = keys::create(&self.app, &who, new).await?;
        Ok(pb::CreateIntegrationKeyResponse {
            api_key: issued.api_key.expose_secret().to_owned(),
            key: Some(key_to_proto(&issued.key, now_micros())),
        })
    }

    async fn get(
        &self,
        request: Request<pb::GetIntegrationKeyRequest>,
    ) -> Result<pb::GetIntegrationKeyResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        validate_key_ref(&req.integration, &req.key_id)?;
        let key = keys::get(&self.app, &req.integration, &req.key_id).await?;
        Ok(pb::GetIntegrationKeyResponse {
            key: Some(key_to_proto(&key, now_micros())),
        })
    }

    async fn list(
        &self,
        request: Request<pb::ListIntegrationKeysRequest>,
    ) -> Result<pb::ListIntegrationKeysResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let (page_size, after) = validate_list(&req)?;
        let after = after.as_ref().map(|(t, id)| (*t, id.as_str()));
        let page = keys::list(&self.app, &req.integration, after, page_size).await?;
        let next_page_token = page_token::next(&page.keys, page.more, |last| {
            page_token::integration_keys(&page.integration, last.create_time, &last.key_id)
        });
        let now = now_micros();
        Ok(pb::ListIntegrationKeysResponse {
            keys: page
                .keys
                .iter()
                .map(|row| row_to_proto(row, &page.integration, now))
                .collect(),
            next_page_token,
        })
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteIntegrationKeyRequest>,
    ) -> Result<pb::DeleteIntegrationKeyResponse, Error> {
        let who = auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        validate_key_ref(&req.integration, &req.key_id)?;
        keys::delete(&self.app, &who, &req.integration, &req.key_id).await?;
        Ok(pb::DeleteIntegrationKeyResponse {})
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyIntegrationKeyRequest>,
    ) -> Result<pb::VerifyIntegrationKeyResponse, Error> {
        let peer = peer_of(&request);
        let pb::VerifyIntegrationKeyRequest {
            api_key,
            endpoint,
            caller_address,
        } = request.into_inner();
        let endpoint = validate_endpoint(&endpoint)?;
        let verdict = keys::verify(&self.app, api_key, endpoint, peer, &caller_address).await?;
        Ok(verdict_to_proto(verdict))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateIntegrationKeyRequest>,
    ) -> Result<pb::UpdateIntegrationKeyResponse, Error> {
        let who = auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let changes = validate_update(&req, now_micros())?;
        let key = req.key.unwrap_or_default();
        let paths = req.update_mask.map(|mask| mask.paths).unwrap_or_default();
        let updated = keys::update(
            &self.app,
            &who,
            &key.integration,
            &key.key_id,
            changes,
            &paths,
        )
        .await?;
        Ok(pb::UpdateIntegrationKeyResponse {
            key: Some(key_to_proto(&updated, now_micros())),
        })
    }

    async fn roll(
        &self,
        request: Request<pb::RollIntegrationKeyRequest>,
    ) -> Result<pb::RollIntegrationKeyResponse, Error> {
        let who = auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let grace = validate_roll(&req)?;
        let rolled = keys::roll(&self.app, &who, &req.integration, &req.key_id, grace).await?;
        let now = now_micros();
        let Issued { key, api_key } = rolled.issued;
        Ok(pb::RollIntegrationKeyResponse {
            key: Some(key_to_proto(&key, now)),
            api_key: api_key.expose_secret().to_owned(),
            previous_key: Some(key_to_proto(&rolled.previous, now)),
        })
    }

    async fn integrations_page(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<pb::ListIntegrationsResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let (page_size, after) = validate_list_integrations(&req)?;
        let (rows, more) = keys::list_integrations(&self.app, after.as_deref(), page_size).await?;
        let next_page_token =
            page_token::next(&rows, more, |last| page_token::encode(&["i", &last.name]));
        Ok(pb::ListIntegrationsResponse {
            integrations: rows.into_iter().map(integration_to_proto).collect(),
            next_page_token,
        })
    }

    async fn describe_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<pb::GetIntegrationResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        validate_get_integration(&req)?;
        let integration = keys::get_integration(&self.app, &req.name).await?;
        Ok(pb::GetIntegrationResponse {
            integration: Some(integration_to_proto(integration)),
        })
    }
}

// Request validation. Pure (no state, no I/O) so that `fuzz/` drives exactly
// what the handlers run. Each returns what the handler needs, or every bad
// field at once as `Error::BadRequest`.

/// What a valid CreateIntegrationKey asks for.
#[derive(Debug)]
pub struct ValidCreate {
    /// As stored micros, if one was given.
    pub expire_time: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub allowed_networks: Vec<ipnet::IpNet>,
    pub rate_limit: Option<RateLimit>,
}

/// A requested rate limit, or its problems added to `v` under `field`.
fn rate_limit_from_proto(
    v: &mut Violations,
    field: &str,
    rate_limit: &pb::RateLimit,
) -> Option<RateLimit> {
    let Some(window) = rate_limit
        .window
        .and_then(|w| std::time::Duration::try_from(w).ok())
    else {
        v.add(&format!("{field}.window"), "must be set, 1 second to 1 day");
        return None;
    };
    RateLimit::new(rate_limit.limit, window)
        .map_err(|problem| match problem {
            RateLimitProblem::Limit(p) => v.add(&format!("{field}.limit"), &p),
            RateLimitProblem::Window(p) => v.add(&format!("{field}.window"), &p),
        })
        .ok()
}

fn rate_limit_to_proto(rate_limit: RateLimit) -> pb::RateLimit {
    pb::RateLimit {
        limit: rate_limit.limit,
        window: to_duration(rate_limit.window),
    }
}

/// CreateIntegrationKey.
pub fn validate_create(
    req: &pb::CreateIntegrationKeyRequest,
    now: i64,
) -> Result<ValidCreate, Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    v.check("display_name", validate::display_name(&req.display_name));
    let expire_time = match req
        .expire_time
        .as_ref()
        .map(|t| validate::future_time(t, now))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(problem)) => {
            v.add("expire_time", problem);
            None
        }
    };
    let labels: BTreeMap<String, String> = req.labels.clone().into_iter().collect();
    if let Err(problem) = key_restrictions::check_labels(&labels) {
        v.add("labels", &problem);
    }
    let allowed_networks =
        key_restrictions::parse_networks(&req.allowed_networks).unwrap_or_else(|problem| {
            v.add("allowed_networks", &problem);
            Vec::new()
        });
    let rate_limit = req
        .rate_limit
        .as_ref()
        .and_then(|r| rate_limit_from_proto(&mut v, "rate_limit", r));
    v.finish()?;
    Ok(ValidCreate {
        expire_time,
        labels,
        allowed_networks,
        rate_limit,
    })
}

/// GetIntegrationKey and DeleteIntegrationKey.
pub fn validate_key_ref(integration: &str, key_id: &str) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(integration));
    v.check("key_id", validate::integration_key_id(key_id));
    v.finish()
}

/// ListIntegrationKeys: the row count and the keyset position after which
/// the page starts.
pub fn validate_list(
    req: &pb::ListIntegrationKeysRequest,
) -> Result<(u64, Option<(i64, String)>), Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    let page = v.page(req.page_size, &req.page_token, |token| {
        decode_key_position(token, &req.integration)
    });
    v.finish()?;
    Ok(page)
}

/// VerifyIntegrationKey: the endpoint without a leading `/`. The key itself
/// is judged by the verifier, which answers a decision rather than an error.
pub fn validate_endpoint(endpoint: &str) -> Result<&str, Error> {
    let endpoint = endpoint.strip_prefix('/').unwrap_or(endpoint);
    let mut v = Violations::default();
    if endpoint.is_empty() {
        v.add("endpoint", "must not be empty");
    } else if endpoint.len() > MAX_ENDPOINT_LEN {
        v.add("endpoint", "must be at most 255 characters");
    }
    v.finish()?;
    Ok(endpoint)
}

/// UpdateIntegrationKey: the changes its update mask names.
pub fn validate_update(
    req: &pb::UpdateIntegrationKeyRequest,
    now: i64,
) -> Result<KeyChanges, Error> {
    let default_key = pb::IntegrationKey::default();
    let key = req.key.as_ref().unwrap_or(&default_key);
    let mut v = Violations::default();
    v.check(
        "key.integration",
        validate::integration_name(&key.integration),
    );
    v.check("key.key_id", validate::integration_key_id(&key.key_id));
    let paths = req.update_mask.as_ref().map_or(&[][..], |m| &m.paths[..]);
    if paths.is_empty() {
        v.add(
            "update_mask",
            "must name at least one of display_name, expire_time, disabled, labels, \
             allowed_networks, rate_limit",
        );
    }
    let mut changes = KeyChanges::default();
    for path in paths {
        match path.as_str() {
            "display_name" => {
                v.check(
                    "key.display_name",
                    validate::display_name(&key.display_name),
                );
                changes.display_name = Some(key.display_name.clone());
            }
            "expire_time" => match key
                .expire_time
                .as_ref()
                .map(|t| validate::future_time(t, now))
            {
                None => changes.expire_time = Some(None),
                Some(Ok(t)) => changes.expire_time = Some(Some(t)),
                Some(Err(problem)) => v.add("key.expire_time", problem),
            },
            "disabled" => changes.disabled = Some(key.disabled),
            "labels" => {
                let labels: BTreeMap<String, String> = key.labels.clone().into_iter().collect();
                match key_restrictions::check_labels(&labels) {
                    Ok(()) => changes.labels = Some(key_restrictions::labels_to_column(&labels)),
                    Err(problem) => v.add("key.labels", &problem),
                }
            }
            "allowed_networks" => match key_restrictions::parse_networks(&key.allowed_networks) {
                Ok(networks) => {
                    changes.allowed_networks =
                        Some(key_restrictions::networks_to_column(&networks));
                }
                Err(problem) => v.add("key.allowed_networks", &problem),
            },
            "rate_limit" => match &key.rate_limit {
                None => changes.rate_limit = Some(None),
                Some(requested) => {
                    if let Some(limit) = rate_limit_from_proto(&mut v, "key.rate_limit", requested)
                    {
                        changes.rate_limit = Some(Some(limit.to_columns()));
                    }
                }
            },
            _ => v.add(
                "update_mask",
                "unknown path; allowed: display_name, expire_time, disabled, labels, \
                 allowed_networks, rate_limit",
            ),
        }
    }
    v.finish()?;
    Ok(changes)
}

/// RollIntegrationKey: the grace period in micros (0 if none).
pub fn validate_roll(req: &pb::RollIntegrationKeyRequest) -> Result<i64, Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    v.check("key_id", validate::integration_key_id(&req.key_id));
    let grace = match req.grace_period.as_ref().map(duration_micros) {
        None => 0,
        Some(Some(grace)) => grace,
        Some(None) => {
            v.add("grace_period", "must be a valid duration of at least 0");
            0
        }
    };
    v.finish()?;
    Ok(grace)
}

/// ListIntegrations: the row count and the name after which the page starts.
pub fn validate_list_integrations(
    req: &pb::ListIntegrationsRequest,
) -> Result<(u64, Option<String>), Error> {
    let mut v = Violations::default();
    let page = v.page(req.page_size, &req.page_token, |token| {
        page_token::decode::<2>(token)
            .filter(|[kind, name]| {
                kind == "i" && crate::domain::catalog::is_valid_integration_name(name)
            })
            .map(|[_, name]| name)
    });
    v.finish()?;
    Ok(page)
}

/// GetIntegration.
pub fn validate_get_integration(req: &pb::GetIntegrationRequest) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("name", validate::integration_name(&req.name));
    v.finish()
}

/// The (create_time, key_id) position of a ListIntegrationKeys token, if it
/// was made for this integration.
fn decode_key_position(token: &str, integration: &str) -> Option<(i64, String)> {
    let [kind, for_integration, create_time, key_id] = page_token::decode::<4>(token)?;
    if kind != "k" || for_integration != integration {
        return None;
    }
    let create_time = create_time.parse().ok()?;
    crate::domain::key_format::is_key_id(KeyKind::Integration, &key_id)
        .then_some((create_time, key_id))
}

fn key_state(row: &IntegrationKeyRow, now: i64) -> pb::IntegrationKeyState {
    if row.disabled {
        pb::IntegrationKeyState::Disabled
    } else if row.expire_time.is_some_and(|t| t <= now) {
        pb::IntegrationKeyState::Expired
    } else {
        pb::IntegrationKeyState::Active
    }
}

fn key_to_proto(key: &IntegrationKey, now: i64) -> pb::IntegrationKey {
    row_to_proto(&key.row, &key.integration, now)
}

fn row_to_proto(row: &IntegrationKeyRow, integration: &str, now: i64) -> pb::IntegrationKey {
    pb::IntegrationKey {
        key_id: row.key_id.clone(),
        integration: integration.to_owned(),
        display_name: row.display_name.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        expire_time: row.expire_time.map(to_timestamp),
        last_use_time: row.last_use_time.map(to_timestamp),
        disabled: row.disabled,
        state: key_state(row, now).into(),
        labels: key_restrictions::labels_from_column(row.labels.as_deref())
            .into_iter()
            .collect(),
        allowed_networks: key_restrictions::networks_from_column(row.allowed_networks.as_deref())
            .iter()
            .map(ToString::to_string)
            .collect(),
        rate_limit: RateLimit::from_columns(row.rate_limit, row.rate_window_ms)
            .map(rate_limit_to_proto),
    }
}

fn verdict_to_proto(verdict: Verdict) -> pb::VerifyIntegrationKeyResponse {
    let decision = match verdict.decision {
        Decision::Allowed => pb::Decision::Allowed,
        Decision::Malformed => pb::Decision::Malformed,
        Decision::Invalid => pb::Decision::Invalid,
        Decision::Expired => pb::Decision::Expired,
        Decision::Disabled => pb::Decision::Disabled,
        Decision::EndpointNotGranted => pb::Decision::EndpointNotGranted,
        Decision::RateLimited => pb::Decision::RateLimited,
        Decision::CallerNotAllowed => pb::Decision::CallerNotAllowed,
    };
    // Labels and the rate limit only with ALLOWED (API.md).
    let allowed = verdict.decision == Decision::Allowed;
    let (integration, key_id, expire_time, labels, rate_limit) = match verdict.key {
        Some(k) => (
            k.integration,
            k.key_id,
            k.expire_time.map(to_timestamp),
            if allowed {
                k.labels
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect()
            } else {
                Default::default()
            },
            k.rate_limit.filter(|_| allowed).map(rate_limit_to_proto),
        ),
        None => Default::default(),
    };
    pb::VerifyIntegrationKeyResponse {
        decision: decision.into(),
        integration,
        key_id,
        expire_time,
        retry_after: verdict.retry_after.and_then(to_duration),
        labels,
        rate_limit,
    }
}

/// A proto Duration (none for one too long to express).
pub(super) fn to_duration(d: std::time::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn integration_to_proto(integration: Integration) -> pb::Integration {
    pb::Integration {
        name: integration.name,
        kind: match integration.kind {
            IntegrationKind::Custom => pb::IntegrationKind::Custom,
            IntegrationKind::Builtin => pb::IntegrationKind::Builtin,
        }
        .into(),
        description: integration.description,
        endpoints: integration.endpoints,
    }
}

rpcs! {
    IntegrationKeys: IntegrationKeysService {
        create_integration_key(pb::CreateIntegrationKeyRequest) -> pb::CreateIntegrationKeyResponse = create;
        get_integration_key(pb::GetIntegrationKeyRequest) -> pb::GetIntegrationKeyResponse = get;
        list_integration_keys(pb::ListIntegrationKeysRequest) -> pb::ListIntegrationKeysResponse = list;
        delete_integration_key(pb::DeleteIntegrationKeyRequest) -> pb::DeleteIntegrationKeyResponse = delete;
        verify_integration_key(pb::VerifyIntegrationKeyRequest) -> pb::VerifyIntegrationKeyResponse = verify;
        update_integration_key(pb::UpdateIntegrationKeyRequest) -> pb::UpdateIntegrationKeyResponse = update;
        roll_integration_key(pb::RollIntegrationKeyRequest) -> pb::RollIntegrationKeyResponse = roll;
        list_integrations(pb::ListIntegrationsRequest) -> pb::ListIntegrationsResponse = integrations_page;
        get_integration(pb::GetIntegrationRequest) -> pb::GetIntegrationResponse = describe_integration;
        @streaming {
            type WatchKeyChangesStream = tokio_stream::wrappers::ReceiverStream<
                Result<pb::WatchKeyChangesResponse, tonic::Status>,
            >;

            async fn watch_key_changes(
                &self,
                request: tonic::Request<pb::WatchKeyChangesRequest>,
            ) -> Result<tonic::Response<Self::WatchKeyChangesStream>, tonic::Status> {
                Ok(tonic::Response::new(self.watch(request).await?))
            }
        }
    }
}

/// Messages a watch stream holds for a client that reads slowly; past
/// them, the feed's own buffer fills and the client gets a RESET.
const WATCH_STREAM_BUFFER: usize = 16;

impl IntegrationKeys {
    /// `WatchKeyChanges`: for a partner key, or a peer in `--trusted-peers`
    /// (the resource servers whose guards subscribe).
    async fn watch(
        &self,
        request: Request<pb::WatchKeyChangesRequest>,
    ) -> Result<
        tokio_stream::wrappers::ReceiverStream<Result<pb::WatchKeyChangesResponse, tonic::Status>>,
        Error,
    > {
        let trusted = peer_of(&request).is_some_and(|peer| self.app.is_trusted_peer(peer));
        if !trusted {
            auth::partner(&self.app, &credentials(&request)).await?;
        }
        let heartbeat = validate_watch(request.get_ref())?;
        let mut subscription = self.app.verifier.changes.subscribe();
        let (sender, receiver) = tokio::sync::mpsc::channel(WATCH_STREAM_BUFFER);
        tokio::spawn(async move {
            loop {
                let quiet = async {
                    match heartbeat {
                        Some(interval) => tokio::time::sleep(interval).await,
                        None => std::future::pending().await,
                    }
                };
                // A client that goes away ends this task at once, not at
                // the next change (which may never come).
                let change = tokio::select! {
                    () = sender.closed() => return,
                    change = subscription.next() => change,
                    () = quiet => {
                        // Skipped when the client has not read what it was
                        // sent: then it is not waiting for a sign of life.
                        let _ = sender.try_send(Ok(heartbeat_message()));
                        continue;
                    }
                };
                let Some(change) = change else { return };
                if sender.send(Ok(change_to_proto(change))).await.is_err() {
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }
}

/// WatchKeyChanges: the heartbeat interval asked for, if any.
pub fn validate_watch(
    req: &pb::WatchKeyChangesRequest,
) -> Result<Option<std::time::Duration>, Error> {
    let Some(interval) = req.heartbeat_interval else {
        return Ok(None);
    };
    let mut v = Violations::default();
    let interval = std::time::Duration::try_from(interval)
        .ok()
        .filter(|i| (MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(i));
    if interval.is_none() {
        v.add("heartbeat_interval", "must be 1 second to 5 minutes");
    }
    v.finish()?;
    Ok(interval)
}

const MIN_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(300);

fn heartbeat_message() -> pb::WatchKeyChangesResponse {
    pb::WatchKeyChangesResponse {
        kind: pb::WatchEventKind::Heartbeat.into(),
        ..Default::default()
    }
}

fn change_to_proto(change: KeyChange) -> pb::WatchKeyChangesResponse {
    let (kind, key_id, integration) = match change {
        KeyChange::Reset => (pb::WatchEventKind::Reset, String::new(), String::new()),
        KeyChange::Key(key_id) => (pb::WatchEventKind::KeyChanged, key_id, String::new()),
        KeyChange::Integration(name) => {
            (pb::WatchEventKind::IntegrationChanged, String::new(), name)
        }
    };
    pb::WatchKeyChangesResponse {
        kind: kind.into(),
        key_id,
        integration,
    }
}
