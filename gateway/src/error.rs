//! The gateway's one error type, and the one place it becomes an S3 error (status, code, message).
//!
//! Each variant says whose fault it is: the client's (4xx), the backend's or the index's (503,
//! fail closed) or ours (500). A policy denial carries its `DenyReason`, mapped here to the reply
//! AWS gives in the same situation.

use policy::rules::DenyReason;
use s3s::{S3Error, S3ErrorCode};

/// The message AWS gives for every refusal caused by a lock.
pub const LOCKED_MESSAGE: &str = "Access Denied because object protected by object lock.";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The backend could not be reached, reset the connection, or did not answer in time.
    #[error("the backend is unavailable: {0}")]
    BackendUnavailable(String),
    /// The lock index could not be read or written: nothing is decided without it.
    #[error("the lock index is unavailable: {0}")]
    IndexUnavailable(String),
    /// A request the gateway does not recognise and will not forward (fail closed).
    #[error("wormgate does not recognise this request ({0}) and refuses it")]
    UnknownOperation(String),
    /// An operation the gateway knows and does not serve in this case.
    #[error("{0}")]
    NotImplemented(String),
    /// The policy refused the request.
    #[error("refused: {0:?}")]
    Denied(DenyReason),
    /// The user may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// The request cannot be understood.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request path cannot be decoded.
    #[error("{0}")]
    InvalidUri(String),
    /// A bucket or key the gateway will not act on (see `target::check_key`).
    #[error("{0}")]
    Target(#[from] crate::s3::target::TargetError),
    #[error("{0}")]
    BucketNotEmpty(String),
    /// A presigned URL's parameters that AWS refuses too (validity over a week).
    #[error("{0}")]
    AuthorizationQuery(String),
    /// A header or parameter value that is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// An XML body that is not what S3 expects.
    #[error("{0}")]
    MalformedXml(String),
    /// A policy body larger than the gateway reads.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    /// GetObjectRetention / GetObjectLegalHold on a version without one.
    #[error("no object lock configuration on this version")]
    NoSuchObjectLockConfiguration,
    /// GetObjectLockConfiguration on a bucket without one.
    #[error("no object lock configuration on this bucket")]
    ObjectLockConfigurationNotFound,
    /// The object or version does not exist.
    #[error("no such key")]
    NoSuchKey,
    /// The bucket does not exist.
    #[error("no such bucket")]
    NoSuchBucket,
    /// A version id that names no version of the key.
    #[error("no such version")]
    NoSuchVersion,
    /// A multipart upload id that names no upload.
    #[error("no such upload")]
    NoSuchUpload,
    /// A conditional write (`If-None-Match`, `If-Match`) whose condition does not hold.
    #[error("a precondition of the write did not hold")]
    PreconditionFailed,
    /// Retention or legal hold asked of a delete marker.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The backend's own bucket-level retention refused to delete or overwrite (OSS's 409
    /// `FileImmutable`).
    #[error("the backend's bucket retention protects this object")]
    BackendRetention,
    /// A lock has ended by the gateway's clock, but the backend's clock does not confirm it.
    #[error("the clocks disagree: {0}")]
    ClockUntrusted(String),
    /// A fault inside the gateway.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<policy::index::IndexError> for GatewayError {
    fn from(e: policy::index::IndexError) -> Self {
        Self::IndexUnavailable(e.to_string())
    }
}

