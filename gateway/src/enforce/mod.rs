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
//! This file is `dispatch`: one `match` from the operation to its handler. Beside it:
//! - the handlers, one per concern: `reads` (GetObject, HeadObject), `writes` (PutObject,
//!   CopyObject, multipart), `deletes` (DeleteObject, DeleteObjects), `retention` (retention
//!   and legal hold), `buckets` (bucket lock, versioning, lifecycle, deletion),
//!   `bucket_retention` (OSS's bucket-level retention under per-object dates);
//! - what they share: `facts` (gathering), `decide` (the policy, the clock's word, the one
//!   recorder), `profile` (what a decided request carries to each backend), `gateway` (state,
//!   the per-request `Call`, the way to the door), `locks`, `clock`, `telemetry`.

mod bucket_retention;
mod buckets;
pub mod clock;
mod decide;
mod deletes;
mod facts;
mod gateway;
mod group_flush;
mod key_locks;
mod locks;
mod profile;
mod reads;
mod retention;
pub mod telemetry;
mod versioned;
mod writes;

pub(crate) use decide::refusal_of;
pub(crate) use facts::BucketFacts;
pub(crate) use gateway::Call;
pub use gateway::Gateway;
pub use locks::Locks;

use http::StatusCode;
use policy::lock::Profile;
use policy::rules::Action;
use s3s::{Body, S3Response};

use crate::backend::Permit;
use crate::backend::ProxyBody;
use crate::backend::door::{backend_headers, reply};
use crate::error::GatewayError;
use crate::s3::op::{BucketConfig, S3Op};
use crate::s3::reply_with;

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
    async fn route(&self, call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        if self.serves_versions_of(&call).await? {
            return self.route_versioned(call).await;
        }
        self.route_unversioned(call).await
    }

    /// Every operation, on any bucket.
    async fn route_unversioned(
        &self,
        mut call: Call<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
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
            S3Op::GetBucketConfig(BucketConfig::Versioning) => self.get_versioning(call).await,
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
            | S3Op::RestoreObject => self.upload_step(call).await,
            _ => {
                let headers = backend_headers(&call.headers);
                Ok(reply(self.forward_read(&mut call, headers).await?))
            }
        }
    }
}

impl Gateway {
    /// Whether the call acts on a bucket whose versions the gateway serves.
    async fn serves_versions_of(&self, call: &Call<'_>) -> Result<bool, GatewayError> {
        let Some(bucket) = call.target.bucket.as_deref() else {
            return Ok(false);
        };
        if self.locks.profile_of(bucket) == Profile::Native
            || matches!(call.op, S3Op::CreateBucket | S3Op::ListBuckets)
        {
            return Ok(false);
        }
        Ok(versioned::serves_versions(
            &self.bucket_facts(bucket).await?,
        ))
    }

    /// The operations of a versioned bucket whose versions the gateway serves: reads and
    /// listings from the version names, part requests aimed at their version; the rest as in
    /// `route`, each handler resolving versions itself.
    async fn route_versioned(&self, mut call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        match call.op {
            S3Op::HeadObject | S3Op::GetObject => self.read_version(call).await,
            S3Op::ListObjects | S3Op::ListObjectsV2 | S3Op::ListObjectVersions => {
                self.list_versioned(&call).await
            }
            S3Op::GetBucketConfig(BucketConfig::Versioning) => Ok(Self::versioning_enabled_reply()),
            S3Op::ListMultipartUploads => self.list_uploads(&call).await,
            S3Op::UploadPart | S3Op::UploadPartCopy | S3Op::AbortMultipartUpload => {
                self.aim_at_upload(&mut call)?;
                self.upload_step(call).await
            }
            S3Op::ListParts => {
                let key = call.key()?.to_owned();
                let id = self.aim_at_upload(&mut call)?;
                let backend_id = call.query.get("uploadId").map(str::to_owned);
                let client_id = call.upload_id.clone();
                let headers = backend_headers(&call.headers);
                let resp = self.forward_read(&mut call, headers).await?;
                let ids = backend_id.as_deref().zip(client_id.as_deref());
                versioned::with_client_names(resp, &key, &id, ids).await
            }
            S3Op::PutObjectConfig(_) | S3Op::DeleteObjectTagging | S3Op::RestoreObject => {
                self.aim_at_version(&mut call).await?;
                self.upload_step(call).await
            }
            S3Op::GetObjectConfig(_) => {
                self.aim_at_version(&mut call).await?;
                let headers = backend_headers(&call.headers);
                Ok(reply(self.forward_read(&mut call, headers).await?))
            }
            _ => Box::pin(self.route_unversioned(call)).await,
        }
    }
}

impl Gateway {
    /// A step that adds to an upload or an object without replacing a version (a part, a
    /// part copied from a source version, an abort, tagging): decided as such and forwarded.
    async fn upload_step(&self, mut call: Call<'_>) -> Result<S3Response<Body>, GatewayError> {
        let facts = self.plain_facts(&call)?;
        let permit = self.decide(Action::Upload, &facts).await?;
        let mut headers = backend_headers(&call.headers);
        if call.op == S3Op::UploadPartCopy {
            // A source in a bucket whose versions the gateway serves, by its backend name.
            self.aim_copy_source(&mut headers).await?;
        }
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
}

pub(crate) fn empty_body() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::<bytes::Bytes>::new()
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { match e {} })
        .boxed_unsync()
}

/// A body the gateway wrote, whole.
pub(crate) fn bytes_body(bytes: bytes::Bytes) -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes)
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { match e {} })
        .boxed_unsync()
}

/// 200 with no body.
pub(crate) fn ok_empty() -> S3Response<Body> {
    reply_with(StatusCode::OK, None)
}
