//! Enforcement: turns each mutating request into a `policy::rules::Action`, gathers the facts,
//! asks `decide`, and only then lets the request reach the backend.
//!
//! The backend can only be reached through its door (`backend::Backend::send` and `read`):
//! a change needs a `Permit`, which only an `Allow` of `policy::rules::decide` gives; a read
//! needs a method that can only be GET or HEAD. A mutating path that skips the policy does not
//! compile.
//!
//! Facts come from the lock index first. A version the index does not know is looked up on the
//! backend (its lock headers, or the `x-amz-meta-wormgate-*` metadata) before anything
//! destructive is allowed; if neither can tell, the answer is 503, never "allowed".
//!
//! The handlers live beside this file, one per concern: `writes` (PutObject, CopyObject,
//! multipart), `deletes` (DeleteObject, DeleteObjects), `retention` (retention and legal
//! hold), `buckets` (bucket lock, versioning, lifecycle, deletion).

mod bucket_retention;
mod buckets;
pub mod clock;
mod deletes;
mod gateway;
mod group_flush;
mod key_locks;
mod profile;
mod retention;
pub mod telemetry;
mod writes;

pub(crate) use gateway::Call;
pub use gateway::Gateway;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use http::{HeaderMap, StatusCode};
use policy::index::{BucketRecord, LockIndex, LockRecord, LockSource};
use policy::lock::{BucketLock, ObjectRef, Profile, Versioning};
use policy::rules::{Action, BucketContents, Decision, Facts, PolicyConfig, VersionState, decide};
use s3s::{Body, S3Response};

use crate::backend::ProxyBody;
use crate::backend::door::{backend_headers, reply};
use crate::backend::oss::worm::{BucketWorm, WormClient};
use crate::backend::{Permit, ReadMethod};
use crate::config::LockSettings;
use crate::enforce::clock::{Agreement, TrustedTime};
use crate::enforce::group_flush::GroupFlush;
use crate::enforce::key_locks::KeyLocks;
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::op::{BucketConfig, S3Op};
use crate::s3::reply_with;
use crate::s3::target::Target;

/// The lock state of the bucket as the request path needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketFacts {
    pub profile: Profile,
    pub lock: BucketLock,
    pub versioning: Versioning,
}

/// Everything enforcement keeps: the index, the per-bucket profiles, the rules' settings, the
/// per-key locks, and what native backends said about their buckets.
pub struct Locks {
    pub(crate) index: Arc<dyn LockIndex>,
    /// Flushes of `index`, shared by concurrent writes.
    flusher: GroupFlush,
    settings: LockSettings,
    pub(crate) policy: PolicyConfig,
    pub(crate) keys: KeyLocks,
    native_buckets: DashMap<String, (BucketLock, Versioning)>,
    pub(crate) time: Arc<TrustedTime>,
    /// OSS's own API, for `bucket-retention` buckets.
    pub(crate) worm: Option<WormClient>,
    /// What OSS last said of each `bucket-retention` bucket's policy.
    pub(crate) worms: DashMap<String, BucketWorm>,
}

impl Locks {
    #[must_use]
    pub fn new(index: Arc<dyn LockIndex>, settings: LockSettings) -> Self {
        let policy = PolicyConfig {
            max_retention_days: settings.max_retention_days,
        };
        Self {
            flusher: GroupFlush::start(&index),
            index,
            settings,
            policy,
            keys: KeyLocks::default(),
            native_buckets: DashMap::new(),
            time: Arc::new(TrustedTime::system()),
            worm: None,
            worms: DashMap::new(),
        }
    }

    /// Decides at the time `time` tells.
    #[must_use]
    pub fn with_time(self, time: Arc<TrustedTime>) -> Self {
        Self { time, ..self }
    }

    /// Reaches OSS's own API through `worm` (for `bucket-retention` buckets).
    #[must_use]
    pub fn with_worm(self, worm: WormClient) -> Self {
        Self {
            worm: Some(worm),
            ..self
        }
    }

