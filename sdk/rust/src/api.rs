//! [`Client`]: the latchkey API as plain async methods with typed errors.

use std::time::{Duration, SystemTime};

use tonic::{
    Code, Request, Status,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_types::StatusExt;

use crate::pb::{
    self, client_configuration_service_client::ClientConfigurationServiceClient,
    health_service_client::HealthServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};

/// Why a call failed, by gRPC code. Messages are the server's, which never
/// hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("invalid partner key: it must be ASCII")]
    BadPartnerKey,
    #[error("{message}")]
    InvalidArgument {
        message: String,
        /// `(field, description)` of every bad field.
        violations: Vec<(String, String)>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{}: {}", .0.code(), .0.message())]
    Other(Status),
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument => ClientError::InvalidArgument {
                violations: status
                    .get_details_bad_request()
                    .map(|details| {
                        details
                            .field_violations
                            .into_iter()
                            .map(|v| (v.field, v.description))
                            .collect()
                    })
                    .unwrap_or_default(),
                message,
            },
            Code::NotFound => ClientError::NotFound(message),
            Code::AlreadyExists => ClientError::AlreadyExists(message),
            Code::FailedPrecondition => ClientError::FailedPrecondition(message),
            Code::Unauthenticated => ClientError::Unauthenticated(message),
            Code::PermissionDenied => ClientError::PermissionDenied(message),
            Code::Unavailable => ClientError::Unavailable(message),
            _ => ClientError::Other(status),
        }
    }
}

/// Adds the partner key (`sid`) to every call.
#[derive(Clone)]
pub struct PartnerKey(Option<AsciiMetadataValue>);

impl Interceptor for PartnerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("sid", key.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, PartnerKey>;

/// TLS settings for [`ClientBuilder::tls`]. `Debug` hides the key.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM of the CA that signed the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The name the server's certificate is for (default: the endpoint's
    /// host).
    pub domain: Option<String>,
    /// PEM certificate and key to present, for servers that require mTLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("domain", &self.domain)
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    partner_key: Option<String>,
    timeout: Duration,
    tls: Option<TlsOptions>,
}

impl ClientBuilder {
    /// The partner key sent as `sid` on every call.
    pub fn partner_key(mut self, key: impl Into<String>) -> Self {
        self.partner_key = Some(key.into());
        self
    }

    /// Deadline of every call (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects with TLS (the endpoint should then be `https://...`).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The configured channel, connected.
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())?
            .timeout(self.timeout)
            .connect_timeout(self.timeout);
        if let Some(tls) = &self.tls {
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(config)?;
        }
        Ok(endpoint.connect().await?)
    }

    pub async fn connect(self) -> Result<Client, ClientError> {
        let channel = self.channel().await?;
        let key = match &self.partner_key {
            Some(key) => Some(key.parse().map_err(|_| ClientError::BadPartnerKey)?),
            None => None,
        };
        Ok(Client {
            channel,
            partner_key: PartnerKey(key),
        })
    }
}

/// A connection to latchkey with the partner key attached.
///
/// ```no_run
/// # async fn example() -> Result<(), latchkey_client::ClientError> {
/// use latchkey_client::{Client, ClientError};
///
/// let client = Client::builder("http://127.0.0.1:50051")
///     .partner_key(std::env::var("LATCHKEY_PARTNER_KEY").unwrap_or_default())
///     .connect()
///     .await?;
/// let created = client.create_integration_key("learner-activity", "nightly job", None).await?;
/// println!("key id {}", created.key.as_ref().map_or("", |k| k.key_id.as_str()));
/// match client.get_integration("no-such-integration").await {
///     Err(ClientError::NotFound(message)) => assert!(message.contains("not found")),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    partner_key: PartnerKey,
}