fn denial(reason: DenyReason) -> (S3ErrorCode, String) {
    let locked = || (S3ErrorCode::AccessDenied, LOCKED_MESSAGE.to_owned());
    match reason {
        DenyReason::Retention { .. }
        | DenyReason::LegalHold
        | DenyReason::ComplianceShortened
        | DenyReason::ComplianceDowngrade
        | DenyReason::GovernanceNeedsBypass => locked(),
        DenyReason::Missing(p) => (
            S3ErrorCode::AccessDenied,
            format!("Access Denied: this key lacks the {} permission.", p.as_str()),
        ),
        DenyReason::BucketLockNotEnabled => (
            S3ErrorCode::InvalidRequest,
            "Bucket is missing Object Lock Configuration".to_owned(),
        ),
        DenyReason::BypassWithoutLock => (
            S3ErrorCode::InvalidArgument,
            "x-amz-bypass-governance-retention is only applicable to Object Lock enabled buckets."
                .to_owned(),
        ),
        DenyReason::DateNotInFuture => (
            S3ErrorCode::InvalidArgument,
            "The retain until date must be in the future!".to_owned(),
        ),
        DenyReason::RetentionTooLong { max_days } => (
            S3ErrorCode::InvalidArgument,
            format!("The retain until date must be within {max_days} days from now."),
        ),
        DenyReason::BucketHoldsLocks => (
            S3ErrorCode::AccessDenied,
            "Access Denied because the bucket holds versions protected by object lock.".to_owned(),
        ),
        DenyReason::LifecycleOnLockBucket => (
            S3ErrorCode::AccessDenied,
            "Access Denied because this storage backend does not enforce object lock: a lifecycle rule on a lock bucket would expire protected versions."
                .to_owned(),
        ),
        DenyReason::VersioningLocked => (
            S3ErrorCode::InvalidBucketState,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                .to_owned(),
        ),
        DenyReason::VersioningNotEnabled => (
            S3ErrorCode::InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                .to_owned(),
        ),
        DenyReason::NoSuchVersion => (
            S3ErrorCode::NoSuchKey,
            "The specified key does not exist.".to_owned(),
        ),
        DenyReason::UnknownLockState => (
            S3ErrorCode::ServiceUnavailable,
            "The lock state of this object could not be established, so the request is refused. Please retry."
                .to_owned(),
        ),
    }
}