    /// Changes a bucket's record in the index (a fresh one if it has none), keeping what the
    /// change does not touch; writes only when something changed.
    pub(crate) fn update_bucket(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketRecord),
    ) -> Result<(), GatewayError> {
        let old = self.index.bucket(bucket)?;
        let mut record = old
            .clone()
            .unwrap_or_else(|| BucketRecord::new(BucketLock::default()));
        change(&mut record);
        if old.as_ref() != Some(&record) {
            self.index.put_bucket(bucket, &record)?;
        }
        Ok(())
    }

    #[must_use]
    pub fn settings(&self) -> &LockSettings {
        &self.settings
    }

    #[must_use]
    pub fn profile_of(&self, bucket: &str) -> Profile {
        self.settings.profile_of(bucket)
    }

    /// Forgets what a native backend said about a bucket (after a change through the gateway).
    pub(crate) fn forget_bucket(&self, bucket: &str) {
        self.native_buckets.remove(bucket);
    }

    /// The clock every decision uses.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    /// Records a pending lock and returns once it is on disk: the write it protects may go to
    /// the backend only after this.
    pub(crate) async fn begin(&self, record: &LockRecord) -> Result<(), GatewayError> {
        self.index.begin(record)?;
        self.flusher.flush().await
    }
}

/// What a HEAD on the backend said about one version.
pub(crate) struct Inspected {
    pub state: VersionState,
    /// The version id the backend reported (`x-amz-version-id`), if any.
    pub version_id: Option<String>,
    /// The HEAD reply's headers, when a HEAD was made and found the version.
    pub head: Option<HeaderMap>,
    /// The version is a delete marker.
    pub delete_marker: bool,
}

impl Gateway {
    /// Runs one call: reads are forwarded, everything else goes through the policy. Where the
    /// backend's own bucket retention refuses (OSS's `409 FileImmutable`), the client sees S3's
    /// lock refusal.
    pub(crate) async fn dispatch(&self, call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        let retention_backend = call
            .target
            .bucket
            .as_deref()
            .is_some_and(|b| self.locks.profile_of(b) == Profile::BucketRetention);
        let resp = self.route(call).await?;
        if retention_backend {
            return bucket_retention::immutable_as_denied(resp).await;
        }
        Ok(resp)
    }

    /// One `match` from the operation to its handler.
    async fn route(&self, mut call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        match call.op {
            S3Op::HeadObject | S3Op::GetObject => self.read_object(call).await,
            S3Op::GetObjectRetention | S3Op::GetObjectLegalHold => self.get_object_lock(call).await,
            S3Op::GetBucketConfig(BucketConfig::ObjectLock) => {
                self.get_lock_configuration(call).await
            }
            S3Op::PutObject | S3Op::CopyObject | S3Op::CompleteMultipartUpload => {
                self.write_object(call).await
            }
            S3Op::CreateMultipartUpload => self.start_upload(call).await,
            S3Op::DeleteObject => self.delete_object(call).await,
            S3Op::DeleteObjects => self.delete_objects(call).await,
            S3Op::PutObjectRetention => self.put_retention(call).await,
            S3Op::PutObjectLegalHold => self.put_legal_hold(call).await,
            S3Op::CreateBucket => self.create_bucket(call).await,
            S3Op::PutBucketConfig(BucketConfig::ObjectLock) => {
                self.put_lock_configuration(call).await
            }
            S3Op::PutBucketConfig(BucketConfig::Versioning) => self.put_versioning(call).await,
            S3Op::PutBucketConfig(BucketConfig::Lifecycle) => {
                self.bucket_action(call, Action::PutLifecycle).await
            }
            S3Op::DeleteBucket => self.bucket_action(call, Action::DeleteBucket).await,
            S3Op::PutBucketConfig(_) | S3Op::DeleteBucketConfig(_) => {
                self.bucket_action(call, Action::ChangeBucketSettings).await
            }
            S3Op::UploadPart
            | S3Op::UploadPartCopy
            | S3Op::AbortMultipartUpload
            | S3Op::PutObjectConfig(_)
            | S3Op::DeleteObjectTagging
            | S3Op::RestoreObject => {
                let facts = self.plain_facts(&call)?;
                let permit = self.decide(Action::Upload, &facts).await?;
                let headers = backend_headers(&call.headers);
                let resp = self.forward(&mut call, headers, permit).await?;
                if call.op == S3Op::AbortMultipartUpload
                    && resp.status().is_success()
                    && let Some(id) = call.upload_id.as_deref()
                {
                    // The lock it would have carried goes with it.
                    self.locks.index.remove_upload(id)?;
                }
                Ok(reply(resp))
            }
            _ => {
                let headers = backend_headers(&call.headers);
                Ok(reply(self.forward_read(&mut call, headers).await?))
            }
        }
    }