impl Client {
    /// Starts configuring a client of the server at `endpoint`
    /// (`http://host:port`, or `https://...` with [`ClientBuilder::tls`]).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            partner_key: None,
            timeout: Duration::from_secs(10),
            tls: None,
        }
    }

    /// The generated IntegrationKeysService client, partner key attached.
    pub fn integration_keys(&self) -> IntegrationKeysServiceClient<Authed> {
        IntegrationKeysServiceClient::with_interceptor(
            self.channel.clone(),
            self.partner_key.clone(),
        )
    }

    /// The generated ClientConfigurationService client, partner key attached.
    pub fn client_configuration(&self) -> ClientConfigurationServiceClient<Authed> {
        ClientConfigurationServiceClient::with_interceptor(
            self.channel.clone(),
            self.partner_key.clone(),
        )
    }

    /// The generated HealthService client, partner key attached.
    pub fn health(&self) -> HealthServiceClient<Authed> {
        HealthServiceClient::with_interceptor(self.channel.clone(), self.partner_key.clone())
    }

    /// The underlying channel (e.g. for grpc.health.v1 probes).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Creates a key; the response's `api_key` is shown only this once.
    pub async fn create_integration_key(
        &self,
        integration: &str,
        display_name: &str,
        expire_time: Option<SystemTime>,
    ) -> Result<pb::CreateIntegrationKeyResponse, ClientError> {
        let expire_time = expire_time.map(crate::time::to_timestamp);
        Ok(self
            .integration_keys()
            .create_integration_key(pb::CreateIntegrationKeyRequest {
                integration: integration.into(),
                display_name: display_name.into(),
                expire_time,
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    pub async fn get_integration_key(
        &self,
        integration: &str,
        key_id: &str,
    ) -> Result<pb::IntegrationKey, ClientError> {
        let response = self
            .integration_keys()
            .get_integration_key(pb::GetIntegrationKeyRequest {
                integration: integration.into(),
                key_id: key_id.into(),
            })
            .await?;
        response
            .into_inner()
            .key
            .ok_or_else(|| ClientError::Other(Status::internal("response without a key")))
    }

    /// One page of an integration's keys; pass the previous page's
    /// `next_page_token` (empty for the first page).
    pub async fn list_integration_keys(
        &self,
        integration: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListIntegrationKeysResponse, ClientError> {
        Ok(self
            .integration_keys()
            .list_integration_keys(pb::ListIntegrationKeysRequest {
                integration: integration.into(),
                page_size,
                page_token: page_token.into(),
            })
            .await?
            .into_inner())
    }

    pub async fn delete_integration_key(
        &self,
        integration: &str,
        key_id: &str,
    ) -> Result<(), ClientError> {
        self.integration_keys()
            .delete_integration_key(pb::DeleteIntegrationKeyRequest {
                integration: integration.into(),
                key_id: key_id.into(),
            })
            .await?;
        Ok(())
    }

    /// May `api_key` call `endpoint`? Every verdict is an `Ok` with a
    /// `decision`.
    pub async fn verify_integration_key(
        &self,
        api_key: &str,
        endpoint: &str,
    ) -> Result<pb::VerifyIntegrationKeyResponse, ClientError> {
        Ok(self
            .integration_keys()
            .verify_integration_key(pb::VerifyIntegrationKeyRequest {
                api_key: api_key.into(),
                endpoint: endpoint.into(),
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    pub async fn get_integration(&self, name: &str) -> Result<pb::Integration, ClientError> {
        let response = self
            .integration_keys()
            .get_integration(pb::GetIntegrationRequest { name: name.into() })
            .await?;
        response
            .into_inner()
            .integration
            .ok_or_else(|| ClientError::Other(Status::internal("response without an integration")))
    }

    pub async fn get_client_configuration(
        &self,
        client_id: &str,
    ) -> Result<pb::ClientConfiguration, ClientError> {
        let response = self
            .client_configuration()
            .get_client_configuration(pb::GetClientConfigurationRequest {
                client_id: client_id.into(),
            })
            .await?;
        response
            .into_inner()
            .configuration
            .ok_or_else(|| ClientError::Other(Status::internal("response without a configuration")))
    }

    pub async fn check_client_health(
        &self,
        client_id: &str,
    ) -> Result<pb::CheckClientHealthResponse, ClientError> {
        Ok(self
            .health()
            .check_client_health(pb::CheckClientHealthRequest {
                client_id: client_id.into(),
            })
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn statuses_become_typed_errors() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("integration", "must not be empty");
        let status = Status::with_error_details(Code::InvalidArgument, "bad request", details);
        match ClientError::from(status) {
            ClientError::InvalidArgument {
                message,
                violations,
            } => {
                assert_eq!(message, "bad request");
                assert_eq!(
                    violations,
                    vec![("integration".to_owned(), "must not be empty".to_owned())]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientError::from(Status::not_found("Integration 'x' not found")),
            ClientError::NotFound(m) if m == "Integration 'x' not found"
        ));
        assert!(matches!(
            ClientError::from(Status::unauthenticated("no")),
            ClientError::Unauthenticated(_)
        ));
        assert!(matches!(
            ClientError::from(Status::internal("boom")),
            ClientError::Other(s) if s.code() == Code::Internal
        ));
    }

    #[test]
    fn tls_options_debug_hides_the_key() {
        let tls = TlsOptions {
            ca_pem: Some(b"ca".to_vec()),
            domain: Some("localhost".into()),
            identity: Some((b"cert".to_vec(), b"PRIVATE KEY BYTES".to_vec())),
        };
        let shown = format!("{tls:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
