//! Bucket operations that touch protection: CreateBucket with object lock, the lock
//! configuration, versioning, lifecycle, other settings, and DeleteBucket.
//!
//! On a native backend these pass through (after the policy); elsewhere the bucket's lock
//! configuration lives in the gateway's index, since the backend has no place for it.

use http::StatusCode;
use policy::lock::{Profile, Versioning};
use policy::rules::{Action, BucketContents, DenyReason};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::enforce::Permit;
use crate::enforce::ok_empty;
use crate::enforce::profile::Carried;
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::reply_with;
use crate::versions::layout;

/// The name under which a gateway serialises a bucket's settings changes (`settings_guard`).
const SETTINGS_LOCK: &str = ".wormgate/bucket/";

impl Gateway {
    /// Whether the backend lists no object in `bucket` (one ListObjectsV2 of one key).
    ///
    /// # Errors
    /// 503 when the backend cannot be listed: the answer decides a destructive action.
    pub(crate) async fn backend_bucket_is_empty(&self, bucket: &str) -> Result<bool, GatewayError> {
        let (status, body) = self.backend_get(bucket, "list-type=2&max-keys=1").await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(true);
        }
        if !status.is_success() {
            return Err(GatewayError::BackendUnavailable(format!(
                "ListObjectsV2 on {bucket} answered {status}"
            )));
        }
        // Everything counts, the gateway's own records too: a lock bucket keeps the records of
        // its lock configuration for as long as it exists, so that no gateway, however stale its
        // index, ever takes it for a plain bucket (and gives it a lifecycle rule).
        Ok(lock_xml::listing_is_empty(&body))
    }

    /// Before DeleteBucket of a versioned bucket without lock: removes the records that it is
    /// versioned if nothing else is left in it (an empty versioned bucket can be deleted, as
    /// on S3). Should a write land between, the bucket holds versions and no such record: any
    /// gateway then takes it for a lock bucket, which is stricter, never weaker.
    async fn forget_versioning_of_empty(
        &self,
        bucket: &str,
        action: Action,
        facts: &policy::rules::Facts,
    ) -> Result<(), GatewayError> {
        let everything = crate::versions::listing::BackendList {
            max_keys: 100,
            ..Default::default()
        };
        let page =
            crate::versions::listing::Lister::list(&self.lister(bucket), &everything).await?;
        let mut records = Vec::new();
        for item in page.items {
            match item {
                crate::versions::listing::BackendItem::Object(o)
                    if o.name.starts_with(layout::bucket_versioning_records()) =>
                {
                    records.push(o.name);
                }
                _ => return Ok(()),
            }
        }
        if page.next_continuation.is_some() {
            return Ok(());
        }
        for name in records {
            let target = crate::s3::target::Target {
                bucket: Some(bucket.to_owned()),
                key: Some(name),
            };
            let permit = self.permit_again(action, facts).await?;
            let resp = self
                .send_empty(http::Method::DELETE, &target, None, permit)
                .await?;
            if !resp.status().is_success() && resp.status() != StatusCode::NOT_FOUND {
                return Err(GatewayError::BackendUnavailable(format!(
                    "removing the versioning record of {bucket} answered {}",
                    resp.status()
                )));
            }
        }
        self.locks.forget_bucket(bucket);
        Ok(())
    }

    /// Serialises, through this gateway, the changes of a bucket's settings that must not
    /// cross: a lock or versioning on one side, lifecycle rules on the other. The name is the
    /// gateway's own folder, which no client key can take.
    async fn settings_guard(&self, bucket: &str) -> crate::enforce::key_locks::KeyGuard {
        self.locks.keys.lock(bucket, SETTINGS_LOCK).await
    }

    /// After recording that the bucket is a lock or versioned bucket: lifecycle rules put
    /// through another gateway at the same moment (checked before the record landed) are
    /// removed from the store. The rules lose: the store must never expire the versions the
    /// gateway keeps, whatever order the two requests took.
    async fn remove_crossing_rules(
        &self,
        bucket: &str,
        action: Action,
        facts: &policy::rules::Facts,
    ) -> Result<(), GatewayError> {
        if !self.has_lifecycle_rules(bucket).await? {
            return Ok(());
        }
        tracing::warn!(%bucket, "lifecycle rules were put while the bucket became a lock or versioned bucket: removed from the store");
        self.delete_lifecycle(bucket, self.permit_again(action, facts).await?)
            .await
    }

    /// Removes the bucket's lifecycle rules from the store.
    async fn delete_lifecycle(&self, bucket: &str, permit: Permit) -> Result<(), GatewayError> {
        let target = crate::s3::target::Target {
            bucket: Some(bucket.to_owned()),
            key: None,
        };
        let resp = self
            .send_empty(http::Method::DELETE, &target, Some("lifecycle="), permit)
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(GatewayError::BackendUnavailable(format!(
                "removing the lifecycle rules of {bucket} answered {}",
                resp.status()
            )))
        }
    }

    /// Whether the backend has the bucket (HeadBucket).
    ///
    /// # Errors
    /// 503 when the store cannot say.
    async fn bucket_exists(
        &self,
        target: &crate::s3::target::Target,
    ) -> Result<bool, GatewayError> {
        let resp = self
            .read(
                crate::backend::ReadMethod::Head,
                target,
                None,
                http::HeaderMap::new(),
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(GatewayError::BackendUnavailable(format!(
                "HeadBucket answered {s}"
            ))),
        }
    }

    /// Whether the store holds lifecycle rules for `bucket`: a bucket with some must not become
    /// a lock bucket where the store does not enforce locks (the rules would expire its locked
    /// versions). A store without lifecycle support (501), or without the bucket, has none.
    ///
    /// # Errors
    /// 503 when the store cannot say.
    async fn has_lifecycle_rules(&self, bucket: &str) -> Result<bool, GatewayError> {
        let (status, body) = self.backend_get(bucket, "lifecycle=").await?;
        match status {
            s if s.is_success() => Ok(String::from_utf8_lossy(&body).contains("<Rule>")),
            StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED => Ok(false),
            s => Err(GatewayError::BackendUnavailable(format!(
                "GetBucketLifecycleConfiguration on {bucket} answered {s}"
            ))),
        }
    }

    /// Passes a request that changes nothing through to the backend.
    pub(crate) async fn pass_read(
        &self,
        call: &mut Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let headers = backend_headers(&call.headers);
        Ok(reply(self.forward_read(call, headers).await?))
    }

    pub(crate) async fn create_bucket(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let lock_enabled = call
            .headers
            .get(lock_headers::BUCKET_LOCK_ENABLED)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let facts = self.facts(&call, &bucket_facts);
        let permit = self
            .decide(Action::CreateBucket { lock_enabled }, &facts)
            .await?;
        let _settings = self.settings_guard(&bucket).await;
        if lock_enabled
            && bucket_facts.profile == Profile::Gateway
            && self.has_lifecycle_rules(&bucket).await?
        {
            // A bucket that exists already, with rules that would expire its locked versions.
            return Err(GatewayError::Denied(DenyReason::LifecycleOnLockBucket));
        }
        let mut headers = backend_headers(&call.headers);
        let native = bucket_facts.profile == Profile::Native;
        if lock_enabled {
            Carried::BucketLock.onto(bucket_facts.profile, &mut headers);
        }
        let action = Action::CreateBucket { lock_enabled };
        let resp = self.forward(&mut call, headers, permit).await?;
        if resp.status().is_success() && bucket_facts.profile == Profile::Gateway && lock_enabled {
            // The backend records that the bucket is a lock bucket, for every gateway.
            let permit = self.permit_again(action, &facts).await?;
            self.record_bucket_lock(
                &bucket,
                &policy::lock::BucketLock {
                    enabled: true,
                    default_retention: None,
                },
                permit,
            )
            .await?;
            self.remove_crossing_rules(&bucket, action, &facts).await?;
        }
        if resp.status().is_success() && !native {
            // A bucket made through the gateway has a record: the index vouches for what is
            // locked in it. What the index knows of the backend's own retention stays.
            // Only ever turns lock on: a CreateBucket of a bucket that exists (which some
            // stores answer with 200) must not clear its default retention.
            self.locks
                .update_bucket(&bucket, |r| r.lock.enabled |= lock_enabled)?;
        }
        if resp.status().is_success() {
            self.locks.forget_bucket(&bucket);
        }
        Ok(reply(resp))
    }

    pub(crate) async fn put_lock_configuration(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let body = lock_xml::read_capped(call.take_body(), lock_xml::POLICY_BODY_CAP).await?;
        let lock = lock_xml::parse_lock_configuration(&body)?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let facts = self.facts(&call, &bucket_facts);
        let permit = self.decide(Action::PutLockConfiguration, &facts).await?;
        let _settings = self.settings_guard(&bucket).await;
        if bucket_facts.profile == Profile::Gateway && self.has_lifecycle_rules(&bucket).await? {
            // Rules set while the bucket was plain would expire the locked versions to come.
            return Err(GatewayError::Denied(DenyReason::LifecycleOnLockBucket));
        }
        if bucket_facts.profile == Profile::Native {
            let mut headers = backend_headers(&call.headers);
            let rendered = lock_xml::render_lock_configuration(&lock);
            call.set_body(bytes::Bytes::from(rendered), &mut headers);
            let resp = self.forward(&mut call, headers, permit).await?;
            self.locks.forget_bucket(&bucket);
            return Ok(reply(resp));
        }
        // The bucket must exist on the backend. The change is recorded there as a new record
        // (see `record_bucket_lock`), which every gateway reads, and in the index.
        if !self.bucket_exists(&call.target).await? {
            return Err(GatewayError::NoSuchBucket);
        }
        // The backend's bucket retention is the lock; it cannot be switched off.
        let mut lock = lock;
        lock.enabled |= bucket_facts.profile == Profile::BucketRetention;
        self.record_bucket_lock(&bucket, &lock, permit).await?;
        // What the index knows of the backend's own retention stays.
        self.locks.update_bucket(&bucket, |r| r.lock = lock)?;
        if bucket_facts.profile == Profile::Gateway {
            self.remove_crossing_rules(&bucket, Action::PutLockConfiguration, &facts)
                .await?;
        }
        Ok(ok_empty())
    }

    pub(crate) async fn get_lock_configuration(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        match self.locks.profile_of(&bucket) {
            Profile::Native => return self.pass_read(&mut call).await,
            // Clients that check for object lock (MSP360, Veeam) see it enabled, with the
            // default retention the gateway applies.
            Profile::BucketRetention => {
                let lock = self.bucket_facts(&bucket).await?.lock;
                return Ok(reply_with(
                    StatusCode::OK,
                    Some(lock_xml::render_lock_configuration(&lock)),
                ));
            }
            Profile::Gateway => {}
        }
        match self.locks.index.bucket(&bucket)? {
            Some(r) if r.lock.enabled => Ok(reply_with(
                StatusCode::OK,
                Some(lock_xml::render_lock_configuration(&r.lock)),
            )),
            _ => Err(GatewayError::ObjectLockConfigurationNotFound),
        }
    }

    pub(crate) async fn put_versioning(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let body = lock_xml::read_capped(call.take_body(), lock_xml::POLICY_BODY_CAP).await?;
        let suspend = lock_xml::suspends_versioning(&body)?;
        let bucket_facts = self.bucket_facts(&bucket).await?;
        let facts = self.facts(&call, &bucket_facts);
        let permit = self
            .decide(Action::PutVersioning { suspend }, &facts)
            .await?;
        let served = crate::enforce::versioned::serves_versions(&bucket_facts);
        if served && suspend {
            // Only a bucket without lock gets here (`decide` refused it on a lock bucket).
            return Err(GatewayError::NotImplemented(
                "Versioning served by the gateway, once enabled, cannot be suspended".into(),
            ));
        }
        if served {
            // The gateway serves this bucket's versions: enabled it is, and stays.
            let _ = permit;
            return Ok(crate::enforce::ok_empty());
        }
        if !suspend && bucket_facts.profile != Profile::Native {
            // The store keeps one version per key: the gateway serves the versions, from the
            // bucket's present objects (its `null` versions) on. The bucket must exist, without
            // lifecycle rules: the store would apply them to the gateway's names (expire the
            // record that the bucket is versioned, and the versions).
            let _settings = self.settings_guard(&bucket).await;
            if !self.bucket_exists(&call.target).await? {
                return Err(GatewayError::NoSuchBucket);
            }
            if self.has_lifecycle_rules(&bucket).await? {
                return Err(GatewayError::AccessDenied(
                    "Access Denied because the bucket has lifecycle rules, which this storage backend would apply to the versions wormgate keeps: remove them first.".into(),
                ));
            }
            self.record_versioning(&bucket, permit).await?;
            self.locks.note_versioned(&bucket, bucket_facts.lock);
            let action = Action::PutVersioning { suspend };
            self.remove_crossing_rules(&bucket, action, &facts).await?;
            return Ok(crate::enforce::ok_empty());
        }
        if bucket_facts.profile != Profile::Native {
            // Suspending versioning on a bucket that never had it: it keeps one version per
            // key, as it did (GetBucketVersioning goes on answering that it was never enabled).
            if !self.bucket_exists(&call.target).await? {
                return Err(GatewayError::NoSuchBucket);
            }
            let _ = permit;
            return Ok(crate::enforce::ok_empty());
        }
        let mut headers = backend_headers(&call.headers);
        let rendered = lock_xml::render_versioning(suspend);
        call.set_body(bytes::Bytes::from(rendered), &mut headers);
        let resp = self.forward(&mut call, headers, permit).await?;
        self.locks.forget_bucket(&bucket);
        Ok(reply(resp))
    }

    /// GetBucketVersioning of a bucket whose versions the gateway does not serve: a native
    /// backend's own answer; elsewhere versioning was never enabled (the store's own state,
    /// if it has one, is not the gateway's).
    pub(crate) async fn get_versioning(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        if self.locks.profile_of(&bucket) == Profile::Native {
            return self.pass_read(&mut call).await;
        }
        if !self.bucket_exists(&call.target).await? {
            return Err(GatewayError::NoSuchBucket);
        }
        Ok(reply_with(
            StatusCode::OK,
            Some(lock_xml::render_versioning_never().into()),
        ))
    }

    /// Lifecycle rules, other settings, DeleteBucket: decided on the bucket's contents.
    pub(crate) async fn bucket_action(
        &self,
        mut call: Call<'_>,
        action: Action,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let mut bucket_facts = self.bucket_facts(&bucket).await?;
        let native = bucket_facts.profile == Profile::Native;
        let _settings = if action == Action::PutLifecycle && !native {
            Some(self.settings_guard(&bucket).await)
        } else {
            None
        };
        if action == Action::PutLifecycle && bucket_facts.profile == Profile::Gateway {
            // Whatever this gateway's index says: if the backend records the bucket as a lock
            // bucket (another gateway made it one), no rule may expire its versions.
            let stored = self.bucket_on_backend(&bucket).await?;
            if let Some(lock) = stored.lock {
                bucket_facts.lock.enabled |= lock.enabled;
            }
            if stored.versioned {
                bucket_facts.versioning = Versioning::Enabled;
            }
        }
        if action == Action::PutLifecycle
            && !native
            && bucket_facts.versioning == Versioning::Enabled
            && !bucket_facts.lock.enabled
        {
            // The store would apply the rules to the gateway's names, not the client's keys:
            // expire versions by the wrong name, or the record that the bucket is versioned (a
            // lock bucket is refused by the policy, 403, whatever its contents).
            return Err(GatewayError::NotImplemented(
                "Lifecycle rules are not supported on a bucket whose versions wormgate serves"
                    .into(),
            ));
        }
        let mut facts = self.facts(&call, &bucket_facts);
        if matches!(action, Action::PutLifecycle | Action::DeleteBucket) {
            let now = self.locks.now();
            facts.contents = if self.locks.index.holds_locks(&bucket, now)? {
                BucketContents::HoldsLocks
            } else if !native
                && action == Action::PutLifecycle
                && self.locks.index.bucket(&bucket)?.is_none()
                && !self.backend_bucket_is_empty(&bucket).await?
            {
                // The index never saw this bucket made or rebuilt (or was lost): it cannot
                // vouch that nothing in it is locked. (DeleteBucket needs no vouching: below,
                // it goes on only when the backend lists nothing.)
                BucketContents::Unknown
            } else {
                // Locks that were there and have ended: "no locks" rests on the clock.
                if self
                    .locks
                    .index
                    .holds_locks(&bucket, chrono::DateTime::<chrono::Utc>::MIN_UTC)?
                {
                    self.confirm_time(now).await?;
                }
                BucketContents::NoLocks
            };
        }
        let permit = self.decide(action, &facts).await?;
        if action == Action::DeleteBucket
            && !native
            && !bucket_facts.lock.enabled
            && bucket_facts.versioning == Versioning::Enabled
        {
            self.forget_versioning_of_empty(&bucket, action, &facts)
                .await?;
        }
        if action == Action::DeleteBucket
            && !native
            && !self.backend_bucket_is_empty(&bucket).await?
        {
            // Some stores (s3s-fs) delete a bucket with everything in it. Through wormgate a
            // bucket is deleted only once every object in it was deleted, each decided on its
            // own lock: whatever the index says, the backend's listing decides. A lock bucket
            // of the gateway profile is never empty: its lock records stay (see above).
            return Err(GatewayError::BucketNotEmpty(
                if bucket_facts.lock.enabled && !native {
                    "The bucket you tried to delete is not empty (a lock bucket keeps the records of its lock configuration under .wormgate/bucket/: its owner deletes it on the store itself)".into()
                } else {
                    "The bucket you tried to delete is not empty".into()
                },
            ));
        }
        let headers = backend_headers(&call.headers);
        let resp = self.forward(&mut call, headers, permit).await?;
        if action == Action::DeleteBucket && resp.status().is_success() {
            self.locks.index.remove_bucket(&bucket)?;
        }
        self.locks.forget_bucket(&bucket);
        if action == Action::PutLifecycle
            && bucket_facts.profile == Profile::Gateway
            && resp.status().is_success()
        {
            // The bucket may have become a lock or versioned bucket through another gateway
            // while the rules were on their way (that gateway checked for rules before): the
            // store is asked again, and the rules taken back if so.
            let stored = self.bucket_on_backend(&bucket).await?;
            if stored.lock.is_some_and(|l| l.enabled) || stored.versioned {
                tracing::warn!(%bucket, "the bucket became a lock or versioned bucket while lifecycle rules were put: removed from the store");
                self.delete_lifecycle(&bucket, self.permit_again(action, &facts).await?)
                    .await?;
                return Err(GatewayError::Denied(DenyReason::LifecycleOnLockBucket));
            }
        }
        Ok(reply(resp))
    }
}