    /// Asks the policy, and records the answer.
    pub(crate) async fn decide(
        &self,
        action: Action,
        facts: &Facts,
    ) -> Result<Permit, GatewayError> {
        let now = self.locks.now();
        let decision = self.decide_at(action, facts, now).await;
        self.record(now, None, Some(action), refusal_of(&decision));
        Permit::granted(decision?).map_err(GatewayError::Denied)
    }

    /// The one place a decision is recorded, whoever made it (the policy, or a refusal before
    /// it): the `wormgate::audit` log target, the decision log of `/audit/events` and the
    /// denial metrics. `key` names the key of a batch (DeleteObjects) when the request's own
    /// path names none.
    pub(crate) fn record(
        &self,
        now: DateTime<Utc>,
        key: Option<&str>,
        action: Option<Action>,
        reason: Option<String>,
    ) {
        if let Some(label) = &reason {
            tracing::info!(target: "wormgate::audit", key, ?action, reason = %label, "denied");
        } else {
            tracing::debug!(target: "wormgate::audit", key, ?action, "allowed");
        }
        self.telemetry.decision(now, key, reason);
    }

    /// The policy's answer at `now`; an `Allow` that rests on a lock having ended stands only
    /// if the backend's clock confirms `now` (see `clock`).
    pub(crate) async fn decide_at(
        &self,
        action: Action,
        facts: &Facts,
        now: DateTime<Utc>,
    ) -> Result<Decision, GatewayError> {
        let decision = decide(action, facts, &self.locks.policy, now);
        if decision.is_allowed()
            && policy::rules::allowed_by_expiry(action, facts, &self.locks.policy, now)
        {
            self.confirm_time(now).await?;
        }
        Ok(decision)
    }

    /// Has the backend's clock vouch for `now`: a fresh `Date` reading (taken with one
    /// `HEAD /` if the latest is stale or disagrees) within the tolerance.
    ///
    /// # Errors
    /// `ClockUntrusted` when the clocks disagree or the backend cannot be asked.
    pub(crate) async fn confirm_time(&self, now: DateTime<Utc>) -> Result<(), GatewayError> {
        let time = &self.locks.time;
        let mut agreement = time.agreement(now);
        if agreement != Agreement::Agrees {
            let asked = self
                .read(ReadMethod::Head, &Target::default(), None, HeaderMap::new())
                .await;
            if let Err(e) = asked {
                time.forget_reading();
                self.telemetry.clock_refusals.inc();
                tracing::error!(error = %e, "an expiry decision is refused: the backend's clock cannot be read");
                return Err(GatewayError::ClockUntrusted(format!(
                    "the backend cannot be asked for its time: {e}"
                )));
            }
            agreement = time.agreement(now);
        }
        match agreement {
            Agreement::Agrees => Ok(()),
            Agreement::NeedReading => {
                self.telemetry.clock_refusals.inc();
                tracing::error!("an expiry decision is refused: the backend sends no Date header");
                Err(GatewayError::ClockUntrusted(
                    "the backend sends no Date header".into(),
                ))
            }
            Agreement::Disagrees { gateway_ahead_secs } => {
                self.telemetry.clock_refusals.inc();
                self.telemetry.clock_skew.set(gateway_ahead_secs);
                tracing::error!(
                    gateway_ahead_secs,
                    tolerance_secs = time.tolerance().num_seconds(),
                    gateway_now = %now.to_rfc3339(),
                    "an expiry decision is refused: the gateway's clock disagrees with the backend's Date"
                );
                Err(GatewayError::ClockUntrusted(format!(
                    "the gateway's clock is {gateway_ahead_secs} s ahead of the backend's"
                )))
            }
        }
    }

    /// Facts for an action that depends only on the caller.
    fn plain_facts(&self, call: &Call<'_>) -> Result<Facts, GatewayError> {
        Ok(Facts {
            caller: call.user.permissions,
            profile: self.locks.profile_of(call.bucket()?),
            bucket: BucketLock::default(),
            versioning: Versioning::Unversioned,
            target: VersionState::Unknown,
            contents: BucketContents::Unknown,
        })
    }

