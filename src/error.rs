//! The one error type of every use case. Each transport maps it once: gRPC
//! in `grpc::status`.

/// A field of a request that failed validation, and why. The description
/// never repeats the field's value: it may be a secret pasted in the wrong
/// place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every way a call can fail. Handlers return `Result<_, Error>` and use `?`;
/// each transport's mapping (`grpc::status`) is the only place codes and
/// messages are chosen.
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
