//! The one mapping from `Error` to `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`: what every "too much,
/// try later" answer looks like (overload, and guards' rate limits).
pub fn resource_exhausted(message: impl Into<String>, retry_after: std::time::Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(Code::ResourceExhausted, message, details)
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