    /// Facts with the bucket's lock state filled in. The target version and the bucket's
    /// contents start unknown: an action that needs them and was not told fails closed.
    pub(crate) fn facts(&self, call: &Call<'_>, bucket: &BucketFacts) -> Facts {
        Facts {
            caller: call.user.permissions,
            profile: bucket.profile,
            bucket: bucket.lock,
            versioning: bucket.versioning,
            target: VersionState::Unknown,
            contents: BucketContents::Unknown,
        }
    }

    /// The bucket's profile, lock configuration and versioning.
    pub(crate) async fn bucket_facts(&self, bucket: &str) -> Result<BucketFacts, GatewayError> {
        let profile = self.locks.profile_of(bucket);
        match profile {
            Profile::Native => {
                if let Some(known) = self.locks.native_buckets.get(bucket) {
                    let (lock, versioning) = *known;
                    return Ok(BucketFacts {
                        profile,
                        lock,
                        versioning,
                    });
                }
                let (lock, versioning) = self.ask_native_bucket(bucket).await?;
                self.locks
                    .native_buckets
                    .insert(bucket.to_owned(), (lock, versioning));
                Ok(BucketFacts {
                    profile,
                    lock,
                    versioning,
                })
            }
            // The backend keeps one version per key (or is treated so: the stricter view).
            Profile::Gateway => Ok(BucketFacts {
                profile,
                lock: self
                    .locks
                    .index
                    .bucket(bucket)?
                    .map(|r| r.lock)
                    .unwrap_or_default(),
                versioning: Versioning::Unversioned,
            }),
            // The backend's bucket retention stands for object lock: it is always enabled,
            // with the default retention the gateway applies.
            Profile::BucketRetention => Ok(BucketFacts {
                profile,
                lock: BucketLock {
                    enabled: true,
                    default_retention: self
                        .locks
                        .index
                        .bucket(bucket)?
                        .and_then(|r| r.lock.default_retention),
                },
                versioning: Versioning::Unversioned,
            }),
        }
    }

    /// Reads a small backend reply whole (bucket configuration XML).
    pub(crate) async fn backend_get(
        &self,
        bucket: &str,
        sub: &str,
    ) -> Result<(StatusCode, bytes::Bytes), GatewayError> {
        let target = Target {
            bucket: Some(bucket.to_owned()),
            key: None,
        };
        let resp = self
            .read(ReadMethod::Get, &target, Some(sub), HeaderMap::new())
            .await?;
        let status = resp.status();
        let body = lock_xml::read_capped(Body::from(resp.into_body()), lock_xml::POLICY_BODY_CAP)
            .await
            .map_err(|e| GatewayError::BackendUnavailable(format!("reading {sub}: {e}")))?;
        Ok((status, body))
    }

    /// What a native backend says of a bucket's lock and versioning.
    pub(crate) async fn ask_native_bucket(
        &self,
        bucket: &str,
    ) -> Result<(BucketLock, Versioning), GatewayError> {
        let (status, body) = self.backend_get(bucket, "object-lock=").await?;
        let lock = if status.is_success() {
            lock_xml::parse_lock_configuration(&body).unwrap_or_default()
        } else if status == StatusCode::NOT_FOUND {
            BucketLock::default()
        } else {
            return Err(GatewayError::BackendUnavailable(format!(
                "GetObjectLockConfiguration on {bucket} answered {status}"
            )));
        };
        if lock.enabled {
            // Lock implies versioning, for good.
            return Ok((lock, Versioning::Enabled));
        }
        let (status, body) = self.backend_get(bucket, "versioning=").await?;
        if status == StatusCode::NOT_FOUND {
            // No such bucket: nothing in it to protect.
            return Ok((lock, Versioning::Unversioned));
        }
        if !status.is_success() {
            return Err(GatewayError::BackendUnavailable(format!(
                "GetBucketVersioning on {bucket} answered {status}"
            )));
        }
        Ok((lock, lock_xml::versioning_status(&body)))
    }

