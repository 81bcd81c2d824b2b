//! The one domain error type, and its single mapping to `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A field of a request that failed validation, and why. The description
/// never repeats the field's value: it may be a secret pasted in the wrong
/// place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every way a call can fail. Handlers return `Result<_, Error>` and use `?`;
/// `From<Error> for Status` is the only place codes and messages are chosen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential, or one that is unknown, malformed or revoked.
    #[error("Invalid credentials")]
    Unauthenticated,
    /// A valid credential that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A malformed request, with every bad field.
    #[error("Bad request: {}", summarize(.0))]
    BadRequest(Vec<FieldViolation>),
    #[error("Integration '{0}' not found")]
    IntegrationNotFound(String),
    #[error("Key '{0}' not found")]
    KeyNotFound(String),
    #[error("API keys are available only for custom integrations")]
    NotCustomIntegration,
    #[error("Client '{0}' not found")]
    ClientNotFound(String),
    #[error("Client '{0}' is already configured")]
    ClientAlreadyConfigured(String),
    #[error("User '{0}' not found")]
    UserNotFound(String),
    /// Rolling a disabled key would mint a working successor.
    #[error("Key '{0}' is disabled")]
    KeyDisabled(String),
    /// Rolling an expired key would issue a key that is born expired.
    #[error("Key '{0}' has expired and cannot be rolled")]
    KeyExpired(String),
    /// No room to do the work now (the argon2 queue or the server's in-flight
    /// limit is full); worth retrying after the given time.
    #[error("Server busy: too many calls in flight; retry shortly")]
    Overloaded(std::time::Duration),
    /// The database could not be reached; worth retrying.
    #[error("Service unavailable: the database cannot be reached")]
    Unavailable(#[source] sea_orm::DbErr),
    /// Anything else: a bug or a broken invariant. Logged in full, answered
    /// with a generic message.
    #[error("Internal error")]
    Internal(String),
}

impl Error {
    /// A bad request with a single violation.
    pub fn bad_field(field: &str, description: impl Into<String>) -> Self {
        Error::BadRequest(vec![FieldViolation {
            field: field.to_owned(),
            description: description.into(),
        }])
    }
}

fn summarize(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        if database_unreachable(&err) {
            Error::Unavailable(err)
        } else {
            Error::Internal(format!("database: {err}"))
        }
    }
}

/// Whether `err` means the database could not be reached (retryable), as
/// opposed to a statement that failed.
pub fn database_unreachable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => {
            matches!(
                e.as_ref(),
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        }
        _ => false,
    }
}

/// How soon an overloaded caller is told to retry.
pub const OVERLOADED_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl From<crate::security::hasher::HashError> for Error {
    fn from(err: crate::security::hasher::HashError) -> Self {
        match err {
            crate::security::hasher::HashError::Busy => Error::Overloaded(OVERLOADED_RETRY_AFTER),
            err => Error::Internal(err.to_string()),
        }
    }
}

/// `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`: what every "too much,
/// try later" answer looks like (overload, and guards' rate limits).
pub fn resource_exhausted(message: impl Into<String>, retry_after: std::time::Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

impl From<crate::security::sealing::CryptoError> for Error {
    fn from(err: crate::security::sealing::CryptoError) -> Self {
        Error::Internal(format!("credential encryption: {err}"))
    }
}

impl From<getrandom::Error> for Error {
    fn from(err: getrandom::Error) -> Self {
        Error::Internal(format!("OS random generator: {err}"))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Unauthenticated => Status::unauthenticated(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::BadRequest(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::IntegrationNotFound(_)
            | Error::KeyNotFound(_)
            | Error::ClientNotFound(_)
            | Error::UserNotFound(_) => Status::not_found(message),
            Error::ClientAlreadyConfigured(_) => Status::already_exists(message),
            Error::NotCustomIntegration | Error::KeyExpired(_) | Error::KeyDisabled(_) => {
                Status::failed_precondition(message)
            }
            Error::Overloaded(retry_after) => resource_exhausted(message, retry_after),
            Error::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                Status::unavailable(message)
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal(message)
            }
        }
    }
}
