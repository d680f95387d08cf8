//! The gateway's one error type, and the one place it becomes an S3 error (status, code, message).
//!
//! Each variant says whose fault it is: the client's (4xx), the backend's (503) or ours (500).

use s3s::{S3Error, S3ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The backend could not be reached, reset the connection, or did not answer in time.
    #[error("the backend is unavailable: {0}")]
    BackendUnavailable(String),
    /// A request the gateway does not recognise and will not forward (fail closed).
    #[error("wormgate does not recognise this request ({0}) and refuses it")]
    UnknownOperation(String),
    /// The user may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// The request cannot be understood.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request path cannot be decoded.
    #[error("{0}")]
    InvalidUri(String),
    /// A header value the backend request cannot carry.
    #[error("{0}")]
    InvalidArgument(String),
    /// A fault inside the gateway.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The S3 error the client sees. Backend and internal details stay in the log.
    #[must_use]
    pub fn into_s3(self, request_id: &str) -> S3Error {
        let (code, message) = match &self {
            Self::BackendUnavailable(_) => (
                S3ErrorCode::ServiceUnavailable,
                "The storage backend is unavailable. Please retry.".to_owned(),
            ),
            Self::UnknownOperation(_) => (S3ErrorCode::AccessDenied, self.to_string()),
            Self::AccessDenied(m) => (S3ErrorCode::AccessDenied, m.clone()),
            Self::InvalidRequest(m) => (S3ErrorCode::InvalidRequest, m.clone()),
            Self::InvalidUri(m) => (S3ErrorCode::InvalidURI, m.clone()),
            Self::InvalidArgument(m) => (S3ErrorCode::InvalidArgument, m.clone()),
            Self::Internal(_) => (
                S3ErrorCode::InternalError,
                "We encountered an internal error. Please try again.".to_owned(),
            ),
        };
        let mut err = S3Error::with_message(code, message);
        err.set_request_id(request_id);
        err
    }
}
