//! Bucket operations that touch protection: CreateBucket with object lock, the lock
//! configuration, versioning, lifecycle, other settings, and DeleteBucket.
//!
//! On a native backend these pass through (after the policy); elsewhere the bucket's lock
//! configuration lives in the gateway's index, since the backend has no place for it.

use http::StatusCode;
use policy::lock::Profile;
use policy::rules::{Action, BucketContents};
use s3s::{Body, S3Response};

use crate::backend::door::{backend_headers, reply};
use crate::enforce::ok_empty;
use crate::enforce::profile::Carried;
use crate::enforce::{Call, Gateway};
use crate::error::GatewayError;
use crate::s3::lock_headers;
use crate::s3::lock_xml;
use crate::s3::reply_with;

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
        if lock_xml::listing_is_empty(&body) {
            return Ok(true);
        }
        // The records of the bucket's own lock configuration are not content; its versions
        // and delete markers are (as on AWS, a bucket of delete markers is not empty).
        use crate::versions::layout;
        use crate::versions::listing::{self, BackendList, ListRequest, Lister as _};
        let lister = self.lister(bucket);
        let versions = lister
            .list(&BackendList {
                prefix: layout::versions_prefix(""),
                delimiter: Some("/".into()),
                max_keys: 1,
                ..BackendList::default()
            })
            .await?;
        if !versions.items.is_empty() {
            return Ok(false);
        }
        let request = ListRequest {
            prefix: String::new(),
            delimiter: None,
            max_keys: 1,
            backend_page: 1000,
        };
        Ok(listing::list_current(&lister, &request, None)
            .await?
            .items
            .is_empty())
    }

    /// Deletes the records of a bucket's lock configuration (before the bucket itself), each
    /// on a permit of `action` decided again; how many there were.
    async fn drop_bucket_lock_records(
        &self,
        bucket: &str,
        action: Action,
        facts: &policy::rules::Facts,
    ) -> Result<usize, GatewayError> {
        use crate::versions::layout;
        use crate::versions::listing::{BackendItem, BackendList, Lister as _};
        let lister = self.lister(bucket);
        let page = lister
            .list(&BackendList {
                prefix: layout::bucket_lock_records().to_owned(),
                delimiter: Some("/".into()),
                max_keys: 1000,
                ..BackendList::default()
            })
            .await?;
        let mut dropped = 0;
        for item in page.items {
            let BackendItem::Object(o) = item else {
                continue;
            };
            let permit = self.permit_again(action, facts).await?;
            let target = crate::s3::target::Target {
                bucket: Some(bucket.to_owned()),
                key: Some(o.name),
            };
            let resp = self
                .send_empty(
                    http::Method::DELETE,
                    &target,
                    http::HeaderMap::new(),
                    permit,
                )
                .await?;
            if !resp.status().is_success() {
                return Err(GatewayError::BackendUnavailable(format!(
                    "deleting a lock record of {bucket} answered {}",
                    resp.status()
                )));
            }
            dropped += 1;
        }
        Ok(dropped)
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
        }
        if resp.status().is_success() && !native {
            // A bucket made through the gateway has a record: the index vouches for what is
            // locked in it. What the index knows of the backend's own retention stays.
            // Only ever turns lock on: a CreateBucket of a bucket that exists (which some
            // stores answer with 200) must not clear its default retention.
            self.locks
                .update_bucket(&bucket, |r| r.lock.enabled |= lock_enabled)?;
        }
        self.locks.forget_bucket(&bucket);
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
        if bucket_facts.profile == Profile::Native {
            let mut headers = backend_headers(&call.headers);
            let rendered = lock_xml::render_lock_configuration(&lock);
            call.set_body(bytes::Bytes::from(rendered), &mut headers);
            let resp = self.forward(&mut call, headers, permit).await?;
            self.locks.forget_bucket(&bucket);
            return Ok(reply(resp));
        }
        // The bucket must exist on the backend. In the gateway profile the change is recorded
        // there as a new record (see `record_bucket_lock`); on a bucket-retention backend the
        // index keeps it.
        let resp = self
            .read(
                crate::backend::ReadMethod::Head,
                &call.target,
                None,
                http::HeaderMap::new(),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(GatewayError::NoSuchBucket);
        }
        if !resp.status().is_success() {
            return Err(GatewayError::BackendUnavailable(format!(
                "HeadBucket answered {}",
                resp.status()
            )));
        }
        if bucket_facts.profile == Profile::Gateway {
            self.record_bucket_lock(&bucket, &lock, permit).await?;
        } else {
            let _ = permit;
        }
        // What the index knows of the backend's own retention stays.
        let retention_backend = bucket_facts.profile == Profile::BucketRetention;
        self.locks.update_bucket(&bucket, |r| {
            r.lock = lock;
            // The backend's bucket retention is the lock; it cannot be switched off.
            r.lock.enabled |= retention_backend;
        })?;
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
        if crate::enforce::versioned::serves_versions(&bucket_facts) {
            // The gateway serves this bucket's versions: enabled it is, and stays.
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

    /// Lifecycle rules, other settings, DeleteBucket: decided on the bucket's contents.
    pub(crate) async fn bucket_action(
        &self,
        mut call: Call<'_>,
        action: Action,
    ) -> Result<S3Response<Body>, GatewayError> {
        let bucket = call.bucket()?.to_owned();
        let mut bucket_facts = self.bucket_facts(&bucket).await?;
        let native = bucket_facts.profile == Profile::Native;
        if action == Action::PutLifecycle && bucket_facts.profile == Profile::Gateway {
            // Whatever this gateway's index says: if the backend records the bucket as a lock
            // bucket (another gateway made it one), no rule may expire its versions.
            if let Some(lock) = self.bucket_lock_on_backend(&bucket).await? {
                bucket_facts.lock.enabled |= lock.enabled;
            }
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
            && !self.backend_bucket_is_empty(&bucket).await?
        {
            // Some stores (s3s-fs) delete a bucket with everything in it. Through wormgate a
            // bucket is deleted only once every object in it was deleted, each decided on its
            // own lock: whatever the index says, the backend's listing decides.
            return Err(GatewayError::BucketNotEmpty(
                "The bucket you tried to delete is not empty".into(),
            ));
        }
        // An empty lock bucket still holds the records of its lock configuration: they go
        // first, and come back if the store keeps the bucket after all.
        let records = if action == Action::DeleteBucket && bucket_facts.profile == Profile::Gateway
        {
            self.drop_bucket_lock_records(&bucket, action, &facts)
                .await?
        } else {
            0
        };
        let headers = backend_headers(&call.headers);
        let resp = self.forward(&mut call, headers, permit).await;
        let kept = resp.as_ref().map_or(true, |r| !r.status().is_success());
        if records > 0 && kept {
            let permit = self.permit_again(action, &facts).await?;
            self.record_bucket_lock(&bucket, &bucket_facts.lock, permit)
                .await?;
        }
        let resp = resp?;
        if action == Action::DeleteBucket && resp.status().is_success() {
            self.locks.index.remove_bucket(&bucket)?;
        }
        self.locks.forget_bucket(&bucket);
        Ok(reply(resp))
    }
}