impl GatewayError {
    /// The HTTP status the client sees.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        self.code_and_message()
            .0
            .status_code()
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Whether this is a refusal (as opposed to bad input or a failure).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Denied(_)
                | Self::AccessDenied(_)
                | Self::UnknownOperation(_)
                | Self::Target(_)
                | Self::BackendRetention
                | Self::ClockUntrusted(_)
        )
    }

    /// A short label for a refusal, for the metrics and the decision log.
    #[must_use]
    pub fn refusal_label(&self) -> String {
        match self {
            Self::Denied(r) => reason_label(r),
            Self::BackendRetention => "backend-retention".into(),
            Self::ClockUntrusted(_) => "clock-untrusted".into(),
            Self::UnknownOperation(_) => "unknown-operation".into(),
            // A name a store could resolve to another object, or a store's own API.
            Self::Target(_) => "unsafe-name".into(),
            _ => "access-denied".into(),
        }
    }

    /// The S3 error the client sees. Backend and internal details stay in the log.
    #[must_use]
    pub fn into_s3(self, request_id: &str) -> S3Error {
        let (code, message) = self.code_and_message();
        let mut err = S3Error::with_message(code, message);
        err.set_request_id(request_id);
        err
    }

    /// The S3 code and message, also used for one key's `<Error>` in a DeleteObjects reply.
    #[must_use]
    pub fn code_and_message(&self) -> (S3ErrorCode, String) {
        match self {
            Self::BackendUnavailable(_) => (
                S3ErrorCode::ServiceUnavailable,
                "The storage backend is unavailable. Please retry.".to_owned(),
            ),
            Self::IndexUnavailable(_) => (
                S3ErrorCode::ServiceUnavailable,
                "The lock index is unavailable, so the request is refused. Please retry."
                    .to_owned(),
            ),
            Self::UnknownOperation(_) => (S3ErrorCode::AccessDenied, self.to_string()),
            Self::Denied(reason) => denial(*reason),
            Self::AccessDenied(m) => (S3ErrorCode::AccessDenied, m.clone()),
            Self::InvalidRequest(m) => (S3ErrorCode::InvalidRequest, m.clone()),
            Self::InvalidUri(m) => (S3ErrorCode::InvalidURI, m.clone()),
            Self::Target(e) => {
                use crate::s3::target::TargetError as T;
                let code = match e {
                    T::NotUtf8 | T::NotAbsolute | T::EmptyBucket => S3ErrorCode::InvalidURI,
                    T::BadBucketName | T::ReservedBucketName => S3ErrorCode::InvalidBucketName,
                    T::DotSegment | T::EmptySegment => S3ErrorCode::InvalidArgument,
                    T::KeyTooLong => S3ErrorCode::KeyTooLongError,
                    T::ReservedKey => S3ErrorCode::AccessDenied,
                };
                (code, e.to_string())
            }
            Self::BucketNotEmpty(m) => (S3ErrorCode::BucketNotEmpty, m.clone()),
            Self::AuthorizationQuery(m) => {
                (S3ErrorCode::AuthorizationQueryParametersError, m.clone())
            }
            Self::InvalidArgument(m) => (S3ErrorCode::InvalidArgument, m.clone()),
            Self::MalformedXml(m) => (S3ErrorCode::MalformedXML, m.clone()),
            Self::TooLarge(_) => (S3ErrorCode::MaxMessageLengthExceeded, self.to_string()),
            Self::NoSuchObjectLockConfiguration => (
                S3ErrorCode::NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration".to_owned(),
            ),
            Self::ObjectLockConfigurationNotFound => (
                S3ErrorCode::ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket".to_owned(),
            ),
            Self::NoSuchKey => (
                S3ErrorCode::NoSuchKey,
                "The specified key does not exist.".to_owned(),
            ),
            Self::NoSuchBucket => (
                S3ErrorCode::NoSuchBucket,
                "The specified bucket does not exist".to_owned(),
            ),
            Self::NotImplemented(m) => (S3ErrorCode::NotImplemented, m.clone()),
            Self::NoSuchVersion => (
                S3ErrorCode::NoSuchVersion,
                "The specified version does not exist.".to_owned(),
            ),
            Self::NoSuchUpload => (
                S3ErrorCode::NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.".to_owned(),
            ),
            Self::PreconditionFailed => (
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold".to_owned(),
            ),
            Self::MethodNotAllowed(m) => (S3ErrorCode::MethodNotAllowed, m.clone()),
            Self::BackendRetention => (S3ErrorCode::AccessDenied, LOCKED_MESSAGE.to_owned()),
            Self::ClockUntrusted(_) => (
                S3ErrorCode::ServiceUnavailable,
                "The lock on this object has ended by the gateway's clock, but the storage backend's clock does not confirm it, so the request is refused. Please retry later."
                    .to_owned(),
            ),
            Self::Internal(_) => (
                S3ErrorCode::InternalError,
                "We encountered an internal error. Please try again.".to_owned(),
            ),
        }
    }
}

/// A denial reason as a short, stable label.
#[must_use]
pub fn reason_label(reason: &policy::rules::DenyReason) -> String {
    use policy::rules::DenyReason as R;
    match reason {
        R::Retention { mode, .. } => format!("retention-{}", mode.as_s3().to_ascii_lowercase()),
        R::LegalHold => "legal-hold".into(),
        R::ComplianceShortened => "compliance-shortened".into(),
        R::ComplianceDowngrade => "compliance-downgrade".into(),
        R::GovernanceNeedsBypass => "governance-needs-bypass".into(),
        R::Missing(p) => format!("missing-{}", p.as_str()),
        R::BucketLockNotEnabled => "bucket-lock-not-enabled".into(),
        R::BypassWithoutLock => "bypass-without-lock".into(),
        R::DateNotInFuture => "date-not-in-future".into(),
        R::RetentionTooLong { .. } => "retention-too-long".into(),
        R::BucketHoldsLocks => "bucket-holds-locks".into(),
        R::LifecycleOnLockBucket => "lifecycle-on-lock-bucket".into(),
        R::VersioningLocked => "versioning-locked".into(),
        R::VersioningNotEnabled => "versioning-not-enabled".into(),
        R::NoSuchVersion => "no-such-version".into(),
        R::UnknownLockState => "unknown-lock-state".into(),
    }
}
