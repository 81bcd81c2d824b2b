//! The calls the scenarios make, through the Rust SDK (`latchkey-client`),
//! and the keys they present.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use latchkey::domain::{
    ApiKey, KeyKind,
    key_format::{CHECKSUM_LEN, KEY_ID_LEN, KEY_LEN, checksum},
};
use latchkey_client::{
    Client, ClientError,
    pb::{
        Decision, VerifyIntegrationKeyRequest,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::load::{Call, EXHAUSTED};

/// gRPC connections the callers spread over.
const CONNECTIONS: usize = 4;
/// Deadline of one call: far above any latency the bench should see, so
/// only a stuck call counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Keys handed out one per call (each verified once), shared by callers.
pub type KeyPool = Arc<Mutex<Vec<String>>>;

/// The server under test, as the callers see it.
#[derive(Clone)]
pub struct Target {
    /// One client per connection, the partner key attached (used by
    /// creates; verifies and health checks need no credential and go on
    /// the bare channel).
    clients: Arc<Vec<Client>>,
    /// A custom integration granted `endpoint`.
    pub integration: Arc<str>,
    pub endpoint: Arc<str>,
}

impl Target {
    pub async fn connect(
        addr: &str,
        partner_key: &str,
        integration: &str,
        endpoint: &str,
    ) -> anyhow::Result<Self> {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let client = Client::builder(format!("http://{addr}"))
                .partner_key(partner_key)
                .timeout(CALL_TIMEOUT)
                .connect()
                .await
                .with_context(|| format!("cannot connect to {addr}"))?;
            clients.push(client);
        }
        Ok(Self {
            clients: Arc::new(clients),
            integration: integration.into(),
            endpoint: endpoint.into(),
        })
    }

    fn channel(&self, worker: usize) -> Channel {
        self.clients[worker % self.clients.len()].channel()
    }

    /// Creates a key in the integration and returns it.
    pub async fn create(&self) -> Result<String, ClientError> {
        let created = self.clients[0]
            .create_integration_key(&self.integration, "", None)
            .await?;
        Ok(created.api_key)
    }

    /// Verifies `api_key` for the endpoint once.
    pub async fn verify(&self, api_key: String) -> Result<Decision, Status> {
        verify(self.channel(0), api_key, self.endpoint.to_string(), None).await
    }
}

/// One VerifyIntegrationKey call, on behalf of the end caller
/// `caller_address` when given (honoured by a server that trusts the bench).
async fn verify(
    channel: Channel,
    api_key: String,
    endpoint: String,
    caller_address: Option<String>,
) -> Result<Decision, Status> {
    let response = IntegrationKeysServiceClient::new(channel)
        .verify_integration_key(VerifyIntegrationKeyRequest {
            api_key,
            endpoint,
            caller_address: caller_address.unwrap_or_default(),
        })
        .await?;
    Ok(response.into_inner().decision())
}

fn describe(status: &Status) -> String {
    format!("verify: {:?}: {}", status.code(), status.message())
}

/// grpc.health.v1 Check of the whole server: the empty-RPC baseline.
pub fn health(target: &Target) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    move |worker| {
        let mut client = HealthClient::new(target.channel(worker));
        Box::pin(async move {
            client
                .check(HealthCheckRequest::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// One page of `page_size` keys of the integration from `token` (empty: the
/// first page); it must hold a full page.
pub fn list_page(
    target: &Target,
    token: String,
    page_size: i32,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    move |worker| {
        let client = target.clients[worker % target.clients.len()].clone();
        let (integration, token) = (target.integration.clone(), token.clone());
        Box::pin(async move {
            let page = client
                .list_integration_keys(&integration, page_size, &token)
                .await
                .map_err(|e| e.to_string())?;
            if page.keys.len() == page_size as usize {
                Ok(())
            } else {
                Err(format!("{} keys in a page of {page_size}", page.keys.len()))
            }
        })
    }
}

/// Creates keys, dropping them.
pub fn creating(target: &Target) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    move |_| {
        let target = target.clone();
        Box::pin(async move { target.create().await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// Creates keys, keeping them in `made`.
pub fn creating_into(
    target: &Target,
    made: &KeyPool,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    let made = made.clone();
    move |_| {
        let target = target.clone();
        let made = made.clone();
        Box::pin(async move {
            let key = target.create().await.map_err(|e| e.to_string())?;
            made.lock().unwrap_or_else(|e| e.into_inner()).push(key);
            Ok(())
        })
    }
}

/// Verifies each key of `fresh` once (every call pays argon2), as its
/// honest holder would, from an end caller of its own.
pub fn verify_fresh(
    target: &Target,
    fresh: &KeyPool,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    let fresh = fresh.clone();
    move |worker| {
        let channel = target.channel(worker);
        let endpoint = target.endpoint.to_string();
        let next = fresh.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Box::pin(async move {
            let key = next.ok_or(EXHAUSTED)?;
            let caller = format!("198.51.100.{}", worker % 250);
            match verify(channel, key, endpoint, Some(caller)).await {
                Ok(Decision::Allowed) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(status) => Err(describe(&status)),
            }
        })
    }
}

/// Verifies the warm keys as they are: every call should be allowed.
pub fn verify_cached(
    target: &Target,
    warm: &Arc<Vec<String>>,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    verifying(target, warm, str::to_owned, |d| d == Decision::Allowed)
}

/// Wrong secrets for real key ids: the attack shape.
pub fn verify_bad(
    target: &Target,
    warm: &Arc<Vec<String>>,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    verifying(target, warm, wrong_secret, |d| {
        matches!(d, Decision::Invalid | Decision::RateLimited)
    })
}

/// What a rejection costs: `key_for` one of `real` keys (an unknown key id
/// or a wrong secret) must be answered `INVALID`. RATE_LIMITED would mean
/// throttling decided, not the lookup or the hash: counted as an error, so
/// a throttled server shows.
pub fn verify_rejected(
    target: &Target,
    real: &Arc<Vec<String>>,
    key_for: fn(&str) -> String,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    verifying(target, real, key_for, |d| d == Decision::Invalid)
}

/// Each worker verifies `key_for(its key of keys)`; the call succeeds when
/// the decision is `expected`.
fn verifying(
    target: &Target,
    keys: &Arc<Vec<String>>,
    key_for: fn(&str) -> String,
    expected: fn(Decision) -> bool,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    let keys = keys.clone();
    move |worker| {
        let channel = target.channel(worker);
        let api_key = key_for(&keys[worker % keys.len()]);
        let endpoint = target.endpoint.to_string();
        Box::pin(async move {
            match verify(channel, api_key, endpoint, None).await {
                Ok(decision) if expected(decision) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(status) => Err(describe(&status)),
            }
        })
    }
}

/// The open-loop flood's n-th call: a wrong secret for one of `keys`' ids,
/// from one of many attacking end callers. Every answer the server may give
/// an attacker (INVALID, RATE_LIMITED, RESOURCE_EXHAUSTED) is a success;
/// anything else is an error.
pub fn flood_call(target: &Target, keys: &Arc<Vec<String>>) -> impl FnMut(usize) -> Call {
    let target = target.clone();
    let keys = keys.clone();
    move |n| {
        let channel = target.channel(n);
        let key = wrong_secret(&keys[n % keys.len()]);
        let caller = format!("203.0.{}.{}", (n / 250) % 250, n % 250);
        let endpoint = target.endpoint.to_string();
        Box::pin(async move {
            match verify(channel, key, endpoint, Some(caller)).await {
                Ok(Decision::Invalid | Decision::RateLimited) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(status) if status.code() == Code::ResourceExhausted => Ok(()),
                Err(status) => Err(describe(&status)),
            }
        })
    }
}

/// The same key id with a fresh random secret (and a valid checksum).
pub fn wrong_secret(api_key: &str) -> String {
    let key_id = api_key.get(..KEY_ID_LEN).unwrap_or(api_key);
    let guess = ApiKey::generate(KeyKind::Integration)
        .ok()
        .and_then(|k| {
            k.expose_secret()
                .get(KEY_ID_LEN..KEY_LEN - CHECKSUM_LEN)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = format!("{key_id}{guess}");
    format!("{body}{}", checksum(body.as_bytes()))
}

/// A whole key with a valid checksum whose key id was never issued (a fresh
/// random one for every call, so no cache or throttle bucket is shared).
pub fn unknown_key(_real: &str) -> String {
    ApiKey::generate(KeyKind::Integration)
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_secret_keeps_the_key_id_and_a_valid_format() {
        let real = ApiKey::generate(KeyKind::Integration).unwrap();
        let wrong = wrong_secret(real.expose_secret());
        assert_eq!(wrong.len(), KEY_LEN);
        assert_eq!(&wrong[..KEY_ID_LEN], real.key_id());
        assert_ne!(wrong, real.expose_secret());
        assert!(ApiKey::parse(KeyKind::Integration, wrong.clone()).is_ok());
        let unknown = unknown_key(real.expose_secret());
        assert!(ApiKey::parse(KeyKind::Integration, unknown.clone()).is_ok());
        assert_ne!(&unknown[..KEY_ID_LEN], real.key_id());
    }
}