    /// The lock state of one version: the index, else a HEAD on the backend (whose answer is
    /// remembered in the index when it carries a lock). `always_head` forces the HEAD (the
    /// caller needs the object's headers).
    pub(crate) async fn inspect(
        &self,
        object: &ObjectRef,
        always_head: bool,
    ) -> Result<Inspected, GatewayError> {
        // A HEAD is needed anyway when the caller wants the object's headers.
        if !always_head && let Some(record) = self.locks.index.get(object)? {
            return Ok(Inspected {
                state: VersionState::Known(record.lock),
                version_id: object.version_id.clone(),
                head: None,
                delete_marker: false,
            });
        }
        let index_missed = !always_head;
        let resp = self.head_version(object).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let delete_marker = headers
            .get("x-amz-delete-marker")
            .is_some_and(|v| v.as_bytes() == b"true");
        let version_id = headers
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| *v != "null")
            .map(str::to_owned)
            .or_else(|| object.version_id.clone());
        let state = match status {
            s if s.is_success() => match lock_headers::from_backend(&headers) {
                Some(lock) => {
                    // The index may know this version under the id the HEAD revealed.
                    let resolved = ObjectRef {
                        version_id: version_id.clone(),
                        ..object.clone()
                    };
                    let known = if index_missed && resolved == *object {
                        None
                    } else {
                        self.locks.index.get(&resolved)?
                    };
                    let known_lock = known.map(|r| r.lock);
                    let lock = known_lock.map_or(lock, |k| k.strictest(lock));
                    // Remember what the backend showed, unless the index already says it.
                    if !lock.is_empty() && known_lock != Some(lock) {
                        self.locks.index.put(&LockRecord::new(
                            resolved,
                            lock,
                            LockSource::Backend,
                            self.locks.now(),
                        ))?;
                    }
                    VersionState::Known(lock)
                }
                None => VersionState::Unknown,
            },
            StatusCode::NOT_FOUND => VersionState::Absent,
            // HEAD of a delete marker by version id.
            StatusCode::METHOD_NOT_ALLOWED if delete_marker => VersionState::Absent,
            _ => {
                tracing::warn!(bucket = %object.bucket, key = %object.key, %status, "lock state unknown");
                VersionState::Unknown
            }
        };
        Ok(Inspected {
            state,
            version_id,
            head: status.is_success().then_some(headers),
            delete_marker,
        })
    }

    /// HEAD of one version on the backend (the gateway's own read, for facts).
    pub(crate) async fn head_version(
        &self,
        object: &ObjectRef,
    ) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
        let target = Target {
            bucket: Some(object.bucket.clone()),
            key: Some(object.key.clone()),
        };
        let query = object
            .version_id
            .as_ref()
            .map(|v| format!("versionId={}", crate::s3::target::encode_query_value(v)));
        self.read(
            ReadMethod::Head,
            &target,
            query.as_deref(),
            HeaderMap::new(),
        )
        .await
    }

    /// HEAD and GET: in the gateway profile the lock lives in metadata and the index, and is
    /// shown as S3's lock headers.
    async fn read_object(&self, mut call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let key = call.key()?.to_owned();
        let headers = backend_headers(&call.headers);
        let mut out = reply(self.forward_read(&mut call, headers).await?);
        if self.locks.profile_of(&bucket) == Profile::Native
            || !out.status.is_some_and(|s| s.is_success())
        {
            return Ok(out);
        }
        let from_meta = lock_headers::from_backend(&out.headers);
        let indexed = self
            .locks
            .index
            .get(&ObjectRef::new(&bucket, &key, None))?
            .map(|r| r.lock);
        let lock = match (from_meta, indexed) {
            (Some(a), Some(b)) => Some(a.strictest(b)),
            (a, b) => a.or(b),
        };
        let hold_set = out.headers.contains_key(lock_headers::META_LEGAL_HOLD);
        if let Some(lock) = lock.filter(|l| !l.is_empty() || hold_set) {
            lock_headers::set_response_headers(&mut out.headers, &lock);
        }
        Ok(out)
    }
}

/// The label a decision is recorded with: `None` for an allow.
pub(crate) fn refusal_of(outcome: &Result<Decision, GatewayError>) -> Option<String> {
    match outcome {
        Ok(Decision::Allow(_)) => None,
        Ok(Decision::Deny { reason }) => Some(crate::enforce::telemetry::reason_label(reason)),
        Err(e) => Some(e.refusal_label()),
    }
}

pub(crate) fn empty_body() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::<bytes::Bytes>::new()
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { match e {} })
        .boxed_unsync()
}

/// 200 with no body.
pub(crate) fn ok_empty() -> S3Response<Body> {
    reply_with(StatusCode::OK, None)
}
