//! Helpers for the object-lock tests: outcomes of SDK calls, the expected AWS replies, and a
//! matrix that records what each path did so that a run can print it.

use std::future::Future;
use std::time::SystemTime;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetentionMode};

/// What one call did: `ok`, or status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Outcome {
    #[must_use]
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    #[must_use]
    pub fn brief(&self) -> String {
        if self.is_ok() {
            format!("{} ok", self.status)
        } else {
            format!("{} {}", self.status, self.code)
        }
    }
}

/// Runs an SDK call and keeps only its outcome.
pub async fn outcome<T, E, R>(fut: impl Future<Output = Result<T, SdkError<E, R>>>) -> Outcome
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug + HasStatus,
{
    match fut.await {
        Ok(_) => Outcome {
            status: 200,
            code: String::new(),
            message: String::new(),
        },
        Err(e) => Outcome {
            status: e.raw_response().map_or(0, HasStatus::status),
            code: e.code().unwrap_or("").to_owned(),
            message: e.message().unwrap_or("").to_owned(),
        },
    }
}

/// The HTTP status of a raw SDK response.
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// AWS's message for every refusal caused by a lock.
pub const LOCKED: &str = "Access Denied because object protected by object lock.";

/// What a path should do.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    Ok,
    /// Status and code; with the lock message when `locked`.
    Refused(u16, &'static str),
    Locked,
}

/// Rows of (path, profile, result), asserted as they are added.
#[derive(Default)]
pub struct Matrix {
    pub profile: String,
    pub rows: Vec<(String, String)>,
}

impl Matrix {
    #[must_use]
    pub fn new(profile: &str) -> Self {
        Self {
            profile: profile.to_owned(),
            rows: Vec::new(),
        }
    }

    /// Asserts `got` is `want` and records it.
    ///
    /// # Panics
    /// When it is not.
    pub fn check(&mut self, path: &str, got: &Outcome, want: Expect) {
        match want {
            Expect::Ok => assert!(
                got.is_ok(),
                "{} / {path}: expected success, got {got:?}",
                self.profile
            ),
            Expect::Refused(status, code) => {
                assert_eq!(
                    (got.status, got.code.as_str()),
                    (status, code),
                    "{} / {path}: {got:?}",
                    self.profile
                );
            }
            Expect::Locked => {
                assert_eq!(
                    (got.status, got.code.as_str(), got.message.as_str()),
                    (403, "AccessDenied", LOCKED),
                    "{} / {path}: {got:?}",
                    self.profile
                );
            }
        }
        self.rows.push((path.to_owned(), got.brief()));
    }

    /// The matrix as markdown, for the test's output.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!("| path | {} |\n|---|---|\n", self.profile);
        for (path, result) in &self.rows {
            out.push_str(&format!("| {path} | {result} |\n"));
        }
        out
    }
}

/// A date `secs` from now, as the SDK takes it.
#[must_use]
pub fn in_secs(secs: i64) -> DateTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    #[allow(clippy::cast_possible_wrap)]
    DateTime::from_secs(now as i64 + secs)
}

/// Puts `key` with a retention of `mode` until `until`.
///
/// # Panics
/// When the PUT fails.
pub async fn put_locked(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    mode: ObjectLockMode,
    until: DateTime,
) -> Option<String> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"locked backup"))
        .object_lock_mode(mode)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap_or_else(|e| panic!("locked put {key}: {e:?}"))
        .version_id
}

/// Where the store behind the gateway keeps a version: a version the gateway wrote in a
/// versioned lock bucket has a name of its own (`versions::layout`); anything else is its key.
#[must_use]
pub fn backend_name(key: &str, version: Option<&str>) -> String {
    match version.and_then(wormgate::versions::layout::VersionId::parse) {
        Some(id) => wormgate::versions::layout::version_name(key, &id),
        None => key.to_owned(),
    }
}

/// The retention mode type of a lock mode.
#[must_use]
pub fn retention_mode(mode: &ObjectLockMode) -> ObjectLockRetentionMode {
    ObjectLockRetentionMode::from(mode.as_str())
}

#[must_use]
pub fn hold(on: bool) -> aws_sdk_s3::types::ObjectLockLegalHold {
    aws_sdk_s3::types::ObjectLockLegalHold::builder()
        .status(if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        })
        .build()
}

/// Creates a fresh bucket with object lock enabled and returns its name.
///
/// # Panics
/// When the bucket cannot be created.
pub async fn lock_bucket(client: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = crate::unique_bucket(prefix);
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create lock bucket {bucket}: {e:?}"));
    bucket
}

/// A lock configuration with a default retention of `days` in `mode`.
#[must_use]
pub fn default_retention(
    mode: aws_sdk_s3::types::ObjectLockRetentionMode,
    days: i32,
) -> aws_sdk_s3::types::ObjectLockConfiguration {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRule,
    };
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(DefaultRetention::builder().mode(mode).days(days).build())
                .build(),
        )
        .build()
}

/// DeleteObject of one version, as an outcome.
pub async fn delete_version(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: &str,
) -> Outcome {
    outcome(
        client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .send(),
    )
    .await
}

/// Sets the legal hold of one version.
///
/// # Panics
/// When the request fails.
pub async fn set_hold(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: &str,
    on: bool,
) {
    client
        .put_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .legal_hold(hold(on))
        .send()
        .await
        .unwrap_or_else(|e| panic!("legal hold {on} on {key}: {e:?}"));
}

/// Sets the retention of one version to `mode` until `secs` from now, with the bypass if
/// `bypass`.
///
/// # Panics
/// When the request fails.
pub async fn set_retention(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: &str,
    mode: aws_sdk_s3::types::ObjectLockRetentionMode,
    secs: i64,
    bypass: bool,
) {
    client
        .put_object_retention()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .set_bypass_governance_retention(bypass.then_some(true))
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(mode)
                .retain_until_date(in_secs(secs))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("retention on {key}: {e:?}"));
}
